"""What a failed HTTP exchange means for the user: transport failures, non-2xx answers and error events
inside a 200 stream, each turned into one of `lsp.errors`' classes with a sentence the user can act on.
The server's words are quoted with every registered secret removed."""

from __future__ import annotations

import email.utils
import json
import math
import socket
import ssl
import time
from typing import Any

import httpx

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
from lsp.log import redact


def transport_error(error: httpx.HTTPError, endpoint: str) -> BackendError:
    """Turn an httpx failure into a sentence the user can act on."""
    endpoint = display_url(endpoint)
    text = redact(str(error) or type(error).__name__)
    if isinstance(error, httpx.ConnectTimeout):
        return BackendTimeout(f"Could not connect to the model server at {endpoint} in time ({text}).")
    if isinstance(error, httpx.TimeoutException):
        return BackendTimeout(f"The model server at {endpoint} stopped answering (no data within the request timeout).")
    if isinstance(error, httpx.ConnectError):
        lowered = text.lower()
        if _caused_by(error, ssl.SSLError) or "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
            return BackendUnavailable(
                f"TLS failure talking to {endpoint}: {text}. Check that the endpoint really serves https, "
                "and its certificate (codellama.caBundle names a CA to trust).",
                retryable=False,
            )
        if (
            _caused_by(error, socket.gaierror)
            or "name or service not known" in lowered
            or "nodename" in lowered
            or "getaddrinfo" in lowered
            or "name resolution" in lowered
        ):
            return BackendUnavailable(
                f"Cannot resolve the host of {endpoint}: {text}. Check codellama.endpoint.", retryable=False
            )
        return BackendUnavailable(
            f"Cannot reach the model server at {endpoint}: {text}. Is it running? Check codellama.endpoint."
        )
    if isinstance(error, httpx.ProxyError):
        return BackendUnavailable(f"The proxy refused the request to {endpoint}: {text}. Check codellama.proxy.")
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return BackendUnavailable(f"The connection to {endpoint} broke: {text}.")
    return BackendUnavailable(f"HTTP error talking to {endpoint}: {text}.")


def display_url(url: str) -> str:
    """The URL as shown to the user and in logs: without a user:password@ part."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return url
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """httpx wraps httpcore's error, which wraps the OS's: look down the chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def status_error(status: int, body: bytes, headers: httpx.Headers | None, endpoint: str) -> BackendError:
    """Map a non-2xx answer (JSON or not, possibly empty) to our errors. The server's words are quoted
    (shortened, blanks collapsed) with any registered secret removed: proxies have been seen to echo
    request headers in their error pages."""
    endpoint = display_url(endpoint)
    payload = _json_or_none(body)
    message = _message_of(payload) or " ".join(body.decode("utf-8", "replace").split())[:300] or f"HTTP {status}"
    message = redact(message)
    error_type = payload.get("error_type") if isinstance(payload, dict) else None
    if status in (401, 403):
        return BackendAuthError(
            f"The model server at {endpoint} refused the credentials (HTTP {status}). "
            "Set codellama.apiToken (or CODELLAMA_LSP_API_TOKEN).",
            status=status,
        )
    retry_after = _retry_after(headers)
    if status == 429 or error_type == "overloaded" or (status == 503 and retry_after is not None):
        return BackendOverloaded(f"The model server is overloaded: {message}", status=status, retry_after=retry_after)
    if status in (400, 413, 422) or error_type == "validation":
        return BackendRejected(
            f"The model server rejected the request: {message}",
            status=status,
            too_long=is_length_error(message),
        )
    if status in (424, 500, 502, 503, 504) or error_type in ("generation", "incomplete_generation"):
        return GenerationFailed(f"The model server failed (HTTP {status}): {message}", status=status)
    if status == 404:
        return BadResponse(
            f"{endpoint} has no such route (HTTP 404). Is codellama.endpoint the server's root URL?",
            status=status,
        )
    return BadResponse(f"Unexpected answer from {endpoint} (HTTP {status}): {message}", status=status)


def event_error(payload: dict[str, Any], endpoint: str) -> BackendError:
    """An `{"error": ...}` object inside a 200 answer. TGI sends `error_type` (or `http_status_code`), vLLM
    a numeric `code`; OpenAI-style objects carry a string `code`/`type` such as `context_length_exceeded`
    or `invalid_request_error`, which are the client's fault and must not be retried."""
    endpoint = display_url(endpoint)
    message = redact(_message_of(payload) or "unknown error")
    error_type = payload.get("error_type")
    inner = payload.get("error")
    if isinstance(inner, dict):
        status = inner.get("http_status_code") or inner.get("code")
        if isinstance(status, int) and not isinstance(status, bool):
            return status_error(status, json.dumps(inner).encode(), None, endpoint)
        kind = f"{inner.get('code') or ''} {inner.get('type') or ''}".lower()
        if "context_length" in kind or "invalid_request" in kind:
            return BackendRejected(
                f"The model server rejected the request: {message}",
                too_long="context_length" in kind or is_length_error(message),
            )
    if error_type == "validation" or is_length_error(message):
        return BackendRejected(f"The model server rejected the request: {message}", too_long=is_length_error(message))
    if error_type == "overloaded":
        return BackendOverloaded(f"The model server is overloaded: {message}")
    return GenerationFailed(f"The model server failed during generation: {message}")


# How servers say a prompt is over their limits: TGI and OpenAI, then llama.cpp-based servers.
_LENGTH_PHRASES = (
    "must be <=",
    "too long",
    "maximum context length",
    "exceed context window",
    "context window",
    "context_length_exceeded",
    "too many tokens",
)


def is_length_error(message: str) -> bool:
    lowered = message.lower()
    return any(phrase in lowered for phrase in _LENGTH_PHRASES) or (
        "tokens" in lowered and ("max_total_tokens" in lowered or "max_input" in lowered)
    )


def _retry_after(headers: httpx.Headers | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date); None when absent or unreadable, never an
    exception: a malformed header must not hide the error it came with."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = parsed.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


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
