"""The OpenAI-compatible backend's protocol handling over httpx.MockTransport: SSE framings, `[DONE]`,
error objects inside the stream, status errors, model discovery, limits, token counts, early close.

The real-server tests are in tests/e2e/test_openai_backend.py (llama-cpp-python's server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx
import pytest

from lsp.backends.base import GenerationRequest
from lsp.backends.openai import OpenAIBackend, api_roots
from lsp.config import Settings
from lsp.errors import (
    BackendAuthError,
    BackendOverloaded,
    BackendRejected,
    BadResponse,
    GenerationFailed,
)
from lsp.prompt.chat_format import Message

ENDPOINT = "http://model.test:8000"
REQUEST = GenerationRequest(
    messages=[Message("system", "Be brief."), Message("user", "Complete: def add(a, b):")],
    max_new_tokens=32,
    temperature=0.0,
    top_p=0.9,
    stop=("\n\n\n",),
)
MODELS = {"object": "list", "data": [{"id": "served-model", "object": "model", "owned_by": "me"}]}


def chunk(content: str | None, *, role: bool = False, finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "served-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def sse(
    events: Iterable[dict[str, Any] | str], *, space: bool = True, done: bool = True, finish: bool = True
) -> list[bytes]:
    """SSE framing of the events; `finish` appends the last chunk with a finish_reason, `done` the `[DONE]`."""
    sep = "data: " if space else "data:"
    out = [b": keep-alive\n\n"]
    events = [*events, chunk(None, finish="stop")] if finish else list(events)
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        out.append(f"{sep}{data}\n\n".encode())
    if done:
        out.append(f"{sep}[DONE]\n\n".encode())
    return out


class Body(httpx.AsyncByteStream):
    """A streamed response body that records whether the client closed it and how much it read."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            self.sent += 1
            yield part

    async def aclose(self) -> None:
        self.closed = True


