"""The whole clean-up of a completion, and the decision that a partial reply already holds it."""

from __future__ import annotations

import re
from collections.abc import Sequence

from lsp.cleanup.extraction import extract_code, is_prose
from lsp.cleanup.indentation import reindent
from lsp.cleanup.overlaps import Anchor, strip_prefix_overlap, strip_suffix_overlap
from lsp.cleanup.python_indentation import PythonIndentation
from lsp.cleanup.text import (
    FENCE_OPEN,
    WINDOW,
    InDocumentEol,
    Syntax,
    document_eol,
    indentation_of,
    lf,
    meaningful,
    norm,
    normalized_tail,
)
from lsp.prompt.chat_format import unescape
from lsp.prompt.templates import CURSOR


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
            return after.replace(CURSOR, ""), (indentation_of(marked_line), indentation_of(current))
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
    language: str = "",
) -> str:
    """What to insert at the cursor, given the model's reply and the document around the cursor.

    With ``syntax``: the suggestion stops where the block the cursor is in ends, and it is cut back to the
    longest run of its first lines that adds no syntax error (nothing if even the first line adds one);
    where the indentation could be read two ways, the reading that parses wins. ``language`` (a display
    name) adds the checks tree-sitter cannot make: Python's indentation.
    """
    eol = document_eol(prefix, suffix)
    prefix, suffix = lf(prefix[-WINDOW:]), lf(suffix[:WINDOW])
    code, anchor = _code_at_cursor(reply, prefix)
    if single_line:
        code = _first_line(code)
    code = strip_suffix_overlap(code, suffix)
    if not code.strip():
        return ""
    checker: Syntax | None = None
    if syntax is not None:
        checker = InDocumentEol(syntax, eol)
        if language == "Python":
            checker = PythonIndentation(checker, prefix, suffix)
    lines = _fitted(reindent(code, prefix, suffix, anchor), checker, single_line, max_lines)
    if checker is not None:
        kept = _parsing_lines(lines, checker)
        if len(kept) < len(lines) and anchor is None:
            # The other reading of the model's indentation (relative to the cursor, or already absolute)
            for relative in (True, False):
                other = _fitted(reindent(code, prefix, suffix, relative=relative), checker, single_line, max_lines)
                if other != lines and len(fits := _parsing_lines(other, checker)) > len(kept):
                    kept = fits
        lines = kept
    text = "\n".join(line.rstrip() for line in lines).rstrip()
    if not text.strip():
        return ""
    return text.replace("\n", eol) if eol != "\n" else text


def _fitted(code: str, checker: Syntax | None, single_line: bool, max_lines: int) -> list[str]:
    """The lines of ``code`` up to where the block the cursor is in ends, at most ``max_lines``."""
    code = code.rstrip()
    if checker is not None and not single_line:
        end = checker.block_end(code)
        if end is not None and code[end:].strip():
            code = code[:end].rstrip()
    return code.split("\n")[:max_lines]


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


def completion_decided(
    reply: str,
    prefix: str,
    suffix: str,
    *,
    single_line: bool,
    max_lines: int,
    syntax: Syntax | None = None,
    language: str = "",
) -> bool:
    """Whether the partial ``reply`` already holds the whole completion, so the stream can be closed: the
    code block closed, the line of a single-line completion ended, ``max_lines`` lines came, the model
    started repeating the code after the cursor, or the block the cursor is in ended before the last line.
    (``language`` is the clean-up's: the decision does not depend on it.)
    """
    text = lf(unescape(reply))
    match = FENCE_OPEN.search(text)
    if match is not None:
        fence = match.group(1)
        body = text[match.end() + 1 :]
        if re.search(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", body, re.MULTILINE):
            return True
    else:
        body = text
        first = text.lstrip("\n").split("\n", 1)[0]
        if is_prose(first) or first.lstrip().startswith(("`", "~")):
            return False  # prose before a fence (or a fence still being written): wait for the code
    if not body[: body.rfind("\n") + 1].strip():
        return False
    prefix, suffix = lf(prefix[-WINDOW:]), lf(suffix[:WINDOW])
    code, anchor = _code_at_cursor(text[: text.rfind("\n")], prefix)  # complete lines only
    lines = [line for line in code.split("\n") if line.strip()]
    if not lines or _echo_in_progress(lines, prefix):
        return False
    if single_line or len(lines) >= max_lines:
        return True
    upcoming = next((line for line in suffix.split("\n") if line.strip()), "")
    if meaningful([upcoming]) and any(norm(line) == norm(upcoming) for line in lines):
        return True
    if syntax is not None:
        inserted = reindent(code, prefix, suffix, anchor).rstrip()
        end = InDocumentEol(syntax, document_eol(prefix, suffix)).block_end(inserted)
        if end is not None and inserted[end:].strip():
            return True
    return False


def _echo_in_progress(lines: Sequence[str], prefix: str) -> bool:
    """Whether the code so far could be the start of a restatement of the lines before the cursor."""
    previous = [line for line in normalized_tail(prefix[-WINDOW:], len(prefix) > WINDOW) if line]
    wanted = [norm(line) for line in lines]
    return any(previous[start : start + len(wanted)] == wanted for start in range(len(previous) - len(wanted) + 1))
