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
    """The model server failed. `retryable` says whether the same request may succeed later."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BackendUnavailable(BackendError):
    """Connection refused, DNS or TLS failure, connection dropped."""

    retryable = True


class BackendTimeout(BackendError):
    """The model server stayed silent for longer than the request timeout."""

    retryable = True


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


class GenerationFailed(BackendError):
    """424/500/503 or an error event: the server accepted the request but could not finish it."""

    retryable = True


class BadResponse(BackendError):
    """The server answered something that is not the protocol (invalid JSON, wrong shape)."""
