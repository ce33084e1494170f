"""The server's catch-up runs the garbage collector's pass over its young generations in a slice of its own
when that pass is due: this is when it is."""

from __future__ import annotations

import gc

from lsp.server import young_pass_due


def test_a_pass_over_the_second_generation_is_due_once_the_first_generation_passes_reach_their_threshold() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, saved[2])
        gc.collect(1)  # counts start again
        assert not young_pass_due()
        for _ in range(9):
            gc.collect(0)
        assert not young_pass_due()  # two automatic passes from now, both over the first generation only
        gc.collect(0)
        assert young_pass_due()
        gc.collect(1)
        assert not young_pass_due()
    finally:
        gc.set_threshold(*saved)
