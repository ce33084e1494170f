"""Decide which failures the user hears about: one message per kind of trouble, not one per keystroke."""

from __future__ import annotations

import time
from collections.abc import Callable

from lsp.errors import (
    BackendAuthError,
    BackendError,
    BackendOverloaded,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    CodellamaError,
    ConfigError,
    GenerationFailed,
    NoBackendError,
)


def kind_of(error: BaseException) -> str:
    for cls in (
        NoBackendError,
        ConfigError,
        BackendAuthError,
        BackendUnavailable,
        BackendTimeout,
        BackendOverloaded,
        GenerationFailed,
        BadResponse,
        BackendError,
        CodellamaError,
    ):
        if isinstance(error, cls):
            return cls.__name__
    return type(error).__name__


class Notices:
    """Rate limit per kind: a kind shown once is silent for `quiet_seconds`, and again after a success."""

    def __init__(self, quiet_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._shown: dict[str, float] = {}

    def should_show(self, error: BaseException) -> bool:
        kind = kind_of(error)
        now = self._clock()
        last = self._shown.get(kind)
        if last is not None and now - last < self.quiet_seconds:
            return False
        self._shown[kind] = now
        return True

    def recovered(self) -> None:
        """The backend answered: the next failure is news again."""
        self._shown.clear()
