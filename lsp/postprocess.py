"""Turn what an instruct model replied into the text to insert or the code to substitute.

Pure functions over strings: take the code out of fences and prose, drop what repeats the text before the
cursor or duplicates the text after it, give it the cursor's indentation, and cut it back to what keeps the
file parsing. The syntax questions ("does this insertion add a syntax error?", "where does the block end?")
are asked through a :class:`Syntax` object the caller builds over its document, so nothing here parses.

Everything works on ``\\n`` text: a CRLF document's prefix and suffix are normalised on the way in and the
insertion gets the document's line ending on the way out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from itertools import islice
from typing import Protocol

from lsp.context.extract import BLOCK_OPENERS
from lsp.prompt.chat_format import unescape
from lsp.prompt.templates import CURSOR

__all__ = [
    "Syntax",
    "clean_completion",
    "completion_decided",
    "extract_code",
    "reindent",
    "reindent_block",
    "strip_prefix_overlap",
    "strip_suffix_overlap",
]

_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n`]*$", re.MULTILINE)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
ECHO_LINES = 60  # how far back a model's restatement of the code before the cursor is looked for
_WINDOW = 8000  # characters of prefix/suffix looked at (enough for ECHO_LINES lines of code)
_STYLE_SAMPLE = 3000  # characters after the cursor that, with the lines before it, show the indentation style
_PAIRS = {")": "(", "]": "[", "}": "{"}
_CLOSERS = frozenset(")]}\"'`")
_COMMENT_STARTS = ("#", "//", "/*", "*", "--", ";", "<!--")
_INTERJECTIONS = frozenset({"Sure", "Certainly", "Okay", "OK", "Ok", "Here", "Done", "Absolutely"})


class Syntax(Protocol):
    """Questions about the document with a text inserted at the cursor (text in the document's line endings)."""

    def parses(self, inserted: str) -> bool:
        """Whether inserting ``inserted`` adds no syntax error."""
        ...

    def block_end(self, inserted: str) -> int | None:
        """Where in ``inserted`` the block the cursor is in ends (an index into it), or None."""
        ...


# ---------------------------------------------------------------------------------------------- extraction
def extract_code(reply: str) -> str:
    """The content of the first fenced block; an unfenced reply is taken as code once the prose around it
    is dropped. An unclosed fence (the stream was cut) yields what came after it."""
    reply = unescape(reply).replace("\r\n", "\n")
    match = _FENCE_OPEN.search(reply)
    if match is None:
        return _unfenced(reply)
    fence = match.group(1)
    start = match.end() + 1
    close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
    end_match = close.search(reply, start)
    body = reply[start : end_match.start() if end_match else len(reply)]
    return body.rstrip("\n").rstrip() if end_match is None else body.rstrip("\n")


def _unfenced(reply: str) -> str:
    lines = reply.strip("\n").split("\n")
    while lines and _is_prose(lines[0]):
        lines.pop(0)
    while lines and (not lines[-1].strip() or _is_prose(lines[-1])):
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines:
        return "\n".join(lines)
    # All prose: a lone inline code span ("The line is `foo(x)`.") is the answer.
    spans = _INLINE_CODE.findall(reply)
    return spans[0] if len(spans) == 1 else ""


def _is_prose(line: str) -> bool:
    """A sentence addressed to the reader, not code: capitalised words ending in punctuation."""
    text = line.strip()
    if not text or text.startswith(_COMMENT_STARTS) or not text[0].isupper():
        return False
    text = _INLINE_CODE.sub("code", text)  # `spans` in a sentence are words of it
    if any(ch in text for ch in "=;{}[]<>"):
        return False
    words = text.split()
    if len(words) <= 2 and words[0].rstrip("!.,:") in _INTERJECTIONS:
        return True
    wordy = sum(1 for w in words if re.fullmatch(r"[A-Za-z'’`\",.:!?()-]+", w))
    return len(words) >= 3 and wordy >= 0.75 * len(words) and text[-1] in ".:!?"


# ---------------------------------------------------------------------------------------------- helpers
def _norm(line: str) -> str:
    """A line without any whitespace: what two renderings of the same code line share."""
    return "".join(line.split())


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _meaningful(lines: Sequence[str]) -> bool:
    """Enough real code that seeing it twice is no coincidence (a lone `}` or `pass` is not)."""
    return any(sum(ch.isalnum() for ch in line) >= 4 for line in lines)


def _unmatched(text: str) -> int:
    """Closing brackets without an opening one in ``text``, plus quote kinds left open."""
    stack: list[str] = []
    count = 0
    for ch in text:
        if ch in "([{":
            stack.append(ch)
        elif ch in _PAIRS:
            if stack and stack[-1] == _PAIRS[ch]:
                stack.pop()
            else:
                count += 1
    return count + sum(text.count(q) % 2 for q in "\"'`")


def _tail_lines(prefix: str) -> tuple[str, ...]:
    """The last lines of ``prefix`` (the cursor line last, possibly empty)."""
    return _tail_of(prefix[-_WINDOW:], len(prefix) > _WINDOW)


# The clean-up of every reply, and every streaming decision, at one cursor works on the same few lines around
# it: they are worked out once (see prepare_cleanup), not after the last token. The caches key on the text
# (hashed once per string object, compared on a hit), so nothing goes stale when the document changes.
@functools.lru_cache(maxsize=16)
def _tail_of(window: str, cut: bool) -> tuple[str, ...]:
    lines = window.split("\n")
    if cut and len(lines) > 1:
        lines = lines[1:]  # the first one is cut
    return tuple(lines[-(ECHO_LINES + 1) :])


@functools.lru_cache(maxsize=16)
def _normalized_tail(window: str, cut: bool) -> tuple[str, ...]:
    """:func:`_norm` of each line of the tail but the cursor line."""
    return tuple(_norm(line) for line in _tail_of(window, cut)[:-1])


@functools.lru_cache(maxsize=16)
def _style_around(window: str, cut: bool, suffix_head: str) -> _Style:
    return _Style([*_tail_of(window, cut)[:-1], *suffix_head.split("\n")])


def prepare_cleanup(prefix: str, suffix: str) -> None:
    """Work out now what the clean-up of any reply at this cursor needs from the text around it (its last
    lines, the document's indentation), so that it is not done after the model's last token."""
    prefix, suffix = _lf(prefix[-_WINDOW:]), _lf(suffix[:_WINDOW])
    window, cut = prefix[-_WINDOW:], len(prefix) > _WINDOW
    _normalized_tail(window, cut)
    _style_around(window, cut, suffix[:_STYLE_SAMPLE])


# ---------------------------------------------------------------------------------------------- overlaps
Anchor = tuple[str, str]  # (a line's indentation in the model's code, the same line's in the document)


def strip_prefix_overlap(code: str, prefix: str) -> tuple[str, Anchor | None]:
    """Drop what restates the code before the cursor: the current line, the lines before it (up to a whole
    function), or the end of the word being typed. Also returns, when the model restated a line, that line's
    indentation in the model's code and in the document (to re-indent the rest the same way)."""
    before = _tail_lines(prefix)
    current, previous = before[-1], before[:-1]
    typed = current.strip()
    code_lines = code.split("\n")
    norm_code = [_norm(line) for line in code_lines]
    norm_prev = list(_normalized_tail(prefix[-_WINDOW:], len(prefix) > _WINDOW))
    for k in range(min(len(previous), len(code_lines)), 0, -1):
        if norm_code[:k] != norm_prev[len(previous) - k :]:
            continue
        anchor = _anchor(code_lines[:k], previous[len(previous) - k :])
        rest = code_lines[k:]
        if typed:
            # The restated lines must lead to the current line, restated too.
            after = _after_echo(rest[0], current) if rest else None
            if after is None:
                continue
            return "\n".join([after, *rest[1:]]), (_indent(rest[0]), _indent(current))
        if _meaningful(previous[len(previous) - k :]):
            return "\n".join(rest), anchor
    if typed:
        after = _after_echo(code_lines[0], current)
        if after is not None:
            return "\n".join([after, *code_lines[1:]]), (_indent(code_lines[0]), _indent(current))
        # The end of the word being typed restated (`os.ge` before `os.getcwd()`): the longest end of the
        # line, starting at a word boundary, that begins the code.
        for k in range(len(current) - 1, 0, -1):
            tail = current[-k:]
            boundary = not _is_word(current[-k - 1])
            if boundary and _is_word(tail[0]) and code.startswith(tail):
                return code[k:], None
    return code, None


def _anchor(model: Sequence[str], document: Sequence[str]) -> Anchor | None:
    for ours, theirs in zip(model, document, strict=True):
        if ours.strip():
            return _indent(ours), _indent(theirs)
    return None


def _after_echo(line: str, current: str) -> str | None:
    """The rest of ``line`` when it starts with the current line's code (whitespace aside), else None."""
    target = current.strip()
    text = line.lstrip()
    i = j = 0
    while j < len(target):
        if i < len(text) and text[i] == target[j]:
            i += 1
            j += 1
        elif i < len(text) and text[i].isspace():
            i += 1
        elif target[j].isspace():
            j += 1
        else:
            return None
    rest = text[i:]
    # The user already typed the blank after the code: don't insert it again.
    return rest.lstrip(" \t") if current != current.rstrip() else rest


def strip_suffix_overlap(code: str, suffix: str) -> str:
    """Drop the end of the code that repeats what already follows the cursor: the rest of the line
    (closing brackets, quotes, an argument), closing lines (`}`, `});`) or the next statements. A closing
    bracket is only dropped when the code has one too many of it, so `bar()` before `)` stays whole."""
    if not code.strip():
        return ""
    head = suffix[:_WINDOW]
    after = head.split("\n", 1)[0]
    code_lines = code.split("\n")
    code_norm = [_norm(line) for line in code_lines if line.strip()]
    # (a suffix line further down than the code is long can never be repeated by it)
    suffix_norm = list(islice((_norm(line) for line in head.split("\n") if line.strip()), len(code_norm) + 1))
    # Everything the model wrote is already there.
    if len(code_norm) > 1 and code_norm == suffix_norm[: len(code_norm)]:
        return ""
    if len(code_norm) == 1 and after.strip():
        rest = after.lstrip()
        word = code.strip()
        following = rest[len(word) : len(word) + 1]
        if rest.startswith(word) and not (_is_word(word[-1]) and following and _is_word(following)):
            return ""
    # The rest of the cursor line, repeated at the end of the code.
    if after.strip():
        trimmed = code.rstrip()
        rest = after.lstrip()
        for n in range(min(len(trimmed.split("\n")[-1]), len(rest)), 0, -1):
            overlap = rest[:n]
            if not trimmed.endswith(overlap):
                continue
            cut = trimmed[: len(trimmed) - n]
            if (_is_word(overlap[0]) and cut and _is_word(cut[-1])) or (
                _is_word(overlap[-1]) and n < len(rest) and _is_word(rest[n])
            ):
                continue  # the overlap starts or ends inside a word: a coincidence
            if any(_is_word(ch) for ch in overlap):
                return cut
            if any(ch in _CLOSERS for ch in overlap):
                if _unmatched(trimmed) > _unmatched(cut):
                    return cut  # one closing bracket or quote too many: the suffix has it
                continue
            return cut  # `;`, `,`: punctuation the line already has
    # Whole lines of the suffix repeated at the end of the code (the closing `}` of the function, the next
    # statements...): the longest such end, or an end that starts repeating the suffix and then drifts.
    if not suffix_norm:
        return code
    indexed = [(i, _norm(line)) for i, line in enumerate(code_lines) if line.strip()]
    for position in range(1, len(indexed)):
        start = indexed[position][0]
        tail = [n for _, n in indexed[position:]]
        same = 0
        while same < min(len(tail), len(suffix_norm)) and tail[same] == suffix_norm[same]:
            same += 1
        if same == 0:
            continue
        repeated = code_lines[start:]
        drifted = (same >= 2 or same == len(suffix_norm)) and _meaningful(tail[:same])
        if same < len(tail) and not drifted:
            continue
        kept = "\n".join(code_lines[:start]).rstrip()
        if not any(_is_word(ch) for ch in "".join(repeated)) and _unmatched(code) <= _unmatched(kept):
            continue  # a closing line the code itself needs
        return kept
    return code


# ---------------------------------------------------------------------------------------------- indentation
class _Style:
    """How the document indents: tabs, or spaces in units of ``unit``."""

    def __init__(self, sample: Sequence[str]) -> None:
        tabs = sum(1 for line in sample if line.startswith("\t"))
        spaced = [len(_indent(line)) for line in sample if line.startswith(" ") and line.strip()]
        self.tabs = tabs > len(spaced)
        self.unit = 4 if self.tabs else _unit(spaced)

    def width(self, indent: str, *, space_scale: float = 1.0) -> float:
        return sum(self.unit if ch == "\t" else space_scale for ch in indent)

    def render(self, width: float) -> str:
        columns = max(0, round(width))
        if self.tabs:
            return "\t" * (columns // self.unit) + " " * (columns % self.unit)
        return " " * columns


def _unit(widths: Sequence[int]) -> int:
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
    current = _tail_lines(prefix)[-1]
    style = _style_around(prefix[-_WINDOW:], len(prefix) > _WINDOW, suffix[:_STYLE_SAMPLE])
    # A model writing spaces into a tab-indented document: its own unit becomes one tab.
    model_spaces = [len(_indent(line)) for line in lines if line.startswith(" ") and line.strip()]
    scale = style.unit / _unit(model_spaces) if style.tabs and model_spaces else 1.0

    def width(indent: str) -> float:
        return style.width(indent, space_scale=scale)

    cursor = style.width(_indent(current))
    rest = [line for line in lines[1:] if line.strip()]
    if not current.strip():
        first = next((line for line in lines if line.strip()), "")
        model_first = width(_indent(first))
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
            first_rest = width(_indent(rest[0]))
            lowest = min(width(_indent(line)) for line in rest)
            opens = (current + lines[0]).rstrip().endswith(BLOCK_OPENERS)
            relative = first_rest <= cursor if opens else lowest < cursor
            delta = cursor if relative else 0.0
        else:
            delta = 0.0
        out = [lines[0]]
    for line in lines[1:]:
        if not line.strip():
            out.append("")
            continue
        out.append(style.render(max(0.0, width(_indent(line)) + delta)) + line.lstrip(" \t"))
    return "\n".join(out)


def reindent_block(code: str, original: str) -> str:
    """A replacement for `original` with the original's base indentation."""
    orig_lines = [line for line in original.split("\n") if line.strip()]
    new_lines = code.split("\n")
    if not orig_lines or not any(line.strip() for line in new_lines):
        return code
    want = min(len(_indent(line)) for line in orig_lines)
    have = min(len(_indent(line)) for line in new_lines if line.strip())
    indent = _indent(orig_lines[0])[:want] if want else ""
    return "\n".join((indent + line[have:]) if line.strip() else "" for line in new_lines)


# ---------------------------------------------------------------------------------------------- the pipeline
class _InDocumentEol:
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


def _eol(prefix: str, suffix: str) -> str:
    """The document's line ending, from the text around the cursor: editors keep one per document, so a
    CRLF there means a CRLF document."""
    return "\r\n" if "\r\n" in prefix[-2000:] or "\r\n" in suffix[:2000] else "\n"


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n") if "\r" in text else text


def _code_at_cursor(reply: str, prefix: str) -> tuple[str, Anchor | None]:
    """The code the model meant for the cursor, with what restates the text before it dropped."""
    code = extract_code(reply)
    if CURSOR in code:
        # The model echoed the marked code: what it put after the marker is the answer (the marker's line
        # tells how the model indents the cursor's line); or, when nothing follows the marker, what it
        # wrote before it (its version of the current line).
        before, _, after = code.partition(CURSOR)
        if after.strip():
            marked_line = before[before.rfind("\n") + 1 :]
            current = prefix[prefix.rfind("\n") + 1 :]
            return after.replace(CURSOR, ""), (_indent(marked_line), _indent(current))
        code = before
    return strip_prefix_overlap(code, prefix)


def clean_completion(
    reply: str,
    prefix: str,
    suffix: str,
    *,
    single_line: bool,
    max_lines: int,
    syntax: Syntax | None = None,
) -> str:
    """What to insert at the cursor, given the model's reply and the document around the cursor.

    With ``syntax``: the suggestion stops where the block the cursor is in ends, and it is cut back to the
    longest run of its first lines that adds no syntax error (nothing if even the first line adds one).
    """
    eol = _eol(prefix, suffix)
    prefix, suffix = _lf(prefix[-_WINDOW:]), _lf(suffix[:_WINDOW])
    code, anchor = _code_at_cursor(reply, prefix)
    if single_line:
        code = _first_line(code)
    code = strip_suffix_overlap(code, suffix)
    if not code.strip():
        return ""
    code = reindent(code, prefix, suffix, anchor).rstrip()
    checker = None if syntax is None else _InDocumentEol(syntax, eol)
    if checker is not None and not single_line:
        end = checker.block_end(code)
        if end is not None and code[end:].strip():
            code = code[:end].rstrip()
    lines = code.split("\n")[:max_lines]
    if checker is not None:
        lines = _parsing_lines(lines, checker)
    text = "\n".join(lines).rstrip()
    if not text.strip():
        return ""
    return text.replace("\n", eol) if eol != "\n" else text


def _first_line(code: str) -> str:
    """The code up to the end of its first non-blank line."""
    lines = code.split("\n")
    for i, line in enumerate(lines):
        if line.strip():
            return "\n".join(lines[: i + 1])
    return ""


def _parsing_lines(lines: list[str], syntax: Syntax) -> list[str]:
    """The longest run of the first lines whose insertion adds no syntax error; [] if none."""
    for n in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:n]).rstrip()
        if candidate.strip() and syntax.parses(candidate):
            return lines[:n]
    return []


