"""Clean-up of instruct-model replies: a golden corpus of real-looking replies, and the rules one by one.

Each file in data/completions/ is one case: a document with a `<|cursor|>` marker, its language, the raw
reply, and the expected insertion (documents, replies and insertions as lists of lines, joined with the
case's `eol`). The corpus runs the whole clean-up as the server does: single-line or not from the context
engine, and the syntax checks over the parsed document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsp.cleanup import (
    clean_completion,
    completion_decided,
    extract_code,
    reindent,
    strip_prefix_overlap,
    strip_suffix_overlap,
)
from lsp.cleanup.python_indentation import indentation_errors
from lsp.completion.stopper import CompletionStopper
from lsp.context.documents import Document
from lsp.context.extract import context_at
from lsp.context.syntax import block_end, parses_cleanly

CORPUS = Path(__file__).parent / "data" / "completions"
MARK = "<|cursor|>"
EXTENSIONS = {"python": "py", "javascript": "js", "typescript": "ts", "go": "go", "rust": "rs", "java": "java"}


class DocSyntax:
    """The syntax questions over a parsed document, as the assistant answers them."""

    def __init__(self, doc: Document, offset: int) -> None:
        self.doc, self.offset = doc, offset

    def parses(self, inserted: str) -> bool:
        return parses_cleanly(self.doc, self.offset, self.offset, inserted)

    def block_end(self, inserted: str) -> int | None:
        return block_end(self.doc, self.offset, inserted)


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    eol = "\r\n" if case.get("eol") == "crlf" else "\n"
    for key in ("document", "reply", "expected"):
        case[key] = eol.join(case[key])
    return case


def open_case(case: dict[str, Any]) -> tuple[Document, int]:
    text = case["document"]
    offset = text.index(MARK)
    language = case["language"]
    doc = Document(f"file:///w/case.{EXTENSIONS[language]}", language, 1, text.replace(MARK, "", 1))
    return doc, offset


def run(case: dict[str, Any], max_lines: int = 16) -> str:
    doc, offset = open_case(case)
    context = context_at(doc, offset)
    return clean_completion(
        case["reply"],
        context.prefix,
        context.suffix,
        single_line=context.single_line,
        max_lines=case.get("max_lines", max_lines),
        syntax=DocSyntax(doc, offset),
        language=context.language,
    )


CASES = sorted(CORPUS.glob("*.json"))


def test_the_corpus_covers_the_languages_and_the_ways_replies_go_wrong() -> None:
    cases = [load(path) for path in CASES]
    assert len(cases) >= 25
    assert {c["language"] for c in cases} >= set(EXTENSIONS)
    assert any(c["eol"] == "crlf" for c in cases)
    assert any(c["expected"] == "" for c in cases)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_corpus(path: Path) -> None:
    case = load(path)
    assert run(case) == case["expected"], case["note"]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_every_expected_insertion_leaves_the_file_parsing(path: Path) -> None:
    case = load(path)
    doc, offset = open_case(case)
    if case["expected"]:
        assert parses_cleanly(doc, offset, offset, case["expected"])


FILLERS = {
    "python": "\n\ndef filler_{i}(x: int) -> int:\n    return x + {i}\n",
    "javascript": "\nfunction filler{i}(x) {{\n  return x + {i};\n}}\n",
    "typescript": "\nfunction filler{i}(x: number): number {{\n  return x + {i};\n}}\n",
    "go": "\nfunc filler{i}(x int) int {{\n\treturn x + {i}\n}}\n",
    "rust": "\nfn filler{i}(x: i32) -> i32 {{\n    x + {i}\n}}\n",
    "java": "\nclass Filler{i} {{\n    int f(int x) {{\n        return x + {i};\n    }}\n}}\n",
}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_large_documents_are_checked_on_a_window_with_the_same_result(path: Path) -> None:
    case = load(path)
    eol = "\r\n" if case["eol"] == "crlf" else "\n"
    filler = "".join(FILLERS[case["language"]].format(i=i) for i in range(150)).replace("\n", eol)
    if "\n\t" in case["document"]:
        filler = filler.replace("    ", "\t")  # the file's own indentation
    case["document"] += filler
    doc, offset = open_case(case)
    context = context_at(doc, offset)
    stopper = CompletionStopper(context, max_lines=16, doc=doc, offset=offset)
    result = clean_completion(
        case["reply"],
        context.prefix,
        context.suffix,
        single_line=context.single_line,
        max_lines=16,
        syntax=stopper.syntax,
        language=context.language,
    )
    assert result == case["expected"], case["note"]
    window, _ = stopper._local()
    assert window is not doc and len(window.text) < len(doc.text) // 4


# -------------------------------------------------------------------------------------------- extraction
def test_extract_takes_the_first_of_several_blocks() -> None:
    assert extract_code("```py\na = 1\n```\nOr:\n```py\na = 2\n```") == "a = 1"


def test_extract_keeps_an_unclosed_fence_body() -> None:
    assert extract_code("```python\nx = compute(\n    1,") == "x = compute(\n    1,"


def test_extract_of_an_empty_block_is_empty() -> None:
    assert extract_code("```python\n```") == ""


def test_extract_normalises_crlf_replies() -> None:
    assert extract_code("```\r\na\r\nb\r\n```") == "a\nb"


def test_extract_keeps_code_that_merely_starts_with_a_capital() -> None:
    assert extract_code("Counter(words).most_common(3)") == "Counter(words).most_common(3)"


# -------------------------------------------------------------------------------------------- overlaps
def test_prefix_overlap_without_restatement_is_untouched() -> None:
    assert strip_prefix_overlap("b + c", "x = a\ny = ") == ("b + c", None)


def test_prefix_overlap_ignores_whitespace_differences_in_the_restated_line() -> None:
    code, anchor = strip_prefix_overlap("total=sum( values )", "    total = sum(")
    assert code == " values )"  # the model's own spacing after the restated part is kept
    assert anchor == ("", "    ")


def test_prefix_overlap_does_not_take_a_lone_brace_above_a_blank_line_as_a_restatement() -> None:
    assert strip_prefix_overlap("}\nfoo()", "if (x) {\n  y()\n}\n")[0] == "}\nfoo()"


def test_suffix_overlap_drops_the_repeated_next_statement() -> None:
    assert strip_suffix_overlap("a = 1\nb = 2", "\nb = 2\nc = 3\n") == "a = 1"


def test_suffix_overlap_of_a_reply_that_is_all_already_there_is_empty() -> None:
    assert strip_suffix_overlap("foo()", "foo()\n") == ""
    assert strip_suffix_overlap("foo", "foo_bar()\n") == "foo"  # a longer word is not a repeat


def test_suffix_overlap_keeps_a_word_that_only_ends_like_the_suffix() -> None:
    assert strip_suffix_overlap("max", "x)\n") == "max"


# -------------------------------------------------------------------------------------------- indentation
def test_reindent_keeps_a_first_line_that_continues_the_current_line() -> None:
    assert reindent("foo(\n  a,\n)", "    x = ") == "foo(\n      a,\n    )"


def test_reindent_after_a_block_opener_written_from_column_zero() -> None:
    # The line ends with ":" so what follows must be deeper than it: the model's 4 is relative to 0.
    assert reindent("\n    return 1", "    def f(self):") == "\n        return 1"


def test_reindent_at_column_zero_keeps_the_models_columns() -> None:
    assert reindent("    return 1", "def f():\n") == "    return 1"


# -------------------------------------------------------------------------------------------- the pipeline
def test_max_lines_caps_the_suggestion() -> None:
    reply = "```python\n" + "\n".join(f"x{i} = {i}" for i in range(10)) + "\n```"
    assert clean_completion(reply, "", "\n", single_line=False, max_lines=3) == "x0 = 0\nx1 = 1\nx2 = 2"


def test_single_line_keeps_the_first_line_only() -> None:
    assert clean_completion("```\nfoo(1)\nbar(2)\n```", "x = ", "\n", single_line=True, max_lines=16) == "foo(1)"


def test_without_syntax_the_suggestion_is_not_cut_back() -> None:
    assert clean_completion("```\nx = (\n```", "", "", single_line=False, max_lines=5) == "x = ("


class Recorder:
    def __init__(self, good: set[str]) -> None:
        self.good, self.asked = good, list[str]()

    def parses(self, inserted: str) -> bool:
        self.asked.append(inserted)
        return inserted in self.good

    def block_end(self, inserted: str) -> int | None:
        return None


def test_cut_back_tries_the_whole_suggestion_then_shorter_prefixes() -> None:
    syntax = Recorder({"a\nb"})
    result = clean_completion("```\na\nb\nc(\n```", "", "", single_line=False, max_lines=9, syntax=syntax)
    assert result == "a\nb"
    assert syntax.asked == ["a\nb\nc(", "a\nb"]


def test_syntax_sees_the_documents_line_endings() -> None:
    syntax = Recorder({"a\r\nb"})
    result = clean_completion("```\na\nb\n```", "x\r\n", "\r\ny\r\n", single_line=False, max_lines=9, syntax=syntax)
    assert result == "a\r\nb"
    assert syntax.asked == ["a\r\nb"]


@settings(max_examples=300, deadline=None)
@given(
    reply=st.text(alphabet=st.sampled_from(list("ab(){}[];:=\"' \t\n`~<>CURSOR\r")), max_size=80),
    prefix=st.text(alphabet=st.sampled_from(list("ab(){ \t\n:")), max_size=40),
    suffix=st.text(alphabet=st.sampled_from(list("ab)} \t\n;")), max_size=40),
    single=st.booleans(),
)
def test_clean_up_never_fails_and_never_leaks_markup(reply: str, prefix: str, suffix: str, single: bool) -> None:
    text = clean_completion(reply, prefix, suffix, single_line=single, max_lines=4)
    assert "<CURSOR>" not in text
    assert not any(line.strip().startswith("```") for line in text.split("\n"))
    assert text.count("\n") <= 3
    assert text == text.rstrip()


# -------------------------------------------------------------------------------------------- streaming
def decided(reply: str, prefix: str = "x = ", suffix: str = "\n", **kw: Any) -> bool:
    return completion_decided(
        reply, prefix, suffix, single_line=kw.pop("single_line", False), max_lines=kw.pop("max_lines", 16), **kw
    )


def test_a_closed_fence_decides() -> None:
    assert not decided("```python\na = 1\n")
    assert decided("```python\na = 1\n```")


def test_a_single_line_completion_is_decided_when_its_line_ends() -> None:
    assert not decided("```python\nfoo(1", single_line=True)
    assert decided("```python\nfoo(1)\n", single_line=True)


def test_prose_before_the_fence_is_waited_through() -> None:
    assert not decided("Here is the code you asked for:\n", single_line=True)
    assert decided("Here is the code you asked for:\n```python\nfoo(1)\n", single_line=True)


def test_max_lines_decides() -> None:
    assert not decided("```\na\nb\n", max_lines=3)
    assert decided("```\na\nb\nc\n", max_lines=3)


def test_a_restatement_in_progress_is_not_mistaken_for_the_answer() -> None:
    prefix = "def area(self) -> float:\n    r = self.radius\n    return "
    assert not decided("```python\ndef area(self) -> float:\n", prefix=prefix, single_line=True)
    assert not decided("```python\ndef area(self) -> float:\n    r = self.radius\n", prefix=prefix, single_line=True)
    assert decided(
        "```python\ndef area(self) -> float:\n    r = self.radius\n    return r * r\n", prefix=prefix, single_line=True
    )


def test_repeating_the_code_after_the_cursor_decides() -> None:
    suffix = "\n\ndef describe(self) -> str:\n    return 'x'\n"
    assert not decided("```python\nreturn 1\n", prefix="def f():\n    ", suffix=suffix)
    assert decided("```python\nreturn 1\n\ndef describe(self) -> str:\n", prefix="def f():\n    ", suffix=suffix)


def test_the_end_of_the_block_decides() -> None:
    case = load(CORPUS / "py_stops_at_end_of_block.json")
    doc, offset = open_case(case)
    syntax = DocSyntax(doc, offset)
    prefix, suffix = doc.text[:offset], doc.text[offset:]
    partial = "```python\n    return sum(values) / len(values)\n"
    assert not decided(partial, prefix=prefix, suffix=suffix, syntax=syntax)
    assert not decided(partial + "\n\n", prefix=prefix, suffix=suffix, syntax=syntax)
    assert decided(partial + "\n\ndef variance(values):\n", prefix=prefix, suffix=suffix, syntax=syntax)


def test_the_marker_line_sets_the_indentation_of_what_follows_it() -> None:
    prefix = "class A:\n    def f(self):\n        if self.x:\n            "
    reply = "```python\n  def f(self):\n    if self.x:\n      <CURSOR>y = 1\n      return y\n```"
    text = clean_completion(reply, prefix, "\n", single_line=False, max_lines=9)
    assert text == "y = 1\n            return y"


# -------------------------------------------------------------------------------------------- evidence
def test_lines_after_a_first_line_at_the_cursor_keep_the_documents_columns() -> None:
    # The cursor at column 4 of a blank line; the model's second line is one level deeper than the cursor:
    # it is already at the document's columns, not relative to the first line.
    code = "if x:\n        return 1\n    return 2"
    assert reindent(code, "def f(x):\n    ") == code


def test_lines_written_from_column_zero_are_moved_to_the_cursor() -> None:
    assert reindent("if x:\n    return 1\nreturn 2", "def f(x):\n    ") == "if x:\n        return 1\n    return 2"


def test_a_deeper_line_after_a_plain_statement_is_read_as_absolute() -> None:
    # Read relative to the cursor, the second line would be an unexpected indent; read as written, it ends
    # the inner block.
    assert reindent("y = 2\n    return y", "def f(x):\n    if x:\n        ") == "y = 2\n    return y"


def test_no_line_keeps_trailing_whitespace() -> None:
    doc = Document("file:///w/a.py", "python", 1, "def f(x):\n    \n")
    offset = doc.text.index("    \n") + 4
    context = context_at(doc, offset)
    reply = "```python\ny = x   \n    \n    return y  \t\n```"
    result = clean_completion(
        reply, context.prefix, context.suffix, single_line=False, max_lines=16, syntax=DocSyntax(doc, offset)
    )
    assert result == "y = x\n\n    return y"


@pytest.mark.parametrize(
    ("code", "errors"),
    [
        ("def f(v):\n    if not v:\n        return 0\n    return sum(v)\n", 0),
        ("def f(v):\n    x = 1\n        y = 2\n", 1),  # unexpected indent
        ("def f(v):\nreturn 1\n", 1),  # expected an indented block
        ("def f(v):\n    if v:\n            return 0\n        return 1\n", 1),  # unindent matching no level
        ("d = {\n  'a':\n     1}\nif x:  # c\n    pass\n", 0),  # brackets and comments
        ("if x: return 1\ny = 2\n", 0),
        ("class A:\n    def g(self):\n        return (1 +\n", 0),  # an open bracket at the window's end
    ],
)
def test_python_indentation_errors_are_counted(code: str, errors: int) -> None:
    assert indentation_errors(code) == errors


# -------------------------------------------------------------------------------------------- property
CODE_LINES = [
    "x = 1", "if x:", "return x", "for v in values:", "total += v", "pass", "else:", "y = f(x)", "}", "{",
    "while (x) {", "x--;", "return x;", "def g(a):", "(", ")", "'", "  # note",
]


@settings(max_examples=60, deadline=None)
@given(
    case=st.sampled_from(CASES),
    lines=st.lists(st.tuples(st.sampled_from(CODE_LINES), st.integers(0, 4)), min_size=1, max_size=6),
    fenced=st.booleans(),
)
def test_an_insertion_never_adds_syntax_errors_where_a_shorter_cut_does_not(
    case: Path, lines: list[tuple[str, int]], fenced: bool
) -> None:
    loaded = load(case)
    if loaded["eol"] != "lf":
        return
    doc, offset = open_case(loaded)
    code = "\n".join("    " * depth + text for text, depth in lines)
    reply = f"```\n{code}\n```" if fenced else code
    result = run({**loaded, "reply": reply})
    if not result:
        return
    assert parses_cleanly(doc, offset, offset, result)
    if loaded["language"] == "python":
        text = doc.text
        assert indentation_errors(text[:offset] + result + text[offset:]) <= indentation_errors(text)
