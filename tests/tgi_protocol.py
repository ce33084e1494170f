"""What the TGI test server (tests/tgi_server.py) knows of the protocol: a stand-in tokenizer, the default
reply, and validation against the `text-generation` package's types."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from text_generation import errors as tg_errors

MODEL_ID = "TheBloke/CodeLlama-70B-Instruct-GPTQ"
STEP = "<step>"


def tokenize(text: str) -> list[dict[str, Any]]:
    """Not LLaMA's tokenizer: word-ish pieces with offsets, enough to exercise the protocol."""
    out = [{"id": 1, "text": "", "start": 0, "stop": 0}]
    for i, m in enumerate(re.finditer(r"<step>|\s*\S{1,4}|\s+", text)):
        out.append(
            {
                "id": 32015 if m.group(0) == STEP else 1000 + i,
                "text": m.group(0),
                "start": m.start(),
                "stop": m.end(),
            }
        )
    return out


def default_text(inputs: str) -> str:
    """A plausible instruct reply: the last line of the user's code, fenced."""
    user = inputs.split("Source: user\n\n ")[-1].split(" <step> ")[0]
    lines = [line for line in user.split("\n") if line.strip() and not line.startswith("```")]
    return f"```\n{lines[-1] if lines else 'pass'}\n```"


def last_user(body: dict[str, Any]) -> str:
    """The last user message of a Messages API body."""
    users = [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users else ""


def protocol_problem(kind: Any, payload: Any) -> str | None:
    """Why `payload` is not a valid `kind` of the text-generation package, or None."""
    try:
        kind.model_validate(payload)
    except (ValidationError, tg_errors.ValidationError) as error:
        return str(error).replace("\n", " ")[:500]
    return None


def pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S{1,3}|\s+", text) or [""]
