"""Completion flow control: debounce, supersession, cache, in-flight reuse, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from lsp.completion.flow import PREPARE_SHARE, CompletionFlow


class Model:
    def __init__(self, reply: str = "b + c", delay: float = 0.05) -> None:
        self.reply, self.delay = reply, delay
        self.started = 0
        self.cancelled = 0

    async def __call__(self) -> str:
        self.started += 1
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return self.reply


async def test_a_burst_of_keystrokes_makes_one_generation() -> None:
    flow, model = CompletionFlow(), Model()
    texts = ["a", "a ", "a =", "a = "]
    tasks = []
    for text in texts:
        tasks.append(asyncio.ensure_future(flow.complete("doc", text, "", model, debounce=0.03)))
        await asyncio.sleep(0.01)
    results = await asyncio.gather(*tasks)
    assert results == ["", "", "", "b + c"]
    assert model.started == 1


async def test_cancelling_the_only_request_cancels_the_generation() -> None:
    flow, model = CompletionFlow(), Model(delay=5)
    task = asyncio.ensure_future(flow.complete("doc", "x = ", "", model))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert model.cancelled == 1


async def test_typing_through_a_suggestion_reuses_it_from_the_cache() -> None:
    flow, model = CompletionFlow(), Model(reply="total + 1")
    assert await flow.complete("doc", "x = ", "\n", model) == "total + 1"
    assert await flow.complete("doc", "x = tot", "\n", model) == "al + 1"
    assert await flow.complete("doc", "x = ", "\n", model) == "total + 1"
    assert model.started == 1
    assert await flow.complete("doc", "x = y", "\n", model) == "total + 1"  # typed elsewhere: asks anew
    assert model.started == 2


async def test_a_request_that_extends_the_in_flight_prefix_joins_it() -> None:
    flow, model = CompletionFlow(), Model(reply="total + 1", delay=0.05)
    first = asyncio.ensure_future(flow.complete("doc", "x = ", "", model))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(flow.complete("doc", "x = to", "", model))
    assert await second == "tal + 1"
    assert await first == "total + 1"
    assert model.started == 1


async def test_a_new_request_elsewhere_supersedes_the_running_generation() -> None:
    flow, model = CompletionFlow(), Model(delay=0.2)
    first = asyncio.ensure_future(flow.complete("doc", "x = ", "", model))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(flow.complete("doc", "y = ", "", model))
    assert await first == ""  # answered, not left hanging
    assert await second == "b + c"
    assert model.cancelled == 1 and model.started == 2


async def test_errors_reach_every_waiter() -> None:
    flow = CompletionFlow()

    async def failing() -> str:
        await asyncio.sleep(0.01)
        raise RuntimeError("down")

    first = asyncio.ensure_future(flow.complete("doc", "x = ", "", failing))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(flow.complete("doc", "x = 1", "", failing))
    for task in (first, second):
        with pytest.raises(RuntimeError):
            await task


async def test_answers_are_kept_per_document_and_language() -> None:
    """An empty Python file's answer must not reach an empty Go file (nor another Python file)."""
    flow = CompletionFlow()
    assert await flow.complete("a.py", "", "", Model(reply="import os"), language="python") == "import os"
    assert await flow.complete("b.go", "", "", Model(reply="package main"), language="go") == "package main"
    assert await flow.complete("c.py", "", "", Model(reply="import sys"), language="python") == "import sys"
    assert await flow.complete("a.py", "", "", Model(reply="never"), language="python") == "import os"


async def test_a_same_length_edit_far_above_the_cursor_is_a_new_position() -> None:
    flow = CompletionFlow()
    head = "# " + "x" * 5000 + "\n"
    assert await flow.complete("a.py", head + "y = ", "\n", Model(reply="1"), language="python") == "1"
    edited = "# " + "z" + "x" * 4999 + "\n"
    assert await flow.complete("a.py", edited + "y = ", "\n", Model(reply="2"), language="python") == "2"
    assert await flow.complete("a.py", head + "y = ", "\n" + "#", Model(reply="3"), language="python") == "3"


async def test_the_work_before_the_model_is_prepared_once_at_the_end_of_the_debounce() -> None:
    """Context and prompt are built while the last request of a burst waits (not for the keystrokes it
    superseded), and the model is asked no sooner than the debounce says."""
    flow, model = CompletionFlow(), Model()
    loop = asyncio.get_running_loop()
    prepared: list[float] = []
    asked: list[float] = []

    async def prepare() -> None:
        prepared.append(loop.time())

    async def compute() -> str:
        asked.append(loop.time())
        return await model()

    tasks = []
    for text in ["a", "a ", "a ="]:
        sent = loop.time()
        tasks.append(asyncio.ensure_future(flow.complete("doc", text, "", compute, debounce=0.2, prepare=prepare)))
        await asyncio.sleep(0.02)
    assert await asyncio.gather(*tasks) == ["", "", "b + c"]
    assert model.started == 1 and len(prepared) == 1
    assert sent + 0.2 - 0.2 * PREPARE_SHARE <= prepared[0] < asked[0]
    assert asked[0] >= sent + 0.2


async def test_nothing_is_prepared_for_a_request_answered_from_the_cache() -> None:
    flow, model = CompletionFlow(), Model(reply="total + 1")
    calls = 0

    async def prepare() -> None:
        nonlocal calls
        calls += 1

    assert await flow.complete("doc", "x = ", "\n", model, debounce=0.01, prepare=prepare) == "total + 1"
    assert await flow.complete("doc", "x = tot", "\n", model, debounce=0.01, prepare=prepare) == "al + 1"
    assert calls == 1 and model.started == 1
