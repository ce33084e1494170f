"""Drop what a reply restates of the text before the cursor, and what it repeats of the text after it."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

from lsp.cleanup.text import (
    CLOSERS,
    WINDOW,
    indentation_of,
    is_word,
    meaningful,
    norm,
    normalized_tail,
    tail_lines,
    unmatched,
)

Anchor = tuple[str, str]  # (a line's indentation in the model's code, the same line's in the document)


def strip_prefix_overlap(code: str, prefix: str) -> tuple[str, Anchor | None]:
    """Drop what restates the code before the cursor: the current line, the lines before it (up to a whole
    function), or the end of the word being typed. Also returns, when the model restated a line, that line's
    indentation in the model's code and in the document (to re-indent the rest the same way)."""
    before = tail_lines(prefix)
    current, previous = before[-1], before[:-1]
    typed = current.strip()
    code_lines = code.split("\n")
    norm_code = [norm(line) for line in code_lines]
    norm_prev = list(normalized_tail(prefix[-WINDOW:], len(prefix) > WINDOW))
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
            return "\n".join([after, *rest[1:]]), (indentation_of(rest[0]), indentation_of(current))
        if meaningful(previous[len(previous) - k :]):
            return "\n".join(rest), anchor
    if typed:
        after = _after_echo(code_lines[0], current)
        if after is not None:
            return "\n".join([after, *code_lines[1:]]), (indentation_of(code_lines[0]), indentation_of(current))
        # The end of the word being typed restated (`os.ge` before `os.getcwd()`): the longest end of the
        # line, starting at a word boundary, that begins the code.
        for k in range(len(current) - 1, 0, -1):
            tail = current[-k:]
            boundary = not is_word(current[-k - 1])
            if boundary and is_word(tail[0]) and code.startswith(tail):
                return code[k:], None
    return code, None


def _anchor(model: Sequence[str], document: Sequence[str]) -> Anchor | None:
    for ours, theirs in zip(model, document, strict=True):
        if ours.strip():
            return indentation_of(ours), indentation_of(theirs)
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
    head = suffix[:WINDOW]
    after = head.split("\n", 1)[0]
    code_lines = code.split("\n")
    code_norm = [norm(line) for line in code_lines if line.strip()]
    # (a suffix line further down than the code is long can never be repeated by it)
    suffix_norm = list(islice((norm(line) for line in head.split("\n") if line.strip()), len(code_norm) + 1))
    # Everything the model wrote is already there.
    if len(code_norm) > 1 and code_norm == suffix_norm[: len(code_norm)]:
        return ""
    if len(code_norm) == 1 and after.strip():
        rest = after.lstrip()
        word = code.strip()
        following = rest[len(word) : len(word) + 1]
        if rest.startswith(word) and not (is_word(word[-1]) and following and is_word(following)):
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
            if (is_word(overlap[0]) and cut and is_word(cut[-1])) or (
                is_word(overlap[-1]) and n < len(rest) and is_word(rest[n])
            ):
                continue  # the overlap starts or ends inside a word: a coincidence
            if any(is_word(ch) for ch in overlap):
                return cut
            if any(ch in CLOSERS for ch in overlap):
                if unmatched(trimmed) > unmatched(cut):
                    return cut  # one closing bracket or quote too many: the suffix has it
                continue
            return cut  # `;`, `,`: punctuation the line already has
    # Whole lines of the suffix repeated at the end of the code (the closing `}` of the function, the next
    # statements...): the longest such end, or an end that starts repeating the suffix and then drifts.
    if not suffix_norm:
        return code
    indexed = [(i, norm(line)) for i, line in enumerate(code_lines) if line.strip()]
    for position in range(1, len(indexed)):
        start = indexed[position][0]
        tail = [n for _, n in indexed[position:]]
        same = 0
        while same < min(len(tail), len(suffix_norm)) and tail[same] == suffix_norm[same]:
            same += 1
        if same == 0:
            continue
        repeated = code_lines[start:]
        drifted = (same >= 2 or same == len(suffix_norm)) and meaningful(tail[:same])
        if same < len(tail) and not drifted:
            continue
        kept = "\n".join(code_lines[:start]).rstrip()
        if not any(is_word(ch) for ch in "".join(repeated)) and unmatched(code) <= unmatched(kept):
            continue  # a closing line the code itself needs
        return kept
    return code
