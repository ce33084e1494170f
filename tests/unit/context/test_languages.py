"""The language table: LSP ids, extensions, grammars and query files."""

from __future__ import annotations

import pytest

from lsp.context.language_queries import LanguageQueries
from lsp.context.languages import LANGUAGES, QUERY_DIR, language_by_name, language_for, read_query, spec_for
from lsp.context.store import DocumentStore


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
    query = language.index_query
    captures = {query.capture_name(i) for i in range(query.capture_count)}
    assert {"name", "body", "import", "reference"} <= captures
    assert any(c.startswith("scope.") for c in captures)
    assert language.kinds and all(k in language.kinds for k in captures if k.startswith(("scope.", "definition.")))
    for part in (language.reference_query, language.scope_query):
        assert 0 < part.pattern_count < query.pattern_count
    assert all(language.reference_query.capture_name(i) == "reference"
               for i in range(language.reference_query.capture_count))
    assert not language.queries.pending
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


def _fresh_queries(name: str, source: str | None = None) -> LanguageQueries:
    language = language_by_name(name)
    assert language is not None
    return LanguageQueries(name, language.ts_language, read_query(name) if source is None else source)


def test_a_document_opening_compiles_no_query_and_the_catch_up_compiles_one_per_step() -> None:
    language = language_for("javascript")
    assert language is not None
    language.queries = _fresh_queries("javascript")  # as if no JavaScript document was opened before
    store = DocumentStore()
    doc = store.open("file:///w/app.js", "javascript", 1, "export function f(a) { return g(a); }\n")
    assert doc.has_tree and language.queries.compiled == 0
    compiled = [language.queries.compiled]
    while not store.catch_up():
        compiled.append(language.queries.compiled)
    assert compiled[:4] == [0, 1, 2, 3] or compiled[:5] == [0, 0, 1, 2, 3]  # (the line index's step first)
    assert not language.queries.pending
    assert [s.name for s in doc.index.definitions()] == ["f"]  # type: ignore[union-attr]


def test_the_three_queries_hold_the_patterns_of_the_file_they_are_for() -> None:
    source = read_query("typescript")
    queries = _fresh_queries("typescript", source)
    raw = source.encode()
    index = queries.index
    patterns = [raw[index.start_byte_for_pattern(i) : index.end_byte_for_pattern(i)]
                for i in range(index.pattern_count)]
    assert queries.reference.pattern_count == sum(b"@reference" in p for p in patterns) > 0
    assert queries.scope.pattern_count == sum(b"@scope." in p for p in patterns) > 0
    assert {queries.reference.capture_name(i) for i in range(queries.reference.capture_count)} == {"reference"}
    assert queries.kinds["scope.function"] == "function"


def test_a_query_file_that_does_not_compile_leaves_the_language_without_definitions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queries = _fresh_queries("python", "(no_such_node) @scope.function")
    assert queries.index.pattern_count == queries.reference.pattern_count == queries.scope.pattern_count == 0
    assert queries.kinds == {} and not queries.pending
    assert "does not compile" in caplog.text
