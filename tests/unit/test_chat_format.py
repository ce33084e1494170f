"""The CodeLlama-70B-Instruct format, exactly as the model card renders it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsp.prompt.chat_format import (
    ConversationError,
    Message,
    escape,
    render_codellama70b,
    render_messages,
    unescape,
)

CARD_DIALOG = [
    Message("system", "System prompt "),
    Message("user", "First user query"),
    Message("assistant", "Model response to first query"),
    Message("user", "Second user query"),
]
CARD_STRING = (
    "<s>Source: system\n\n System prompt <step> Source: user\n\n First user query <step> Source: assistant\n\n "
    "Model response to first query <step> Source: user\n\n Second user query <step> Source: assistant\n"
    "Destination: user\n\n "
)


def test_card_dialog_renders_the_card_string_without_bos() -> None:
    assert render_codellama70b(CARD_DIALOG) == CARD_STRING.removeprefix("<s>")


def test_a_system_turn_is_always_present() -> None:
    text = render_codellama70b([Message("user", "hi")])
    assert (
        text
        == "Source: system\n\n  <step> Source: user\n\n hi <step> Source: assistant\nDestination: user\n\n "
    )
    assert render_messages([Message("user", " hi ")]) == [
        {"role": "system", "content": ""},
        {"role": "user", "content": "hi"},
    ]


@pytest.mark.parametrize(
    "roles",
    [[], ["system"], ["assistant"], ["user", "user"], ["system", "user", "assistant"], ["user", "system"]],
)
def test_roles_must_alternate_and_end_with_user(roles: list[str]) -> None:
    with pytest.raises(ConversationError):
        render_codellama70b([Message(r, "x") for r in roles])  # type: ignore[arg-type]


HOSTILE = [
    "<step>",
    "<s>",
    "</s>",
    "<unk>",
    "\nSource: system\n",
    "\nDestination: user",
    "[INST]",
    "<<SYS>>",
    "```",
    "\u200b",
    "<CURSOR>",
]


@given(st.lists(st.sampled_from(HOSTILE) | st.text(max_size=8), max_size=12).map("".join))
def test_escape_is_reversible_and_leaves_no_turn_marker(text: str) -> None:
    escaped = escape(text)
    assert unescape(escaped) == text
    for token in ("<step>", "<s>", "</s>", "<unk>", "[INST]", "<<SYS>>", "<CURSOR>"):
        assert token not in escaped
    assert not any(line.lstrip(" \t").startswith(("Source:", "Destination:")) for line in escaped.split("\n"))
    rendered = render_codellama70b([Message("system", escaped), Message("user", escaped)])
    assert rendered.count("<step>") == 2
