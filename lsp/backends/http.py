"""The one transport of the HTTP backends: a pooled client, JSON bodies encoded once, one cancellation-safe
way to open a response, bounded retries. Error mapping lives in `http_errors`, the stream reader in `sse`."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from lsp.backends.http_errors import display_url, status_error, transport_error
from lsp.config import Settings
from lsp.errors import BackendError, BackendTimeout, BadResponse, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

# The longest Retry-After honoured, in seconds; a server asking for more is reported instead.
MAX_RETRY_AFTER = 30.0
# The largest non-streamed answer read (an error page, /info, a /generate reply): beyond it the server is
# broken, and reading on would let it take the editor's memory.
MAX_BODY_BYTES = 16 * 1024 * 1024
# A document may hold lone UTF-16 surrogates (a JSON string may spell one); UTF-8 cannot carry them.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@functools.cache
def default_tls(trust_env: bool = True) -> ssl.SSLContext:
    """httpx's own default verification (certifi's CA bundle, or SSL_CERT_FILE/SSL_CERT_DIR), made once per
    process: reading a CA bundle takes 50 to 90 ms, which each new client would spend on the event loop."""
    return httpx.create_ssl_context(trust_env=trust_env)


def make_client(
    settings: Settings, base_url: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The pooled client for one backend. A setting that cannot be used (an unreadable CA bundle, a proxy
    URL httpx does not understand) is a ConfigError, so the user reads which setting to fix."""
    headers = {"Accept": "application/json", "User-Agent": "codellama-lsp"}
    if (token := settings.token()) is not None:
        headers["Authorization"] = f"Bearer {token}"  # the token's characters are checked by lsp.config
    verify: bool | ssl.SSLContext = settings.verify_tls
    if settings.verify_tls and not settings.ca_bundle:
        verify = default_tls(settings.proxy is None)
    elif settings.ca_bundle and settings.verify_tls:
        try:
            verify = ssl.create_default_context(cafile=settings.ca_bundle)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"codellama.caBundle {settings.ca_bundle!r} cannot be used: {error.strerror or error}. "
                "It must be a PEM file of CA certificates."
            ) from None
    # `read` is the longest silence between bytes. The response head is bounded as a whole by
    # `open_response`, and a stream's silence between events by `sse.read_events`, so keep-alives and a
    # trickled head cannot hold a request forever.
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.request_timeout,
        write=30.0,
        pool=settings.request_timeout,
    )
    try:
        return httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            verify=verify,
            proxy=settings.proxy or None,
            transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8, keepalive_expiry=60.0),
            # An explicit proxy wins; without one the usual HTTP(S)_PROXY / NO_PROXY variables apply.
            trust_env=settings.proxy is None,
        )
    except (ValueError, ImportError, httpx.InvalidURL) as error:
        raise ConfigError(f"codellama.proxy {settings.proxy!r} cannot be used: {error}") from None


