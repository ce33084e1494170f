"""Build an action's prompt from context, packed by priority into the model's token budget.

Context is cut into chunks (lines of code, whole imports, whole definitions), each counted once and in
isolation, and taken in priority order until the budget is full: the code nearest the cursor first,
then the enclosing scopes, imports, related definitions, the outline, then more distant code. The result
is counted once more as a whole and shrunk if the sum of parts was optimistic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lsp.chat_format import Message, escape, render_codellama70b
from lsp.context.extract import CodeContext
from lsp.errors import PromptError
from lsp.templates import Action, ActionSpec, PromptStore
from lsp.tokens import TokenCounter

# Share of the free budget the nearest code may take before other context gets a turn.
NEAR_PREFIX_SHARE = 0.45
NEAR_SUFFIX_SHARE = 0.12
BOS_TOKENS = 1


@dataclass(frozen=True)
class Budget:
    """How many tokens the prompt may use, and why."""

    prompt_tokens: int
    max_new_tokens: int
    max_input_tokens: int | None
    max_total_tokens: int | None

    @staticmethod
    def compute(
        max_new_tokens: int, max_input_tokens: int | None, max_total_tokens: int | None
    ) -> Budget:
        limits = [n for n in (max_input_tokens, (max_total_tokens - max_new_tokens) if max_total_tokens else None) if n]
        if not limits:
            raise PromptError("the model's context size is unknown; set codellama.maxInputTokens")
        prompt = min(limits)
        if prompt <= 0:
            raise PromptError(
                f"maxNewTokens ({max_new_tokens}) leaves no room for a prompt in the model's "
                f"{max_total_tokens} tokens; lower codellama.maxNewTokens"
            )
        return Budget(prompt, max_new_tokens, max_input_tokens, max_total_tokens)


@dataclass
class BuiltPrompt:
    action: Action
    spec: ActionSpec
    messages: list[Message]
    text: str
    tokens: int
    budget: Budget
    exact: bool
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def fill(self) -> float:
        return self.tokens / self.budget.prompt_tokens


@dataclass
class _Chunk:
    part: str
    text: str
    cost: int
    key: int  # order inside its part (line distance from the cursor, rank of a definition)


def build_prompt(
    store: PromptStore,
    action: Action,
    context: CodeContext,
    *,
    counter: TokenCounter,
    budget: Budget,
    selection: str = "",
    instruction: str = "",
    diagnostics: Sequence[str] = (),
    test_path: str = "",
    render: Callable[[Sequence[Message]], str] = render_codellama70b,
) -> BuiltPrompt:
    spec = store.spec(action)
    fixed = {
        "language": context.language,
        "path": context.path,
        "single_line": context.single_line,
        "selection": selection,
        "instruction": instruction,
        "diagnostics": list(diagnostics),
        "test_path": test_path,
    }

    def measure(variables: dict[str, Any]) -> tuple[list[Message], str, int]:
        messages = store.render(action, variables)
        text = render(messages)
        return messages, text, counter.count(text) + BOS_TOKENS

    empty = {**fixed, "prefix": "", "suffix": "", "scopes": [], "imports": [], "definitions": [], "outline": []}
    _, _, base = measure(empty)
    free = budget.prompt_tokens - base
    if free < 0:
        what = "selection" if selection else "instruction"
        raise PromptError(
            f"the {what} is too large for the model: the prompt needs {base} tokens before any context, "
            f"the budget is {budget.prompt_tokens}"
        )
    chosen = _pack(_chunks(context, counter, action), free)
    for _ in range(8):
        variables = {**fixed, **_assemble(context, chosen)}
        messages, text, total = measure(variables)
        if total <= budget.prompt_tokens:
            parts = {"template": base}
            for chunk in chosen:
                parts[chunk.part] = parts.get(chunk.part, 0) + chunk.cost
            return BuiltPrompt(action, spec, messages, text, total, budget, counter.exact, parts)
        # The parts' sum was optimistic (tokens merge across line ends): drop the least important tenth.
        chosen = chosen[: max(0, len(chosen) - max(1, len(chosen) // 10))]
    raise PromptError("could not fit the prompt into the model's budget")


def _chunks(context: CodeContext, counter: TokenCounter, action: Action) -> list[_Chunk]:
    def cost(text: str) -> int:
        return counter.count(escape(text))

    out: list[_Chunk] = []
    if action == "complete":
        before = context.prefix.split("\n")
        after = context.suffix.split("\n")
        # The line with the cursor is split between prefix and suffix; both halves come first.
        for distance, line in enumerate(reversed(before)):
            out.append(_Chunk("prefix", line, cost(line + "\n"), distance))
        for distance, line in enumerate(after):
            out.append(_Chunk("suffix", line, cost(line + "\n"), distance))
    for rank, scope in enumerate(context.scopes):
        out.append(_Chunk("scopes", scope.signature, cost(scope.signature), rank))
    for rank, imp in enumerate(context.imports):
        out.append(_Chunk("imports", imp, cost(imp + "\n"), rank))
    for rank, snippet in enumerate(context.definitions):
        out.append(_Chunk("definitions", str(rank), cost(snippet.title + snippet.text) + 8, rank))
    for rank, line in enumerate(context.outline):
        out.append(_Chunk("outline", line, cost(line + "\n"), rank))
    return out


def _pack(chunks: list[_Chunk], free: int) -> list[_Chunk]:
    """Greedy by priority. Near code first (up to a share), then scopes, imports, definitions, outline,
    then the rest of the code, nearest first. Code is taken as unbroken runs of lines from the cursor."""
    by_part: dict[str, list[_Chunk]] = {}
    for chunk in chunks:
        by_part.setdefault(chunk.part, []).append(chunk)
    for items in by_part.values():
        items.sort(key=lambda c: c.key)
    chosen: list[_Chunk] = []
    used = 0

    def take_run(part: str, limit: int) -> None:
        nonlocal used
        items = by_part.get(part, [])
        while items and used + items[0].cost <= limit:
            used += items[0].cost
            chosen.append(items.pop(0))

    def take_each(part: str) -> None:
        nonlocal used
        for chunk in list(by_part.get(part, [])):
            if used + chunk.cost <= free:
                used += chunk.cost
                chosen.append(chunk)
                by_part[part].remove(chunk)

    take_run("prefix", int(free * NEAR_PREFIX_SHARE))
    take_run("suffix", used + int(free * NEAR_SUFFIX_SHARE))
    for part in ("scopes", "imports", "definitions", "outline"):
        take_each(part)
    # What is left goes to code again, alternating so both sides grow together.
    while by_part.get("prefix") or by_part.get("suffix"):
        before = used
        take_run("prefix", min(free, used + max(1, (free - used) * 3 // 4)))
        take_run("suffix", free)
        if used == before:
            break
    return chosen


def _assemble(context: CodeContext, chosen: list[_Chunk]) -> dict[str, Any]:
    prefix_lines = sorted((c for c in chosen if c.part == "prefix"), key=lambda c: -c.key)
    suffix_lines = sorted((c for c in chosen if c.part == "suffix"), key=lambda c: c.key)
    ranks = {c.key for c in chosen if c.part == "definitions"}
    return {
        "prefix": "\n".join(c.text for c in prefix_lines),
        "suffix": "\n".join(c.text for c in suffix_lines),
        "scopes": [s for i, s in enumerate(context.scopes) if any(c.part == "scopes" and c.key == i for c in chosen)],
        "imports": [c.text for c in sorted((c for c in chosen if c.part == "imports"), key=lambda c: c.key)],
        "definitions": [d for i, d in enumerate(context.definitions) if i in ranks],
        "outline": [c.text for c in sorted((c for c in chosen if c.part == "outline"), key=lambda c: c.key)],
    }
