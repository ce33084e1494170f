"""Text Generation Inference: `/generate_stream`, `/generate`, `/info` and `/tokenize` over one pooled client.

The prompt is the exact CodeLlama-70B-Instruct text (TGI adds BOS itself). Answers are checked for the
fields used (TGI's OpenAPI schema: `generated_text`; a stream event's `token.text`, `token.special`,
`generated_text`, `details.input_length`); anything else a server adds is ignored. What a server sends is
not trusted blindly: a special `</s>` or `<step>` token ends the answer, and a server that ignores
`max_new_tokens` is cut off there. (The `text-generation` client package is not used here: its pydantic
types took ~0.5 s to import on the first completion. The tests validate our bodies with it.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from lsp.backends.base import GenerationRequest, ModelInfo
from lsp.backends.http import (
    close_response,
    json_request,
    make_client,
    open_response,
    request_json,
    with_retries,
)
from lsp.backends.http_errors import display_url, event_error, transport_error
from lsp.backends.sse import read_events, read_to_end
from lsp.backends.stops import StopCutter
from lsp.config import Settings
from lsp.errors import BackendError, BackendUnavailable, BadResponse
from lsp.prompt.chat_format import MAX_STOP_SEQUENCES, STEP, FormatName, render_codellama70b

log = logging.getLogger(__name__)

EOS = "</s>"
# Special tokens that end the model's turn: nothing after them is part of the answer.
END_OF_TURN = frozenset({EOS, STEP})


class TGIBackend:
    name = "tgi"
    prompt_format: FormatName = "codellama-70b"

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not settings.endpoint:
            raise ValueError("the TGI backend needs an endpoint")
        self.endpoint = settings.endpoint
        self._settings = settings
        self._client = make_client(settings, self.endpoint, transport)
        self._info: ModelInfo | None = None
        self._responses: set[httpx.Response] = set()  # streams in flight, closed by aclose()
        self._ending: set[asyncio.Task[None]] = set()  # ends of responses read after their final event
        self._closing = False
        log.debug(
            "TGI backend for %s: token %s, TLS verification %s, proxy %s",
            display_url(self.endpoint),
            "set" if settings.token() else "not set",
            "on" if settings.verify_tls else "off",
            display_url(settings.proxy) if settings.proxy else "none",
        )

    def body(self, request: GenerationRequest, *, stream: bool) -> dict[str, Any]:
        """The exact JSON sent to TGI (also shown by `codellama-lsp prompt --json`)."""
        stops = [STEP, *(s for s in request.stop if s != STEP)][:MAX_STOP_SEQUENCES]
        parameters: dict[str, Any] = {
            "max_new_tokens": request.max_new_tokens,
            "return_full_text": False,
            "stop": stops,
            "details": True,  # the final event's details carry input_length: the prompt's true token count
        }
        if request.temperature > 0:
            parameters |= {"do_sample": True, "temperature": request.temperature}
            if 0 < request.top_p < 1:
                parameters["top_p"] = request.top_p
        else:
            parameters["do_sample"] = False
        return {"inputs": render_codellama70b(request.messages), "parameters": parameters, "stream": stream}

    async def info(self) -> ModelInfo:
        """Read once, when a request first needs the limits; again after a failed generation (the server
        may have been restarted with others)."""
        if self._info is None:
            payload = await with_retries(lambda: self._json("GET", "/info"), self._settings.max_retries, "GET /info")
            if not isinstance(payload, dict):
                raise BadResponse(f"{display_url(self.endpoint)}/info did not return a JSON object")
            limit = payload.get("max_input_tokens", payload.get("max_input_length"))
            self._info = ModelInfo(
                backend=self.name,
                model_id=str(payload.get("model_id", "unknown")),
                max_input_tokens=limit if isinstance(limit, int) else None,
                max_total_tokens=t if isinstance(t := payload.get("max_total_tokens"), int) else None,
                version=str(payload["version"]) if "version" in payload else None,
                extra={k: payload[k] for k in ("max_stop_sequences", "max_concurrent_requests") if k in payload},
            )
            log.debug(
                "GET /info: model %s, max input tokens %s, max total tokens %s, version %s",
                self._info.model_id,
                self._info.max_input_tokens,
                self._info.max_total_tokens,
                self._info.version,
            )
        return self._info

    async def count_tokens(self, text: str) -> int | None:
        """Ids TGI will use for `text`, BOS included; None on servers without `/tokenize`."""
        try:
            payload = await self._json("POST", "/tokenize", {"inputs": text})
        except BackendError as error:
            log.debug("/tokenize unavailable: %s", error)
            return None
        return len(payload) if isinstance(payload, list) else None

    async def generate(self, request: GenerationRequest) -> str:
        body = self.body(request, stream=False)
        payload = await with_retries(
            lambda: self._json("POST", "/generate", body), self._settings.max_retries, "POST /generate"
        )
        if isinstance(payload, list) and payload:
            payload = payload[0]
        text = payload.get("generated_text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            raise BadResponse(
                f"{display_url(self.endpoint)}/generate answered an unexpected shape: no generated_text in "
                f"{json.dumps(payload)[:200]}"
            )
        details = payload.get("details") if isinstance(payload, dict) else None
        request.usage.input_tokens = _input_length(details)
        cutter = StopCutter(body["parameters"]["stop"])
        return cutter.feed(text) + cutter.flush()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        body = self.body(request, stream=True)
        cutter = StopCutter(body["parameters"]["stop"])
        what = f"request={request.request_id or '-'} POST /generate_stream"
        try:
            response = await with_retries(lambda: self._open_stream(body, what), self._settings.max_retries, what)
        except BackendError:
            self._info = None
            raise
        self._responses.add(response)
        silence = self._settings.request_timeout
        tokens = 0
        ended = drained = False  # the final event came; the end of the response after it was read
        events = read_events(response, self.endpoint, silence)
        try:
            async for data in events:
                event = self._parse_event(data)
                tokens += 1
                if event.final:
                    request.usage.input_tokens = event.input_length
                    ended = True
                if event.special and event.text in END_OF_TURN:
                    break
                if not event.special and (out := cutter.feed(event.text)):
                    yield out
                if cutter.stopped or event.final:
                    break
                if tokens >= request.max_new_tokens:
                    log.info("%s: the server sent more than max_new_tokens=%d; cut off", what, tokens)
                    break
            if ended:  # the reader went on after the last text: the end is read now
                drained = True
                await read_to_end(events)
            if tail := cutter.flush():
                yield tail
        except BackendError:
            self._info = None
            raise
        except httpx.HTTPError as error:
            self._info = None
            if self._closing:
                raise BackendUnavailable("The language server is shutting down.") from error
            raise transport_error(error, self.endpoint) from error
        finally:
            # A response read to its end leaves its connection to the next request; one closed before
            # drops it, and TGI sees the client go away and stops generating for us. TGI ends a response
            # right after its final event: for a reader that stopped at the last text (a completion decided
            # by it), that end is read meanwhile, not while the answer waits.
            if ended and not drained and not self._closing:
                ending = asyncio.ensure_future(self._end(response, events))
                self._ending.add(ending)
                ending.add_done_callback(self._ending.discard)
            else:
                self._responses.discard(response)
                await close_response(response)

    async def _end(self, response: httpx.Response, events: AsyncIterator[str]) -> None:
        try:
            await read_to_end(events)
        finally:
            self._responses.discard(response)
            await close_response(response)

    async def aclose(self) -> None:
        """Close every stream still open (their readers get an error at once, and TGI sees the client
        go away), then the pool."""
        self._closing = True
        for response in list(self._responses):
            await close_response(response)
        self._responses.clear()
        if self._ending:
            await asyncio.wait(self._ending)
        await self._client.aclose()

    async def _open_stream(self, body: dict[str, Any], what: str) -> httpx.Response:
        started = time.perf_counter()
        request = json_request(self._client, "POST", "/generate_stream", body, stream=True)
        try:
            response = await open_response(self._client, request, self.endpoint, self._settings.request_timeout)
        except BackendError as error:
            log.debug("%s: %s after %.0f ms", what, type(error).__name__, (time.perf_counter() - started) * 1000)
            raise
        # Never the headers: they carry the token.
        log.debug("%s: HTTP %d after %.0f ms", what, response.status_code, (time.perf_counter() - started) * 1000)
        return response

    def _parse_event(self, data: str) -> _Event:
        try:
            payload = json.loads(data)
        except ValueError as error:
            raise BadResponse(f"The model server sent an invalid stream event: {data[:200]!r}") from error
        if not isinstance(payload, dict):
            raise BadResponse(f"The model server sent an unexpected stream event: {data[:200]!r}")
        if "error" in payload:
            raise event_error(payload, self.endpoint)
        token = payload.get("token")
        generated = payload.get("generated_text")
        if (
            not isinstance(token, dict)
            or not isinstance(token.get("text"), str)
            or not isinstance(token.get("special", False), bool)
            or not (generated is None or isinstance(generated, str))
        ):
            raise BadResponse(f"The model server sent a malformed stream event: {data[:200]!r}")
        details = _input_length(payload.get("details"))
        return _Event(token["text"], token.get("special", False), generated is not None, details)

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        return await request_json(self._client, self.endpoint, method, path, body, self._settings.request_timeout)


def _input_length(details: Any) -> int | None:
    value = details.get("input_length") if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True)
class _Event:
    """What is used of a `/generate_stream` event."""

    text: str
    special: bool
    final: bool  # the last event: it carries the whole generated_text
    input_length: int | None
