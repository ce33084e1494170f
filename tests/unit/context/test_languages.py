"""The language table: LSP ids, extensions, grammars and query files."""

from __future__ import annotations

import pytest

from lsp.context.languages import LANGUAGES, QUERY_DIR, language_by_name, language_for, read_query, spec_for


@pytest.mark.parametrize(
    ("language_id", "path", "expected"),
    [
        ("python", None, "python"),
        ("javascript", None, "javascript"),
        ("javascriptreact", None, "javascript"),
        ("typescript", None, "typescript"),
        ("typescriptreact", None, "tsx"),
        ("go", None, "go"),
        ("rust", None, "rust"),
        ("java", None, "java"),
        ("c", None, "c"),
        ("cpp", None, "cpp"),
        ("lua", None, "lua"),
        ("shellscript", None, "bash"),
        ("sh", None, "bash"),
        ("bash", None, "bash"),
        ("ruby", None, "ruby"),
        ("Python", None, "python"),
        (None, "/w/a/b.py", "python"),
        (None, "/w/App.jsx", "javascript"),
        (None, "/w/App.tsx", "tsx"),
        (None, "/w/lib.mts", "typescript"),
        (None, "/w/x.HPP", "cpp"),
        (None, "/w/x.h", "c"),
        (None, "/w/Rakefile", "ruby"),
        (None, "/home/u/.bashrc", "bash"),
        ("plaintext", "/w/x.rs", "rust"),  # an id we do not know: the extension decides
        ("markdown", "/w/README.md", None),
        (None, None, None),
        ("", "/w/noext", None),
    ],
)
def test_language_for(language_id: str | None, path: str | None, expected: str | None) -> None:
    language = language_for(language_id, path)
    assert (language.name if language else None) == expected


@pytest.mark.parametrize("spec", LANGUAGES, ids=[s.name for s in LANGUAGES])
def test_every_language_loads_with_its_queries(spec: object) -> None:
    name = spec.name  # type: ignore[attr-defined]
    language = language_by_name(name)
    assert language is not None, name
    assert language is language_by_name(name)  # cached
    captures = {language.query.capture_name(i) for i in range(language.query.capture_count)}
    assert {"name", "body", "import", "reference"} <= captures
    assert any(c.startswith("scope.") for c in captures)
    assert language.kinds and all(k in language.kinds for k in captures if k.startswith(("scope.", "definition.")))
    assert language.index_query.pattern_count == language.query.pattern_count
    parser = language.new_parser()
    assert parser.parse(b"").root_node is not None


def test_query_files_are_data() -> None:
    files = {p.stem for p in QUERY_DIR.glob("*.scm")}
    assert {spec.query or spec.name for spec in LANGUAGES} <= files


def test_inherits_directive() -> None:
    cpp = read_query("cpp")
    c = read_query("c")
    assert cpp.startswith(c)
    assert "class_specifier" in cpp


def test_unknown_language_name() -> None:
    assert language_by_name("cobol") is None
    assert spec_for("cobol") is None
