"""Server-sent events as TGI (axum) and OpenAI-compatible servers frame them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from lsp.backends.http import uninterrupted
from lsp.backends.http_errors import display_url
from lsp.errors import BackendError, BackendTimeout, BadResponse

# No sane event is this large (a TGI token event is ~200 bytes): beyond it the server is broken, and
# buffering more would let it take the editor's memory.
MAX_LINE_BYTES = 1024 * 1024


class OversizedEvent(ValueError):
    """A line of the stream exceeded the size limit."""


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


async def read_events(
    response: httpx.Response, endpoint: str, silence: float, max_line_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[str]:
    """The data of each server-sent event of `response`, as TGI and OpenAI-compatible servers send them.

    Bounded: a line longer than `max_line_bytes` is a BadResponse, and no event for `silence` seconds a
    BackendTimeout (httpx's read timeout is reset by any byte, so a server sending only keep-alive
    comments would hold a request forever).

    Each event is read in a task of its own. When the deadline passes or the caller is cancelled, that
    task is not cancelled (a task cancelled inside httpx's and httpcore's clean-up leaves the pool's
    connection busy for ever, see `http.uninterrupted`): the response is closed, which ends its read at
    once, and the read is waited for."""
    iterator = aiter(sse_data(sse_lines(response.aiter_bytes(), max_line_bytes)))
    while True:
        reading = asyncio.ensure_future(_next(iterator))
        try:
            done, _ = await asyncio.wait({reading}, timeout=silence)
        except asyncio.CancelledError:
            await uninterrupted(_interrupt(reading, response))
            raise
        if not done:
            await uninterrupted(_interrupt(reading, response))
            raise BackendTimeout(
                f"The model server at {display_url(endpoint)} stopped answering: no token for {silence:g} s "
                "(keep-alives do not count). Set codellama.requestTimeout to wait longer."
            )
        # The read's outcome is taken without raising it here: raised in this frame, an exception would hold
        # the frame in its traceback, the frame the task and the task the exception, a cycle that only the
        # garbage collector frees, with all it holds (the answer's documents and syntax trees: milliseconds
        # of freeing in one of its passes, on the event loop).
        error = reading.exception()
        if isinstance(error, StopAsyncIteration):
            return
        if isinstance(error, OversizedEvent):
            raise BadResponse(
                f"The model server at {display_url(endpoint)} sent an oversized stream event ({error})."
            ) from None
        yield reading.result()  # (any other error is raised from here)


# After a stream's final event the server ends the response at once: this long, and this many events more,
# are waited for, so that the connection serves the next request instead of being dropped.
TAIL_GRACE = 0.05
MAX_TAIL_EVENTS = 2


async def read_to_end(events: AsyncIterator[str], grace: float = TAIL_GRACE) -> None:
    """After a stream's final event: read `events` (from :func:`read_events`) on to the end of the response,
    so that httpx returns its connection to the pool (one closed before its end is dropped, and the next
    request connects anew). What comes is ignored: the answer is complete. A server that goes on for more
    than `MAX_TAIL_EVENTS` events or `grace` seconds is not waited for: the response is closed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    for _ in range(MAX_TAIL_EVENTS + 1):
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            await asyncio.wait_for(anext(events), left)  # (read_events closes the response when cancelled)
        except (StopAsyncIteration, TimeoutError, BackendError, httpx.HTTPError, httpx.StreamError) as error:
            # the traceback holds asyncio.wait_for's frame, which holds the task that holds this exception:
            # a cycle (see read_events), cut here
            error.__traceback__ = None
            return


async def _next(iterator: AsyncIterator[str]) -> str:
    return await anext(iterator)


ABORT_GRACE = 0.5  # seconds a read may take to notice its connection was closed, before it is cancelled


async def _interrupt(reading: asyncio.Task[str], response: httpx.Response) -> None:
    with contextlib.suppress(Exception):
        await response.aclose()
    done, _ = await asyncio.wait({reading}, timeout=ABORT_GRACE)
    if not done:
        reading.cancel()  # the last resort; not expected to be needed
        await asyncio.wait({reading})
    if not reading.cancelled():
        reading.exception()  # retrieved: an error after the interruption is of no interest
