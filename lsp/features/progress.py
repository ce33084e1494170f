"""Work-done progress for long model calls: token counts while it runs, cancellable from the editor."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lsprotocol import types

from lsp.server import CodellamaServer

T = TypeVar("T")
Report = Callable[[int, str], None]
REPORT_INTERVAL = 0.1


async def with_progress(ls: CodellamaServer, title: str, work: Callable[[Report], Awaitable[T]]) -> T:
    """Run `work` with a progress bar when the client supports one; cancelling the bar cancels the work
    (and so closes the model server's stream)."""
    window = ls.client_capabilities.window
    if not (window and window.work_done_progress):
        return await work(lambda n, text: None)
    token = f"codellama-{uuid.uuid4().hex[:12]}"
    try:
        await ls.work_done_progress.create_async(token)
    except Exception:  # a client that refuses the token still gets its answer
        return await work(lambda n, text: None)
    ls.work_done_progress.begin(
        token, types.WorkDoneProgressBegin(title=title, cancellable=True, message="waiting for the model")
    )
    last = 0.0

    def report(tokens: int, text: str) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= REPORT_INTERVAL:
            last = now
            ls.work_done_progress.report(token, types.WorkDoneProgressReport(message=f"{tokens} tokens"))

    task = asyncio.ensure_future(work(report))
    cancelled = ls.work_done_progress.tokens.get(token)
    if cancelled is not None:
        cancelled.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
    try:
        return await task
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        ls.work_done_progress.end(
            token,
            types.WorkDoneProgressEnd(message="done" if task.done() and not task.cancelled() else "cancelled"),
        )
        ls.work_done_progress.tokens.pop(token, None)
