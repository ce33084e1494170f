"""What every step of the clean-up shares: the limits, the syntax questions it asks, and small helpers over
lines of ``\n`` text (the lines before the cursor are worked out once per cursor and cached)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Protocol

FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n`]*$", re.MULTILINE)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
ECHO_LINES = 60  # how far back a model's restatement of the code before the cursor is looked for
WINDOW = 8000  # characters of prefix/suffix looked at (enough for ECHO_LINES lines of code)
STYLE_SAMPLE = 3000  # characters after the cursor that, with the lines before it, show the indentation style
PAIRS = {")": "(", "]": "[", "}": "{"}
CLOSERS = frozenset(")]}\"'`")
COMMENT_STARTS = ("#", "//", "/*", "*", "--", ";", "<!--")
INTERJECTIONS = frozenset({"Sure", "Certainly", "Okay", "OK", "Ok", "Here", "Done", "Absolutely"})


class Syntax(Protocol):
    """Questions about the document with a text inserted at the cursor (text in the document's line endings)."""

    def parses(self, inserted: str) -> bool:
        """Whether inserting ``inserted`` adds no syntax error."""
        ...

    def block_end(self, inserted: str) -> int | None:
        """Where in ``inserted`` the block the cursor is in ends (an index into it), or None."""
        ...


class InDocumentEol:
    """A Syntax over ``\\n`` text for a document with another line ending."""

    def __init__(self, syntax: Syntax, eol: str) -> None:
        self.syntax, self.eol = syntax, eol

    def parses(self, inserted: str) -> bool:
        return self.syntax.parses(inserted.replace("\n", self.eol))

    def block_end(self, inserted: str) -> int | None:
        converted = inserted.replace("\n", self.eol)
        end = self.syntax.block_end(converted)
        if end is None or self.eol == "\n":
            return end
        return end - converted[:end].count(self.eol) * (len(self.eol) - 1)


def document_eol(prefix: str, suffix: str) -> str:
    """The document's line ending, from the text around the cursor: editors keep one per document, so a
    CRLF there means a CRLF document."""
    return "\r\n" if "\r\n" in prefix[-2000:] or "\r\n" in suffix[:2000] else "\n"


def lf(text: str) -> str:
    return text.replace("\r\n", "\n") if "\r" in text else text


def norm(line: str) -> str:
    """A line without any whitespace: what two renderings of the same code line share."""
    return "".join(line.split())


def indentation_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def meaningful(lines: Sequence[str]) -> bool:
    """Enough real code that seeing it twice is no coincidence (a lone `}` or `pass` is not)."""
    return any(sum(ch.isalnum() for ch in line) >= 4 for line in lines)


def unmatched(text: str) -> int:
    """Closing brackets without an opening one in ``text``, plus quote kinds left open."""
    stack: list[str] = []
    count = 0
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in PAIRS:
            if stack and stack[-1] == PAIRS[ch]:
                stack.pop()
            else:
                count += 1
    return count + sum(text.count(q) % 2 for q in "\"'`")


def tail_lines(prefix: str) -> tuple[str, ...]:
    """The last lines of ``prefix`` (the cursor line last, possibly empty)."""
    return tail_of(prefix[-WINDOW:], len(prefix) > WINDOW)


# The clean-up of every reply, and every streaming decision, at one cursor works on the same few lines around
# it: they are worked out once (see prepare_cleanup), not after the last token. The caches key on the text
# (hashed once per string object, compared on a hit), so nothing goes stale when the document changes.
@functools.lru_cache(maxsize=16)
def tail_of(window: str, cut: bool) -> tuple[str, ...]:
    lines = window.split("\n")
    if cut and len(lines) > 1:
        lines = lines[1:]  # the first one is cut
    return tuple(lines[-(ECHO_LINES + 1) :])


@functools.lru_cache(maxsize=16)
def normalized_tail(window: str, cut: bool) -> tuple[str, ...]:
    """:func:`norm` of each line of the tail but the cursor line."""
    return tuple(norm(line) for line in tail_of(window, cut)[:-1])
