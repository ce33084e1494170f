"""Syntax services: does a replacement parse without new errors; where does the block being written end."""

from __future__ import annotations

import pytest

from lsp.context import Document, block_end, count_errors, parses_cleanly


def _doc(language_id: str, text: str) -> tuple[Document, int]:
    offset = text.index("|")
    return Document(f"file:///w/x.{language_id}", language_id, 1, text.replace("|", "", 1)), offset


@pytest.mark.parametrize(
    ("language_id", "text", "replacement", "expected"),
    [
        ("python", "def f(x):\n    |\n    return x\n", "y = x + 1", True),
        ("python", "def f(x):\n    |\n    return x\n", "y = (x + 1", False),
        ("python", "def f(x):\n    |\n    return x\n", "if x:\n        y = 1", True),
        ("python", "def f(x):\n    |\n    return x\n", "def g(:", False),
        ("javascript", "function f() {\n  |\n}\n", "let a = [1, 2];", True),
        ("javascript", "function f() {\n  |\n}\n", "let a = {;", False),
        ("go", "package m\n\nfunc f() {\n\t|\n}\n", "x := 1\n\t_ = x", True),
        ("go", "package m\n\nfunc f() {\n\t|\n}\n", "x := ", False),
        ("rust", "fn f() {\n    |\n}\n", "let x: u8 = 1;", True),
        ("rust", "fn f() {\n    |\n}\n", "let x: = 1;", False),
        ("java", "class A {\n  void f() {\n    |\n  }\n}\n", "int x = 1;", True),
        ("java", "class A {\n  void f() {\n    |\n  }\n}\n", "int x = ;", False),
        ("c", "int f(void) {\n    |\n}\n", "int x = 1;", True),
        ("cpp", "int f() {\n    |\n}\n", "auto x = std::vector<int>{1};", True),
        ("lua", "function f()\n  |\nend\n", "local x = 1", True),
        ("lua", "function f()\n  |\nend\n", "local x = ", False),
        ("ruby", "def f\n  |\nend\n", "x = [1, 2]", True),
        ("ruby", "def f\n  |\nend\n", "x = [1, 2", False),
        ("shellscript", "f() {\n  |\n}\n", 'echo "$1"', True),
        ("typescript", "function f(): void {\n  |\n}\n", "const x: number = 1;", True),
        ("typescriptreact", "const A = () => <div>|</div>;\n", "<b>{1}</b>", True),
        ("typescriptreact", "const A = () => <div>|</div>;\n", "{1 +}", False),
    ],
)
def test_parses_cleanly(language_id: str, text: str, replacement: str, expected: bool) -> None:
    doc, offset = _doc(language_id, text)
    assert doc.tree is not None
    assert parses_cleanly(doc, offset, offset, replacement) is expected
    assert doc.text == text.replace("|", "", 1)  # the document is not changed


def test_parses_cleanly_counts_only_new_errors() -> None:
    text = "def f(x:\n    return 1\n\ndef g():\n    pass\n"
    doc = Document("file:///w/a.py", "python", 1, text)
    assert count_errors(doc.tree) >= 1  # type: ignore[arg-type]
    assert parses_cleanly(doc, text.index("pass"), text.index("pass") + 4, "return 2")
    assert not parses_cleanly(doc, text.index("pass"), text.index("pass") + 4, "return (2")
    assert parses_cleanly(doc, text.index(":"), text.index(":"), ")")  # fixing the error is fine


def test_parses_cleanly_replaces_a_range_and_plain_text_is_clean() -> None:
    text = "x = foo(1, 2)\n"
    doc = Document("file:///w/a.py", "python", 1, text)
    start = text.index("foo")
    assert parses_cleanly(doc, start, start + len("foo(1, 2)"), "bar(3)")
    assert not parses_cleanly(doc, start, start + len("foo(1, 2)"), "bar(3")
    plain = Document("file:///w/a.txt", "plaintext", 1, "anything (")
    assert parses_cleanly(plain, 0, 0, "((((")


@pytest.mark.parametrize(
    ("language_id", "text", "inserted", "expected"),
    [
        # the function being written ends: what follows is dropped
        ("python", "def f(x):\n    y = 1\n    |\n\ndef h():\n    pass\n",
         "z = 2\n    return y + z\n\ndef g():\n    pass\n", "z = 2\n    return y + z"),
        # at the top level, the definition the cursor starts
        ("python", "|", "def f():\n    return 1\n\ndef g():\n    pass\n", "def f():\n    return 1"),
        # in a class body: the class ends where the next top-level code starts
        ("python", "class A:\n    def m(self):\n        pass\n\n    |",
         "def n(self):\n        return 2\n\nclass B:\n    pass\n", "def n(self):\n        return 2"),
        ("python", "def f(x):\n    return foo(|\n", "x, 1)\n\nprint(f(2))\n", "x, 1)"),
        ("python", "def f(x):\n    |", "return x", "return x"),
        ("python", "def f(x):\n    |", "y = 1\n    z = 2\n", "y = 1\n    z = 2"),  # ends with the file
        ("javascript", "function f(x) {\n  const y = 1;\n  |", "return x + y;\n}\n\nfunction g() {}\n",
         "return x + y;\n}"),
        ("go", "package m\n\nfunc f() int {\n\t|", "return 1\n}\n\nfunc g() {}\n", "return 1\n}"),
        ("rust", "fn f() -> u8 {\n    |", "1\n}\n\nfn g() {}\n", "1\n}"),
        ("ruby", "def f\n  |", "1\nend\n\ndef g\nend\n", "1\nend"),
        ("lua", "local function f()\n  |", "return 1\nend\n\nprint(f())\n", "return 1\nend"),
        ("java", "class A {\n  int f() {\n    |", "return 1;\n  }\n}\n", "return 1;\n  }"),
    ],
)
def test_block_end(language_id: str, text: str, inserted: str, expected: str) -> None:
    doc, offset = _doc(language_id, text)
    index = block_end(doc, offset, inserted)
    assert index is not None
    assert inserted[:index] == expected


@pytest.mark.parametrize(
    ("language_id", "text", "inserted"),
    [
        ("python", "def f(x):\n    |\n    return x\n", "y = 1\n"),  # the body ends in the old text
        ("python", "x = 1\n|", "y = 2\nz = 3\n"),  # single statements at the top level are no blocks
        ("javascript", "function f() {\n  |\n}\n", "let a = 1;\n"),
    ],
)
def test_block_end_not_in_inserted(language_id: str, text: str, inserted: str) -> None:
    doc, offset = _doc(language_id, text)
    assert block_end(doc, offset, inserted) is None


def test_block_end_with_unicode_returns_str_indices() -> None:
    doc, offset = _doc("python", "def f():\n    |")
    inserted = "return '😀漢'\n\nprint(1)\n"
    index = block_end(doc, offset, inserted)
    assert index is not None and inserted[:index] == "return '😀漢'"


def test_block_end_plain_text() -> None:
    plain = Document("file:///w/a.txt", "plaintext", 1, "x")
    assert block_end(plain, 1, "}\n") is None
