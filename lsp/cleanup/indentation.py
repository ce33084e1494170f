"""Give a reply the document's indentation: the cursor's column, the document's indent characters and unit."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from lsp.cleanup.overlaps import Anchor
from lsp.cleanup.text import OPENERS, STYLE_SAMPLE, WINDOW, indentation_of, lf, normalized_tail, tail_lines, tail_of


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


def reindent(code: str, prefix: str, suffix: str = "", anchor: Anchor | None = None) -> str:
    """Give the code the cursor's indentation and the document's indent characters.

    The first line goes at the cursor; later lines keep their structure relative to a line whose place in
    the document is known: a line the model restated (``anchor``), the first line when the cursor sits on
    a blank line, else a guess from the current line (is the model's code relative to column 0, or already
    at the document's columns?).
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
    rest = [line for line in lines[1:] if line.strip()]
    if not current.strip():
        first = next((line for line in lines if line.strip()), "")
        model_first = width(indentation_of(first))
        if anchor is not None:
            delta = style.width(anchor[1]) - width(anchor[0])
        elif cursor == 0:
            delta = 0.0  # at column 0 the model's own columns are the only indentation there is
        else:
            delta = cursor - model_first
        out = [
            style.render(max(0.0, model_first + delta - cursor)) + lines[0].lstrip(" \t") if lines[0].strip() else ""
        ]
    else:
        if anchor is not None:
            delta = style.width(anchor[1]) - width(anchor[0])
        elif rest:
            first_rest = width(indentation_of(rest[0]))
            lowest = min(width(indentation_of(line)) for line in rest)
            opens = (current + lines[0]).rstrip().endswith(OPENERS)
            relative = first_rest <= cursor if opens else lowest < cursor
            delta = cursor if relative else 0.0
        else:
            delta = 0.0
        out = [lines[0]]
    for line in lines[1:]:
        if not line.strip():
            out.append("")
            continue
        out.append(style.render(max(0.0, width(indentation_of(line)) + delta)) + line.lstrip(" \t"))
    return "\n".join(out)


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
    return Style([*tail_of(window, cut)[:-1], *suffix_head.split("\n")])


def prepare_cleanup(prefix: str, suffix: str) -> None:
    """Work out now what the clean-up of any reply at this cursor needs from the text around it (its last
    lines, the document's indentation), so that it is not done after the model's last token."""
    prefix, suffix = lf(prefix[-WINDOW:]), lf(suffix[:WINDOW])
    window, cut = prefix[-WINDOW:], len(prefix) > WINDOW
    normalized_tail(window, cut)
    style_around(window, cut, suffix[:STYLE_SAMPLE])
