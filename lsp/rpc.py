"""The JSON-RPC protocol as pygls implements it, with fixes.

* A request whose params cannot be read still gets an answer. pygls turns a message into typed objects
  while the JSON is parsed; when that fails (a position that is a string, a missing text document) it logs
  and drops the message, and the client waits for an answer that never comes. Here such a request is
  answered with InvalidParams (or InternalError) naming what was wrong.
* `shutdown` counts from when it is received: an `exit` read while its handler runs exits with 0.
* `shutdown` while a command runs. pygls cancels the requests in flight while iterating over the dict
  that cancelling them changes (a command's future calls back synchronously), so the shutdown failed with
  "dictionary changed size during iteration" and the server never counted as shut down.
* No second copy of every document. pygls keeps each open document in its workspace and applies every
  change to it too (splitting and joining the whole text per keystroke: O(file) on the path of each
  completion); the server has its own store (lsp/context/documents.py), so these updates are skipped.
* A future per notification. pygls files the future of every notification handler (didChange: every
  keystroke) and of every handler a built-in one delegates to under a random id in its table of requests,
  and never removes it: ~1 kB per keystroke, for the life of the process (found by tests/bench/soak.py).
  Here an entry leaves the table when its future is done.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Generator
from typing import Any

from lsprotocol import types
from lsprotocol.types import ResponseError
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger(__name__)


class Protocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: set[asyncio.Task[Any]] = set()

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if isinstance(data, dict) and "method" in data and isinstance(data.get("id"), (int, str)):
                cause = error.__cause__
                detail = f": {_describe(cause)}" if cause is not None else ""
                message = f"cannot read the params of {data['method']!r}{detail}"
                log.warning("request %s: %s", data["id"], message)
                self._send_response(data["id"], error=ResponseError(code=error.code, message=message))
            raise

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(lambda done: self._forget(msg_id, done))

    def _forget(self, msg_id: Any, future: Any) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    # The document notifications call the server's handler straight away: pygls's built-in ones are
    # generators that yield to it, a future, two ids and a few runtime protocol checks per keystroke.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        self._notify_feature(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        self._notify_feature(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        self._notify_feature(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def _notify_feature(self, method: str, params: Any) -> None:
        handler = self.fm.features.get(method)
        if handler is None:
            return
        result = handler(params)
        if inspect.isawaitable(result):  # (the server's handlers are synchronous; a coroutine still runs)
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        # This request's id, taken now: other messages may be handled while the user handler runs.
        current_id = self.msg_id
        # Received is what counts (for the exit code, and to refuse requests that follow), not finished:
        # an `exit` may be read while the user handler still closes the backend.
        self._shutdown = True
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        return None


def _describe(error: BaseException) -> str:
    """cattrs reports nested validation errors as an exception group: the first leaf says enough."""
    while (inner := getattr(error, "exceptions", None)) and isinstance(inner[0], BaseException):
        error = inner[0]
    notes = getattr(error, "__notes__", None)
    text = str(error) or type(error).__name__
    return f"{text} ({notes[0]})" if notes else text
