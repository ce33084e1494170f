"""What every HTTP backend shares: one pooled client, error mapping, and bounded retries."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from lsp.config import Settings
from lsp.errors import (
    BackendAuthError,
    BackendError,
    BackendOverloaded,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    GenerationFailed,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_RETRY_AFTER = 30.0


def make_client(settings: Settings, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    headers = {"Accept": "application/json", "User-Agent": "codellama-lsp"}
    if (token := settings.token()) is not None:
        headers["Authorization"] = f"Bearer {token}"
    verify: bool | ssl.SSLContext = settings.verify_tls
    if settings.ca_bundle:
        verify = ssl.create_default_context(cafile=settings.ca_bundle)
    # `read` is the longest silence allowed between bytes, not a cap on the whole response, so long
    # streams live as long as tokens keep coming.
    timeout = httpx.Timeout(
        connect=settings.connect_timeout, read=settings.request_timeout, write=30.0, pool=settings.request_timeout
    )
    return httpx.AsyncClient(
        base_url=base_url,
        headers=headers,
        timeout=timeout,
        verify=verify,
        proxy=settings.proxy or None,
        transport=transport,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=8, keepalive_expiry=60.0),
        trust_env=settings.proxy is None,
    )


def transport_error(error: httpx.HTTPError, endpoint: str) -> BackendError:
    """Turn an httpx failure into a sentence the user can act on."""
    text = str(error) or type(error).__name__
    if isinstance(error, httpx.ConnectTimeout):
        return BackendTimeout(f"Could not connect to the model server at {endpoint} in time ({text}).")
    if isinstance(error, httpx.TimeoutException):
        return BackendTimeout(
            f"The model server at {endpoint} stopped answering (no data within the request timeout)."
        )
    if isinstance(error, httpx.ConnectError):
        lowered = text.lower()
        if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
            return BackendUnavailable(
                f"TLS failure talking to {endpoint}: {text}. Check the certificate, or set codellama.caBundle."
            )
        if "name or service not known" in lowered or "nodename" in lowered or "getaddrinfo" in lowered:
            return BackendUnavailable(f"Cannot resolve the host of {endpoint}: {text}. Check codellama.endpoint.")
        return BackendUnavailable(
            f"Cannot reach the model server at {endpoint}: {text}. Is it running? Check codellama.endpoint."
        )
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return BackendUnavailable(f"The connection to {endpoint} broke: {text}.")
    return BackendUnavailable(f"HTTP error talking to {endpoint}: {text}.")


def status_error(status: int, body: bytes, headers: httpx.Headers | None, endpoint: str) -> BackendError:
    """Map a non-2xx answer (JSON or not, possibly empty) to our errors."""
    payload = _json_or_none(body)
    message = _message_of(payload) or body.decode("utf-8", "replace").strip()[:500] or f"HTTP {status}"
    error_type = payload.get("error_type") if isinstance(payload, dict) else None
    if status in (401, 403):
        return BackendAuthError(
            f"The model server at {endpoint} refused the credentials (HTTP {status}). "
            "Set codellama.apiToken (or CODELLAMA_LSP_API_TOKEN).",
            status=status,
        )
    if status == 429 or error_type == "overloaded":
        return BackendOverloaded(
            f"The model server is overloaded: {message}", status=status, retry_after=_retry_after(headers)
        )
    if status in (400, 413, 422) or error_type == "validation":
        return BackendRejected(
            f"The model server rejected the request: {message}", status=status, too_long=is_length_error(message)
        )
    if status in (424, 500, 502, 503, 504) or error_type in ("generation", "incomplete_generation"):
        return GenerationFailed(f"The model server failed (HTTP {status}): {message}", status=status)
    if status == 404:
        return BadResponse(
            f"{endpoint} has no such route (HTTP 404). Is codellama.endpoint the server's root URL?", status=status
        )
    return BadResponse(f"Unexpected answer from {endpoint} (HTTP {status}): {message}", status=status)


def event_error(payload: dict[str, Any], endpoint: str) -> BackendError:
    """An error event inside a 200 stream."""
    message = _message_of(payload) or "unknown error"
    error_type = payload.get("error_type")
    inner = payload.get("error")
    if isinstance(inner, dict):
        status = inner.get("http_status_code") or inner.get("code")
        if isinstance(status, int):
            return status_error(status, json.dumps(inner).encode(), None, endpoint)
    if error_type == "validation":
        return BackendRejected(f"The model server rejected the request: {message}", too_long=is_length_error(message))
    if error_type == "overloaded":
        return BackendOverloaded(f"The model server is overloaded: {message}")
    return GenerationFailed(f"The model server failed during generation: {message}")


def is_length_error(message: str) -> bool:
    lowered = message.lower()
    return "must be <=" in lowered or "too long" in lowered or "maximum context length" in lowered or (
        "tokens" in lowered and ("max_total_tokens" in lowered or "max_input" in lowered)
    )


async def with_retries(attempt: Callable[[], Awaitable[T]], max_retries: int, what: str) -> T:
    """Retry retryable failures with exponential backoff and full jitter, honouring Retry-After."""
    for n in range(max_retries + 1):
        try:
            return await attempt()
        except BackendError as error:
            if not error.retryable or n == max_retries or isinstance(error, BackendTimeout):
                raise
            delay = backoff_delay(n, getattr(error, "retry_after", None))
            log.info("%s failed (%s); retry %d/%d in %.2fs", what, error, n + 1, max_retries, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    return random.uniform(0.0, min(0.25 * 2**attempt, 4.0))


def _retry_after(headers: httpx.Headers | None) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _message_of(payload: Any) -> str | None:
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    error = payload.get("error") or payload.get("message") or payload.get("detail")
    if isinstance(error, dict):
        error = error.get("message")
    return str(error) if error else None
