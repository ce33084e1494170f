"""#14: a cross-file definition costs what the prompt prints for it (its title, its path once, its fence),
so a prompt with many of them stays within the budget without counting it whole."""

from __future__ import annotations

import pytest

from lsp.context.code_context import CodeContext, Snippet
from lsp.prompt.budget import Budget, build_prompt
from lsp.prompt.templates import PromptStore
from lsp.prompt.tokens import TokenizersCounter, load_counter
from tests.support.llama_vocab import tokenizer_json_path


@pytest.fixture(scope="module")
def counter() -> TokenizersCounter:
    loaded = load_counter(str(tokenizer_json_path()))
    assert isinstance(loaded, TokenizersCounter)
    return loaded


def _context(definitions: list[Snippet]) -> CodeContext:
    body = "".join(f"    value_{i} = compute_{i}(value_{i - 1})  # ünïcode 数据 🚀\n" for i in range(1, 400))
    return CodeContext(
        language="Python", path="src/app/main.py", prefix="def main():\n" + body, suffix="\n    return value\n",
        scopes=[], imports=[], definitions=definitions, outline=[], single_line=False,
    )


def _definitions(count: int) -> list[Snippet]:
    path = "packages/very_long_package_name/subpackage_with_a_long_name/module_named_at_length_{}.py"
    return [
        Snippet(title=f"def compute_{i}(x)", text=f"def compute_{i}(x):\n    return x + {i}",
                path=path.format(i), score=1.0 - i / 100)
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [4, 12, 30])
def test_prompts_with_many_cross_file_definitions_fit_the_budget(count: int, counter: TokenizersCounter) -> None:
    store = PromptStore(None)
    for total in (1200, 2000, 3451):
        budget = Budget.compute(160, total, None)
        prompt = build_prompt(store, "complete", _context(_definitions(count)), counter=counter, budget=budget)
        whole = counter.count(prompt.text) + 1  # what TGI counts, with its <s>
        assert whole <= budget.prompt_tokens
        assert prompt.tokens >= whole - 2  # the estimate does not hide tokens the prompt holds
        shown = prompt.text.count("module_named_at_length_")
        assert shown == prompt.text.count("def compute_")  # each path printed once per definition


def test_the_path_is_printed_once() -> None:
    store = PromptStore(None)
    counter = load_counter(str(tokenizer_json_path()))
    budget = Budget.compute(160, 3000, None)
    [definition] = _definitions(1)
    prompt = build_prompt(store, "complete", _context([definition]), counter=counter, budget=budget)
    assert prompt.text.count(definition.path or "") == 1
