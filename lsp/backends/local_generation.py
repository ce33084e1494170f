"""One generation on the embedded model's worker thread: what it carries (:class:`Run`), what it cost
(:class:`RequestStats`), and the text and error helpers of :mod:`lsp.backends.local` (token healing, whole
lines, the prompt tokens llama.cpp keeps, UTF-8, llama-cpp-python's errors as ours)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lsp.errors import BackendRejected, BackendUnavailable, GenerationFailed


def utf8_text(text: str) -> str:
    """``text`` as UTF-8 can carry it: a lone surrogate (a JSON string may spell one) becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


@dataclass(frozen=True)
class RequestStats:
    """What the last request cost: its prompt's tokens, how many of them llama.cpp evaluated (the others it
    kept from the request before), and the tokens generated."""

    prompt_tokens: int
    evaluated: int
    generated: int


@dataclass
class Run:
    """One request on the worker thread: its chunks, its cancel flag, and what it evaluated when."""

    chunks: Iterator[Any]
    cancel: threading.Event
    started: float
    prompt_tokens: int
    evaluated: int  # prompt tokens llama.cpp evaluates (the rest it reuses from the previous request)
    armed: bool = True  # the abort callback is set (for the prompt's evaluation)
    first_at: float = 0.0
    tokens: int = 0
    finish: str | None = None  # why llama.cpp ended the generation ("stop", "length")
    heal: str = ""  # the prompt's last token, left out for the model to write (see _start)
    healing: str = ""  # what the model wrote of it so far
    lines: bool = False  # a whole line of a continuation was yielded


def healed(run: Run, text: str) -> str:
    """``text`` without what rewrites the prompt's dropped last token (held until that is decided)."""
    run.healing += text
    if len(run.healing) < len(run.heal) and run.heal.startswith(run.healing):
        return ""  # still writing the token
    common = 0
    while common < min(len(run.healing), len(run.heal)) and run.healing[common] == run.heal[common]:
        common += 1
    text, run.heal, run.healing = run.healing[common:], "", ""
    return text


def whole_lines(text: str) -> tuple[str, str]:
    """``text`` up to its last line break, and the rest."""
    cut = text.rfind("\n") + 1
    return text[:cut], text[cut:]


def shared_prefix(old: Any, new: list[int]) -> int:
    """How many tokens at the start of ``new`` llama.cpp already evaluated (``old``)."""
    n = 0
    for a, b in zip(old, new, strict=False):
        if a != b:
            break
        n += 1
    return n


def close_quietly(chunks: Iterator[Any]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def closed_error() -> BackendUnavailable:
    return BackendUnavailable("The embedded model was closed (the settings changed or the server is stopping).")


def generation_error(error: Exception) -> Exception:
    message = str(error)
    if "exceed context window" in message:
        return BackendRejected(f"The prompt is too long for the embedded model: {message}", too_long=True)
    if isinstance(error, (BackendRejected, BackendUnavailable)):
        return error
    return GenerationFailed(f"The embedded model failed: {message or type(error).__name__}")
