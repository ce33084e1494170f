"""SSE framing and stop-sequence cutting."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hypothesis import given
from hypothesis import strategies as st

from lsp.backends.sse import sse_data
from lsp.backends.stops import StopCutter, cut_at_stops


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_both_framings_keepalives_and_multiline_data() -> None:
    got = [
        d
        async for d in sse_data(
            _lines(
                'data:{"a":1}',
                "",
                ":",
                "",
                'data: {"b":2}',
                "",
                "event: x",
                "data: one",
                "data: two",
                "",
                "data: tail",
            )
        )
    ]
    assert got == ['{"a":1}', '{"b":2}', "one\ntwo", "tail"]


@given(st.text(max_size=40), st.lists(st.integers(min_value=1, max_value=7), max_size=20))
def test_stop_cut_is_the_same_however_the_text_is_chunked(text: str, sizes: list[int]) -> None:
    stops = ["<step>", "\n\n\n"]
    expected = cut_at_stops(text, stops)
    cutter = StopCutter(stops)
    out, i = "", 0
    for size in [*sizes, len(text)]:
        out += cutter.feed(text[i : i + size])
        i += size
    out += cutter.flush()
    assert out == expected
    assert all(s not in out for s in stops)


def test_stop_split_across_tokens() -> None:
    cutter = StopCutter(["<step>"])
    assert cutter.feed("abc <st") == "abc "
    assert cutter.feed("ep> more") == ""
    assert cutter.stopped and cutter.flush() == ""
