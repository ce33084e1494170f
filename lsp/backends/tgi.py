"""Text Generation Inference: `/generate_stream`, `/generate`, `/info` and `/tokenize` over one pooled client.

The prompt is the exact CodeLlama-70B-Instruct text (TGI adds BOS itself). Answers are checked for the
fields used (TGI's OpenAPI schema: `generated_text`; a stream event's `token.text`, `token.special`,
`generated_text`); anything else a server adds is ignored. (The `text-generation` client package is not
used: its pydantic types took ~0.5 s to import on the first completion, and its client opens a session
per call and caps a whole stream at 10 s.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from lsp.backends.base import AFTER_ANSWER, GenerationRequest, ModelInfo, Ready
from lsp.backends.http import (
    ConnectionWarmer,
    display_url,
    error_body,
    event_error,
    make_client,
    request_json,
    send,
    status_error,
    transport_error,
    with_retries,
)
from lsp.backends.sse import OversizedEvent, TokenSilence, sse_data, sse_lines, token_silence
from lsp.backends.stops import StopCutter
from lsp.config import Settings
from lsp.errors import BackendError, BackendTimeout, BackendUnavailable, BadResponse
from lsp.prompt.chat_format import MAX_STOP_SEQUENCES, STEP, FormatName, render_codellama70b

log = logging.getLogger(__name__)

# A document may hold lone UTF-16 surrogates (a JSON string may spell one); UTF-8 cannot carry them.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


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
        self._closing = False
        self._closers: set[asyncio.Task[None]] = set()
        self._warmer = ConnectionWarmer(self._client, "/info")  # /info: answered by the router, no model work
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
            "details": True,
        }
        if request.temperature > 0:
            parameters |= {"do_sample": True, "temperature": request.temperature}
            if 0 < request.top_p < 1:
                parameters["top_p"] = request.top_p
        else:
            parameters["do_sample"] = False
        inputs = _LONE_SURROGATE.sub("\ufffd", render_codellama70b(request.messages))
        return {"inputs": inputs, "parameters": parameters, "stream": stream}

    async def info(self) -> ModelInfo:
        if self._info is None:
            payload = await with_retries(lambda: self._get_json("/info"), self._settings.max_retries, "GET /info")
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
            payload = await self._post_json("/tokenize", {"inputs": text})
        except BackendError as error:
            log.debug("/tokenize unavailable: %s", error)
            return None
        return len(payload) if isinstance(payload, list) else None

    async def generate(self, request: GenerationRequest) -> str:
        body = self.body(request, stream=False)
        payload = await with_retries(
            lambda: self._post_json("/generate", body), self._settings.max_retries, "POST /generate"
        )
        if isinstance(payload, list) and payload:
            payload = payload[0]
        text = payload.get("generated_text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            raise BadResponse(
                f"{display_url(self.endpoint)}/generate answered an unexpected shape: no generated_text in "
                f"{json.dumps(payload)[:200]}"
            )
        cutter = StopCutter(body["parameters"]["stop"])
        return cutter.feed(text) + cutter.flush()

    def stream(self, request: GenerationRequest, *, ready: Ready | None = None) -> AsyncIterator[str]:
        # The HTTP request is built now, while the caller may still be debouncing: not after.
        body = self.body(request, stream=True)
        prepared = self._client.build_request(
            "POST", "/generate_stream", json=body, headers={"Accept": "text/event-stream"}
        )
        what = f"request={request.request_id or '-'} POST /generate_stream"
        return self._stream(prepared, StopCutter(body["parameters"]["stop"]), what, ready)

    async def _stream(
        self, prepared: httpx.Request, cutter: StopCutter, what: str, ready: Ready | None
    ) -> AsyncIterator[str]:
        try:
            response = await with_retries(
                lambda: self._open_stream(prepared, what, ready), self._settings.max_retries, what
            )
        except BaseException:
            self._warmer.cold = True  # a request cancelled or failed before its answer took its connection along
            raise
        self._responses.add(response)
        silence = self._settings.request_timeout
        answered = False  # the reader got all it wanted (not an error, not a cancellation)
        ended = False  # the response was read to its end: its connection can serve the next request
        try:
            events = token_silence(
                sse_data(sse_lines(response.aiter_bytes())), silence, abort=lambda: self._close(response)
            )
            final = False
            async for data in events:
                if final:
                    continue  # TGI ends the response after the final event: read on to its end
                event = self._parse_event(data)
                if event is None:
                    continue
                text = "" if event.special and event.text == STEP else event.text
                out = cutter.feed(text)
                if out:
                    yield out
                if cutter.stopped:
                    break
                final = event.generated_text is not None
            else:
                ended = True
            if tail := cutter.flush():
                yield tail
            answered = True
        except GeneratorExit:  # the reader stopped: the completion is decided
            answered = True
            raise
        except httpx.HTTPError as error:
            if self._closing:
                raise BackendUnavailable("The language server is shutting down.") from error
            raise transport_error(error, self.endpoint) from error
        except TokenSilence:
            raise BackendTimeout(
                f"The model server at {display_url(self.endpoint)} stopped answering: no token for {silence:g} s "
                "(keep-alives do not count). Set codellama.requestTimeout to wait longer."
            ) from None
        except OversizedEvent as error:
            raise BadResponse(
                f"The model server at {display_url(self.endpoint)} sent an oversized stream event ({error})."
            ) from None
        finally:
            # Closing the response closes the connection mid-stream: TGI sees the client go away and
            # stops generating for us. After an answer, that waits until the answer is out; after a
            # failure or a cancellation it is done now.
            # a connection closed mid-response is gone: the next request would connect first
            self._warmer.cold = not ended
            if answered and not self._closing:
                asyncio.get_running_loop().call_later(AFTER_ANSWER, self._close_soon, response)
            else:
                self._responses.discard(response)
                await self._close(response)

    def warm(self) -> None:
        if not self._closing:
            self._warmer.warm()

    def connection_states(self) -> dict[str, int]:
        """The pool's connections by state (ACTIVE, IDLE, ...), for soak tests and bug reports. httpx has no
        public API for this: empty when its internals differ."""
        pool = getattr(getattr(self._client, "_transport", None), "_pool", None)
        states: dict[str, int] = {}
        for connection in getattr(pool, "connections", []):
            info = connection.info() if hasattr(connection, "info") else repr(connection)
            parts = [p.strip() for p in str(info).split(",")]
            state = parts[2] if len(parts) > 2 else parts[0]  # e.g. "CONNECTING" before a socket exists
            states[state] = states.get(state, 0) + 1
        return states

    def _close_soon(self, response: httpx.Response) -> None:
        if response in self._responses:  # (else aclose() closed it meanwhile)
            self._responses.discard(response)
            self._start_closing(response)

    async def _close(self, response: httpx.Response) -> None:
        """Close a response even when this task is cancelled again meanwhile (the user typed on while the
        first cancellation was being handled): an interrupted close leaves the pool's connection busy for
        ever, and a pool that runs out of connections stops answering."""
        await asyncio.shield(self._start_closing(response))

    def _start_closing(self, response: httpx.Response) -> asyncio.Task[None]:
        closing = asyncio.ensure_future(response.aclose())
        self._closers.add(closing)  # a strong reference: the loop keeps only weak ones
        closing.add_done_callback(self._closers.discard)
        return closing

    async def aclose(self) -> None:
        """Close every stream still open (their readers get an error at once, and TGI sees the client
        go away), then the pool."""
        self._closing = True
        for response in list(self._responses):
            await response.aclose()
        self._responses.clear()
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)
        await self._warmer.aclose()
        await self._client.aclose()

    async def _open_stream(self, request: httpx.Request, what: str, ready: Ready | None = None) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await send(self._client, request, stream=True, before_sending=ready)
        except httpx.HTTPError as error:
            log.debug("%s: %s after %.0f ms", what, type(error).__name__, (time.perf_counter() - started) * 1000)
            raise transport_error(error, self.endpoint) from error
        # Never the headers: they carry the token.
        log.debug("%s: HTTP %d after %.0f ms", what, response.status_code, (time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            content = await error_body(response)
            raise status_error(response.status_code, content, response.headers, self.endpoint)
        return response

    def _parse_event(self, data: str) -> _Event | None:
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
        return _Event(token["text"], token.get("special", False), generated)

    async def _get_json(self, path: str) -> Any:
        return await request_json(self._client, self.endpoint, "GET", path)

    async def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        return await request_json(self._client, self.endpoint, "POST", path, body)


@dataclass(frozen=True)
class _Event:
    """What is used of a `/generate_stream` event."""

    text: str
    special: bool
    generated_text: str | None
