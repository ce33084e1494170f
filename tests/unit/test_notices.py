"""Which failures pop up: one per kind while the trouble lasts, and few in all; the rest is the status's."""

from __future__ import annotations

from lsp.errors import (
    BackendAuthError,
    BackendOverloaded,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    ConfigError,
    GenerationFailed,
    NoBackendError,
)
from lsp.notices import Notices


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def eight_faults() -> list[Exception]:
    return [
        BackendUnavailable("down"),
        BackendTimeout("slow"),
        BackendOverloaded("busy"),
        BackendAuthError("token"),
        GenerationFailed("oops"),
        BadResponse("garbled"),
        ConfigError("bad"),
        NoBackendError("none"),
    ]


def test_eight_different_faults_in_two_seconds_give_at_most_two_pop_ups() -> None:
    clock = Clock()
    notices = Notices(clock=clock)
    shown = 0
    for fault in eight_faults():
        shown += notices.should_show(fault)
        clock.now += 0.25
    assert shown == 2


def test_a_new_kind_of_fault_is_news_again_once_the_burst_has_passed() -> None:
    clock = Clock()
    notices = Notices(clock=clock)
    assert notices.should_show(BackendUnavailable("down"))
    assert notices.should_show(BackendTimeout("slow"))
    assert not notices.should_show(BackendAuthError("token"))
    clock.now += 31
    assert notices.should_show(BackendAuthError("token"))
    assert not notices.should_show(BackendUnavailable("down"))  # its own quiet time still runs


def test_the_same_fault_pops_up_once_while_it_lasts() -> None:
    clock = Clock()
    notices = Notices(clock=clock)
    results = []
    for _ in range(20):
        results.append(notices.should_show(BackendUnavailable("down")))
        clock.now += 2
    assert results.count(True) == 1


def test_new_settings_start_afresh() -> None:
    notices = Notices(clock=Clock())
    assert notices.should_show(BackendUnavailable("down")) and notices.should_show(BackendTimeout("slow"))
    notices.reset()
    assert notices.should_show(BackendAuthError("token"))
