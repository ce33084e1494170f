"""The small models' completion prompt: a source file to continue, laid out so that typing leaves its start
(and llama.cpp's evaluated prompt) in place."""

from __future__ import annotations

from dataclasses import dataclass

from lsp.context.code_context import Snippet
from lsp.context.documents import Document
from lsp.context.extract import context_at
from lsp.continuation import code_window, continuation_prompt, continuing, line_comment
from lsp.prompt.templates import PromptStore

SPEC = PromptStore().spec("complete")
LONG = "".join(f"def f{i}(x: int) -> int:\n    return x + {i}\n\n\n" for i in range(200))


@dataclass
class Budget:
    prompt_tokens: int = 300
    max_new_tokens: int = 40
    chars_per_token: float = 3.3


def test_a_short_file_is_the_whole_prompt_after_its_path() -> None:
    doc = Document("file:///w/pkg/stats.py", "python", 1, "def mean(values):\n    return ")
    context = context_at(doc, len(doc.text), root="/w")
    prompt = continuation_prompt(SPEC, context, Budget())
    assert prompt.text == "# pkg/stats.py\ndef mean(values):\n    return "
    assert prompt.messages == [] and prompt.budget.max_new_tokens == 40


def test_a_long_file_fits_the_budget_and_says_which_definition_the_window_is_in() -> None:
    methods = "".join(f"    def m{i}(self) -> int:\n        return {i}\n\n" for i in range(200))
    text = "class Store:\n" + methods + "    def last(self) -> int:\n        return 1\n"
    doc = Document("file:///w/store.py", "python", 1, text)
    prompt = continuation_prompt(SPEC, context_at(doc, len(text) - 2), Budget())
    assert len(prompt.text) <= 300 * 3.3
    assert "# in: class Store:" in prompt.text
    assert prompt.text.endswith("    def last(self) -> int:\n        return ")  # the prefix, to the cursor


def test_typing_leaves_the_start_of_the_window_in_place() -> None:
    window = code_window(LONG, 2000)
    start = LONG.index(window)
    for typed in ("d", "def g(", "def g(y):\n    return y\n"):
        longer = LONG + typed
        assert longer.index(code_window(longer, 2000)) == start
    assert len(window) <= 2000


def test_other_files_definitions_come_first_under_their_paths() -> None:
    doc = Document("file:///w/main.go", "go", 1, "package main\n\nfunc main() {\n\tx := Add(1, 2)\n\t")
    context = context_at(doc, len(doc.text), root="/w")
    context.definitions.append(Snippet("func Add", "func Add(a, b int) int {\n\treturn a + b\n}", "util/add.go", 1.0))
    prompt = continuation_prompt(SPEC, context, Budget())
    assert prompt.text.startswith("// util/add.go\nfunc Add(a, b int) int {")
    assert prompt.text.index("// main.go\npackage main") > prompt.text.index("func Add")


def test_line_comments_by_language() -> None:
    assert line_comment("Python") == "#" and line_comment("Go") == "//" and line_comment("Lua") == "--"
    assert line_comment("no such language") == "#"


def test_only_backends_that_ask_for_it_get_continuation_prompts() -> None:
    class Dialogue:
        completion_style = "dialogue"

    class Continues:
        completion_style = "continuation"

        def completion_budget(self) -> Budget:
            return Budget()

    assert continuing(Dialogue()) is None and continuing(object()) is None
    assert continuing(Continues()) is not None
