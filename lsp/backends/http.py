"""What every HTTP backend shares: one pooled client, error mapping, and bounded retries."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import httpcore
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
    ConfigError,
    GenerationFailed,
)
from lsp.log import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

# The longest Retry-After honoured, in seconds; a server asking for more is reported instead.
MAX_RETRY_AFTER = 30.0


def make_client(
    settings: Settings, base_url: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The pooled client for one backend. A setting that cannot be used (an unreadable CA bundle, a proxy
    URL httpx does not understand) is a ConfigError, so the user reads which setting to fix."""
    headers = {"Accept": "application/json", "User-Agent": "codellama-lsp"}
    if (token := settings.token()) is not None:
        headers["Authorization"] = f"Bearer {token}"
    verify: bool | ssl.SSLContext = settings.verify_tls
    if settings.ca_bundle and settings.verify_tls:
        try:
            verify = ssl.create_default_context(cafile=settings.ca_bundle)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"codellama.caBundle {settings.ca_bundle!r} cannot be used: {error.strerror or error}. "
                "It must be a PEM file of CA certificates."
            ) from None
    # `read` is the longest silence allowed between bytes, not a cap on the whole response, so long
    # streams live as long as tokens keep coming. Keep-alive comments count as bytes here: the stream
    # readers also bound the silence between tokens (see `token_silence`).
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.request_timeout,
        write=30.0,
        pool=settings.request_timeout,
    )
    try:
        client = httpx.AsyncClient(
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
    if transport is None:
        _hold_writes(client)
    return client


class _HeldWrites(httpcore.AsyncNetworkStream):
    """A connection whose writes wait for the next read, so that a request goes out in one system call:
    httpcore writes its headers and its body apart, and each write to a socket costs a system call that
    wakes the server, on the path of every completion (~0.5 ms each on a small VM)."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held: list[bytes] = []

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._held.append(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush(timeout)
        return await self._stream.read(max_bytes, timeout)

    async def _flush(self, timeout: float | None) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            await self._stream.write(data, timeout)

    async def aclose(self) -> None:
        self._held.clear()
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        await self._flush(timeout)
        return _HeldWrites(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _HeldWritesBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _HeldWrites(await self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _HeldWrites(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _pools(client: httpx.AsyncClient) -> list[Any]:
    """httpcore's connection pools behind ``client``: its default transport's and its proxy mounts'."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    return [getattr(transport, "_pool", None) for transport in transports if transport is not None]


def _hold_writes(client: httpx.AsyncClient) -> None:
    """Make ``client``'s connections :class:`_HeldWrites`. httpx has no public way to choose httpcore's
    network backend: where its internals differ, nothing changes but a little speed (and requests are
    not prepared ahead, see :func:`send`)."""
    for pool in _pools(client):
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.AsyncNetworkBackend) and not isinstance(backend, _HeldWritesBackend):
            pool._network_backend = _HeldWritesBackend(backend)


def _writes_held(client: httpx.AsyncClient) -> bool:
    """Whether every connection of ``client`` holds its writes until its first read."""
    pools = _pools(client)
    return bool(pools) and all(isinstance(getattr(p, "_network_backend", None), _HeldWritesBackend) for p in pools)


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
    """An error event inside a 200 stream."""
    endpoint = display_url(endpoint)
    message = redact(_message_of(payload) or "unknown error")
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
    return (
        "must be <=" in lowered
        or "too long" in lowered
        or "maximum context length" in lowered
        or ("tokens" in lowered and ("max_total_tokens" in lowered or "max_input" in lowered))
    )


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


