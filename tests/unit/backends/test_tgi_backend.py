"""The TGI backend against tests/tgi_server.py over real HTTP: what a server sends is not trusted blindly
(special tokens, a server that ignores max_new_tokens, malformed events, a trickled head), connections are
kept for the next request or closed so that TGI stops generating, no request goes out that the user did not
cause, and the prompt's true token count comes back with the answer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import pytest

from lsp.backends.base import GenerationRequest
from lsp.backends.openai import OpenAIBackend
from lsp.backends.tgi import TGIBackend
from lsp.config import resolve
from lsp.errors import BackendTimeout, BadResponse
from lsp.prompt.chat_format import Message
from tests.conftest import ROOT, TGI, clean_env

REQUEST = GenerationRequest(messages=[Message("user", "def f():")], max_new_tokens=64)


def backend_for(tgi: TGI, **values: Any) -> TGIBackend:
    settings, problems = resolve({"endpoint": tgi.url, **values}, {})
    assert not problems
    return TGIBackend(settings)


@pytest.fixture
async def backend(tgi: TGI) -> AsyncIterator[TGIBackend]:
    tgi_backend = backend_for(tgi)
    yield tgi_backend
    await tgi_backend.aclose()
    assert tgi.http.get("/_control/invalid").json() == []  # every body and reply is TGI's protocol


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def connections_of(tgi: TGI, hit: str) -> list[int]:
    return [number for seen, number in tgi.connections() if seen == hit]


async def text_of(stream: AsyncIterator[str]) -> str:
    async with aclosing(stream):  # type: ignore[type-var]
        return "".join([part async for part in stream])


def request(max_new_tokens: int = 64) -> GenerationRequest:
    return GenerationRequest(messages=[Message("user", "def f():")], max_new_tokens=max_new_tokens)


# -- connections ----------------------------------------------------------------------------------------


async def test_a_stream_read_to_its_end_leaves_its_connection_to_the_next(backend: TGIBackend, tgi: TGI) -> None:
    tgi.script({"text": "one"}, {"text": "two"})
    assert await text_of(backend.stream(REQUEST)) == "one"
    assert await text_of(backend.stream(REQUEST)) == "two"
    first, second = connections_of(tgi, "POST /generate_stream")
    assert first == second


async def test_a_reader_that_stops_at_the_last_token_leaves_the_connection_to_the_next(
    backend: TGIBackend, tgi: TGI
) -> None:
    """A completion is decided by its last token and closes the stream there: the end of the response, which
    TGI sends right after its final event, is read meanwhile."""
    tgi.script({"text": "one two"}, {"text": "three"})
    stream = backend.stream(REQUEST)
    parts = []
    async with aclosing(stream):  # type: ignore[type-var]
        async for part in stream:
            parts.append(part)
            if "".join(parts) == "one two":
                break
    await asyncio.sleep(0.05)  # (the end is read meanwhile; the next completion comes after its debounce)
    assert await text_of(backend.stream(REQUEST)) == "three"
    first, second = connections_of(tgi, "POST /generate_stream")
    assert first == second
    assert tgi.streams()["closed_early"] == 0


async def test_an_openai_stream_read_to_done_leaves_its_connection_to_the_next(tgi: TGI) -> None:
    """The same over TGI's Messages API, with the OpenAI-compatible backend: after `[DONE]` the end of the
    response is read too."""
    settings, problems = resolve({"backend": "openai", "endpoint": tgi.url}, {})
    assert not problems
    openai = OpenAIBackend(settings)
    try:
        tgi.script({"text": "one"}, {"text": "two"})
        assert await text_of(openai.stream(REQUEST)) == "one"
        assert await text_of(openai.stream(REQUEST)) == "two"
    finally:
        await openai.aclose()
    first, second = connections_of(tgi, "POST /v1/chat/completions")
    assert first == second


async def test_a_stream_stopped_early_is_closed_so_that_tgi_stops(backend: TGIBackend, tgi: TGI) -> None:
    tgi.script({"text": "x = 1\n" * 100, "chunk_delay": 0.01}, {"text": "two"})
    stream = backend.stream(REQUEST)
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]  # the reader has its answer
    await eventually(lambda: tgi.streams()["closed_early"] == 1)  # TGI sees the client go away
    assert await text_of(backend.stream(REQUEST)) == "two"


async def test_nothing_is_sent_before_the_stream_is_read(backend: TGIBackend, tgi: TGI) -> None:
    stream = backend.stream(REQUEST)
    await asyncio.sleep(0.05)
    assert tgi.connections() == []
    assert await text_of(stream)
    assert [hit for hit, _ in tgi.connections()] == ["POST /generate_stream"]


async def test_info_is_asked_once_then_again_only_after_a_failure(backend: TGIBackend, tgi: TGI) -> None:
    assert (await backend.info()).max_input_tokens == 3696
    await backend.info()
    for _ in range(3):
        await text_of(backend.stream(REQUEST))
    assert [hit for hit, _ in tgi.connections()] == ["GET /info", *["POST /generate_stream"] * 3]
    tgi.script({"status": 500, "body": '{"error":"boom"}'})
    with pytest.raises(Exception, match="boom"):
        await text_of(backend.stream(REQUEST))
    await backend.info()  # the server may have been restarted with other limits
    assert [hit for hit, _ in tgi.connections()][-2:] == ["POST /generate_stream", "GET /info"]


# -- what the server says is checked ---------------------------------------------------------------------


async def test_the_final_event_reports_the_prompts_token_count(backend: TGIBackend, tgi: TGI) -> None:
    asked = request()
    assert await text_of(backend.stream(asked)) == "```\ndef f():\n```"
    [body] = tgi.requests()
    assert body["parameters"]["details"] is True
    assert asked.usage.input_tokens == len(tgi.http.post("/tokenize", json={"inputs": body["inputs"]}).json())


async def test_a_special_end_of_sequence_token_ends_the_answer(backend: TGIBackend, tgi: TGI) -> None:
    tokens = [{"text": "x = 1"}, {"text": "</s>", "special": True}, {"text": "\nleaked()"}]
    tgi.script({"tokens": tokens, "ignore_max_new_tokens": True})
    assert await text_of(backend.stream(request())) == "x = 1"


async def test_text_after_a_special_step_token_is_discarded(backend: TGIBackend, tgi: TGI) -> None:
    tokens = [{"text": "x = 1"}, {"text": "<step>", "special": True}, {"text": " Source: user\n\n more"}]
    tgi.script({"tokens": tokens})
    assert await text_of(backend.stream(request())) == "x = 1"


async def test_a_literal_eos_in_the_text_is_text(backend: TGIBackend, tgi: TGI) -> None:
    tgi.script({"tokens": [{"text": "html = '"}, {"text": "</s>"}, {"text": "'"}]})
    assert await text_of(backend.stream(request())) == "html = '</s>'"


async def test_a_server_that_ignores_max_new_tokens_is_cut_off_there(backend: TGIBackend, tgi: TGI) -> None:
    # (paced, so that the fake cannot write all 500 into the sockets' buffers before the client goes away)
    tgi.script({"tokens": [{"text": f"t{i} "} for i in range(500)], "ignore_max_new_tokens": True,
                "chunk_delay": 0.005})
    assert await text_of(backend.stream(request(max_new_tokens=7))) == "".join(f"t{i} " for i in range(7))
    await eventually(lambda: tgi.streams()["closed_early"] == 1)


async def test_a_response_head_trickled_byte_by_byte_times_out(tgi: TGI) -> None:
    backend = backend_for(tgi, requestTimeout=0.5, maxRetries=0)
    tgi.script({"trickle_head": 0.05})
    try:
        with pytest.raises(BackendTimeout, match=r"no complete response head within 0\.5 s"):
            await text_of(backend.stream(REQUEST))
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    "event",
    [
        {"token": {"text": 5}},
        {"token": "x"},
        {"generated_text": None},
        {"token": {"text": "a", "special": "no"}},
        {"token": {"text": "a"}, "generated_text": 3},
        [1, 2],
    ],
)
async def test_a_malformed_stream_event_is_a_bad_response(backend: TGIBackend, tgi: TGI, event: Any) -> None:
    tgi.script({"raw_events": [json.dumps(event)]})
    with pytest.raises(BadResponse, match="stream event"):
        await text_of(backend.stream(REQUEST))


async def test_stream_events_need_only_the_fields_used(backend: TGIBackend, tgi: TGI) -> None:
    tgi.script({"raw_events": ['{"token": {"text": "a", "id": 1, "future": true}, "generated_text": null}']})
    assert await text_of(backend.stream(REQUEST)) == "a"


async def test_lone_surrogates_reach_tgi_as_replacement_characters(backend: TGIBackend, tgi: TGI) -> None:
    asked = GenerationRequest(messages=[Message("user", "a\ud800b é 🙂 中")], max_new_tokens=8)
    assert await text_of(backend.stream(asked))
    assert "a\ufffdb é 🙂 中" in tgi.requests()[0]["inputs"]


async def test_a_cancellation_while_an_error_answer_is_read_leaves_no_connection_busy(tgi: TGI) -> None:
    """A reader cancelled while the body of an error answer is read and its response closed (a superseded
    request, cancelled again by the user) left the pool's connection busy for ever, and a pool that runs
    out of connections stops answering (found by tests/bench/soak.py)."""
    backend = backend_for(tgi, maxRetries=0)
    overloaded = '{"error":"Model is overloaded","error_type":"overloaded"}'
    try:
        for delay in (0, 0.001, 0.002, 0.005):
            tgi.script({"status": 503, "body": overloaded})
            reading = asyncio.ensure_future(text_of(backend.stream(REQUEST)))
            await asyncio.sleep(delay)
            reading.cancel()
            await asyncio.sleep(0)
            reading.cancel()
            with pytest.raises((asyncio.CancelledError, Exception)):
                await reading
        tgi.script({"text": "two"})
        assert await asyncio.wait_for(text_of(backend.stream(REQUEST)), 30) == "two"
    finally:
        await backend.aclose()


# -- the check command asks explicitly --------------------------------------------------------------------


def test_check_reads_info_generates_and_tokenizes_because_the_user_asked(tgi: TGI) -> None:
    """`codellama-lsp check` is the one place /tokenize is called: a user asked for a probe."""
    tgi.script({"text": "Hello"})
    done = subprocess.run(
        [sys.executable, "-m", "lsp", "check", "--endpoint", tgi.url],
        capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "model:     TheBloke/CodeLlama-70B-Instruct-GPTQ" in done.stdout
    assert "generate:  'Hello'" in done.stdout and "tokenize:  available" in done.stdout
    assert [hit for hit, _ in tgi.connections()] == ["GET /info", "POST /generate", "POST /tokenize"]
    assert tgi.http.get("/_control/invalid").json() == []
