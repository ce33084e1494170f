"""The HTTP layer on its own: how each failure becomes a sentence for the user, what is retried and how
long it waits, the SSE reader's limits, and the TGI stream's silence bound (over httpx.MockTransport)."""

from __future__ import annotations

import email.utils
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsp.backends import http
from lsp.backends.http import MAX_RETRY_AFTER, backoff_delay, make_client, with_retries
from lsp.backends.http_errors import display_url, event_error, status_error, transport_error
from lsp.config import Settings, parse_settings
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
from lsp.log import register_secret
from lsp.notices import Notices

URL = "http://tgi.example:8080"


def settings(**values: Any) -> Settings:
    parsed, problems = parse_settings({"endpoint": URL, **values})
    assert not problems
    return parsed


# -- status codes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable", "words"),
    [
        (401, b"", BackendAuthError, False, "refused the credentials (HTTP 401)"),
        (403, b"Forbidden", BackendAuthError, False, "codellama.apiToken"),
        (422, b'{"error":"Input validation error: `top_p` must be > 0","error_type":"validation"}',
         BackendRejected, False, "rejected the request: Input validation error: `top_p` must be > 0"),
        (422, b"Failed to deserialize the JSON body", BackendRejected, False, "Failed to deserialize the JSON body"),
        (400, b"", BackendRejected, False, "HTTP 400"),
        (424, b'{"error":"Request failed during generation: CUDA OOM","error_type":"generation"}',
         GenerationFailed, False, "failed (HTTP 424): Request failed during generation: CUDA OOM"),
        (429, b'{"error":"Model is overloaded","error_type":"overloaded"}', BackendOverloaded, True, "overloaded"),
        (500, b'{"error":"boom"}', GenerationFailed, False, "failed (HTTP 500): boom"),
        (502, b"<html><body>\n<h1>502   Bad Gateway</h1>\n</body></html>", GenerationFailed, True,
         "<html><body> <h1>502 Bad Gateway</h1> </body></html>"),
        (503, b"", GenerationFailed, True, "HTTP 503"),
        (404, b"Not Found", BadResponse, False, "no such route"),
        (418, b"teapot", BadResponse, False, "Unexpected answer"),
    ],
)
def test_status_errors(status: int, body: bytes, kind: type[BackendError], retryable: bool, words: str) -> None:
    error = status_error(status, body, httpx.Headers(), URL)
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.status == status
    assert words in str(error)
    assert URL in str(error) or kind in (BackendRejected, BackendOverloaded, GenerationFailed)


def test_a_long_prompt_is_recognised() -> None:
    body = b'{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000"}'
    error = status_error(422, body, None, URL)
    assert isinstance(error, BackendRejected) and error.too_long


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
        ("", None),
    ],
)
def test_retry_after(header: str, expected: float | None) -> None:
    error = status_error(429, b"{}", httpx.Headers({"Retry-After": header}), URL)
    assert isinstance(error, BackendOverloaded)
    assert error.retry_after == expected


def test_retry_after_as_a_future_date() -> None:
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    error = status_error(429, b"{}", httpx.Headers({"Retry-After": when}), URL)
    assert isinstance(error, BackendOverloaded) and error.retry_after is not None
    assert 15 < error.retry_after <= 20


def test_503_with_retry_after_is_overload() -> None:
    error = status_error(503, b"", httpx.Headers({"Retry-After": "1"}), URL)
    assert isinstance(error, BackendOverloaded) and error.retry_after == 1.0 and error.retryable


def test_secrets_in_an_error_page_are_not_repeated() -> None:
    register_secret("hf_SECRETSECRET123")
    body = b"<pre>Authorization: Bearer hf_SECRETSECRET123</pre>"
    error = status_error(500, body, None, URL)
    assert "hf_SECRETSECRET123" not in str(error)
    event = event_error({"error": "bad token hf_SECRETSECRET123"}, URL)
    assert "hf_SECRETSECRET123" not in str(event)


def test_credentials_in_the_endpoint_are_not_shown() -> None:
    assert display_url("http://user:pa55word@host:8080/x") == "http://host:8080/x"
    error = status_error(401, b"", None, "http://user:pa55word@host:8080")
    assert "pa55word" not in str(error)


def test_settings_as_logged_hide_every_credential() -> None:
    logged = str(settings(endpoint="http://u:s3cret@h:8080", proxy="http://p:pr0xypw@proxy:3128",
                          apiToken="hf_abcdefgh").to_wire())
    assert "s3cret" not in logged and "pr0xypw" not in logged and "hf_abcdefgh" not in logged
    assert "h:8080" in logged and "proxy:3128" in logged


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"error": "Request failed during generation: CUDA OOM", "error_type": "generation"}, GenerationFailed),
        ({"error": "Input validation error: too long", "error_type": "validation"}, BackendRejected),
        ({"error": "Model is overloaded", "error_type": "overloaded"}, BackendOverloaded),
        ({"error": {"message": "no", "http_status_code": 401}}, BackendAuthError),
    ],
)
def test_error_events(payload: dict[str, Any], kind: type[BackendError]) -> None:
    assert type(event_error(payload, URL)) is kind


# -- transport errors --------------------------------------------------------------------------------


def _wrapped(cause: BaseException, message: str) -> httpx.ConnectError:
    try:
        raise httpx.ConnectError(message) from cause
    except httpx.ConnectError as error:
        return error


