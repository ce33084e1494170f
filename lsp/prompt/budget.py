"""Build an action's prompt from context, packed by priority into the model's token budget.

Context is cut into chunks (lines of code, whole imports, whole definitions), each counted once and in
isolation, and taken in priority order until the budget is full: the code nearest the cursor first,
then the enclosing scopes, imports, related definitions, the outline, then more distant code. The result
is counted once more as a whole and shrunk if the sum of parts was optimistic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lsp.context.code_context import CodeContext, Snippet
from lsp.errors import PromptError
from lsp.prompt.chat_format import Message, escape, render_codellama70b
from lsp.prompt.templates import Action, ActionSpec, PromptStore, fence
from lsp.prompt.tokens import TokenCounter

# Share of the free budget the nearest code may take before other context gets a turn.
NEAR_PREFIX_SHARE = 0.45
NEAR_SUFFIX_SHARE = 0.12
BOS_TOKENS = 1
_LIST_PARTS = frozenset({"scopes", "imports", "definitions", "outline"})
_SECTIONS: dict[tuple[Any, ...], int] = {}  # (store, counter, action, language, path, part) -> section tokens


_escape_line = functools.lru_cache(maxsize=65536)(escape)


@dataclass(frozen=True)
class Budget:
    """How many tokens the prompt may use, and why."""

    prompt_tokens: int
    max_new_tokens: int
    max_input_tokens: int | None
    max_total_tokens: int | None

    @staticmethod
    def compute(max_new_tokens: int, max_input_tokens: int | None, max_total_tokens: int | None) -> Budget:
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
    verify: bool = False,
) -> BuiltPrompt:
    """The prompt for `action`, within `budget`. Parts are counted once each; their sum (plus a slack for
    fences and line joins) bounds the whole, so the whole is counted again only when `verify` is set or
    the sum comes close to the budget."""
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

    empty = {
        **fixed,
        "prefix": "",
        "suffix": "",
        "scopes": [],
        "imports": [],
        "definitions": [],
        "outline": [],
    }
    _, _, base = measure(empty)
    free = budget.prompt_tokens - base
    if free < 0:
        what = "selection" if selection else "instruction"
        raise PromptError(
            f"the {what} is too large for the model: the prompt needs {base} tokens before any context, "
            f"the budget is {budget.prompt_tokens}"
        )
    slack = max(16, budget.prompt_tokens // 32)

    def section(part: str, first: _Chunk) -> int:
        """The tokens a list part's section adds beyond its items (its heading and fence): the empty
        template has no such section. Measured once per template, language and path."""
        key = (id(store), id(counter), action, context.language, context.path, part)
        if key not in _SECTIONS:
            _, _, with_one = measure({**empty, **_assemble(context, [first])})
            _SECTIONS[key] = max(0, with_one - base - first.cost)
            while len(_SECTIONS) > 512:
                del _SECTIONS[next(iter(_SECTIONS))]
        return _SECTIONS[key]

    candidates = _chunks(context, counter, action)
    firsts: dict[str, _Chunk] = {}
    for part in sorted(_LIST_PARTS & candidates.keys()):
        items = list(candidates[part])
        candidates[part] = iter(items)
        if items:
            firsts[part] = items[0]
    # the sections of the parts that may appear are set aside before packing, so that the estimate stays
    # within the budget and the whole prompt rarely needs counting again
    reserved = sum(section(part, first) for part, first in firsts.items())
    chosen = _without_repeats(context, _pack(candidates, max(0, free - slack - reserved)))
    for _ in range(8):
        variables = {**fixed, **_assemble(context, chosen)}
        present = {c.part for c in chosen} & _LIST_PARTS
        estimate = base + sum(c.cost for c in chosen) + slack + sum(section(part, firsts[part]) for part in present)
        # Escaped text (zero-width spaces) tokenizes unlike its parts: count those prompts whole.
        escaped = any(_escape_line(c.text) != c.text for c in chosen)
        if verify or escaped or estimate > budget.prompt_tokens:
            messages, text, total = measure(variables)
        else:
            messages = store.render(action, variables)
            text, total = render(messages), estimate
        if total <= budget.prompt_tokens:
            parts = {"template": base}
            for chunk in chosen:
                parts[chunk.part] = parts.get(chunk.part, 0) + chunk.cost
            return BuiltPrompt(action, spec, messages, text, total, budget, counter.exact, parts)
        # The parts' sum was optimistic (tokens merge across line ends): drop the least important tenth.
        chosen = chosen[: max(0, len(chosen) - max(1, len(chosen) // 10))]
    raise PromptError("could not fit the prompt into the model's budget")


def _chunks(context: CodeContext, counter: TokenCounter, action: Action) -> dict[str, Iterator[_Chunk]]:
    """Chunks per part, best first. Code lines are produced lazily: a 5,000-line file is never split and
    counted whole when a few hundred lines fill the budget."""

    def cost(text: str) -> int:
        return counter.count(_escape_line(text))

    def listed(part: str, items: list[tuple[str, int]]) -> Iterator[_Chunk]:
        return iter([_Chunk(part, text, n, rank) for rank, (text, n) in enumerate(items)])

    parts: dict[str, Iterator[_Chunk]] = {}
    if action == "complete":
        parts["prefix"] = (
            _Chunk("prefix", line, cost(line + "\n"), d) for d, line in enumerate(_lines_backward(context.prefix))
        )
        parts["suffix"] = (
            _Chunk("suffix", line, cost(line + "\n"), d) for d, line in enumerate(_lines_forward(context.suffix))
        )
    parts["scopes"] = listed("scopes", [(s.signature, cost(s.signature)) for s in context.scopes])
    parts["imports"] = listed("imports", [(i, cost(i + "\n")) for i in context.imports])
    parts["definitions"] = iter(
        [
            _Chunk("definitions", d.title + d.text, counter.count(rendered_definition(d, context.language)), r)
            for r, d in enumerate(context.definitions)
        ]
    )
    parts["outline"] = (_Chunk("outline", line, cost(line + "\n"), r) for r, line in enumerate(context.outline))
    return parts


def _without_repeats(context: CodeContext, chosen: list[_Chunk]) -> list[_Chunk]:
    """Drop the definitions of this file and the enclosing scopes' signatures that the code shown around
    the cursor already holds: the budget is spent on what the model cannot see otherwise."""
    cursor = context.prefix.count("\n")
    back = max((c.key for c in chosen if c.part == "prefix"), default=-1)
    ahead = max((c.key for c in chosen if c.part == "suffix"), default=-1)
    if back < 0:
        return chosen
    lo, hi = cursor - back, cursor + max(0, ahead)
    definitions = context.definitions
    scopes = context.scopes

    def repeated(chunk: _Chunk) -> bool:
        if chunk.part == "definitions":
            d = definitions[chunk.key]
            return d.path is None and d.start_line >= lo and 0 <= d.end_line <= hi
        if chunk.part == "scopes":
            return lo <= scopes[chunk.key].start_line <= hi
        return False

    return [c for c in chosen if not repeated(c)]


def rendered_definition(definition: Snippet, language: str) -> str:
    """A definition as ``_context.j2`` prints it (where it is from, its fenced text; its title is the
    text's first line, not printed again): what its cost must count, so that prompts with many cross-file
    definitions stay within the budget."""
    label = f"From `{escape(definition.path)}`" if definition.path else "From this file"
    if definition.scope:
        label += f", in {escape(definition.scope)}"
    return f"{label}:\n{fence(definition.text, language)}\n"


def _lines_backward(text: str) -> Iterator[str]:
    end = len(text)
    while True:
        start = text.rfind("\n", 0, end) + 1
        yield text[start:end]
        if start == 0:
            return
        end = start - 1


def _lines_forward(text: str) -> Iterator[str]:
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def _pack(parts: dict[str, Iterator[_Chunk]], free: int) -> list[_Chunk]:
    """Greedy by priority: near code first (up to a share), then scopes, imports, definitions, then the rest
    of the code, nearest first, then the outline. Code is taken as unbroken runs of lines from the cursor."""
    chosen: list[_Chunk] = []
    used = 0
    pending: dict[str, _Chunk | None] = {}

    def peek(part: str) -> _Chunk | None:
        if part not in pending:
            pending[part] = next(parts[part], None) if part in parts else None
        return pending[part]

    def take_run(part: str, limit: int) -> None:
        nonlocal used
        while (chunk := peek(part)) is not None and used + chunk.cost <= limit:
            used += chunk.cost
            chosen.append(chunk)
            del pending[part]

    def take_each(part: str, skip: set[str] | None = None) -> None:
        nonlocal used
        for chunk in parts.get(part, iter(())):
            if skip is not None and chunk.text.strip() in skip:
                continue
            if used + chunk.cost <= free:
                used += chunk.cost
                chosen.append(chunk)

    take_run("prefix", int(free * NEAR_PREFIX_SHARE))
    take_run("suffix", used + int(free * NEAR_SUFFIX_SHARE))
    for part in ("scopes", "imports", "definitions"):
        take_each(part)
    # What is left goes to code again, the text before the cursor first.
    take_run("prefix", used + max(0, (free - used) * 3 // 4))
    take_run("suffix", free)
    take_run("prefix", free)
    # The outline, last: only what the code already shown does not hold.
    take_each("outline", skip={c.text.strip() for c in chosen if c.part in ("prefix", "suffix")})
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
