"""The server does the upkeep a large file needs in slices between messages: a message that arrives while a
slice runs reaches its handler before the next slice starts, and the upkeep still finishes."""

from __future__ import annotations

import asyncio

from lsp.server import create_server
from tests.e2e.helpers import records

URI = "file:///project/records.js"
TINY = 1e-6  # a budget no step fits in: each slice does the least it can


async def test_a_message_arriving_during_a_slice_of_upkeep_is_handled_before_the_next_slice() -> None:
    server = create_server()
    store = server.documents
    store.open(URI, "javascript", 1, records(400), budget=TINY)
    assert store.behind
    loop = asyncio.get_running_loop()
    slices: list[int] = []
    handled: list[int] = []
    inbox: asyncio.Queue[str] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()
    finished = asyncio.Event()
    catch_up = store.catch_up

    def slice_of_upkeep(budget: float = TINY) -> bool:
        slices.append(len(slices))
        if len(slices) in (3, 10):  # a message arrives as the stdin thread hands it over, during a slice
            loop.call_soon_threadsafe(inbox.put_nowait, "textDocument/inlineCompletion")
        if catch_up(TINY):
            finished.set()
            return True
        return False

    store.catch_up = slice_of_upkeep  # type: ignore[method-assign]

    async def handle(arrived_during: int) -> None:
        handled.append(len(slices) - 1 - arrived_during)  # slices started since the one it arrived in

    async def read_messages() -> None:  # as pygls's reader does: a request's handler gets a task of its own
        while True:
            await inbox.get()
            tasks.add(asyncio.ensure_future(handle(len(slices) - 1)))

    reader = asyncio.ensure_future(read_messages())
    server.catch_up_later()
    await finished.wait()
    await asyncio.gather(*tasks)
    reader.cancel()
    assert not store.behind
    assert handled == [0, 0]
    assert len(slices) > 10