# ---------------------------------------------------------------------------------------------- streaming
def completion_decided(
    reply: str,
    prefix: str,
    suffix: str,
    *,
    single_line: bool,
    max_lines: int,
    syntax: Syntax | None = None,
) -> bool:
    """Whether the partial ``reply`` already holds the whole completion, so the stream can be closed: the
    code block closed, the line of a single-line completion ended, ``max_lines`` lines came, the model
    started repeating the code after the cursor, or the block the cursor is in ended before the last line.
    """
    text = _lf(unescape(reply))
    match = _FENCE_OPEN.search(text)
    if match is not None:
        fence = match.group(1)
        body = text[match.end() + 1 :]
        if re.search(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", body, re.MULTILINE):
            return True
    else:
        body = text
        first = text.lstrip("\n").split("\n", 1)[0]
        if _is_prose(first) or first.lstrip().startswith(("`", "~")):
            return False  # prose before a fence (or a fence still being written): wait for the code
    if not body[: body.rfind("\n") + 1].strip():
        return False
    prefix, suffix = _lf(prefix[-_WINDOW:]), _lf(suffix[:_WINDOW])
    code, anchor = _code_at_cursor(text[: text.rfind("\n")], prefix)  # complete lines only
    lines = [line for line in code.split("\n") if line.strip()]
    if not lines or _echo_in_progress(lines, prefix):
        return False
    if single_line or len(lines) >= max_lines:
        return True
    upcoming = next((line for line in suffix.split("\n") if line.strip()), "")
    if _meaningful([upcoming]) and any(_norm(line) == _norm(upcoming) for line in lines):
        return True
    if syntax is not None:
        inserted = reindent(code, prefix, suffix, anchor).rstrip()
        end = _InDocumentEol(syntax, _eol(prefix, suffix)).block_end(inserted)
        if end is not None and inserted[end:].strip():
            return True
    return False


def _echo_in_progress(lines: Sequence[str], prefix: str) -> bool:
    """Whether the code so far could be the start of a restatement of the lines before the cursor."""
    previous = [line for line in _normalized_tail(prefix[-_WINDOW:], len(prefix) > _WINDOW) if line]
    wanted = [_norm(line) for line in lines]
    return any(previous[start : start + len(wanted)] == wanted for start in range(len(previous) - len(wanted) + 1))
