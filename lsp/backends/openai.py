"""OpenAI-compatible servers (vLLM, TGI's Messages API, llama.cpp's server, llama-cpp-python,
text-generation-webui, Ollama): `/v1/chat/completions` with streaming, over one pooled client.

The server applies the model's chat template, so the request carries role/content messages, never the
70B prompt string. The model name is `settings.model`, or else the first id `GET /v1/models` lists.
`codellama.endpoint` may be the server root (`http://host:8000`) or the API base (`http://host:8000/v1`).

A stream is complete only with a finish_reason; one that ends without (a dropped connection, or
llama-cpp-python's server sending `[DONE]` early because a newer request interrupted this one) is an
error, never a silently short answer. That server also answers a failing request with 200 and an empty
stream; the request is then repeated without streaming to read the real error (e.g. a prompt over its
context, which becomes `BackendRejected(too_long=True)` so the caller shrinks the prompt).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from lsp.backends.base import GenerationRequest, ModelInfo
from lsp.backends.http import (
    close_response,
    json_request,
    make_client,
    open_response,
    read_body,
    request_json,
    with_retries,
)
from lsp.backends.http_errors import event_error, transport_error
from lsp.backends.sse import read_events, read_to_end
from lsp.backends.stops import StopCutter
from lsp.config import Settings
from lsp.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    GenerationFailed,
)
from lsp.prompt.chat_format import MAX_STOP_SEQUENCES, STEP, FormatName, render_messages

log = logging.getLogger(__name__)

DONE = "[DONE]"
CODELLAMA_70B_STOPS = (STEP, "Source: user")
# Fields some servers add to a `/v1/models` entry with the context size (vLLM: max_model_len; LM Studio
# and OpenRouter-style listings: the others).
CONTEXT_FIELDS = ("max_model_len", "context_length", "max_context_length")
# Token-count routes of the common servers (path, server kind), tried in order once; the first that
# answers is kept for later calls.
_TOKENIZE_ROUTES: tuple[tuple[str, str], ...] = (
    ("/tokenize", "vllm"),  # {"model", "prompt"} -> {"count", "tokens", "max_model_len"}
    ("/extras/tokenize/count", "llama-cpp-python"),  # {"input"} -> {"count"}
    ("/tokenize", "llama.cpp"),  # {"content", "add_special"} -> {"tokens": [...]}
    ("/tokenize", "tgi"),  # {"inputs"} -> [{"id", "text", ...}, ...]
)


def api_roots(endpoint: str) -> tuple[str, str]:
    """(server root, API path prefix): `http://h:8000/v1` and `http://h:8000` both give
    (`http://h:8000`, `/v1`)."""
    endpoint = endpoint.rstrip("/")
    if endpoint.endswith("/v1"):
        return endpoint[: -len("/v1")], "/v1"
    return endpoint, "/v1"


class OpenAIBackend:
    name = "openai"
    prompt_format: FormatName = "messages"

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.endpoint:
            raise ValueError("the OpenAI-compatible backend needs an endpoint")
        self.endpoint = settings.endpoint
        self._root, self._api = api_roots(settings.endpoint)
        self._settings = settings
        self._client = make_client(settings, self._root, transport)
        self._info: ModelInfo | None = None
        self._models: list[dict[str, Any]] | None = None
        self._tokenize_route: tuple[str, str] | None = None
        self._tokenize_probed = False
        # Shown in the status notification; known once the model is resolved.
        self.model_name: str | None = settings.model

    # -- the protocol -------------------------------------------------------------------------------

    def body(self, request: GenerationRequest, model: str, *, stream: bool) -> dict[str, Any]:
        """The exact JSON sent to `/v1/chat/completions`."""
        body: dict[str, Any] = {
            "model": model,
            "messages": render_messages(request.messages),
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stream": stream,
        }
        if stream:
            # The prompt's token count comes in a last chunk (vLLM, TGI, OpenAI); others ignore the field.
            body["stream_options"] = {"include_usage": True}
        if stops := self._stops(request, model):
            body["stop"] = stops
        return body

    async def info(self) -> ModelInfo:
        if self._info is None:
            model = await self.model()
            entry = next((m for m in self._models or [] if m.get("id") == model), None)
            total = _context_size(entry) or await self._server_context()
            self._info = ModelInfo(
                backend=self.name,
                model_id=model,
                # The API does not say how much of the context may be prompt; the caller applies its
                # settings or defaults under max_total_tokens.
                max_input_tokens=None,
                max_total_tokens=total,
                extra={
                    "endpoint": self.endpoint,
                    "models": [str(m.get("id")) for m in self._models or []],
                    **({"owned_by": entry["owned_by"]} if entry and "owned_by" in entry else {}),
                },
            )
        return self._info

    async def model(self) -> str:
        """The model name requests carry: the setting, else the first id the server lists."""
        if self._settings.model:
            if self._models is None:
                try:
                    await self._list_models()
                except (BackendUnavailable, BackendTimeout):
                    raise  # the server is down: say so now, and list again next time
                except BackendError as error:
                    # Some servers have no /v1/models; with a configured name we can do without it.
                    log.info("GET %s/models failed (%s); using codellama.model as is", self._api, error)
                    self._models = []
                else:
                    listed: list[dict[str, Any]] = self._models or []
                    ids = [entry.get("id") for entry in listed]
                    if ids and self._settings.model not in ids:
                        log.warning("codellama.model %r is not among the served models %s", self._settings.model, ids)
            return self._settings.model
        models = await self._list_models()
        first = next((m.get("id") for m in models if isinstance(m.get("id"), str) and m.get("id")), None)
        if first is None:
            raise BadResponse(
                f"{self.endpoint} lists no models at {self._api}/models; set codellama.model to the model name"
            )
        self.model_name = str(first)
        return self.model_name

    async def count_tokens(self, text: str) -> int | None:
        """Exact count from servers with a tokenize route (vLLM, llama-cpp-python), else None."""
        if self._tokenize_probed and self._tokenize_route is None:
            return None
        routes = [self._tokenize_route] if self._tokenize_route else list(_TOKENIZE_ROUTES)
        model = self._settings.model or self.model_name or ""
        for path, kind in routes:
            request = json_request(self._client, "POST", path, _tokenize_body(kind, text, model))
            try:
                response = await open_response(self._client, request, self.endpoint, self._settings.request_timeout)
                content = await read_body(response)
            except BackendError as error:
                if isinstance(error, (BackendUnavailable, BackendTimeout)):
                    log.debug("%s unavailable: %s", path, error)
                    return None  # the server is unreachable: say nothing, probe again next time
                continue
            except httpx.HTTPError as error:
                log.debug("%s unavailable: %s", path, error)
                return None
            count = _count_of(content, kind)
            if count is not None:
                self._tokenize_route = (path, kind)
                self._tokenize_probed = True
                return count
        self._tokenize_probed = True
        self._tokenize_route = None
        return None

    async def generate(self, request: GenerationRequest) -> str:
        model = await self.model()
        body = self.body(request, model, stream=False)
        cutter = StopCutter(body.get("stop", ()))
        return cutter.feed(await self._complete(body, request)) + cutter.flush()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        model = await self.model()
        body = self.body(request, model, stream=True)
        cutter = StopCutter(body.get("stop", ()))
        path = f"{self._api}/chat/completions"
        response = await with_retries(lambda: self._open_stream(path, body), self._settings.max_retries, f"POST {path}")
        silence = self._settings.request_timeout
        received = finished = done = False
        chunks = after = 0
        try:
            events = read_events(response, self.endpoint, silence)
            async for data in events:
                received = True
                if data.strip() == DONE:
                    done = True
                    await read_to_end(events)  # the connection then serves the next request
                    break
                payload = self._parse_event(data)
                if (usage := _prompt_tokens(payload)) is not None:
                    request.usage.input_tokens = usage
                if finished:  # after the finish_reason: only the usage chunk and [DONE] are of interest
                    after += 1
                    if after > 4:
                        break
                    continue
                finished = _finish_reason(payload) is not None
                text = _choice_text(payload, delta=True)
                if out := cutter.feed(text or ""):
                    yield out
                if cutter.stopped:
                    break
                chunks += bool(text)
                if chunks >= request.max_new_tokens and not finished:
                    # (a chunk holds one token or more: this cuts off no honest server)
                    log.info("%s%s sent more than max_tokens=%d; cut off", self.endpoint, path, chunks)
                    finished = True
                    break
        except httpx.HTTPError as error:
            raise transport_error(error, self.endpoint) from error
        finally:
            # Closing the response mid-stream drops the connection; the server sees the client go away and
            # aborts the generation (vLLM, TGI and llama.cpp's server all check for it).
            await close_response(response)
        if not received:
            # llama-cpp-python's server answers 200 and then drops the stream when the request fails (a
            # prompt longer than its context, say): ask once more without streaming to learn the error.
            log.info("%s%s sent an empty stream; asking again without streaming", self.endpoint, path)
            text = await self._complete(_without_streaming(body), request)
            if out := cutter.feed(text) + cutter.flush():
                yield out
            return
        if not (finished or cutter.stopped):
            # Every chunk stream ends with a finish_reason (before `[DONE]` where that is sent). Without one
            # the answer is cut short: the connection ended, or llama-cpp-python's server interrupted this
            # request for a newer one (its default `--interrupt_requests`), sending `[DONE]` early.
            why = " (it sent [DONE] without a finish_reason: interrupted by another request?)" if done else ""
            raise GenerationFailed(
                f"The model server at {self.endpoint} ended the stream before the answer was complete{why}."
            )
        if tail := cutter.flush():
            yield tail

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- plumbing -----------------------------------------------------------------------------------

    def _stops(self, request: GenerationRequest, model: str) -> list[str]:
        stops = [s for s in request.stop if s]
        if "codellama-70b" in model.lower():
            # The 70B model ends its turn with the special token `<step>`: TGI's Messages API needs it as a
            # stop sequence; vLLM drops special tokens from the text before matching stops, so the next
            # turn's header is the guard there.
            stops = [*CODELLAMA_70B_STOPS, *stops]
        return list(dict.fromkeys(stops))[:MAX_STOP_SEQUENCES]

    async def _complete(self, body: dict[str, Any], request: GenerationRequest) -> str:
        """One non-streaming chat completion; the text of its first choice (its usage in `request`)."""
        path = f"{self._api}/chat/completions"
        payload = await with_retries(lambda: self._post_json(path, body), self._settings.max_retries, f"POST {path}")
        if not isinstance(payload, dict):
            raise BadResponse(f"{self.endpoint} answered a chat completion that is not a JSON object")
        if "error" in payload:
            raise event_error(payload, self.endpoint)
        text = _choice_text(payload, delta=False)
        if text is None:
            raise BadResponse(f"{self.endpoint} answered a chat completion without choices: {str(payload)[:200]}")
        request.usage.input_tokens = _prompt_tokens(payload)
        return text

    async def _server_context(self) -> int | None:
        """llama.cpp's server tells its context size at `/props`; other servers have no such route."""
        try:
            payload = await self._get_json("/props")
        except BackendError:
            return None
        if not isinstance(payload, dict):
            return None
        settings = payload.get("default_generation_settings")
        value = settings.get("n_ctx") if isinstance(settings, dict) else payload.get("n_ctx")
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    async def _list_models(self) -> list[dict[str, Any]]:
        if self._models is None:
            payload = await with_retries(
                lambda: self._get_json(f"{self._api}/models"), self._settings.max_retries, f"GET {self._api}/models"
            )
            data = payload.get("data") if isinstance(payload, dict) else payload
            if not isinstance(data, list):
                raise BadResponse(f"{self.endpoint}{self._api}/models did not return a model list")
            self._models = [m for m in data if isinstance(m, dict)]
        return self._models

    async def _open_stream(self, path: str, body: dict[str, Any]) -> httpx.Response:
        request = json_request(self._client, "POST", path, body, stream=True)
        return await open_response(self._client, request, self.endpoint, self._settings.request_timeout)

    def _parse_event(self, data: str) -> dict[str, Any]:
        try:
            payload = json.loads(data)
        except ValueError as error:
            raise BadResponse(f"The model server sent an invalid stream event: {data[:200]!r}") from error
        if not isinstance(payload, dict):
            raise BadResponse(f"The model server sent an unexpected stream event: {data[:200]!r}")
        if "error" in payload:
            raise event_error(payload, self.endpoint)
        return payload

    async def _get_json(self, path: str) -> Any:
        return await request_json(self._client, self.endpoint, "GET", path, None, self._settings.request_timeout)

    async def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        return await request_json(self._client, self.endpoint, "POST", path, body, self._settings.request_timeout)


