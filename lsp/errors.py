"""The error hierarchy: every failure the user may hear about, with the sentence they will read."""

from __future__ import annotations


class CodellamaError(Exception):
    """Base class. `str(error)` is a message fit for the user: what happened and what to do."""


class ConfigError(CodellamaError):
    """A setting cannot be used."""


class NoBackendError(CodellamaError):
    """No model backend is configured or installed."""


class PromptError(CodellamaError):
    """The prompt cannot be built (bad template, context that cannot fit)."""


class BackendError(CodellamaError):
    """The model server failed. `retryable` says whether the same request, sent again at once (before any
    token came back), may succeed: the class gives the default, an instance may say otherwise."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        if retryable is not None:
            self.retryable = retryable


class BackendUnavailable(BackendError):
    """Connection refused, DNS or TLS failure, connection dropped. DNS and TLS failures are not retried:
    a second try a moment later fails the same way."""

    retryable = True


class BackendTimeout(BackendError):
    """The model server stayed silent (no byte, or no token) for longer than the request timeout. Not
    retried: the user already waited a whole timeout."""


class BackendOverloaded(BackendError):
    """429: too many requests; `retry_after` is the server's hint in seconds, if any."""

    retryable = True

    def __init__(self, message: str, *, status: int | None = 429, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class BackendAuthError(BackendError):
    """401/403: the API token is missing or wrong."""


class BackendRejected(BackendError):
    """422/400: the server refused the request; `too_long` when the prompt exceeded its limits."""

    def __init__(self, message: str, *, status: int | None = 422, too_long: bool = False) -> None:
        super().__init__(message, status=status)
        self.too_long = too_long


RETRYABLE_STATUSES = frozenset({502, 503, 504})


class GenerationFailed(BackendError):
    """424/500/503 or an error event: the server accepted the request but could not finish it. Only a
    gateway or availability failure (502/503/504) is retried: 424 and 500 are TGI's answer to this very
    request (out of memory, a failed generation) and would fail again."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=status in RETRYABLE_STATUSES)


class BadResponse(BackendError):
    """The server answered something that is not the protocol (invalid JSON, wrong shape)."""
