"""Streams as the backends read them: SSE framing, bounded lines and silence, stop-sequence cutting, the TGI
stream over a mock transport, and cancellations that must never strand a connection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsp.backends.base import GenerationRequest
from lsp.backends.sse import OversizedEvent, read_events, read_to_end, sse_data, sse_lines
from lsp.backends.stops import StopCutter, cut_at_stops
from lsp.backends.tgi import TGIBackend
from lsp.config import Settings, parse_settings
from lsp.errors import (
    BackendTimeout,
    BadResponse,
)
from lsp.prompt.chat_format import Message

URL = "http://tgi.example:8080"


def settings(**values: Any) -> Settings:
    parsed, problems = parse_settings({"endpoint": URL, **values})
    assert not problems
    return parsed


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_both_framings_keepalives_and_multiline_data() -> None:
    got = [
        d
        async for d in sse_data(
            _lines(
                'data:{"a":1}',
                "",
                ":",
                "",
                'data: {"b":2}',
                "",
                "event: x",
                "data: one",
                "data: two",
                "",
                "data: tail",
            )
        )
    ]
    assert got == ['{"a":1}', '{"b":2}', "one\ntwo", "tail"]


@given(st.text(max_size=40), st.lists(st.integers(min_value=1, max_value=7), max_size=20))
def test_stop_cut_is_the_same_however_the_text_is_chunked(text: str, sizes: list[int]) -> None:
    stops = ["<step>", "\n\n\n"]
    expected = cut_at_stops(text, stops)
    cutter = StopCutter(stops)
    out, i = "", 0
    for size in [*sizes, len(text)]:
        out += cutter.feed(text[i : i + size])
        i += size
    out += cutter.flush()
    assert out == expected
    assert all(s not in out for s in stops)


def test_stop_split_across_tokens() -> None:
    cutter = StopCutter(["<step>"])
    assert cutter.feed("abc <st") == "abc "
    assert cutter.feed("ep> more") == ""
    assert cutter.stopped and cutter.flush() == ""


# -- SSE lines ---------------------------------------------------------------------------------------


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _collect(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines]


@given(
    st.lists(st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12),
             max_size=8),
    st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=8, max_size=8),
    st.lists(st.integers(1, 7), max_size=30),
)
def test_sse_lines_whatever_the_chunking(lines: list[str], ends: list[str], cuts: list[int]) -> None:
    text = "".join(line + end for line, end in zip(lines, ends[: len(lines)], strict=True))
    data = text.encode()
    chunks, i = [], 0
    for size in [*cuts, len(data)]:
        chunks.append(data[i : i + size])
        i += size
    got = asyncio.run(_collect(sse_lines(_chunks(*chunks))))
    assert got == re.split(r"\r\n|\r|\n", text)[:-1]  # ("\r" then "\n" is one line break)


async def test_sse_lines_refuse_an_endless_line() -> None:
    with pytest.raises(OversizedEvent):
        await _collect(sse_lines(_chunks(b"data: " + b"x" * 100, b"y" * 100), max_line_bytes=150))
    # many lines in one large chunk are fine
    assert len(await _collect(sse_lines(_chunks(b"data: x\n" * 1000), max_line_bytes=150))) == 1000


async def test_read_events_bounds_the_silence_between_events() -> None:
    async def keepalive_only() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        for _ in range(1000):  # keep-alive comments reset httpx's read timeout, not this one
            await asyncio.sleep(0.01)
            yield b":\n\n"
        yield b"data: never\n\n"

    response = httpx.Response(200, content=keepalive_only())
    got: list[str] = []
    with pytest.raises(BackendTimeout, match=r"no token for 0\.2 s"):
        async for data in read_events(response, URL, 0.2):
            got.append(data)
    assert got == ["first"]
    assert response.is_closed


async def test_a_stream_read_to_its_end_is_freed_without_the_garbage_collector() -> None:
    """What a stream's frames hold (its response, and whatever the answer's caller keeps there: documents,
    syntax trees) is freed when the reading ends, not by a pass of the garbage collector: freeing a large
    document's tree takes milliseconds, which in a pass land on the event loop at an unforeseen time."""

    async def body() -> AsyncIterator[bytes]:
        for part in (b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"):
            yield part

    gc.collect()
    gc.disable()
    try:
        response = httpx.Response(200, content=body())
        freed = weakref.ref(response)
        events = read_events(response, URL, 5.0)
        assert await anext(events) == "one"
        await read_to_end(events, grace=5.0)  # what a backend does after the final event
        del response, events
        assert freed() is None, "the stream's frames are in a reference cycle"
    finally:
        gc.enable()


async def test_read_events_bounds_a_line() -> None:
    async def endless() -> AsyncIterator[bytes]:
        yield b"data: "
        while True:
            yield b"x" * 4096

    response = httpx.Response(200, content=endless())
    with pytest.raises(BadResponse, match="oversized stream event"):
        async for _ in read_events(response, URL, 5.0, max_line_bytes=64 * 1024):
            pass


# -- the TGI stream over a mock transport ------------------------------------------------------------

REQUEST = GenerationRequest(messages=[Message("user", "hi")], max_new_tokens=8, request_id="r1")


def event(i: int, text: str, last: bool = False) -> bytes:
    payload = {
        "index": i,
        "token": {"id": i, "text": text, "logprob": -0.1, "special": False},
        "generated_text": "done" if last else None,
        "details": {"finish_reason": "eos_token", "generated_tokens": i, "seed": None} if last else None,
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


def backend(body: Callable[[], AsyncIterator[bytes]], seen: list[httpx.Request] | None = None,
            **values: Any) -> TGIBackend:
    async def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    return TGIBackend(settings(**values), transport=httpx.MockTransport(handler))


async def _text(b: TGIBackend) -> str:
    return "".join([chunk async for chunk in b.stream(REQUEST)])


async def test_keepalives_do_not_hold_a_stream_forever() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield event(1, "a")
        for _ in range(200):
            await asyncio.sleep(0.01)
            yield b":\n\n"

    with pytest.raises(BackendTimeout, match=r"no token for 0\.3 s"):
        await _text(backend(body, requestTimeout=0.3))


async def test_oversized_event_is_a_bad_response() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"data: " + b"x" * (2 * 1024 * 1024)

    with pytest.raises(BadResponse, match="oversized stream event"):
        await _text(backend(body))


async def test_invalid_utf8_in_an_event_is_replaced_not_fatal() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield event(1, "xy").replace(b'"xy"', b'"x\\u00e9y"')
        yield b'data: {"index":2,"token":{"id":2,"text":"\xff","logprob":0,"special":false},' \
              b'"generated_text":"x","details":null}\n\n'

    assert await _text(backend(body)) == "xéy\ufffd"


async def test_lone_surrogates_in_the_prompt_are_sent_as_replacement_characters() -> None:
    seen: list[httpx.Request] = []

    async def body() -> AsyncIterator[bytes]:
        yield event(1, "ok", last=True)

    request = GenerationRequest(messages=[Message("user", "a\ud800b")], max_new_tokens=8)
    b = backend(body, seen)
    assert "".join([c async for c in b.stream(request)]) == "ok"
    assert "a\ufffdb" in json.loads(seen[0].content)["inputs"]


# -- cancellation never strands a connection ---------------------------------------------------------


async def test_cancelling_streams_at_any_moment_leaves_no_connection_behind(tgi: Any) -> None:
    """Completions are cancelled while connecting, while waiting for headers, while streaming, and
    sometimes twice (the user typed on): no socket may be left open but the one idle connection the pool
    keeps, and the model server must see every stream closed (found by tests/bench/soak.py)."""
    tgi.script(default={"text": "```python\n" + "value = value + 1\n" * 12 + "```", "chunk_delay": 0.005})
    b = TGIBackend(settings(endpoint=tgi.url, requestTimeout=5))
    port = int(tgi.url.rsplit(":", 1)[1])
    before = len(sockets_to(port))  # the test's own control connection
    rng = random.Random(3)

    async def consume() -> None:
        stream = b.stream(REQUEST)
        async with aclosing(stream):  # type: ignore[type-var]
            async for _ in stream:
                pass

    try:
        for _ in range(150):
            task = asyncio.ensure_future(consume())
            for _ in range(rng.randint(0, 12)):
                await asyncio.sleep(0)
            await asyncio.sleep(rng.choice([0, 0, 0.001, 0.004, 0.02]))
            task.cancel()
            if rng.random() < 0.5:
                for _ in range(rng.randint(0, 3)):
                    await asyncio.sleep(0)
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await consume()  # the pool still serves
        await _until(lambda: len(sockets_to(port)) <= before + 1)  # + the idle connection kept for the next
    finally:
        await b.aclose()
    await _until(lambda: tgi.streams()["open"] == 0)


def sockets_to(port: int) -> list[str]:
    """This process's TCP sockets connected to `port` on loopback (Linux: /proc), by inode."""
    mine = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                mine.add(target[8:-1])
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if inode in mine and int(remote.split(":")[1], 16) == port and state == "01":  # ESTABLISHED
            found.append(inode)
    return found


async def _until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
