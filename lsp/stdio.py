"""The stdio transport read by the event loop itself.

pygls reads stdin in a worker thread, one hop to the thread and back per header line and per body: four
hops per message, ~0.5 ms each on a busy loop, on the path of every keystroke. An editor talks to its
language server over pipes, which asyncio can watch directly; anything else (a regular file, a terminal,
a platform without pipe support in its event loop) keeps pygls's reader.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import stat
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Protocol

from pygls.io_ import StdinAsyncReader

LINE_LIMIT = 64 * 1024  # a header line longer than this is returned in pieces (and ignored as a header)

# When the message being handled was in the server's hands (the event loop's clock): the time the loop
# received the bytes that completed it, which may be well before its handler runs (the messages before it
# in the same read are handled first). Set in the reading task as each message is read, so the task pygls
# starts for a request handler inherits it; None where the reader cannot tell (pygls's threaded reader).
MESSAGE_ARRIVED: contextvars.ContextVar[float | None] = contextvars.ContextVar("message_arrived", default=None)


class AsyncReader(Protocol):
    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...


class _TimedProtocol(asyncio.StreamReaderProtocol):
    """Notes when the loop last received bytes."""

    def __init__(self, stream: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(stream, loop=loop)
        self._loop = loop
        self.received_at = loop.time()

    def data_received(self, data: bytes) -> None:
        self.received_at = self._loop.time()
        super().data_received(data)


class PipeReader:
    """pygls's reader interface over an asyncio stream: ``b""`` at the end of input, never an exception."""

    def __init__(self, stream: asyncio.StreamReader, protocol: _TimedProtocol | None = None) -> None:
        self._stream = stream
        self._protocol = protocol

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
        """A message's body (pygls reads the headers with :meth:`readline`); :data:`MESSAGE_ARRIVED` is set
        for it: the last receipt of bytes before it was complete, an upper bound of its arrival."""
        try:
            body = await self._stream.readexactly(n)
        except asyncio.IncompleteReadError as error:  # the client went away mid-message
            return error.partial
        if self._protocol is not None:
            MESSAGE_ARRIVED.set(self._protocol.received_at)
        return body


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
        protocol = _TimedProtocol(stream, loop)
        try:
            await loop.connect_read_pipe(lambda: protocol, stdin)
        except (OSError, ValueError, NotImplementedError):
            pass
        else:
            return PipeReader(stream, protocol)
    return StdinAsyncReader(stdin, executor)
