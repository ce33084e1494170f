"""The completion prompt for small local models: the code before the cursor, to be continued as is.

A 135M model does not follow the 70B model's instruction dialogue (it answers with prose, or nothing), but
it continues code. So its prompt is what a code model saw in training: a file, headed by its path, after
the related code from other files, each under a path comment. The same context as the dialogue's, in the
form of a source file; no instruction, no turns (the backend tokenizes it without special tokens).

The prompt is laid out for llama.cpp's reuse of the previous request's evaluated prompt: what changes
least comes first (other files' definitions, the path), and the window of code before the cursor starts
at a line that stays put while the user types, so a request evaluates only what changed since the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lsp.context.code_context import CodeContext, Snippet
from lsp.context.languages import LANGUAGES
from lsp.prompt.budget import Budget, BuiltPrompt
from lsp.prompt.templates import ActionSpec

DEFINITIONS_SHARE = 0.25  # of the prompt, at most, for code from other files
# The window's first line moves in steps of this many lines: typing (which moves the cursor and the
# window's end) leaves its start, and so the evaluated prompt, in place.
WINDOW_STEP = 16


class CompletionBudget(Protocol):
    prompt_tokens: int
    max_new_tokens: int
    chars_per_token: float  # of the code the model was given lately: what turns tokens into characters


class ContinuingBackend(Protocol):
    """A backend that completes code by continuing it (``completion_style == "continuation"``)."""

    completion_style: str

    def completion_budget(self) -> CompletionBudget: ...


def continuing(backend: object) -> ContinuingBackend | None:
    """The backend, if it wants continuation prompts for completions; else None (the dialogue)."""
    if getattr(backend, "completion_style", None) == "continuation" and hasattr(backend, "completion_budget"):
        return backend  # type: ignore[return-value]
    return None


def line_comment(language: str) -> str:
    """The line comment of a language, by its display name (``#`` when unknown)."""
    return next((spec.line_comment for spec in LANGUAGES if spec.display_name == language), "#")


def continuation_prompt(spec: ActionSpec, context: CodeContext, budget: CompletionBudget) -> BuiltPrompt:
    """The prompt (raw text) for completing at ``context``'s cursor, within ``budget``."""
    max_chars = int(budget.prompt_tokens * budget.chars_per_token)
    comment = line_comment(context.language)
    others = _other_files(context.definitions, context.path, comment, int(max_chars * DEFINITIONS_SHARE))
    header = f"{comment} {context.path}\n"
    room = max(0, max_chars - len(others) - len(header))
    window = code_window(context.prefix, room)
    scopes = _outside(context, window, comment)
    if scopes:  # the window begins inside definitions: say which, as the file would have shown them
        window = code_window(context.prefix, max(0, room - len(scopes)))
        scopes = _outside(context, window, comment)
    text = others + header + scopes + window
    tokens = int(len(text) / budget.chars_per_token) + 1
    parts = {"definitions": len(others), "code": len(window), "scopes": len(scopes)}
    limits = Budget(budget.prompt_tokens, budget.max_new_tokens, None, None)
    return BuiltPrompt("complete", spec, [], text, tokens, limits, exact=False, parts=parts)


def code_window(prefix: str, max_chars: int) -> str:
    """The end of ``prefix`` that fits ``max_chars``, from a line start that only moves in WINDOW_STEP steps
    as the prefix grows (so consecutive prompts share their start)."""
    if len(prefix) <= max_chars:
        return prefix
    starts = [0]
    at = prefix.find("\n")
    while at >= 0:
        starts.append(at + 1)
        at = prefix.find("\n", at + 1)
    earliest = len(prefix) - max_chars
    first = next((i for i, start in enumerate(starts) if start >= earliest), len(starts) - 1)
    snapped = -(-first // WINDOW_STEP) * WINDOW_STEP  # the next step at or after it
    return prefix[starts[min(snapped, len(starts) - 1)] :]


def _outside(context: CodeContext, window: str, comment: str) -> str:
    """A comment naming the definitions the cursor is in whose headers are above ``window`` ("" if none)."""
    first_line = context.prefix.count("\n") - window.count("\n")
    above = [scope for scope in context.scopes if scope.start_line < first_line]
    if not above:
        return ""
    return f"{comment} in: {' > '.join(' '.join(scope.signature.split()) for scope in above)}\n"


def _other_files(definitions: Sequence[Snippet], path: str, comment: str, max_chars: int) -> str:
    """Definitions from other files, best first while they fit, each under its path as a comment."""
    out: list[str] = []
    used = 0
    for snippet in definitions:
        if not snippet.path or snippet.path == path:
            continue  # this file's own code is in the window, or too far to matter
        block = f"{comment} {snippet.path}\n{snippet.text.rstrip()}\n\n"
        if used + len(block) > max_chars:
            continue
        out.append(block)
        used += len(block)
    return "".join(out)
