"""The stdio transport read by the event loop itself.

pygls reads stdin in a worker thread, one hop to the thread and back per header line and per body: four
hops per message, ~0.5 ms each on a busy loop, on the path of every keystroke. An editor talks to its
language server over pipes, which asyncio can watch directly; anything else (a regular file, a terminal,
a platform without pipe support in its event loop) keeps pygls's reader.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Protocol

from pygls.io_ import StdinAsyncReader

LINE_LIMIT = 64 * 1024  # a header line longer than this is returned in pieces (and ignored as a header)


class AsyncReader(Protocol):
    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...


class PipeReader:
    """pygls's reader interface over an asyncio stream: ``b""`` at the end of input, never an exception."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

    async def readline(self) -> bytes:
        try:
            return await self._stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as error:  # the end of input
            return error.partial
        except asyncio.LimitOverrunError as error:
            # No newline within the limit: hand the junk over in pieces (StreamReader.readline would drop
            # everything buffered, a valid message after the junk included).
            return await self._stream.readexactly(error.consumed)

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._stream.readexactly(n)
        except asyncio.IncompleteReadError as error:  # the client went away mid-message
            return error.partial


async def stdin_reader(stdin: BinaryIO, executor: ThreadPoolExecutor | None = None) -> AsyncReader:
    """A reader of ``stdin`` on the running loop when it is a pipe or a socket, else pygls's threaded one
    (asyncio would make a terminal non-blocking for the shell too, and cannot watch regular files)."""
    try:
        mode = os.fstat(stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        mode = 0
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream, loop=loop), stdin)
        except (OSError, ValueError, NotImplementedError):
            pass
        else:
            return PipeReader(stream)
    return StdinAsyncReader(stdin, executor)
