"""Server-sent events as TGI (axum) and OpenAI-compatible servers frame them."""

from __future__ import annotations

from collections.abc import AsyncIterator


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