async def finish_cleanly(work: Awaitable[T], interruptible: Callable[[], bool] = lambda: False) -> T:
    """Await an HTTP exchange up to its response headers without interrupting it where that is unsafe: when
    this task is cancelled meanwhile, the exchange is cancelled too if ``interruptible()`` says it can be,
    else it runs to its end (bounded by the connect and read timeouts); a response that comes anyway is
    closed at once; then the cancellation goes on.

    httpcore does not survive being cancelled at every point of a request: cancelled while connecting, it
    leaves a connected socket in the pool that is never used nor closed; cancelled during its clean-up,
    it leaves a connection marked busy for ever. Both were found by tests/bench/soak.py (a socket per few
    hundred cancelled completions; after 32 of them the pool would be exhausted and every request would
    wait for a connection until it times out).
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if interruptible():
            task.cancel()
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            result = task.result()
            if isinstance(result, httpx.Response):
                await asyncio.shield(result.aclose())
        raise


async def error_body(response: httpx.Response) -> bytes:
    """The body of an answer that is not the stream asked for (an error), and the response closed: both to
    their end even when this task is cancelled meanwhile (see :func:`finish_cleanly`: httpx and httpcore
    mark a response closed before they finish closing it, and a cancellation in between leaves the pool's
    connection busy for ever; found by tests/bench/soak.py). An unreadable body is empty."""

    async def read_then_close() -> bytes:
        try:
            return await response.aread()
        except httpx.HTTPError:
            return b""
        finally:
            await response.aclose()

    return await finish_cleanly(read_then_close())


class _Exchange:
    """Where a request is, from httpcore's trace events. Waiting for the response headers is the one long
    wait it can be cancelled in safely (it then closes the connection itself), and the one that matters:
    a server may send no byte until its first token, seconds later, and meanwhile keeps generating for a
    request the user no longer wants.

    With held writes, that is also the moment the request's bytes are made and not yet sent: a ``gate``
    is awaited there, once."""

    def __init__(self, gate: Callable[[], Awaitable[None]] | None = None) -> None:
        self.waiting_for_headers = False
        self._gate = gate

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.startswith("http11.receive_response_headers."):
            # (not the answer of a proxy to CONNECT: that is still connecting)
            request = info.get("request")
            self.waiting_for_headers = event.endswith(".started") and getattr(request, "method", b"") != b"CONNECT"
            if self.waiting_for_headers and self._gate is not None:
                gate, self._gate = self._gate, None
                await gate()  # cancelled here, httpcore closes the connection: the held bytes never leave


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    stream: bool = False,
    before_sending: Callable[[], Awaitable[None]] | None = None,
) -> httpx.Response:
    """Send ``request`` on the pooled client, safe to cancel at any point (see :func:`finish_cleanly`);
    a cancelled request that waits for its headers closes its connection at once.

    ``before_sending`` is awaited before any byte of the request leaves. Where the connections hold their
    writes, it is awaited as late as that: with a connection taken from the pool (or made) and the bytes
    of the request written into it, so that when it returns, the request goes out at once.
    """
    if before_sending is not None and not _writes_held(client):
        await before_sending()
        before_sending = None
    exchange = _Exchange(before_sending)
    request.extensions = {**request.extensions, "trace": exchange}
    return await finish_cleanly(client.send(request, stream=stream), lambda: exchange.waiting_for_headers)


class ConnectionWarmer:
    """Keeps a connection to the model server ready for the next request.

    Closing a stream before its end closes its connection: that is how the server learns to stop
    generating. The next completion would then connect again (TCP, and TLS to a remote server) on the path of
    the answer the user waits for. After such a close the backend is *cold*; :meth:`warm`, called while a
    request is debounced, makes one cheap request whose connection stays in the pool for the real one.
    """

    def __init__(self, client: httpx.AsyncClient, path: str) -> None:
        self._client = client
        self._path = path
        self._task: asyncio.Task[None] | None = None
        self.cold = True

    def warm(self) -> None:
        if self.cold and (self._task is None or self._task.done()):
            self.cold = False
            self._task = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        try:
            response = await send(self._client, self._client.build_request("GET", self._path))
            await response.aclose()
        except httpx.HTTPError as error:  # the request that follows will tell the user, if it matters
            log.debug("warming a connection failed: %s", error)
            self.cold = True

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Full jitter on an exponential base (0.25 s, 0.5 s, ... at most 4 s); with Retry-After, that long plus
    up to 10 % so that clients told the same instant do not come back together."""
    if retry_after is not None:
        base = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        return base + random.uniform(0.0, 0.1 * base)
    return random.uniform(0.0, min(0.25 * 2**attempt, 4.0))


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


async def request_json(
    client: httpx.AsyncClient,
    endpoint: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    on_status: Callable[[BackendError], BackendError] = lambda error: error,
) -> Any:
    """One JSON exchange on the pooled client, safe to cancel (`send`), every failure mapped to our errors;
    `on_status` lets a backend refine what a non-200 answer means."""
    try:
        response = await send(client, client.build_request(method, path, json=body))
    except httpx.HTTPError as error:
        raise transport_error(error, endpoint) from error
    if response.status_code != 200:
        raise on_status(status_error(response.status_code, response.content, response.headers, endpoint))
    try:
        return response.json()
    except ValueError as error:
        raise BadResponse(f"{display_url(endpoint)} answered with invalid JSON") from error
