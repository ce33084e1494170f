"""Text Generation Inference: `/generate_stream`, `/generate`, `/info` and `/tokenize` over one pooled client.

The prompt is the exact CodeLlama-70B-Instruct text (TGI adds BOS itself). Payloads are validated with
the `text-generation` package's pydantic types; its client is not used on the hot path (it opens a
session per call and caps a whole stream at 10 s).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import ValidationError
from text_generation.types import Response, StreamResponse

from lsp.backends.base import GenerationRequest, ModelInfo
from lsp.backends.http import event_error, make_client, status_error, transport_error, with_retries
from lsp.backends.sse import sse_data
from lsp.backends.stops import StopCutter
from lsp.chat_format import STEP, FormatName, render_codellama70b
from lsp.config import Settings
from lsp.errors import BackendError, BadResponse

log = logging.getLogger(__name__)

MAX_STOP_SEQUENCES = 4  # TGI's default --max-stop-sequences


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
        return {"inputs": render_codellama70b(request.messages), "parameters": parameters, "stream": stream}

    async def info(self) -> ModelInfo:
        if self._info is None:
            payload = await with_retries(lambda: self._get_json("/info"), self._settings.max_retries, "GET /info")
            if not isinstance(payload, dict):
                raise BadResponse(f"{self.endpoint}/info did not return a JSON object")
            limit = payload.get("max_input_tokens", payload.get("max_input_length"))
            self._info = ModelInfo(
                backend=self.name,
                model_id=str(payload.get("model_id", "unknown")),
                max_input_tokens=limit if isinstance(limit, int) else None,
                max_total_tokens=t if isinstance(t := payload.get("max_total_tokens"), int) else None,
                version=str(payload["version"]) if "version" in payload else None,
                extra={k: payload[k] for k in ("max_stop_sequences", "max_concurrent_requests") if k in payload},
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

    async def tokenize(self, text: str) -> list[dict[str, Any]] | None:
        try:
            payload = await self._post_json("/tokenize", {"inputs": text})
        except BackendError:
            return None
        return payload if isinstance(payload, list) else None

    async def generate(self, request: GenerationRequest) -> str:
        body = self.body(request, stream=False)
        payload = await with_retries(
            lambda: self._post_json("/generate", body), self._settings.max_retries, "POST /generate"
        )
        if isinstance(payload, list) and payload:
            payload = payload[0]
        try:
            response = Response.model_validate(_with_defaults(payload))
        except ValidationError as error:
            raise BadResponse(f"{self.endpoint}/generate answered an unexpected shape: {error}") from error
        cutter = StopCutter(body["parameters"]["stop"])
        return cutter.feed(response.generated_text) + cutter.flush()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        body = self.body(request, stream=True)
        cutter = StopCutter(body["parameters"]["stop"])
        response = await with_retries(
            lambda: self._open_stream(body), self._settings.max_retries, "POST /generate_stream"
        )
        try:
            async for data in sse_data(response.aiter_lines()):
                event = self._parse_event(data)
                if event is None:
                    continue
                text = "" if event.token.special and event.token.text == STEP else event.token.text
                out = cutter.feed(text)
                if out:
                    yield out
                if cutter.stopped or event.generated_text is not None:
                    break
            if tail := cutter.flush():
                yield tail
        except httpx.HTTPError as error:
            raise transport_error(error, self.endpoint) from error
        finally:
            # Closing the response closes the connection mid-stream: TGI sees the client go away and
            # stops generating for us.
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _open_stream(self, body: dict[str, Any]) -> httpx.Response:
        try:
            request = self._client.build_request(
                "POST", "/generate_stream", json=body, headers={"Accept": "text/event-stream"}
            )
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise transport_error(error, self.endpoint) from error
        if response.status_code != 200:
            try:
                content = await response.aread()
            except httpx.HTTPError:
                content = b""
            finally:
                await response.aclose()
            raise status_error(response.status_code, content, response.headers, self.endpoint)
        return response

    def _parse_event(self, data: str) -> StreamResponse | None:
        try:
            payload = json.loads(data)
        except ValueError as error:
            raise BadResponse(f"The model server sent an invalid stream event: {data[:200]!r}") from error
        if not isinstance(payload, dict):
            raise BadResponse(f"The model server sent an unexpected stream event: {data[:200]!r}")
        if "error" in payload:
            raise event_error(payload, self.endpoint)
        try:
            return StreamResponse.model_validate(payload)
        except ValidationError as error:
            raise BadResponse(f"The model server sent a malformed stream event: {data[:200]!r}") from error

    async def _get_json(self, path: str) -> Any:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as error:
            raise transport_error(error, self.endpoint) from error
        return self._json(response)

    async def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as error:
            raise transport_error(error, self.endpoint) from error
        return self._json(response)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise status_error(response.status_code, response.content, response.headers, self.endpoint)
        try:
            return response.json()
        except ValueError as error:
            raise BadResponse(f"{self.endpoint} answered with invalid JSON") from error


def _with_defaults(payload: Any) -> Any:
    """TGI omits `details` unless asked and older servers omit fields the client types require."""
    if isinstance(payload, dict) and isinstance(payload.get("details"), dict):
        details = dict(payload["details"])
        details.setdefault("prefill", [])
        details.setdefault("tokens", [])
        return {**payload, "details": details}
    return payload