class Server:
    """Routes of a fake OpenAI-compatible server; records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {
            ("GET", "/v1/models"): lambda r: httpx.Response(200, json=MODELS),
        }
        self.bodies: list[Body] = []

    def stream(self, parts: list[bytes], status: int = 200) -> None:
        def answer(request: httpx.Request) -> httpx.Response:
            body = Body(parts)
            self.bodies.append(body)
            return httpx.Response(status, stream=body, headers={"content-type": "text/event-stream"})

        self.routes[("POST", "/v1/chat/completions")] = answer

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get((request.method, request.url.path))
        if route is None:
            return httpx.Response(404, text="not found")
        return route(request)

    def posted(self, path: str = "/v1/chat/completions") -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.method == "POST" and r.url.path == path]


def backend(server: Server, **settings: Any) -> OpenAIBackend:
    values: dict[str, Any] = {"endpoint": ENDPOINT, "max_retries": 1} | settings
    return OpenAIBackend(Settings(**values), transport=httpx.MockTransport(server.handler))


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [part async for part in stream]


@pytest.fixture
def server() -> Server:
    return Server()


# -- streaming --------------------------------------------------------------------------------------


@pytest.mark.parametrize("space", [True, False], ids=["data: {...}", "data:{...}"])
async def test_stream_yields_deltas_until_done_in_both_framings(server: Server, space: bool) -> None:
    events = [chunk("", role=True), chunk("return "), chunk(None), chunk("a + b"), chunk(None, finish="stop")]
    server.stream(sse(events, space=space))
    b = backend(server, api_token="sekret")
    assert "".join(await collect(b.stream(REQUEST))) == "return a + b"

    [body] = server.posted()
    assert body == {
        "model": "served-model",  # discovered: the first id of /v1/models
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Complete: def add(a, b):"},
        ],
        "max_tokens": 32,
        "temperature": 0.0,
        "top_p": 0.9,
        "stream": True,
        "stream_options": {"include_usage": True},  # the prompt's token count, where the server sends it
        "stop": ["\n\n\n"],
    }
    post = next(r for r in server.requests if r.method == "POST")
    assert post.headers["authorization"] == "Bearer sekret"
    assert post.headers["accept"] == "text/event-stream"
    assert server.bodies[0].closed
    await b.aclose()


async def test_the_system_turn_is_always_sent(server: Server) -> None:
    server.stream(sse([chunk("ok")]))
    b = backend(server, model="m")
    await collect(b.stream(GenerationRequest([Message("user", "hi")], max_new_tokens=4)))
    assert server.posted()[0]["messages"] == [{"role": "system", "content": ""}, {"role": "user", "content": "hi"}]


async def test_configured_model_is_used_and_models_are_listed_once(server: Server) -> None:
    server.stream(sse([chunk("x")]))
    b = backend(server, model="my-model")
    for _ in range(3):
        await collect(b.stream(REQUEST))
    assert [p["model"] for p in server.posted()] == ["my-model"] * 3
    assert [r.url.path for r in server.requests if r.method == "GET"] == ["/v1/models"]
    assert b.model_name == "my-model"


async def test_configured_model_works_without_a_models_route(server: Server) -> None:
    del server.routes[("GET", "/v1/models")]
    server.stream(sse([chunk("x")]))
    b = backend(server, model="my-model")
    assert await collect(b.stream(REQUEST)) == ["x"]
    info = await b.info()
    assert info.model_id == "my-model" and info.max_total_tokens is None


async def test_no_model_anywhere_is_a_clear_error(server: Server) -> None:
    server.routes[("GET", "/v1/models")] = lambda r: httpx.Response(200, json={"object": "list", "data": []})
    b = backend(server)
    with pytest.raises(BadResponse, match=r"set codellama\.model"):
        await collect(b.stream(REQUEST))


@pytest.mark.parametrize("endpoint", [ENDPOINT, ENDPOINT + "/v1"])
async def test_endpoint_may_be_the_root_or_the_api_base(server: Server, endpoint: str) -> None:
    server.stream(sse([chunk("x")]))
    b = backend(server, endpoint=endpoint, model="m")
    assert await collect(b.stream(REQUEST)) == ["x"]
    assert server.requests[-1].url == httpx.URL(ENDPOINT + "/v1/chat/completions")
    assert api_roots(endpoint) == (ENDPOINT, "/v1")


async def test_stop_text_split_across_chunks_is_cut_and_the_stream_closed(server: Server) -> None:
    server.stream(sse([chunk("a = 1\n\n"), chunk("\nb = 2"), chunk("never read")] + [chunk("x")] * 50))
    b = backend(server, model="m")
    assert "".join(await collect(b.stream(REQUEST))) == "a = 1"
    assert server.bodies[0].closed
    assert server.bodies[0].sent < 10


async def test_closing_the_stream_early_closes_the_response(server: Server) -> None:
    server.stream(sse([chunk(f"t{i} ") for i in range(100)]))
    b = backend(server, model="m")
    stream = b.stream(REQUEST)
    assert await stream.__anext__() == "t0 "
    await stream.aclose()  # type: ignore[attr-defined]
    assert server.bodies[0].closed
    assert server.bodies[0].sent < 10


async def test_stream_without_done_ends_cleanly(server: Server) -> None:
    # TGI before 2.2 sends no [DONE].
    server.stream(sse([chunk("x"), chunk("y", finish="length")], done=False, finish=False))
    b = backend(server, model="m")
    assert await collect(b.stream(REQUEST)) == ["x", "y"]


async def test_truncated_stream_is_an_error_not_a_short_answer(server: Server) -> None:
    server.stream(sse([chunk("def add(a, b):"), chunk("\n    return")], done=False, finish=False))
    b = backend(server, model="m")
    got: list[str] = []
    with pytest.raises(GenerationFailed, match="ended the stream before the answer was complete"):
        async for part in b.stream(REQUEST):
            got.append(part)
    assert "".join(got) == "def add(a, b):\n    return"


async def test_done_without_a_finish_reason_is_an_interrupted_answer(server: Server) -> None:
    # llama-cpp-python's server sends [DONE] early when another request interrupts this one.
    server.stream(sse([chunk("def add(a, b):")], finish=False))
    with pytest.raises(GenerationFailed, match="interrupted"):
        await collect(backend(server, model="m").stream(REQUEST))


async def test_empty_stream_asks_again_without_streaming_to_learn_the_error(server: Server) -> None:
    # llama-cpp-python's server: 200, then the stream is dropped when the prompt exceeds its context.
    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["stream"]:
            return httpx.Response(200, stream=Body([]), headers={"content-type": "text/event-stream"})
        return httpx.Response(
            400,
            json={
                "error": {
                    "message": "This model's maximum context length is 2048 tokens. However, you requested 3022 tokens",
                    "type": "invalid_request_error",
                }
            },
        )

    server.routes[("POST", "/v1/chat/completions")] = answer
    with pytest.raises(BackendRejected) as caught:
        await collect(backend(server, model="m").stream(REQUEST))
    assert caught.value.too_long
    assert [p["stream"] for p in server.posted()] == [True, False]


async def test_empty_stream_then_a_non_streamed_answer_is_used(server: Server) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["stream"]:
            return httpx.Response(200, stream=Body([]))
        return httpx.Response(200, json={"choices": [{"message": {"content": "x = 1\n\n\n\nmore"}}]})

    server.routes[("POST", "/v1/chat/completions")] = answer
    assert await collect(backend(server, model="m").stream(REQUEST)) == ["x = 1"]


async def test_codellama_70b_served_by_tgi_gets_the_step_stop(server: Server) -> None:
    server.stream(sse([chunk("answer"), chunk(" <step> Source: user")]))
    b = backend(server, model="TheBloke/CodeLlama-70B-Instruct-GPTQ")
    assert "".join(await collect(b.stream(REQUEST))) == "answer "
    assert server.posted()[0]["stop"] == ["<step>", "Source: user", "\n\n\n"]


async def test_at_most_four_stop_sequences_are_sent(server: Server) -> None:
    server.stream(sse([chunk("x")]))
    b = backend(server, model="codellama-70b-instruct")  # vLLM's --served-model-name in deploy/compose.yaml
    request = GenerationRequest(REQUEST.messages, max_new_tokens=8, stop=("a", "b", "<step>", "c"))
    await collect(b.stream(request))
    assert server.posted()[0]["stop"] == ["<step>", "Source: user", "a", "b"]


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "error", "too_long"),
    [
        # TGI: {"error": {"message", "http_status_code"}}
        (
            {"error": {"message": "Input validation error: tokens must be <= 4096", "http_status_code": 422}},
            BackendRejected,
            True,
        ),
        # vLLM: an error object with a numeric code
        (
            {"error": {"object": "error", "message": "boom", "type": "InternalServerError", "code": 500}},
            GenerationFailed,
            False,
        ),
        # OpenAI style: string code
        (
            {
                "error": {
                    "message": "This model's maximum context length is 2048 tokens.",
                    "type": "invalid_request_error",
                    "code": "context_length_exceeded",
                }
            },
            BackendRejected,
            True,
        ),
        # llama.cpp-based servers' phrasing
        (
            {"error": {"message": "Requested tokens (5000) exceed context window of 4096", "type": "invalid_request"}},
            BackendRejected,
            True,
        ),
        # a bare message
        ({"error": "the GPU caught fire"}, GenerationFailed, False),
    ],
)
async def test_error_object_in_the_stream_raises_after_the_text_before_it(
    server: Server, event: dict[str, Any], error: type[Exception], too_long: bool
) -> None:
    server.stream(sse([chunk("partial "), event, chunk("never")]))
    b = backend(server, model="m")
    got: list[str] = []
    with pytest.raises(error) as caught:
        async for part in b.stream(REQUEST):
            got.append(part)
    assert got == ["partial "]
    if isinstance(caught.value, BackendRejected):
        assert caught.value.too_long is too_long
    assert server.bodies[0].closed


async def test_invalid_json_event_is_a_bad_response(server: Server) -> None:
    server.stream(sse(["{not json"]))
    with pytest.raises(BadResponse, match="invalid stream event"):
        await collect(backend(server, model="m").stream(REQUEST))


async def test_unauthorized_is_not_retried(server: Server) -> None:
    server.stream([b""], status=401)
    with pytest.raises(BackendAuthError, match="apiToken"):
        await collect(backend(server, model="m", max_retries=3).stream(REQUEST))
    assert len(server.posted()) == 1


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
        "Requested tokens (5000) exceed context window of 4096",
    ],
)
async def test_too_long_prompt_status_is_marked_too_long(server: Server, message: str) -> None:
    server.routes[("POST", "/v1/chat/completions")] = lambda r: httpx.Response(
        400, json={"error": {"message": message, "type": "invalid_request_error", "code": None}}
    )
    with pytest.raises(BackendRejected) as caught:
        await collect(backend(server, model="m").stream(REQUEST))
    assert caught.value.too_long
    assert len(server.posted()) == 1


async def test_overload_is_retried_then_succeeds(server: Server) -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"retry-after": "0"}, json={"error": "busy"}),
            httpx.Response(200, stream=Body(sse([chunk("ok")]))),
        ]
    )
    server.routes[("POST", "/v1/chat/completions")] = lambda r: next(answers)
    assert await collect(backend(server, model="m", max_retries=1).stream(REQUEST)) == ["ok"]
    assert len(server.posted()) == 2


async def test_overload_beyond_the_retries_is_reported(server: Server) -> None:
    server.routes[("POST", "/v1/chat/completions")] = lambda r: httpx.Response(
        429, headers={"retry-after": "0"}, json={"error": "busy"}
    )
    with pytest.raises(BackendOverloaded):
        await collect(backend(server, model="m", max_retries=1).stream(REQUEST))


# -- generate, info, count_tokens -------------------------------------------------------------------


async def test_generate_reads_the_message_and_cuts_stops(server: Server) -> None:
    server.routes[("POST", "/v1/chat/completions")] = lambda r: httpx.Response(
        200,
        json={
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "x = 1\n\n\n\ny = 2"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 17, "completion_tokens": 9, "total_tokens": 26},
        },
    )
    b = backend(server, model="m")
    asked = GenerationRequest(messages=REQUEST.messages, max_new_tokens=8, stop=REQUEST.stop)
    assert await b.generate(asked) == "x = 1"
    assert asked.usage.input_tokens == 17
    assert server.posted()[0]["stream"] is False
    assert "stream_options" not in server.posted()[0]


async def test_generate_error_object_in_a_200_answer(server: Server) -> None:
    server.routes[("POST", "/v1/chat/completions")] = lambda r: httpx.Response(
        200, json={"error": {"message": "Input validation error: too long", "http_status_code": 422}}
    )
    with pytest.raises(BackendRejected):
        await backend(server, model="m").generate(REQUEST)


async def test_info_reads_vllm_max_model_len(server: Server) -> None:
    server.routes[("GET", "/v1/models")] = lambda r: httpx.Response(
        200,
        json={
            "object": "list",
            "data": [{"id": "codellama", "object": "model", "owned_by": "vllm", "max_model_len": 16384}],
        },
    )
    info = await backend(server).info()
    assert (info.backend, info.model_id) == ("openai", "codellama")
    assert (info.max_total_tokens, info.max_input_tokens) == (16384, None)
    assert info.extra["owned_by"] == "vllm"


async def test_info_without_limits_leaves_them_unknown(server: Server) -> None:
    b = backend(server)
    info = await b.info()
    assert (info.model_id, info.max_total_tokens, info.max_input_tokens) == ("served-model", None, None)
    assert await b.info() is info
    assert len([r for r in server.requests if r.url.path == "/v1/models"]) == 1


async def test_info_reads_the_context_size_from_llama_cpp_props(server: Server) -> None:
    server.routes[("GET", "/props")] = lambda r: httpx.Response(
        200, json={"default_generation_settings": {"n_ctx": 8192}, "total_slots": 1}
    )
    info = await backend(server).info()
    assert info.max_total_tokens == 8192


async def test_count_tokens_uses_the_first_tokenize_route_that_answers(server: Server) -> None:
    server.routes[("POST", "/extras/tokenize/count")] = lambda r: httpx.Response(200, json={"count": 7})
    b = backend(server, model="m")
    assert await b.count_tokens("hello") == 7
    assert await b.count_tokens("hello") == 7
    paths = [r.url.path for r in server.requests if r.method == "POST"]
    assert paths == ["/tokenize", "/extras/tokenize/count", "/extras/tokenize/count"]  # probed once


async def test_count_tokens_vllm(server: Server) -> None:
    server.routes[("POST", "/tokenize")] = lambda r: httpx.Response(
        200, json={"count": 3, "tokens": [1, 2, 3], "max_model_len": 4096}
    )
    b = backend(server, model="m")
    assert await b.count_tokens("abc") == 3
    assert server.posted("/tokenize") == [{"model": "m", "prompt": "abc"}]


async def test_count_tokens_is_none_when_no_route_answers_and_is_not_probed_again(server: Server) -> None:
    b = backend(server, model="m")
    assert await b.count_tokens("x") is None
    before = len(server.requests)
    assert await b.count_tokens("x") is None
    assert len(server.requests) == before


async def test_unreachable_server_is_a_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    b = OpenAIBackend(Settings(endpoint=ENDPOINT, model="m", max_retries=0), transport=httpx.MockTransport(refuse))
    with pytest.raises(Exception, match="Cannot reach the model server"):
        await collect(b.stream(REQUEST))
    assert await b.count_tokens("x") is None


async def test_a_server_that_comes_back_is_listed_again(server: Server) -> None:
    down = True

    def handler(request: httpx.Request) -> httpx.Response:
        if down:
            raise httpx.ConnectError("connection refused", request=request)
        return server.handler(request)

    server.routes[("GET", "/v1/models")] = lambda r: httpx.Response(
        200, json={"data": [{"id": "m", "max_model_len": 2048}]}
    )
    server.stream(sse([chunk("ok")]))
    b = OpenAIBackend(Settings(endpoint=ENDPOINT, model="m", max_retries=0), transport=httpx.MockTransport(handler))
    with pytest.raises(Exception, match="Cannot reach the model server"):
        await collect(b.stream(REQUEST))
    down = False
    assert await collect(b.stream(REQUEST)) == ["ok"]
    assert (await b.info()).max_total_tokens == 2048


# -- usage and guards ------------------------------------------------------------------------------------


async def test_the_prompts_token_count_comes_from_the_usage_chunk(server: Server) -> None:
    usage = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
             "usage": {"prompt_tokens": 321, "completion_tokens": 2, "total_tokens": 323}}
    server.stream(sse([chunk("a"), chunk(None, finish="stop"), usage], finish=False))
    asked = GenerationRequest(messages=REQUEST.messages, max_new_tokens=8)
    assert "".join(await collect(backend(server).stream(asked))) == "a"
    assert asked.usage.input_tokens == 321


async def test_a_stream_without_usage_leaves_it_unknown(server: Server) -> None:
    server.stream(sse([chunk("a")]))
    asked = GenerationRequest(messages=REQUEST.messages, max_new_tokens=8)
    assert "".join(await collect(backend(server).stream(asked))) == "a"
    assert asked.usage.input_tokens is None


async def test_a_server_that_ignores_max_tokens_is_cut_off_and_closed(server: Server) -> None:
    server.stream(sse([chunk(f"t{i} ") for i in range(1000)], finish=False, done=False))
    asked = GenerationRequest(messages=REQUEST.messages, max_new_tokens=5)
    assert "".join(await collect(backend(server).stream(asked))) == "t0 t1 t2 t3 t4 "
    assert server.bodies[0].closed and server.bodies[0].sent < 1000
