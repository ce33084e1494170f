"""Server-sent events as TGI (axum) and OpenAI-compatible servers frame them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

# No sane event is this large (a TGI token event is ~200 bytes): beyond it the server is broken, and
# buffering more would let it take the editor's memory.
MAX_LINE_BYTES = 1024 * 1024


class OversizedEvent(ValueError):
    """A line of the stream exceeded the size limit."""


class TokenSilence(TimeoutError):
    """No event (token) arrived within the allowed silence, keep-alive comments notwithstanding."""


async def sse_lines(chunks: AsyncIterator[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> AsyncIterator[str]:
    """Split a byte stream into lines (\\n, \\r\\n or \\r as the SSE spec says) without ever holding more than
    `max_line_bytes` of one line: an endless line raises OversizedEvent instead of filling the memory.
    Lines are decoded as UTF-8 (invalid bytes become U+FFFD; a character split across chunks is kept)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        start = 0
        cr = lf = -2  # next "\r" / "\n" at or after `start`: -1 none in this buffer, -2 not looked for yet
        while True:
            if cr != -1 and cr < start:
                cr = buffer.find(b"\r", start)
            if lf != -1 and lf < start:
                lf = buffer.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            if end == cr and end + 1 == len(buffer):
                break  # "\r" as the last byte: a "\n" may follow in the next chunk
            step = 2 if end == cr and buffer[end + 1 : end + 2] == b"\n" else 1
            yield buffer[start:end].decode("utf-8", "replace")
            start = end + step
        del buffer[:start]
        if len(buffer) > max_line_bytes:
            raise OversizedEvent(f"a line of more than {max_line_bytes} bytes")
    if buffer:
        yield buffer.rstrip(b"\r").decode("utf-8", "replace")


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield the data of each event. Both `data:{...}` and `data: {...}` occur in the wild (axum 0.6
    wrote no space); comment lines (`:` keep-alives) and other fields are skipped; multi-line data is
    joined with newlines as the SSE spec says."""
    buffer: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field != "data":
            continue
        buffer.append(value[1:] if value.startswith(" ") else value)
    if buffer:
        yield "\n".join(buffer)


async def token_silence(
    events: AsyncIterator[str], seconds: float, abort: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[str]:
    """Pass events through, raising TokenSilence when none arrives for `seconds`.

    httpx's read timeout is reset by any byte, so a server that sends only keep-alive comments would
    hold a request forever; this bounds the silence between events (tokens) too.

    Each event is read in a task of its own. When the deadline passes or the caller is cancelled, that
    task is not cancelled but `abort`ed (the caller closes the response, so its read fails at once) and
    waited for: httpx and httpcore mark a response closed before they finish closing it, so a task
    cancelled inside their clean-up leaves the pool's connection busy for ever (found by
    tests/bench/soak.py; tests/unit/test_http_errors.py reproduces it). Without `abort`, it is cancelled.
    """
    iterator = aiter(events)
    while True:
        reading = asyncio.ensure_future(_next(iterator))
        try:
            done, _ = await asyncio.wait({reading}, timeout=seconds)
        except asyncio.CancelledError:
            await _interrupt(reading, abort)
            raise
        if not done:
            await _interrupt(reading, abort)
            raise TokenSilence(f"no event for {seconds:g} s")
        try:
            event = reading.result()
        except StopAsyncIteration:
            return
        yield event


async def _next(iterator: AsyncIterator[str]) -> str:
    return await anext(iterator)


ABORT_GRACE = 0.5  # seconds a read may take to notice its connection was closed, before it is cancelled


async def _interrupt(task: asyncio.Task[str], abort: Callable[[], Awaitable[None]] | None) -> None:
    """End `task` (by `abort`, else by cancelling it) and wait until it has, deaf to further cancellations
    of the caller."""
    if abort is None:
        task.cancel()
    else:
        with contextlib.suppress(Exception):
            await asyncio.shield(abort())
    deadline = asyncio.get_running_loop().time() + ABORT_GRACE
    while not task.done():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            task.cancel()  # the last resort; not expected to be needed
            deadline = float("inf")
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=max(left, 0.01) if left > 0 else None)
    if not task.cancelled():
        task.exception()  # retrieved: an error after the interruption is of no interest
