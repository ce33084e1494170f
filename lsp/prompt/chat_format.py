"""Turns a list of chat messages into the exact text a model expects.

Two formats share one walk over the messages: `codellama-70b`, the string the model card's chat template
renders (minus the leading `<s>`, which TGI adds as BOS), and `messages`, the role/content list for
backends that apply a chat template themselves (OpenAI-compatible servers, the embedded model).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "assistant"]
FormatName = Literal["codellama-70b", "messages"]

STEP = "<step>"
# Stop sequences a request may carry: TGI's default --max-stop-sequences, and OpenAI's limit. <step> (or
# the chat template's own end) is always one of them, so a prompt or the settings add at most the rest.
MAX_STOP_SEQUENCES = 4
MAX_EXTRA_STOPS = MAX_STOP_SEQUENCES - 1
BOS = "<s>"
EOS = "</s>"
ASSISTANT_PROMPT = "Source: assistant\nDestination: user\n\n "

# Text that must never reach the model verbatim from untrusted input: special tokens of the 70B
# vocabulary (the tokenizer would turn them into real BOS/EOS/turn breaks), the tags Meta's reference
# code refuses, and our own cursor marker. A zero-width space after the first character breaks the
# token while leaving the text readable; existing zero-width spaces there get one more, so that
# `unescape` restores the original exactly.
_ZWSP = "\u200b"
_RESERVED = ("<step>", "<s>", "</s>", "<unk>", "<CURSOR>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")
_RESERVED_RE = re.compile(
    "|".join(f"(?P<g{i}>{re.escape(r[0])}(?:{_ZWSP})*{re.escape(r[1:])})" for i, r in enumerate(_RESERVED))
)
_ESCAPED_RE = re.compile("|".join(f"{re.escape(r[0])}{_ZWSP}(?:{_ZWSP})*{re.escape(r[1:])}" for r in _RESERVED))
# A line that looks like a turn header ("Source: system", "Destination: user") is defused the same way.
_HEADER_RE = re.compile(rf"^([ \t]*)(Source|Destination)((?:{_ZWSP})*):", re.MULTILINE)
_ESCAPED_HEADER_RE = re.compile(rf"^([ \t]*)(Source|Destination){_ZWSP}((?:{_ZWSP})*):", re.MULTILINE)


def escape(text: str) -> str:
    """Make untrusted text unable to create, end or fake a turn; reversible with `unescape`."""

    def add_zwsp(match: re.Match[str]) -> str:
        s = match.group(0)
        return s[0] + _ZWSP + s[1:]

    # Most lines hold nothing to defuse; skip the regexes for them (this runs per line of context).
    if "<" in text or "[" in text:
        text = _RESERVED_RE.sub(add_zwsp, text)
    if "Source" not in text and "Destination" not in text:
        return text
    return _HEADER_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{_ZWSP}{m.group(3)}:", text)


def unescape(text: str) -> str:
    """Undo `escape`, also on model output that copies escaped text back."""
    text = _ESCAPED_HEADER_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}:", text)
    return _ESCAPED_RE.sub(lambda m: m.group(0)[0] + m.group(0)[2:], text)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


class ConversationError(ValueError):
    """The messages do not form a conversation the model's format can express."""


def _check_roles(messages: Sequence[Message]) -> None:
    if not messages:
        raise ConversationError("a conversation needs at least one user message")
    body = messages[1:] if messages[0].role == "system" else messages
    for i, message in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.role != expected:
            raise ConversationError(
                f"message {i + len(messages) - len(body) + 1} has role {message.role!r}; roles must be "
                "an optional system message, then user and assistant alternating, ending with user"
            )
    if body[-1].role != "user" if body else True:
        raise ConversationError("the last message must come from the user")


def normalize(messages: Sequence[Message]) -> list[Message]:
    """Strip contents and make sure a system turn leads (the model card: it may be empty, never absent)."""
    _check_roles(messages)
    out = [Message(m.role, m.content.strip()) for m in messages]
    if out[0].role != "system":
        out.insert(0, Message("system", ""))
    return out


def render_codellama70b(messages: Sequence[Message]) -> str:
    """The text to send as TGI `inputs`: the chat template's output without the leading `<s>`."""
    parts = [f"Source: {m.role}\n\n {m.content} {STEP} " for m in normalize(messages)]
    return "".join(parts) + ASSISTANT_PROMPT


def render_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """The role/content list for servers that apply the chat template themselves."""
    return [{"role": m.role, "content": m.content} for m in normalize(messages)]
