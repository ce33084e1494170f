"""Take the code out of a reply: the first fenced block, or the code between the prose of an unfenced one."""

from __future__ import annotations

import re

from lsp.cleanup.text import COMMENT_STARTS, FENCE_OPEN, INLINE_CODE, INTERJECTIONS
from lsp.prompt.chat_format import unescape


def extract_code(reply: str) -> str:
    """The content of the first fenced block; an unfenced reply is taken as code once the prose around it
    is dropped. An unclosed fence (the stream was cut) yields what came after it."""
    reply = unescape(reply).replace("\r\n", "\n")
    match = FENCE_OPEN.search(reply)
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
    while lines and is_prose(lines[0]):
        lines.pop(0)
    while lines and (not lines[-1].strip() or is_prose(lines[-1])):
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines:
        return "\n".join(lines)
    # All prose: a lone inline code span ("The line is `foo(x)`.") is the answer.
    spans = INLINE_CODE.findall(reply)
    return spans[0] if len(spans) == 1 else ""


def is_prose(line: str) -> bool:
    """A sentence addressed to the reader, not code: capitalised words ending in punctuation."""
    text = line.strip()
    if not text or text.startswith(COMMENT_STARTS) or not text[0].isupper():
        return False
    text = INLINE_CODE.sub("code", text)  # `spans` in a sentence are words of it
    if any(ch in text for ch in "=;{}[]<>"):
        return False
    words = text.split()
    if len(words) <= 2 and words[0].rstrip("!.,:") in INTERJECTIONS:
        return True
    wordy = sum(1 for w in words if re.fullmatch(r"[A-Za-z'’`\",.:!?()-]+", w))
    return len(words) >= 3 and wordy >= 0.75 * len(words) and text[-1] in ".:!?"
