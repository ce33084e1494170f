"""Turn what an instruct model replied into the text to insert or the code to substitute.

Pure functions over strings: take the code out of fences and prose, drop what repeats the text before the
cursor or duplicates the text after it, and give it the cursor's indentation.
"""

from __future__ import annotations

import re

from lsp.chat_format import unescape
from lsp.templates import CURSOR

_FENCE_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n`]*$", re.MULTILINE)


def extract_code(reply: str) -> str:
    """The content of the first fenced block; an unfenced reply is taken as code. An unclosed fence (the
    stream was cut) yields what came after it."""
    reply = unescape(reply)
    match = _FENCE_OPEN.search(reply)
    if match is None:
        return reply.strip("\n")
    fence = match.group(1)
    start = match.end() + 1
    close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
    end_match = close.search(reply, start)
    body = reply[start : end_match.start() if end_match else len(reply)]
    return body.rstrip("\n").rstrip() if end_match is None else body.rstrip("\n")


def clean_completion(reply: str, prefix: str, suffix: str, *, single_line: bool, max_lines: int) -> str:
    """What to insert at the cursor, given the model's reply and the document around the cursor."""
    code = extract_code(reply)
    if CURSOR in code:
        # The model echoed the marked code: what it put where the marker was is the answer.
        code = _between_marker(code, prefix, suffix)
    code = strip_prefix_overlap(code, prefix)
    code = strip_suffix_overlap(code, suffix)
    code = reindent(code, prefix)
    lines = code.split("\n")
    if single_line or len(lines) > max_lines:
        lines = lines[: 1 if single_line else max_lines]
    text = "\n".join(lines).rstrip()
    return text if text.strip() else ""


def _between_marker(code: str, prefix: str, suffix: str) -> str:
    _, _, after = code.partition(CURSOR)
    return after if not after.strip() or not suffix.strip() else after[: _common_prefix_cut(after, suffix)]


def _common_prefix_cut(text: str, suffix: str) -> int:
    anchor = suffix.strip().split("\n")[0].strip()
    i = text.find(anchor) if anchor else -1
    return i if i >= 0 else len(text)


def strip_prefix_overlap(code: str, prefix: str) -> str:
    """Models often restate the current line, or the last few lines, before continuing them."""
    line_start = prefix.rfind("\n") + 1
    current = prefix[line_start:]
    tail = prefix[-2000:]
    # Longest suffix of the recent text (at a line boundary or the whole current line) that starts the code.
    for start in _line_starts(tail):
        candidate = tail[start:]
        if candidate.strip() and code.startswith(candidate):
            return code[len(candidate) :]
        stripped = candidate.lstrip()
        if stripped.strip() and code.lstrip().startswith(stripped) and "\n" not in stripped:
            return code.lstrip()[len(stripped) :]
    if current.strip() and code.lstrip().startswith(current.strip()):
        return code.lstrip()[len(current.strip()) :]
    # The model restated the end of the current line (`os.ge` before `os.getcwd()`): the longest end of the
    # line, starting at a word boundary, that begins the code.
    for k in range(len(current), 0, -1):
        tail = current[-k:]
        boundary = k == len(current) or not (current[-k - 1].isalnum() or current[-k - 1] == "_")
        if boundary and tail.strip() and code.startswith(tail) and (tail[0].isalnum() or tail[0] == "_"):
            return code[k:]
    return code


def _line_starts(text: str) -> list[int]:
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    return [s for s in starts if s < len(text)]


def strip_suffix_overlap(code: str, suffix: str) -> str:
    """Drop the end of the code that repeats what already follows the cursor."""
    if not suffix.strip() or not code:
        return code
    head = suffix[:2000]
    # Longest end of `code` that equals a start of the suffix, compared without trailing/leading blanks.
    code_trimmed = code.rstrip()
    suffix_trimmed = head.lstrip()
    for n in range(min(len(code_trimmed), len(suffix_trimmed)), 0, -1):
        if code_trimmed.endswith(suffix_trimmed[:n]) and (n >= 2 or suffix_trimmed[:n] in ")]}\"'"):
            return code_trimmed[: len(code_trimmed) - n]
    # Or whole lines of the suffix repeated at the end of the code.
    code_lines = code.rstrip("\n").split("\n")
    suffix_lines = [line for line in head.split("\n") if line.strip()]
    if suffix_lines:
        first = suffix_lines[0].strip()
        for i in range(1, len(code_lines)):
            if code_lines[i].strip() == first:
                return "\n".join(code_lines[:i]).rstrip()
    return code


def reindent(code: str, prefix: str) -> str:
    """Give continuation lines the cursor line's indentation, keeping their relative structure."""
    lines = code.split("\n")
    if len(lines) == 1:
        return code
    current = prefix[prefix.rfind("\n") + 1 :]
    base = current[: len(current) - len(current.lstrip())]
    rest = [line for line in lines[1:] if line.strip()]
    if not rest:
        return code
    first_indent = _indent(lines[0]) if not current.strip() else None
    model_base = min(len(_indent(line)) for line in rest)
    if first_indent is not None:
        model_base = min(model_base, len(first_indent))
    out = [lines[0][len(first_indent) :] if first_indent else lines[0]]
    for line in lines[1:]:
        out.append(base + line[model_base:] if line.strip() else "")
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


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]