def _choice_text(payload: dict[str, Any], *, delta: bool) -> str | None:
    """The text of the first choice: `delta.content` in stream chunks, `message.content` otherwise;
    `text` for servers that answer in the completions shape. None when there is no choice at all."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    choice = choices[0] if isinstance(choices[0], dict) else {}
    part = choice.get("delta" if delta else "message")
    content = part.get("content") if isinstance(part, dict) else None
    if content is None:
        content = choice.get("text")
    return content if isinstance(content, str) else ""


def _finish_reason(payload: dict[str, Any]) -> str | None:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return str(reason) if reason else None
    return None


def _context_size(entry: dict[str, Any] | None) -> int | None:
    if not entry:
        return None
    for key in CONTEXT_FIELDS:
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _tokenize_body(kind: str, text: str, model: str) -> dict[str, Any]:
    if kind == "vllm":
        return {"model": model, "prompt": text}
    if kind == "llama-cpp-python":
        return {"input": text}
    if kind == "llama.cpp":
        return {"content": text, "add_special": True}
    return {"inputs": text}


def _count_of(content: bytes, kind: str) -> int | None:
    """The count from a tokenize answer of that kind of server, or None. The kind is checked strictly:
    routes share a path (llama.cpp's `/tokenize` answers a vLLM-style body with an empty token list)."""
    try:
        payload = json.loads(content)
    except ValueError:
        return None
    if kind == "tgi":
        return len(payload) if isinstance(payload, list) and payload else None
    if not isinstance(payload, dict):
        return None
    if kind in ("vllm", "llama-cpp-python"):
        count = payload.get("count")
        return count if isinstance(count, int) and not isinstance(count, bool) else None
    tokens = payload.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


def _prompt_tokens(payload: dict[str, Any]) -> int | None:
    usage = payload.get("usage")
    value = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _without_streaming(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "stream_options"} | {"stream": False}
