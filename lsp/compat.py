"""Every workaround for a bug or gap in a third-party library, in one place, pinned to the versions tested.

This is the only module that may use a name starting with ``_`` from a third-party library
(tests/unit/test_public_apis.py checks it). Each workaround says which upstream behaviour it corrects, links
the upstream issue, and has a test in tests/unit/test_compat.py that fails when upstream changes that
behaviour (then the workaround is re-checked, and dropped if upstream fixed it).

pygls (tested: :data:`TESTED_PYGLS`):

* A request whose params cannot be read is never answered: pygls structures a message while the JSON is
  parsed, and when that fails it logs and drops the message; the client waits forever. Here it is answered
  with the error, naming what was wrong. (upstream: https://github.com/openlawlibrary/pygls/issues/326)
* The future of every handler stays in the protocol's table of requests for good: notifications (every
  keystroke) and handlers a built-in one delegates to are filed under an id and never removed (~1 kB per
  keystroke, found by tests/bench/soak.py). Here an entry leaves the table when its future is done.
  (no upstream issue found; the neighbouring leak of ``_result_types`` is
  https://github.com/openlawlibrary/pygls/issues/608)
* ``shutdown`` cancels the requests in flight while iterating over the dict that cancelling them changes (a
  thread handler's future calls back synchronously): "dictionary changed size during iteration", and the
  server never counts as shut down. Also: it counts as shut down only once its handler finished, so an
  ``exit`` read meanwhile exited with 1. (no upstream issue found)
* Requests before ``initialize`` are served (LSP: error -32002), and requests after ``shutdown`` are never
  answered (LSP: error -32600); notifications before ``initialize`` are dropped, as LSP says.
  (upstream: https://github.com/openlawlibrary/pygls/issues/605 for the state after shutdown; LSP 3.17,
  "initialize" and "shutdown")
* After a ``Content-Length`` that lies, pygls's reader never finds the next message again: a body too long
  swallows the next message (and waits for bytes that never come), one too short leaves the rest glued to the
  next header. :class:`ResyncingReader` finds the next header. (no upstream issue found)
* Documents are not kept twice: pygls keeps each open document in its workspace and applies every change to
  it too (O(file) per keystroke); the server has its own store (lsp/context/documents.py), so the built-in
  document handlers call the server's straight away.

py-tree-sitter (:func:`chunks_leak`): 0.26 leaks one reference to every object a read callback returns
(``parser_read_wrapper`` takes a buffer view on the result, which holds its own reference, and never drops
the one the call returned; measured: ~10 MB per line typed in a 5,000-line file). No upstream issue found for
the read callback; the same kind of leak in the progress callback is
https://github.com/tree-sitter/py-tree-sitter/issues/483, fixed by
https://github.com/tree-sitter/py-tree-sitter/pull/488.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import inspect
import logging
import os
import re
import threading
from collections.abc import Callable, Generator
from importlib.metadata import version
from typing import Any, BinaryIO

import tree_sitter
from lsprotocol import types
from lsprotocol.types import ResponseError
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger(__name__)

TESTED_PYGLS = ("2.1",)  # minor versions whose internals the Protocol below was checked against
LEAKING_TREE_SITTER = ("0.25.0", "0.25.1", "0.25.2", "0.26.0", "0.26.1")  # leak one reference per chunk

SERVER_NOT_INITIALIZED = -32002
INVALID_REQUEST = -32600

# A header inside a body: raw CR LF cannot occur in a JSON string, and this text outside one is not JSON
_HEADER = re.compile(rb"Content-Length: *\d+\r\n")
HEADER_OVERLAP = 40  # bytes searched again: a header may start in one read and end in the next
READ_SIZE = 256 * 1024  # at most, per read: what is there is returned at once
LINE_LIMIT = 64 * 1024  # a header line longer than this is handed over in pieces (and ignored as a header)


def minor(package: str) -> str:
    return ".".join(version(package).split(".")[:2])


def pygls_tested() -> bool:
    return minor("pygls") in TESTED_PYGLS


class Protocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._initialize_seen = False

    # -- the lifecycle LSP prescribes --------------------------------------------------------------------

    def handle_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        request = method is not None and msg_id is not None
        if not self._initialize_seen and method is not None and method not in (types.INITIALIZE, types.EXIT):
            if request:
                self.reply_error(msg_id, SERVER_NOT_INITIALIZED, f"{method}: the server is not initialized yet")
            else:
                log.debug("dropped %s: it came before initialize", method)
            return
        if self._shutdown and method != types.EXIT and request:
            self.reply_error(msg_id, INVALID_REQUEST, f"{method}: the server is shutting down")
            return
        if method == types.INITIALIZE:
            self._initialize_seen = True
        super().handle_message(message)

    def reply_error(self, msg_id: Any, code: int, message: str) -> None:
        self._send_response(msg_id, error=ResponseError(code=code, message=message))

    # -- unreadable requests get an answer ---------------------------------------------------------------

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

    # -- futures leave the table when done -----------------------------------------------------------------

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

    # -- documents: the server's store only ----------------------------------------------------------------

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

    # -- shutdown --------------------------------------------------------------------------------------------

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        current_id = self.msg_id  # this request's id, taken now: other messages are handled meanwhile
        # Received is what counts (for the exit code, and to refuse requests that follow), not finished.
        self._shutdown = True
        finished = _future()
        self._shutdown_finished = finished
        # What is in flight now is cancelled now (pygls: after the handler, when an `exit` read meanwhile is
        # in flight too, and would be cancelled with the rest)
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current_id and not future.done():
                future.cancel()
        try:
            if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
                yield user_handler, args, None
        finally:
            if finished is not None and not finished.done():
                finished.set_result(None)  # its waiters resume once the answer (sent on return) is out
        return None

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        # An `exit` read while `shutdown` still runs (a client that does not wait for the answer, a recorded
        # session read at once) waits for the shutdown's answer: pygls would exit without sending it.
        finished = getattr(self, "_shutdown_finished", None)
        if finished is not None and not finished.done():
            yield _wait_for, (finished,), None
        yield from super().lsp_exit(*args)


def _future() -> asyncio.Future[None] | None:
    try:
        return asyncio.get_running_loop().create_future()
    except RuntimeError:  # no loop (a test driving the protocol directly)
        return None


async def _wait_for(future: asyncio.Future[None]) -> None:
    await asyncio.shield(future)


def requests_in_flight(protocol: LanguageServerProtocol) -> int:
    """How many handlers pygls has in flight (for the server's stats)."""
    return len(protocol._request_futures)


def request_future(protocol: LanguageServerProtocol, msg_id: Any) -> Any:
    """The future pygls runs request ``msg_id``'s handler in, if it is in flight."""
    return protocol._request_futures.get(msg_id)


def shut_down(protocol: LanguageServerProtocol) -> bool:
    """Whether ``shutdown`` was received."""
    return bool(protocol._shutdown)


class ResyncingReader:
    """pygls's reader interface over stdin, which finds the next message after a ``Content-Length`` that
    lies. A daemon thread reads what is there (up to :data:`READ_SIZE` bytes at a time) and hands it to the
    loop; header lines and bodies are served from that: one wake-up of the loop per read, where pygls's reader
    takes a hop to its thread pool per header line and per body. Being a daemon, the thread never keeps the
    process alive once ``exit`` was handled, whatever stdin does (a pool thread blocked in a read would)."""

    def __init__(self, stdin: BinaryIO) -> None:
        self._read = _reader(stdin)
        self._chunks: asyncio.Queue[bytes] | None = None
        self._buffer = bytearray()
        self._searched = 0  # the buffer holds no header before this index
        self._ended = False
        self._between_messages = False

    def _start(self) -> asyncio.Queue[bytes]:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes] = asyncio.Queue()

        def pump() -> None:
            while True:
                try:
                    chunk = self._read(READ_SIZE)
                except (OSError, ValueError):  # closed
                    chunk = b""
                try:
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
                except RuntimeError:  # the loop is closed: the server is done
                    return
                if not chunk:
                    return

        threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
        return chunks

    async def _fill(self) -> bool:
        if self._ended:
            return False
        if self._chunks is None:
            self._chunks = self._start()
        chunk = await self._chunks.get()
        if not chunk:
            self._ended = True
            return False
        self._buffer += chunk
        return True

    def _take(self, n: int) -> bytes:
        taken = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._searched = max(0, self._searched - n)
        return taken

    async def readline(self) -> bytes:
        if self._between_messages:
            self._between_messages = False
            if self._buffer:
                # The next message is here already (an edit and its completion request come together): pygls
                # would handle it in the same turn of the loop as the last one, which held the loop for both.
                await asyncio.sleep(0)
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                return _from_header(self._take(end + 1))
            if len(self._buffer) > LINE_LIMIT:  # junk without a line break: handed over in pieces, ignored
                return self._take(len(self._buffer))
            if not await self._fill():
                return self._take(len(self._buffer))  # the end of input: b"" once nothing is left

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n and self._next_header() is None:
            if not await self._fill():
                break
        found = self._next_header()
        self._between_messages = True
        if found is not None and found < n:
            log.warning("a message was shorter than its Content-Length said; skipped to the next one")
            return self._take(found) or b" "  # (empty would read as the end of input)
        return self._take(n)

    def _next_header(self) -> int | None:
        """Where the next header starts in the buffer, if it holds one. Only what is new is searched (a body
        of megabytes arrives in many reads)."""
        found = _HEADER.search(self._buffer, max(0, self._searched - HEADER_OVERLAP))
        if found is None:
            self._searched = len(self._buffer)
            return None
        return found.start()


