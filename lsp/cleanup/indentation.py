"""Give a reply the document's indentation: the cursor's column, the document's indent characters and unit."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from lsp.cleanup.overlaps import Anchor
from lsp.cleanup.python_indentation import baseline_errors, window_around
from lsp.cleanup.text import STYLE_SAMPLE, WINDOW, indentation_of, lf, normalized_tail, tail_lines, tail_of
from lsp.context.extract import BLOCK_OPENERS


class Style:
    """How the document indents: tabs, or spaces in units of ``unit``."""

    def __init__(self, sample: Sequence[str]) -> None:
        tabs = sum(1 for line in sample if line.startswith("\t"))
        spaced = [len(indentation_of(line)) for line in sample if line.startswith(" ") and line.strip()]
        self.tabs = tabs > len(spaced)
        self.unit = 4 if self.tabs else indent_unit(spaced)

    def width(self, indent: str, *, space_scale: float = 1.0) -> float:
        return sum(self.unit if ch == "\t" else space_scale for ch in indent)

    def render(self, width: float) -> str:
        columns = max(0, round(width))
        if self.tabs:
            return "\t" * (columns // self.unit) + " " * (columns % self.unit)
        return " " * columns


def indent_unit(widths: Sequence[int]) -> int:
    positive = [w for w in widths if w > 0]
    if not positive:
        return 4
    for unit in (4, 2, 3, 8):
        if sum(1 for w in positive if w % unit == 0) >= 0.9 * len(positive):
            return unit
    return 4


def reindent(
    code: str, prefix: str, suffix: str = "", anchor: Anchor | None = None, *, relative: bool | None = None
) -> str:
    """Give the code the cursor's indentation and the document's indent characters.

    The first line goes at the cursor; later lines keep their structure relative to a line whose place in
    the document is known: a line the model restated (``anchor``), the model's own first line when it
    carries an indentation, else the cursor's line, with the model's columns either relative to it or
    already the document's (``relative``; decided from the evidence when None, see :func:`looks_relative`).
    """
    lines = code.split("\n")
    current = tail_lines(prefix)[-1]
    style = style_around(prefix[-WINDOW:], len(prefix) > WINDOW, suffix[:STYLE_SAMPLE])
    # A model writing spaces into a tab-indented document: its own unit becomes one tab.
    model_spaces = [len(indentation_of(line)) for line in lines if line.startswith(" ") and line.strip()]
    scale = style.unit / indent_unit(model_spaces) if style.tabs and model_spaces else 1.0

    def width(indent: str) -> float:
        return style.width(indent, space_scale=scale)

    cursor = style.width(indentation_of(current))
    written = [i for i, line in enumerate(lines) if line.strip()]
    first = lines[written[0]] if written else ""
    model_first = width(indentation_of(first)) if not current.strip() else 0.0
    if anchor is not None:
        delta = style.width(anchor[1]) - width(anchor[0])
    elif cursor == 0:
        delta = 0.0  # at column 0 the model's own columns are the only indentation there is
    elif model_first > 0:
        delta = cursor - model_first  # the model's own first line says where its columns start
    else:
        if relative is None:
            # the first line: the cursor's line and what the model wrote on it, else the model's first line
            later = [i for i in written if i > 0] if current.strip() else written[1:]
            opener = current + lines[0] if current.strip() else lines[written[0]]
            following = [width(indentation_of(lines[i])) for i in later]
            # the model's own step between levels (its code is the evidence; the document may show none)
            unit = style.unit if style.tabs or not model_spaces else indent_unit(model_spaces)
            relative = looks_relative(opener.rstrip().endswith(BLOCK_OPENERS), following, cursor, unit)
        delta = cursor if relative else 0.0
    if current.strip():
        out = [lines[0]]
    else:
        head = lines[0].lstrip(" \t")
        out = [style.render(max(0.0, model_first + delta - cursor)) + head if head else ""]
    for line in lines[1:]:
        if not line.strip():
            out.append("")
            continue
        out.append(style.render(max(0.0, width(indentation_of(line)) + delta)) + line.lstrip(" \t"))
    return "\n".join(out)


def looks_relative(opens: bool, following: Sequence[float], cursor: float, unit: int) -> bool:
    """Whether the lines after a first line written at the cursor (at column ``cursor``) are indented from
    column 0 (relative to it) rather than at the document's columns already, from the second line's width:
    after a line that opens a block it must be one level deeper than the first line, after any other line
    at the first line's level or less (any deeper, read as relative, would be an unexpected indent)."""
    if not following or cursor == 0:
        return False
    second = following[0]
    if opens:
        return second <= cursor or abs(second - unit) < abs(second - (cursor + unit))
    return second == 0


def reindent_block(code: str, original: str) -> str:
    """A replacement for `original` with the original's base indentation."""
    orig_lines = [line for line in original.split("\n") if line.strip()]
    new_lines = code.split("\n")
    if not orig_lines or not any(line.strip() for line in new_lines):
        return code
    want = min(len(indentation_of(line)) for line in orig_lines)
    have = min(len(indentation_of(line)) for line in new_lines if line.strip())
    indent = indentation_of(orig_lines[0])[:want] if want else ""
    return "\n".join((indent + line[have:]) if line.strip() else "" for line in new_lines)


@functools.lru_cache(maxsize=16)
def style_around(window: str, cut: bool, suffix_head: str) -> Style:
    return Style([*tail_of(window, cut), *suffix_head.split("\n")])  # with the cursor's line: its indentation


def prepare_cleanup(prefix: str, suffix: str, language: str = "") -> None:
    """Work out now what the clean-up of any reply at this cursor needs from the text around it (its last
    lines, the document's indentation, Python's indentation errors there), so that it is not done after the
    model's last token. ``language`` is the clean-up's (a display name)."""
    prefix, suffix = lf(prefix[-WINDOW:]), lf(suffix[:WINDOW])
    window, cut = prefix[-WINDOW:], len(prefix) > WINDOW
    normalized_tail(window, cut)
    style_around(window, cut, suffix[:STYLE_SAMPLE])
    if language == "Python":
        baseline_errors(*window_around(prefix, suffix))
