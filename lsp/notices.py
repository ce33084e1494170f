"""Decide which failures the user hears about: one message per kind of trouble, not one per keystroke, and
few pop-ups in all. Every failure still reaches the status item (`server.report`), so what is not shown as
a pop-up is not hidden."""

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
    """Rate limit per kind of failure, and overall.

    A kind shown once stays silent for `quiet_seconds` while the trouble lasts. A success in between makes
    the next failure news again, but not sooner than `floor_seconds` after the kind was last shown: a model
    server that fails every other request must not pop up a message every other keystroke. New settings
    (`reset`) start afresh: the user changed something and wants to know whether it helped.

    Overall, at most `burst` pop-ups are shown within `window_seconds`, whatever their kinds: a network
    outage fails in several ways at once, and a stack of pop-ups tells the user no more than the first.
    """

    def __init__(
        self,
        quiet_seconds: float = 60.0,
        floor_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        burst: int = 2,
        window_seconds: float = 30.0,
    ) -> None:
        self.quiet_seconds = quiet_seconds
        self.floor_seconds = floor_seconds
        self.burst = burst
        self.window_seconds = window_seconds
        self._recent: list[float] = []  # when the last pop-ups (any kind) were shown
        self._clock = clock
        self._shown: dict[str, float] = {}  # kind -> when last shown
        self._recovered: set[str] = set()  # kinds followed by a success since they were shown

    def should_show(self, error: BaseException) -> bool:
        kind = kind_of(error)
        now = self._clock()
        last = self._shown.get(kind)
        if last is not None:
            wait = self.floor_seconds if kind in self._recovered else self.quiet_seconds
            if now - last < wait:
                return False
        self._recent = [at for at in self._recent if now - at < self.window_seconds]
        if len(self._recent) >= self.burst:
            return False
        self._recent.append(now)
        self._shown[kind] = now
        self._recovered.discard(kind)
        return True

    def recovered(self) -> None:
        """The backend answered: the next failure is news again (after the floor)."""
        self._recovered.update(self._shown)

    def reset(self) -> None:
        """Forget what was shown (the settings changed)."""
        self._shown.clear()
        self._recovered.clear()
        self._recent.clear()
