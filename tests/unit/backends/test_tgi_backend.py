"""The TGI backend against tests/tgi_server.py over real HTTP: a connection is kept for the next request when
a stream is read to its end, closed (so that TGI stops generating) when the reader stops early and then
replaced in the background before the next request needs one; stream events are checked for what is used."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from lsp.backends import http
from lsp.backends.base import GenerationRequest
from lsp.backends.tgi import TGIBackend
from lsp.config import resolve
from lsp.prompt.chat_format import Message
from tests.conftest import TGI

REQUEST = GenerationRequest(messages=[Message("user", "def f():")], max_new_tokens=64)


@pytest.fixture
async def backend(tgi: TGI) -> AsyncIterator[TGIBackend]:
    settings, _ = resolve({"endpoint": tgi.url}, {})
    tgi_backend = TGIBackend(settings)
    yield tgi_backend
    await tgi_backend.aclose()


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def connections_of(tgi: TGI, hit: str) -> list[int]:
    return [number for seen, number in tgi.connections() if seen == hit]


async def test_a_stream_read_to_its_end_leaves_its_connection_to_the_next(backend: TGIBackend, tgi: TGI) -> None:
    tgi.script({"text": "one"}, {"text": "two"})
    assert "".join([part async for part in backend.stream(REQUEST)]) == "one"
    assert "".join([part async for part in backend.stream(REQUEST)]) == "two"
    first, second = connections_of(tgi, "POST /generate_stream")
    assert first == second


async def test_a_stream_stopped_early_is_closed_and_a_warm_connection_waits(backend: TGIBackend, tgi: TGI) -> None:
    tgi.script({"text": "x = 1\n" * 100, "chunk_delay": 0.01}, {"text": "two"})
    stream = backend.stream(REQUEST)
    await stream.__anext__()
    await stream.aclose()  # the reader has its answer
    await eventually(lambda: tgi.streams()["closed_early"] == 1)  # TGI sees the client go away

    backend.warm()  # as while the next completion is debounced
    await eventually(lambda: bool(connections_of(tgi, "GET /info")))
    assert "".join([part async for part in backend.stream(REQUEST)]) == "two"
    [stopped, second] = connections_of(tgi, "POST /generate_stream")
    [warmed] = connections_of(tgi, "GET /info")
    assert second == warmed != stopped  # no connection was opened while the user waited


async def test_warming_is_a_no_op_while_a_connection_is_ready(backend: TGIBackend, tgi: TGI) -> None:
    tgi.script({"text": "one"})
    assert "".join([part async for part in backend.stream(REQUEST)]) == "one"
    hits = len(tgi.connections())
    backend.warm()
    await asyncio.sleep(0.1)
    assert len(tgi.connections()) == hits


@pytest.mark.parametrize(
    "event",
    [
        '{"token": {"text": 5}}',
        '{"token": "x"}',
        '{"generated_text": null}',
        '{"token": {"text": "a", "special": "no"}}',
        '{"token": {"text": "a"}, "generated_text": 3}',
    ],
)
async def test_a_malformed_stream_event_is_a_bad_response(backend: TGIBackend, event: str) -> None:
    from lsp.errors import BadResponse

    with pytest.raises(BadResponse, match="malformed stream event"):
        backend._parse_event(event)


async def test_stream_events_need_only_the_fields_used(backend: TGIBackend) -> None:
    event = backend._parse_event('{"token": {"text": "a", "id": 1, "future": true}, "generated_text": null}')
    assert event is not None and (event.text, event.special, event.generated_text) == ("a", False, None)


async def _text(stream: AsyncIterator[str]) -> str:
    return "".join([part async for part in stream])


async def test_nothing_reaches_tgi_before_ready_returns_and_the_request_is_made_meanwhile(
    backend: TGIBackend, tgi: TGI
) -> None:
    """A completion's debounce ends in `ready`: the connection and the request's bytes are made while it
    runs, and nothing is sent before it returns."""
    tgi.script({"text": "one"})
    waiting, release = asyncio.Event(), asyncio.Event()

    async def ready() -> None:
        waiting.set()
        await release.wait()

    reading = asyncio.ensure_future(_text(backend.stream(REQUEST, ready=ready)))
    await asyncio.wait_for(waiting.wait(), 5)
    assert list(backend.connection_states()) == ["ACTIVE"]  # connected, and the request on it
    await asyncio.sleep(0.1)
    assert tgi.requests() == []
    release.set()
    assert await asyncio.wait_for(reading, 5) == "one"
    assert len(tgi.requests()) == 1


async def test_cancelled_while_ready_waits_nothing_reaches_tgi_and_the_next_request_is_served(
    backend: TGIBackend, tgi: TGI
) -> None:
    tgi.script({"text": "one"})
    waiting = asyncio.Event()

    async def ready() -> None:
        waiting.set()
        await asyncio.sleep(30)  # the user types on: this generation is superseded

    reading = asyncio.ensure_future(_text(backend.stream(REQUEST, ready=ready)))
    await asyncio.wait_for(waiting.wait(), 5)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert backend.connection_states() == {}  # the connection with the request's bytes in it is closed
    backend.warm()  # as during the next debounce: a connection is ready again
    await eventually(lambda: bool(connections_of(tgi, "GET /info")))
    assert await _text(backend.stream(REQUEST)) == "one"
    assert len(tgi.requests()) == 1
    [warmed] = connections_of(tgi, "GET /info")
    assert connections_of(tgi, "POST /generate_stream") == [warmed]


async def test_a_cancellation_during_an_error_answers_clean_up_does_not_leave_its_connection_busy(
    backend: TGIBackend, tgi: TGI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx marks a response closed before httpcore has released its connection: a cancellation that
    lands in between (a superseded request, cancelled again by the user) left the pool's connection busy for
    ever, and a pool that runs out of connections stops answering (found by tests/bench/soak.py). Here the
    reader is cancelled exactly then; the error answer is still read and closed to its end."""
    reading: asyncio.Future[str] | None = None
    original = http._Exchange.__call__

    async def trace(self: http._Exchange, event: str, info: dict[str, object]) -> None:
        if event == "http11.response_closed.started" and reading is not None and not reading.done():
            reading.cancel()
        await original(self, event, info)

    monkeypatch.setattr(http._Exchange, "__call__", trace)
    overloaded = '{"error":"Model is overloaded","error_type":"overloaded"}'
    tgi.script({"status": 503, "body": overloaded}, {"text": "two"})
    settings, _ = resolve({"endpoint": tgi.url, "maxRetries": 0}, {})
    once = TGIBackend(settings)
    try:
        reading = asyncio.ensure_future(_text(once.stream(REQUEST)))
        with pytest.raises(asyncio.CancelledError):
            await reading
        await eventually(lambda: "ACTIVE" not in once.connection_states())
        assert await _text(once.stream(REQUEST)) == "two"
    finally:
        await once.aclose()
