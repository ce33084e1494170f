"""Answers that stream: the model's text so far, sent while an action runs, to clients that ask for it.

A client opts in with `initializationOptions` `{"streaming": true}` (beside its `codellama` settings) and
the `window.workDoneProgress` capability. While an action runs under a work-done progress token, the
server then sends the notification `codellama/partial`:

    {token, action, title, uri, text, done, outcome?}

The first one, sent as the work begins, has an empty `text`: a client may open its view then, while
the model starts. `text` is the model's whole reply so far (raw: an explanation's markdown, or a
refactoring's code with its fences), so a client replaces what it shows and never stitches pieces
together. `done` is true in the last one, sent when the work ends, with `outcome` "done", "failed" or
"cancelled". What the client finally gets (the explanation to show, the edit to apply) comes as before:
the partials are a live view, never an edit. A client that did not ask gets exactly what it got before:
no such notification. Streaming needs the `window.workDoneProgress` capability (the token is the
progress token).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from lsp.server import CodellamaServer

log = logging.getLogger(__name__)

PARTIAL_METHOD = "codellama/partial"
# The first words go out at once (they are what the user waits for); after that a notification every
# 50 ms at most: smooth enough to read as live, few enough not to flood a client at 100+ tokens/s.
INTERVAL = 0.05

_streaming: weakref.WeakKeyDictionary[CodellamaServer, bool] = weakref.WeakKeyDictionary()


def negotiate(ls: CodellamaServer, initialization_options: Any) -> None:
    """Remember whether this client asked for partial answers (only `true` counts)."""
    wanted = isinstance(initialization_options, dict) and initialization_options.get("streaming") is True
    _streaming[ls] = wanted


def wants_partials(ls: CodellamaServer) -> bool:
    return _streaming.get(ls, False)


class PartialAnswers:
    """Sends one action's partial text for its progress token, at most every INTERVAL seconds; the text
    held back by the interval goes out with the next report or after the interval, never lost."""

    def __init__(self, ls: CodellamaServer, token: str, title: str, about: dict[str, Any]) -> None:
        self.ls = ls
        self.base: dict[str, Any] = {"token": token, "title": title, "action": None, "uri": None, **about}
        self.text = ""
        self.sent: str | None = None
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def start(self) -> None:
        """The empty start: a client can open its view while the model starts."""
        self.sent = ""
        self._send(done=False)

    def __call__(self, text: str) -> None:
        if self.closed:
            return
        self.text = text
        wait = self.last + INTERVAL - time.monotonic()
        if wait <= 0:
            self._flush()
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(wait, self._flush)

    def _flush(self) -> None:
        self.timer = None
        if self.closed or self.text == self.sent:
            return
        self.last = time.monotonic()
        self.sent = self.text
        self._send(done=False)

    def finish(self, outcome: str) -> None:
        """The last notification: the whole text and how the work ended."""
        if self.closed:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.closed = True
        self._send(done=True, outcome=outcome)

    def _send(self, **extra: Any) -> None:
        try:
            self.ls.protocol.notify(PARTIAL_METHOD, {**self.base, "text": self.text, **extra})
        except Exception as error:  # a client gone away must not fail the action that is still running
            log.debug("%s not sent: %s", PARTIAL_METHOD, error)


def partial_answers(ls: CodellamaServer, token: str, title: str, about: dict[str, Any] | None) -> PartialAnswers | None:
    """The sender for one action's progress token, or None when the client did not ask for partials."""
    if not wants_partials(ls):
        return None
    partials = PartialAnswers(ls, token, title, about or {})
    partials.start()
    return partials