@pytest.mark.parametrize(
    ("error", "words", "retryable"),
    [
        (_wrapped(ConnectionRefusedError(111, "Connection refused"), "All connection attempts failed"),
         "Cannot reach the model server", True),
        (_wrapped(socket.gaierror(-2, "Name or service not known"), "[Errno -2] Name or service not known"),
         "Cannot resolve the host", False),
        (_wrapped(ssl.SSLCertVerificationError("certificate verify failed"), "certificate verify failed"),
         "TLS failure", False),
        (_wrapped(ssl.SSLError("record layer failure"), "[SSL] record layer failure"), "TLS failure", False),
        (httpx.ConnectTimeout("timed out"), "Could not connect", False),
        (httpx.ReadTimeout("timed out"), "stopped answering", False),
        (httpx.RemoteProtocolError("peer closed connection"), "connection to", True),
        (httpx.ReadError("reset"), "connection to", True),
        (httpx.ProxyError("407 Proxy Authentication Required"), "codellama.proxy", True),
    ],
)
def test_transport_errors(error: httpx.HTTPError, words: str, retryable: bool) -> None:
    mapped = transport_error(error, URL)
    assert words in str(mapped)
    assert mapped.retryable is retryable


# -- retries -----------------------------------------------------------------------------------------


class Attempts:
    def __init__(self, *outcomes: BaseException | str) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays with_retries waits, without waiting them."""
    slept: list[float] = []

    async def fake_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(http.asyncio, "sleep", fake_sleep)
    return slept


async def test_retries_are_bounded(sleeps: list[float]) -> None:
    busy = BackendOverloaded("busy")
    attempt = Attempts(busy, busy, busy, busy)
    with pytest.raises(BackendOverloaded):
        await with_retries(attempt, 2, "test")
    assert attempt.calls == 3 and len(sleeps) == 2
    assert all(0 <= d <= 0.25 * 2**n for n, d in enumerate(sleeps))


async def test_retry_after_is_honoured_with_a_little_jitter(sleeps: list[float]) -> None:
    attempt = Attempts(BackendOverloaded("busy", retry_after=3), "ok")
    assert await with_retries(attempt, 2, "test") == "ok"
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 3.3


async def test_a_wait_beyond_the_cap_is_not_waited(sleeps: list[float]) -> None:
    attempt = Attempts(BackendOverloaded("busy", retry_after=MAX_RETRY_AFTER + 1), "ok")
    with pytest.raises(BackendOverloaded):
        await with_retries(attempt, 5, "test")
    assert attempt.calls == 1 and sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        BackendAuthError("no"),
        BackendRejected("no"),
        BackendTimeout("slow"),
        GenerationFailed("oom", status=424),
        GenerationFailed("boom", status=500),
        BadResponse("garbage"),
        BackendUnavailable("tls", retryable=False),
    ],
)
async def test_what_is_not_retried(sleeps: list[float], error: BackendError) -> None:
    attempt = Attempts(error, "ok")
    with pytest.raises(type(error)):
        await with_retries(attempt, 3, "test")
    assert attempt.calls == 1 and sleeps == []


@pytest.mark.parametrize(
    "error", [BackendUnavailable("refused"), GenerationFailed("gateway", status=503), BackendOverloaded("busy")]
)
async def test_what_is_retried(sleeps: list[float], error: BackendError) -> None:
    assert await with_retries(Attempts(error, "ok"), 3, "test") == "ok"
    assert len(sleeps) == 1


@given(st.integers(0, 20), st.none() | st.floats(0, 1e6))
def test_backoff_is_bounded(attempt: int, retry_after: float | None) -> None:
    delay = backoff_delay(attempt, retry_after)
    assert 0 <= delay <= (MAX_RETRY_AFTER * 1.1 if retry_after is not None else 4.0)


# -- settings that cannot be used --------------------------------------------------------------------


def test_unreadable_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"codellama.caBundle '/nonexistent/ca.pem' cannot be used"):
        make_client(settings(caBundle="/nonexistent/ca.pem"), URL)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="PEM file of CA certificates"):
        make_client(settings(caBundle=str(junk)), URL)


@pytest.mark.parametrize("proxy", ["ftp://127.0.0.1:1", "://nothing", "socks9://x:1"])
def test_unusable_proxy_is_a_config_error(proxy: str) -> None:
    with pytest.raises(ConfigError, match=r"codellama.proxy"):
        make_client(settings(proxy=proxy), URL)


def test_tls_verification_is_on_by_default() -> None:
    assert Settings().verify_tls is True  # what it does: tests/e2e/test_operations.py, a real TLS server


# -- what the user hears: Notices -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_message_per_kind_while_the_trouble_lasts() -> None:
    clock = Clock()
    notices = Notices(quiet_seconds=60, floor_seconds=15, clock=clock)
    down = BackendUnavailable("down")
    assert notices.should_show(down)
    for _ in range(100):
        clock.now += 0.5
        assert not notices.should_show(down)
    assert notices.should_show(BackendAuthError("401"))  # another kind is news
    clock.now += 60
    assert notices.should_show(down)  # a reminder once a minute


def test_flapping_does_not_pop_up_every_other_request() -> None:
    clock = Clock()
    notices = Notices(quiet_seconds=60, floor_seconds=15, clock=clock)
    shown = 0
    for _ in range(60):  # a failure every second, a success in between
        clock.now += 0.5
        shown += notices.should_show(GenerationFailed("boom", status=500))
        clock.now += 0.5
        notices.recovered()
    assert shown == 4  # at 0 s, 15 s, 30 s, 45 s


def test_new_settings_make_the_next_failure_news() -> None:
    clock = Clock()
    notices = Notices(clock=clock)
    assert notices.should_show(BackendUnavailable("down"))
    assert not notices.should_show(BackendUnavailable("down"))
    notices.reset()
    assert notices.should_show(BackendUnavailable("down"))