def _reader(stdin: BinaryIO) -> Callable[[int], bytes]:
    """A read of what is there. The file descriptor itself where there is one: a daemon thread blocked in
    a buffered reader's read holds its lock, and the interpreter aborts when it cannot take it at exit."""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return getattr(stdin, "read1", stdin.read)  # type: ignore[no-any-return]
    return lambda size: os.read(fd, size)


def _from_header(line: bytes) -> bytes:
    """A header line glued to the remains of a body shorter than its Content-Length: the header."""
    at = line.find(b"Content-Length:")
    return line[at:] if at > 0 else line


def _describe(error: BaseException) -> str:
    """cattrs reports nested validation errors as an exception group: the first leaf says enough."""
    while (inner := getattr(error, "exceptions", None)) and isinstance(inner[0], BaseException):
        error = inner[0]
    notes = getattr(error, "__notes__", None)
    text = str(error) or type(error).__name__
    return f"{text} ({notes[0]})" if notes else text


# -- py-tree-sitter --------------------------------------------------------------------------------------


@functools.cache
def chunks_leak() -> bool:
    """Whether the installed py-tree-sitter keeps a reference to every chunk a read callback returns."""
    # its own __version__ where it has one: importlib.metadata's first use imports the email package, 6 ms
    # of the first didOpen
    return (getattr(tree_sitter, "__version__", None) or version("tree-sitter")) in LEAKING_TREE_SITTER


_decref = ctypes.pythonapi.Py_DecRef
_decref.argtypes = [ctypes.py_object]
_decref.restype = None


def release_chunks(chunks: list[bytes]) -> None:
    """Give back the reference py-tree-sitter leaked to each chunk of a finished parse call (only on a
    version in :data:`LEAKING_TREE_SITTER`: on any other this would free objects still in use)."""
    if chunks_leak():
        for chunk in chunks:
            _decref(chunk)
