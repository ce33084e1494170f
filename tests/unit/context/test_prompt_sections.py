"""The budget goes to what helps: the imports the nearby code uses, no section repeating the code shown
around the cursor, signatures written as the language writes them (Go's brace, tabs)."""

from __future__ import annotations

from lsp.context import Document, context_at
from lsp.prompt.budget import Budget, build_prompt
from lsp.prompt.templates import PromptStore
from lsp.prompt.tokens import load_counter
from tests.support.llama_vocab import tokenizer_json_path


def _prompt(doc: Document, offset: int, tokens: int = 3000) -> str:
    counter = load_counter(str(tokenizer_json_path()))
    ctx = context_at(doc, offset)
    budget = Budget.compute(160, tokens, None)
    return build_prompt(PromptStore(None), "complete", ctx, counter=counter, budget=budget).text


def test_only_the_imports_the_nearby_code_uses() -> None:
    imports = "".join(f"from lib{i} import thing{i}\n" for i in range(40))
    text = imports + "import json\n\n\ndef dump(x):\n    return json.dumps(thing7(x))\n"
    doc = Document("file:///w/m.py", "python", 1, text)
    ctx = context_at(doc, len(text) - 2)
    assert ctx.imports == ["from lib7 import thing7", "import json"]


def test_no_section_repeats_the_code_shown() -> None:
    helper = "def helper(value: int) -> int:\n    '''Twice — déjà vu 🚀.'''\n    return value * 2\n\n\n"
    filler = "".join(f"x{i} = {i}\n" for i in range(30))  # the helper is out of the near window, in the prompt's
    text = helper + filler + "\n\ndef main():\n    total = helper(3)\n    return "
    doc = Document("file:///w/m.py", "python", 1, text)
    assert any(d.title.startswith("def helper") for d in context_at(doc, len(text)).definitions)
    prompt = _prompt(doc, len(text))
    assert prompt.count("def helper(value: int) -> int") == 1  # in the code, not again as a definition
    assert "The code is inside" not in prompt  # `def main():` is in the code shown too
    far = Document("file:///w/m.py", "python", 1, helper + "y = 1\n" * 2000 + "\n\ndef main():\n    return helper(")
    assert _prompt(far, len(far.text), tokens=1200).count("def helper(value: int) -> int") == 1  # shown once


def test_go_snippets_keep_the_brace_and_tabs() -> None:
    body = "".join(f"\tv{i} := {i}\n" for i in range(30))
    text = (f"package main\n\nfunc compute(a int) int {{\n{body}\treturn a\n}}\n\n" + "var x = 1\n" * 40
            + "func main() {\n\tcompute(1)\n}\n")
    doc = Document("file:///w/main.go", "go", 1, text)
    [snippet] = [d for d in context_at(doc, text.index("compute(1)")).definitions if "compute" in d.title]
    lines = snippet.text.split("\n")
    assert lines[0] == "func compute(a int) int {"
    assert lines[1].startswith("\tv0 :=") and lines[-1] == "\t..."
