"""Where tests go, by language convention (lsp/actions/test_targets.py), and how they join an existing file."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsp.actions.test_targets import Placement, appended, has_tests_module, language_of, place_tests, rust_insertion
from lsp.context.documents import Document

ROOT = "/w"


def place(
    source: str,
    language: str | None = None,
    *,
    files: Iterable[str] = (),
    dirs: Iterable[str] = (),
    root: str | None = ROOT,
) -> Placement:
    """Placement in a made-up file system: `files` and `dirs` are what exists."""
    return place_tests(source, language, root, is_file=set(files).__contains__, is_dir=set(dirs).__contains__)


# ---------------------------------------------------------------------------------------------- python
def test_python_goes_to_the_tests_folder_when_the_project_has_one() -> None:
    assert place("/w/pkg/stats.py", "python", dirs={"/w/tests"}) == Placement("/w/tests/test_stats.py", False, False)


def test_python_goes_beside_the_module_without_a_tests_folder() -> None:
    assert place("/w/pkg/stats.py", "python") == Placement("/w/pkg/test_stats.py", False, False)


def test_python_mirrors_the_package_when_tests_has_that_folder() -> None:
    dirs = {"/w/tests", "/w/tests/sub"}
    assert place("/w/pkg/sub/mod.py", "python", dirs=dirs).path == "/w/tests/sub/test_mod.py"
    assert place("/w/src/pkg/sub/mod.py", "python", dirs=dirs).path == "/w/tests/sub/test_mod.py"


def test_an_existing_test_file_wins_and_is_appended_to() -> None:
    placed = place("/w/pkg/stats.py", "python", files={"/w/pkg/test_stats.py"}, dirs={"/w/tests"})
    assert placed == Placement("/w/pkg/test_stats.py", False, True)


def test_a_package_init_is_tested_under_the_package_name() -> None:
    assert place("/w/shop/__init__.py", "python", dirs={"/w/tests"}).path == "/w/tests/test_shop.py"


def test_a_test_file_gets_its_tests_appended_to_itself() -> None:
    assert place("/w/tests/test_stats.py", "python", dirs={"/w/tests"}) == Placement(
        "/w/tests/test_stats.py", True, True
    )


def test_a_file_outside_the_workspace_is_tested_beside_itself() -> None:
    assert place("/elsewhere/stats.py", "python", dirs={"/w/tests"}).path == "/elsewhere/test_stats.py"
    assert place("/w/pkg/stats.py", "python", dirs={"/w/tests"}, root=None).path == "/w/pkg/test_stats.py"


@given(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True), st.booleans())
def test_python_tests_are_never_the_module_itself(stem: str, has_tests: bool) -> None:
    placed = place(f"/w/pkg/{stem}.py", "python", dirs={"/w/tests"} if has_tests else set())
    if stem.startswith("test_") or stem.endswith("_test") or stem == "conftest":
        assert placed.in_source
        return
    assert not placed.in_source and placed.path != f"/w/pkg/{stem}.py"
    assert posixpath.basename(placed.path) == f"test_{stem}.py"
    assert posixpath.dirname(placed.path) == ("/w/tests" if has_tests else "/w/pkg")


# ---------------------------------------------------------------------------------------------- others
@pytest.mark.parametrize(
    ("source", "language", "files", "dirs", "expected"),
    [
        ("/w/src/util.js", "javascript", set(), set(), "/w/src/util.test.js"),
        ("/w/src/util.js", "javascript", set(), {"/w/src/__tests__"}, "/w/src/__tests__/util.test.js"),
        ("/w/src/util.ts", "typescript", {"/w/src/util.spec.ts"}, set(), "/w/src/util.spec.ts"),
        ("/w/src/Button.tsx", "tsx", set(), set(), "/w/src/Button.test.tsx"),
        ("/w/lib/index.mjs", None, set(), set(), "/w/lib/index.test.mjs"),
        ("/w/pkg/cache.go", "go", set(), set(), "/w/pkg/cache_test.go"),
        ("/w/src/main/java/com/acme/Cart.java", "java", set(), set(), "/w/src/test/java/com/acme/CartTest.java"),
        ("/w/app/src/main/kotlin/acme/Cart.kt", None, set(), set(), "/w/app/src/test/kotlin/acme/CartTest.kt"),
        ("/w/Cart.java", "java", set(), set(), "/w/CartTest.java"),
        ("/w/src/list.c", "c", set(), {"/w/tests"}, "/w/tests/test_list.c"),
        ("/w/src/list.h", "c", set(), set(), "/w/src/list_test.c"),
        ("/w/src/list.hpp", "cpp", set(), {"/w/test"}, "/w/test/test_list.cpp"),
        ("/w/lib/shop/cart.rb", "ruby", set(), {"/w/spec"}, "/w/spec/shop/cart_spec.rb"),
        ("/w/lib/shop/cart.rb", "ruby", set(), {"/w/test"}, "/w/test/shop/cart_test.rb"),
        ("/w/lua/util.lua", "lua", set(), {"/w/spec"}, "/w/spec/util_spec.lua"),
        ("/w/bin/deploy.sh", "bash", set(), {"/w/test"}, "/w/test/deploy.bats"),
        ("/w/bin/deploy.sh", "bash", set(), set(), "/w/bin/deploy.bats"),
        ("/w/scripts/report.zig", None, set(), set(), "/w/scripts/test_report.zig"),
    ],
)
def test_each_language_follows_its_convention(
    source: str, language: str | None, files: set[str], dirs: set[str], expected: str
) -> None:
    placed = place(source, language, files=files, dirs=dirs)
    assert placed.path == expected
    assert not placed.in_source
    assert placed.exists == (expected in files)


@pytest.mark.parametrize(
    "source", ["/w/src/lib.rs", "/w/pkg/cache_test.go", "/w/src/util.test.ts", "/w/src/test/java/a/CartTest.java"]
)
def test_rust_and_test_files_take_the_tests_themselves(source: str) -> None:
    assert place(source) == Placement(source, True, True)


def test_language_comes_from_the_document_else_the_extension() -> None:
    assert language_of("/w/a.py") == "python"
    assert language_of("/w/a.hpp") == "cpp"
    assert language_of("/w/a.unknown") is None
    assert language_of("/w/a.h", "cpp") == "cpp"


# ---------------------------------------------------------------------------------------------- appending
def test_appended_python_tests_are_two_blank_lines_below_the_last_code() -> None:
    assert appended("import os\n", "def test_a():\n    pass\n", "python") == "\n\ndef test_a():\n    pass\n"
    assert appended("x = 1", "def test_a(): pass", "python") == "\n\n\ndef test_a(): pass\n"
    assert appended("x = 1\n\n\n", "def test_a(): pass", "python") == "def test_a(): pass\n"


def test_appended_elsewhere_is_one_blank_line_and_follows_the_files_line_breaks() -> None:
    assert appended("package x\n", "func TestA(t *testing.T) {}", "go") == "\nfunc TestA(t *testing.T) {}\n"
    assert appended("a\r\nb\r\n", "c\nd", "go") == "\r\nc\r\nd\r\n"
    assert appended("", "\n\ncode\n\n", None) == "code\n"


# ---------------------------------------------------------------------------------------------- rust
def _rust(text: str) -> Document:
    return Document("file:///w/src/lib.rs", "rust", 1, text)


def _parses(text: str) -> bool:
    tree = _rust(text).tree
    return tree is not None and not tree.root_node.has_error


def _insert(doc: Document, code: str) -> str:
    offset, text = rust_insertion(doc, code)
    return doc.text[:offset] + text + doc.text[offset:]


def test_rust_tests_without_a_module_are_wrapped_in_one_at_the_end() -> None:
    doc = _rust("pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n// mod tests: none yet\n")
    assert not has_tests_module(doc)
    result = _insert(doc, "#[test]\nfn adds() {\n    assert_eq!(add(1, 2), 3);\n}\n")
    assert result == (
        "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n// mod tests: none yet\n\n"
        "#[cfg(test)]\nmod tests {\n    use super::*;\n\n"
        "    #[test]\n    fn adds() {\n        assert_eq!(add(1, 2), 3);\n    }\n}\n"
    )
    assert _parses(result)


def test_a_reply_with_its_own_module_is_appended_as_is() -> None:
    doc = _rust("pub fn one() -> i32 { 1 }\n")
    module = "#[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n    fn is_one() { assert_eq!(one(), 1); }\n}"
    assert _insert(doc, module) == "pub fn one() -> i32 { 1 }\n\n" + module + "\n"


def test_rust_tests_join_the_existing_module_without_a_second_wrapper() -> None:
    doc = _rust(
        "pub fn one() -> i32 { 1 }\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n"
        "    #[test]\n    fn is_one() { assert_eq!(one(), 1); }\n}\n"
    )
    reply = "#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn not_two() { assert_ne!(one(), 2); }\n}"
    assert has_tests_module(doc)
    result = _insert(doc, reply)
    assert result.count("mod tests") == 1 and result.count("use super::*;") == 1
    assert result.endswith(
        "    fn is_one() { assert_eq!(one(), 1); }\n\n    #[test]\n    fn not_two() { assert_ne!(one(), 2); }\n}\n"
    )
    assert _parses(result)


def test_rust_tests_join_a_module_closed_on_its_own_line() -> None:
    doc = _rust("fn f() {}\n#[cfg(test)]\nmod tests {}\n")
    result = _insert(doc, "#[test]\nfn t() {}")
    assert result == "fn f() {}\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n"
