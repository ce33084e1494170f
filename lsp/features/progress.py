"""Work-done progress for long model calls: token counts while it runs, cancellable from the editor."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lsprotocol import types

from lsp.features.streaming import partial_answers
from lsp.server import CodellamaServer

log = logging.getLogger(__name__)

T = TypeVar("T")
Report = Callable[[int, str], None]
REPORT_INTERVAL = 0.1  # seconds between reports: a token each ~30 ms would flood the client


class ActionCancelled(Exception):
    """The user cancelled the work from its progress bar (window/workDoneProgress/cancel).

    Not a CancelledError: the request itself was not cancelled and still owes the client an answer
    (pygls' executeCommand wrapper cannot even deliver one if a command raises CancelledError)."""


async def with_progress(
    ls: CodellamaServer, title: str, work: Callable[[Report], Awaitable[T]], about: dict[str, Any] | None = None
) -> T:
    """Run `work` with a progress bar when the client supports one; cancelling the bar cancels the work
    (and so closes the model server's stream) and raises ActionCancelled."""
    window = ls.client_capabilities.window
    if not (window and window.work_done_progress):
        return await work(lambda n, text: None)
    token = f"codellama-{uuid.uuid4().hex[:12]}"
    try:
        await ls.work_done_progress.create_async(token)
    except Exception as error:  # a client that refuses the token still gets its answer
        log.debug("no progress bar: %s", error)
        return await work(lambda n, text: None)
    ls.work_done_progress.begin(
        token, types.WorkDoneProgressBegin(title=title, cancellable=True, message="waiting for the model")
    )
    last = 0.0
    generated = 0
    partials = partial_answers(ls, token, title, about)  # `about`: the action and document, for the client

    def report(tokens: int, text: str) -> None:
        nonlocal last, generated
        generated = tokens
        if partials is not None:
            partials(text)
        now = time.monotonic()
        if now - last >= REPORT_INTERVAL:
            last = now
            ls.work_done_progress.report(token, types.WorkDoneProgressReport(message=f"{tokens} tokens"))

    task = asyncio.ensure_future(work(report))
    by_user = False

    def on_cancel(future: object) -> None:
        nonlocal by_user
        by_user = True
        task.cancel()

    cancelled = ls.work_done_progress.tokens.get(token)
    if cancelled is not None:
        cancelled.add_done_callback(lambda f: on_cancel(f) if f.cancelled() else None)
    outcome = "cancelled"
    try:
        result = await task
        outcome = f"done: {generated} tokens"
        return result
    except asyncio.CancelledError:
        task.cancel()  # the request was cancelled ($/cancelRequest): stop the work with it
        if by_user and not _cancelling():
            raise ActionCancelled() from None
        raise
    except Exception:
        outcome = "failed"
        raise
    finally:
        if partials is not None:
            partials.finish(outcome.split(":")[0])
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=outcome))
        ls.work_done_progress.tokens.pop(token, None)


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (not only the work it waited for)."""
    current = asyncio.current_task()
    cancelling = getattr(current, "cancelling", None)  # Python 3.11+
    return bool(cancelling()) if cancelling is not None else False
