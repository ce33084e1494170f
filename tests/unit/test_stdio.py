"""The stdio reader on the event loop: pygls's reader interface, framing faults, and where it applies."""

from __future__ import annotations

import asyncio
import os
import tempfile

from pygls.io_ import StdinAsyncReader

from lsp.stdio import LINE_LIMIT, MESSAGE_ARRIVED, PipeReader, stdin_reader


def _reader(data: bytes, *, eof: bool = True) -> PipeReader:
    stream = asyncio.StreamReader(limit=LINE_LIMIT)
    stream.feed_data(data)
    if eof:
        stream.feed_eof()
    return PipeReader(stream)


async def test_reads_lines_and_bodies_then_empty_at_the_end() -> None:
    reader = _reader(b"Content-Length: 2\r\n\r\n{}")
    assert await reader.readline() == b"Content-Length: 2\r\n"
    assert await reader.readline() == b"\r\n"
    assert await reader.readexactly(2) == b"{}"
    assert await reader.readline() == b""


async def test_a_body_cut_short_by_the_end_of_input_is_returned_as_is() -> None:
    reader = _reader(b'{"jsonrpc"')
    assert await reader.readexactly(100) == b'{"jsonrpc"'
    assert await reader.readexactly(1) == b""


async def test_an_overlong_line_is_handed_over_and_nothing_after_it_is_lost() -> None:
    junk = b"X-Junk: " + b"x" * (3 * LINE_LIMIT) + b"\r\n"
    reader = _reader(junk + b"Content-Length: 2\r\n\r\n{}")
    pieces = b""
    while not pieces.endswith(b"\n"):
        piece = await reader.readline()
        assert piece
        pieces += piece
    assert pieces == junk
    assert await reader.readline() == b"Content-Length: 2\r\n"


async def test_pipes_are_read_on_the_loop_and_files_by_pygls() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe, os.fdopen(write_fd, "wb", buffering=0) as writer:
        reader = await stdin_reader(pipe)
        assert isinstance(reader, PipeReader)
        writer.write(b"Content-Length: 0\r\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"Content-Length: 0\r\n"
    with tempfile.TemporaryFile() as file:
        assert isinstance(await stdin_reader(file), StdinAsyncReader)  # type: ignore[arg-type]


async def test_each_message_carries_when_its_bytes_arrived_not_when_it_was_read() -> None:
    """Two messages in one pipe read: the second is read only after the first was handled (here: 50 ms),
    and its arrival is still the time the loop received it. A task started while handling it sees that."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe, os.fdopen(write_fd, "wb", buffering=0) as writer:
        reader = await stdin_reader(pipe)
        writer.write(b"Content-Length: 2\r\n\r\n{}Content-Length: 2\r\n\r\n[]")
        sent = loop.time()
        assert await reader.readline() == b"Content-Length: 2\r\n"
        await reader.readline()
        assert await reader.readexactly(2) == b"{}"
        first = MESSAGE_ARRIVED.get()
        await asyncio.sleep(0.05)  # handling the first message
        await reader.readline()
        await reader.readline()
        assert await reader.readexactly(2) == b"[]"
        read_at = loop.time()
        handler = asyncio.ensure_future(asyncio.sleep(0, MESSAGE_ARRIVED.get()))
        second = await handler
    assert first is not None and second == first
    assert sent <= first < read_at - 0.045


async def test_pygls_reader_tells_no_arrival() -> None:
    with tempfile.TemporaryFile() as file:
        file.write(b"Content-Length: 2\r\n\r\n{}")
        file.seek(0)
        reader = await stdin_reader(file)
        await reader.readline()
        await reader.readline()
        assert await reader.readexactly(2) == b"{}"
    assert MESSAGE_ARRIVED.get() is None
