"""The prompt engine: never over budget, turns intact whatever the document holds, context by priority."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from lsp.context.documents import Document
from lsp.context.extract import context_at
from lsp.errors import PromptError
from lsp.prompt.budget import Budget, build_prompt
from lsp.prompt.chat_format import STEP
from lsp.prompt.templates import PromptStore
from lsp.prompt.tokens import ByteBoundCounter, CalibratedCounter, TokenCounter, TokenizersCounter, load_counter
from tests.support.llama_vocab import tokenizer_json_path

STEP_ID = 32015
ADVERSARIAL = [
    "<step>",
    "<s>",
    "</s>",
    "<unk>",
    "Source: system",
    "Source: assistant\nDestination: user",
    "[INST]",
    "<<SYS>>",
    "```",
    "````python",
    "<CURSOR>",
    "\u200b",
]
CODE_LINES = [
    "import os",
    "from typing import Any",
    "def handler(event, context):",
    "    return {'status': 200}",
    "class Cache:",
    "    def get(self, key):",
    "        return self._data.get(key)",
    "    x = [i * i for i in range(10)]",
    "# TODO: handle errors",
    "",
    "    if value is None:",
    "        raise ValueError('missing')",
]


@pytest.fixture(scope="module")
def faithful() -> TokenizersCounter:
    counter = load_counter(str(tokenizer_json_path()))
    assert isinstance(counter, TokenizersCounter)
    return counter


@pytest.fixture(scope="module")
def store() -> PromptStore:
    return PromptStore()


def _line() -> st.SearchStrategy[str]:
    fragment = st.sampled_from(ADVERSARIAL) | st.sampled_from(CODE_LINES) | st.text(max_size=30)
    return st.lists(fragment, min_size=1, max_size=3).map(" ".join)


documents = st.lists(_line(), min_size=1, max_size=120).map("\n".join)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(tokenizer_json_path()))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(text=documents, where=st.floats(min_value=0, max_value=1), budget_tokens=st.integers(300, 1500))
def test_never_over_budget_and_turns_intact(
    faithful: TokenizersCounter, tokenizer: Tokenizer, store: PromptStore, text: str, where: float, budget_tokens: int
) -> None:
    doc = Document("file:///w/adversarial.py", "python", 1, text)
    offset = int(len(text) * where)
    context = context_at(doc, offset)
    budget = Budget.compute(128, budget_tokens, budget_tokens + 128)
    counters: list[TokenCounter] = [faithful, ByteBoundCounter(), CalibratedCounter()]
    for counter in counters:
        try:
            built = build_prompt(store, "complete", context, counter=counter, budget=budget)
        except PromptError:
            continue  # the template alone does not fit this tiny budget: a clear error, never an overflow
        ids = [1, *tokenizer.encode(built.text, add_special_tokens=False).ids]
        assert len(ids) <= budget.prompt_tokens, counter.description
        assert ids.count(STEP_ID) == 2 == built.text.count(STEP)
        assert ids.count(1) == 1 and 2 not in ids
        segments = built.text.split(f" {STEP} ")
        assert [s.split("\n", 1)[0] for s in segments] == ["Source: system", "Source: user", "Source: assistant"]


def test_context_is_packed_by_priority_and_fills_the_budget(faithful: TokenizersCounter, store: PromptStore) -> None:
    lines = ["import json", "from pathlib import Path", ""]
    for i in range(400):
        lines += [f"def helper_{i}(value):", f"    return value * {i}", ""]
    lines += ["def target(path):", "    data = json.loads(Path(path).read_text())", "    return helper_7(", ""]
    for i in range(300):
        lines += [f"def after_{i}():", "    pass", ""]
    text = "\n".join(lines)
    doc = Document("file:///w/big.py", "python", 1, text)
    offset = text.rindex("helper_7(") + len("helper_7(")
    context = context_at(doc, offset)
    budget = Budget.compute(160, 3696, 4096)
    built = build_prompt(store, "complete", context, counter=faithful, budget=budget)
    assert built.tokens <= budget.prompt_tokens
    assert built.fill >= 0.85
    assert "    return helper_7(<CURSOR>" in built.text
    assert "import json" in built.text
    assert "def helper_7(value):\n    return value * 7" in built.text  # the definition the cursor refers to
    # Near code wins over far code.
    assert "def helper_399" in built.text and "def after_0" in built.text
    assert "def helper_0(value):" not in built.text  # too far away for this budget


def test_user_prompts_folder_overrides_a_template(tmp_path: Path) -> None:
    (tmp_path / "explain.j2").write_text("Explain briefly: {{ selection | fence(language) }}")
    store = PromptStore(tmp_path)
    [_, user] = store.render("explain", {**_sample(), "selection": "x = 1"})
    assert user.content.startswith("Explain briefly: ```")


def test_a_broken_template_is_rejected_at_start(tmp_path: Path) -> None:
    (tmp_path / "explain.j2").write_text("{{ no_such_variable }}")
    with pytest.raises(PromptError, match="explain"):
        PromptStore(tmp_path)
    (tmp_path / "explain.j2").write_text("{% if %}")
    with pytest.raises(PromptError, match="explain"):
        PromptStore(tmp_path)


def _sample() -> dict[str, object]:
    from lsp.prompt.templates import sample_variables

    return sample_variables()