def encode_json(body: Any) -> bytes:
    """The bytes of a JSON request body: every text of every request passes here, so this is where lone
    surrogates (which UTF-8 cannot carry) become U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", json.dumps(body, ensure_ascii=False)).encode("utf-8")


def json_request(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None, *, stream: bool = False
) -> httpx.Request:
    headers = {"Accept": "text/event-stream"} if stream else {}
    if body is None:
        return client.build_request(method, path, headers=headers)
    headers["Content-Type"] = "application/json"
    return client.build_request(method, path, content=encode_json(body), headers=headers)


async def uninterrupted(work: Awaitable[T]) -> T:
    """Run `work` to its end even when this task is cancelled meanwhile; then the cancellation goes on.

    The one place for shields: httpcore 1.0.x does not survive a cancellation at every point of an
    exchange. Cancelled while it connects or while it closes a response, it leaves a connection in its pool
    that is never used nor reclaimed (encode/httpcore#1093, #658; found here by tests/bench/soak.py, a
    socket per few hundred cancelled completions, and after 32 the pool answers nothing)."""
    task = asyncio.ensure_future(work)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as error:
            cancelled = error
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved: nobody is left to want it
        raise cancelled
    return task.result()


_HEAD_STARTED = ("http11.receive_response_headers.started", "http2.receive_response_headers.started")


class _Exchange:
    """Follows one request through httpx's `trace` extension (public: httpx "Request Extensions") to
    know when it waits for its response head. That is the one point where cancelling it is safe (httpcore
    then closes the connection), and the one long wait: a server may send nothing before its first token."""

    def __init__(self) -> None:
        self.waiting_for_head = asyncio.Event()

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        # (not the answer of a proxy to CONNECT: that is still connecting)
        if event in _HEAD_STARTED and getattr(info.get("request"), "method", b"") != b"CONNECT":
            self.waiting_for_head.set()


async def open_response(
    client: httpx.AsyncClient, request: httpx.Request, endpoint: str, head_timeout: float
) -> httpx.Response:
    """Send `request` and return its response with a 200 status and its body unread; any other status is
    read, closed and raised as a BackendError, as is every transport failure.

    The head of the response is bounded as a whole by `head_timeout` (httpx bounds each read, so a head
    trickled a byte at a time would take forever). Cancelled, or out of time, the exchange is interrupted
    at the first point where that is safe, never while it connects (see `uninterrupted`)."""
    exchange = _Exchange()
    request.extensions = {**request.extensions, "trace": exchange}
    sending = asyncio.ensure_future(client.send(request, stream=True))
    try:
        await _head(sending, exchange, head_timeout)
    except BaseException:
        await uninterrupted(_abandon(sending, exchange))
        raise
    try:
        response = sending.result()
    except httpx.HTTPError as error:
        raise transport_error(error, endpoint) from error
    if response.status_code != 200:
        body = await read_body(response)
        raise status_error(response.status_code, body, response.headers, endpoint)
    return response


async def _head(sending: asyncio.Task[httpx.Response], exchange: _Exchange, head_timeout: float) -> None:
    """Wait until the response head has come (httpx bounds connecting and sending), at most `head_timeout`
    after the request was sent."""
    sent = asyncio.ensure_future(exchange.waiting_for_head.wait())
    try:
        await asyncio.wait({sending, sent}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sent.cancel()
    if not sending.done():
        done, _ = await asyncio.wait({sending}, timeout=head_timeout)
        if not done:
            raise BackendTimeout(
                f"The model server stopped answering: no complete response head within {head_timeout:g} s."
            )


async def _abandon(sending: asyncio.Task[httpx.Response], exchange: _Exchange) -> None:
    """End an exchange nobody waits for: cancelled once it waits for its head, else run to its end; a
    response that comes anyway is closed."""
    if not sending.done():
        sent = asyncio.ensure_future(exchange.waiting_for_head.wait())
        await asyncio.wait({sending, sent}, return_when=asyncio.FIRST_COMPLETED)
        sent.cancel()
        sending.cancel()
        await asyncio.wait({sending})
    if not sending.cancelled() and sending.exception() is None:
        await sending.result().aclose()


async def read_body(response: httpx.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body of a non-streamed answer (at most `limit` bytes: BadResponse beyond; an error
    answer is cut there), and the response closed, both to their end even when this task is cancelled
    meanwhile. An error answer whose body cannot be read is empty."""

    async def read_then_close() -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    if response.status_code != 200:
                        break
                    raise BadResponse(f"The model server sent an answer of more than {limit} bytes.")
                parts.append(chunk)
        except httpx.HTTPError:
            if response.status_code == 200:
                raise
            return b""
        finally:
            await response.aclose()
        return b"".join(parts)

    return await uninterrupted(read_then_close())


async def close_response(response: httpx.Response) -> None:
    """Close a response, to its end even when this task is cancelled meanwhile. Closing one mid-stream
    drops its connection: that is how the model server learns to stop generating."""
    await uninterrupted(response.aclose())


async def request_json(
    client: httpx.AsyncClient, endpoint: str, method: str, path: str, body: Any, head_timeout: float
) -> Any:
    """One JSON exchange on the pooled client, safe to cancel, every failure mapped to our errors."""
    response = await open_response(client, json_request(client, method, path, body), endpoint, head_timeout)
    try:
        content = await read_body(response)
    except httpx.HTTPError as error:
        raise transport_error(error, endpoint) from error
    try:
        return json.loads(content)
    except ValueError as error:
        raise BadResponse(f"{display_url(endpoint)}{path} answered with invalid JSON") from error


async def with_retries(attempt: Callable[[], Awaitable[T]], max_retries: int, what: str) -> T:
    """Retry retryable failures (connection failures, 429, 502-504: nothing was generated yet) at most
    `max_retries` times, with exponential backoff and full jitter, honouring Retry-After. A server asking
    for a longer wait than MAX_RETRY_AFTER is not waited for: the user hears about it at once."""
    for n in range(max_retries + 1):
        try:
            return await attempt()
        except BackendError as error:
            if not error.retryable or n == max_retries:
                raise
            retry_after = getattr(error, "retry_after", None)
            if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                raise
            delay = backoff_delay(n, retry_after)
            log.info("%s failed (%s); retry %d/%d in %.2fs", what, error, n + 1, max_retries, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Full jitter on an exponential base (0.25 s, 0.5 s, ... at most 4 s); with Retry-After, that long plus
    up to 10 % so that clients told the same instant do not come back together."""
    if retry_after is not None:
        base = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        return base + random.uniform(0.0, 0.1 * base)
    return random.uniform(0.0, min(0.25 * 2**attempt, 4.0))
