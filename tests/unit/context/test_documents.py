"""Documents and the store: LSP changes, incremental re-parsing, size limits, memory bound."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsp.context.documents import PARSE_SLICE, Document, UnknownDocument
from lsp.context.store import DocumentStore
from lsp.uris import uri_to_path

from .helpers import DATA, assert_index_consistent, fresh, lsp_range, nodes, symbols

PY = '''import os


def area(width: int, height: int) -> int:
    """Area."""
    return width * height


class Shape:
    def __init__(self, name):
        self.name = name

    def describe(self):
        return f"{self.name}: {area(2, 3)}"
'''


def edit(doc: Document, start: int, end: int, text: str) -> None:
    doc.apply_change(text, lsp_range(doc.text, start, end), doc.version + 1)


def test_open_parses_and_reports_language() -> None:
    doc = Document("file:///w/shapes.py", "python", 1, PY)
    assert doc.language is not None and doc.language.name == "python"
    assert doc.tree is not None and not doc.tree.root_node.has_error
    assert doc.text == PY
    assert doc.lines.line_count == PY.count("\n") + 1
    assert doc.path == "/w/shapes.py"


def test_incremental_edit_equals_fresh_parse() -> None:
    doc = Document("file:///w/shapes.py", "python", 1, PY)
    offset = PY.index("width * height")
    edit(doc, offset, offset + len("width"), "w")
    edit(doc, PY.index("class Shape"), PY.index("class Shape"), "# note\n")
    assert "return w * height" in doc.text
    assert doc.version == 3
    assert list(nodes(doc.tree)) == list(nodes(fresh(doc).tree))  # type: ignore[arg-type]


def test_full_replacement() -> None:
    doc = Document("file:///w/a.py", "python", 1, PY)
    doc.apply_change("x = 1\n", None, 2)
    assert doc.text == "x = 1\n"
    assert doc.tree is not None and doc.tree.root_node.child_count == 1


def test_multiple_changes_apply_in_order() -> None:
    store = DocumentStore()
    store.open("file:///w/a.py", "python", 1, "a = 1\nb = 2\n")
    # the second range refers to the text after the first change
    doc = store.change("file:///w/a.py", 2, [("xx", ((0, 0), (0, 1))), ("yy", ((1, 0), (1, 1)))])
    assert doc.text == "xx = 1\nyy = 2\n"
    assert list(nodes(doc.tree)) == list(nodes(fresh(doc).tree))  # type: ignore[arg-type]


def test_edits_with_emoji_cjk_and_crlf() -> None:
    text = "s = '😀漢'\r\ndef f():\r\n    return s\r\n"
    doc = Document("file:///w/u.py", "python", 1, text)
    # LSP columns are UTF-16: after the emoji (2 units) and the CJK char (1 unit)
    doc.apply_change("字", ((0, 8), (0, 8)), 2)
    assert doc.text.startswith("s = '😀漢字'\r\n")
    doc.apply_change("t", ((2, 11), (2, 12)), 3)
    assert doc.text.endswith("    return t\r\n")
    doc.apply_change("\rx = 1", ((0, 10), (0, 10)), 4)  # a lone CR: a line break for LSP only
    assert list(nodes(doc.tree)) == list(nodes(fresh(doc).tree))  # type: ignore[arg-type]
    assert doc.lines.line_count == 5


def test_positions_beyond_the_end_are_clamped() -> None:
    doc = Document("file:///w/a.py", "python", 1, "a = 1\n")
    doc.apply_change("b = 2\n", ((9, 0), (9, 0)), 2)
    assert doc.text == "a = 1\nb = 2\n"
    doc.apply_change("!", ((0, 99), (0, 99)), 3)
    assert doc.text == "a = 1!\nb = 2\n"


def test_store_errors() -> None:
    store = DocumentStore()
    with pytest.raises(UnknownDocument):
        store.get("file:///nope")
    with pytest.raises(KeyError):
        store.change("file:///nope", 2, [])
    store.open("file:///w/a.py", "python", 5, "a = 1\n")
    store.close("file:///w/a.py")
    store.close("file:///w/a.py")
    assert "file:///w/a.py" not in store
    assert len(store) == 0


def test_a_change_whose_version_does_not_increase_is_applied(caplog: pytest.LogCaptureFixture) -> None:
    """The client sent what it changed: dropping it would leave the copies different for good."""
    store = DocumentStore()
    store.open("file:///w/a.py", "python", 5, "a = 1\n")
    store.change("file:///w/a.py", 5, [("b = 2\n", None)])
    store.change("file:///w/a.py", 4, [("c", ((0, 0), (0, 1)))])
    assert store.get("file:///w/a.py").text == "c = 2\n"
    assert sum("applied" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize(
    ("encoding", "column"), [("utf-8", len("s = 'hé".encode())), ("utf-16", 7), ("utf-32", 7)]
)
def test_change_ranges_are_read_in_the_negotiated_encoding(encoding: str, column: int) -> None:
    store = DocumentStore()
    store.encoding = encoding  # type: ignore[assignment]
    store.open("file:///w/s.py", "python", 1, "s = 'héllo' + '😀'\n")
    doc = store.change("file:///w/s.py", 2, [("X", ((0, column), (0, column)))])
    assert doc.text == "s = 'héXllo' + '😀'\n"
    after_emoji = {"utf-8": 21, "utf-16": 18, "utf-32": 17}[encoding]
    store.change("file:///w/s.py", 3, [("Y", ((0, after_emoji), (0, after_emoji)))])
    assert doc.text == "s = 'héXllo' + '😀Y'\n"


def test_a_snapshot_does_not_finish_a_pending_reparse() -> None:
    """The snapshot a completion takes must not hold the server for a long re-parse; the copy parses on
    its own when its tree is read."""
    source = "def f():\n    return 1\n" * 3000
    store = DocumentStore()
    doc = store.open("file:///w/long.py", "python", 1, source)
    store.change(doc.uri, 2, [("(", ((0, 0), (0, 0)))], budget=0.0)
    assert not doc.parsed
    snapshot = doc.snapshot()
    assert not doc.parsed and not snapshot.parsed
    assert snapshot.tree is not None and snapshot.tree.root_node.end_byte == len(snapshot.data)
    while not store.catch_up(PARSE_SLICE):
        pass
    assert doc.tree is not None and doc.tree.root_node.end_byte == len(doc.data)


def test_store_iterates_most_recent_first() -> None:
    store = DocumentStore()
    for name in "abc":
        store.open(f"file:///w/{name}.py", "python", 1, f"{name} = 1\n")
    store.get("file:///w/a.py")
    assert [d.uri[-4:] for d in store] == ["a.py", "c.py", "b.py"]


def test_unknown_language_is_plain_text() -> None:
    doc = Document("file:///w/notes.txt", "plaintext", 1, "hello\nworld\n")
    assert doc.language is None and doc.tree is None and doc.index is None
    doc.apply_change("!", ((0, 5), (0, 5)), 2)
    assert doc.text == "hello!\nworld\n"


def test_language_from_extension_when_id_unknown() -> None:
    doc = Document("file:///w/x.rs", "unknown-id", 1, "fn main() {}\n")
    assert doc.language is not None and doc.language.name == "rust"


def test_binary_and_huge_documents_are_not_parsed() -> None:
    binary = Document("file:///w/b.py", "python", 1, "x = 1\x00\x01\n")
    assert binary.tree is None and binary.index is None
    binary.apply_change("", ((0, 5), (0, 6)), 2)  # the NUL goes away: parsed again
    assert binary.tree is not None
    huge = Document("file:///w/h.py", "python", 1, "x = 1\n" * 100, max_size=300)
    assert huge.tree is None
    huge.apply_change("", ((0, 0), (90, 0)), 2)
    assert huge.tree is not None and huge.tree.root_node.child_count == 10
    huge.apply_change("y = 2\n" * 100, ((0, 0), (0, 0)), 3)
    assert huge.tree is None


def test_store_bounds_tree_memory_and_reparses_on_demand() -> None:
    text = "def f():\n    return 1\n" * 50  # 1100 bytes
    store = DocumentStore(tree_budget=3000)
    docs = [store.open(f"file:///w/m{i}.py", "python", 1, text) for i in range(5)]
    assert [d.has_tree for d in docs] == [False, False, False, True, True]
    assert all(d.index_ready for d in docs[:3])  # the indexes of dropped trees survive
    assert docs[0].tree is not None  # parsed again on demand
    assert docs[0].has_tree and sum(d.has_tree for d in docs) == 2
    # changes to a document without a tree are kept and parsed when needed
    store.change(docs[1].uri, 2, [("g", ((0, 4), (0, 5)))])
    assert not docs[1].has_tree and not docs[1].index_ready
    assert docs[1].text.startswith("def g():")
    assert docs[1].index is not None and docs[1].index.symbols[0].name == "g"


def test_index_is_maintained_across_edits() -> None:
    doc = Document("file:///w/shapes.py", "python", 1, PY)
    assert doc.index is not None
    offset = PY.index("def describe")
    edit(doc, offset + 4, offset + 12, "explain")
    edit(doc, 0, 0, "import sys\n")
    edit(doc, doc.text.index("class Shape"), doc.text.index("class Shape"), "TOP = 1\n\n\n")
    assert symbols(doc) == symbols(fresh(doc))
    assert_index_consistent(doc)
    names = [s.name for s in doc.index.definitions()]  # type: ignore[union-attr]
    assert names == ["area", "TOP", "Shape", "__init__", "explain"]


def test_edits_leave_the_index_stale_for_the_store_to_catch_up() -> None:
    """Keystrokes do not pay for the index: it goes stale, and the store's catch-up (what a server does
    between messages) or the next read brings it up to date."""
    store = DocumentStore()
    doc = store.open("file:///w/shapes.py", "python", 1, PY)
    assert doc.index is not None
    assert store.catch_up() and not store.behind  # (its line index)
    offset = PY.index("def describe")
    store.change(doc.uri, 2, [("explain", lsp_range(doc.text, offset + 4, offset + 12))])
    assert doc.index_stale and store.behind
    steps = 1
    while not store.catch_up():  # (the tree the re-parse replaced is freed in a step of its own)
        steps += 1
    assert steps <= 3
    assert not doc.index_stale and not store.behind
    assert "explain" in [s.name for s in doc.index.definitions()]  # type: ignore[union-attr]
    assert_index_consistent(doc)


def test_a_document_just_opened_gets_its_line_index_from_the_catch_up_not_from_its_first_edit() -> None:
    store = DocumentStore(tree_budget=len(PY) + 10)
    doc = store.open("file:///w/shapes.py", "python", 1, PY)
    assert doc.lines_due and store.behind
    while not store.catch_up():
        pass
    assert not doc.lines_due
    store.change(doc.uri, 2, [("explain", lsp_range(doc.text, 4, 8))])
    assert not doc.lines_due and doc.lines.line_count == PY.count("\n") + 1
    # a document whose tree the store drops to save memory loses its line index too, and does not get it
    # back from the catch-up
    other = store.open("file:///w/other.py", "python", 1, PY)
    while not store.catch_up():
        pass
    assert not doc.has_tree and not doc.lines_due and not other.lines_due


def test_a_document_just_opened_gets_its_index_from_the_catch_up_not_from_a_request() -> None:
    """Another file's index is read by the next completion's cross-file context: built between messages
    after the file opens, it is not built on that request's path (~60 ms for a 5,000-line file)."""
    store = DocumentStore()
    other = store.open("file:///w/other.py", "python", 1, PY)
    plain = store.open("file:///w/notes.txt", "plaintext", 1, "no tree, no index")
    assert not other.index_ready and store.behind
    while not store.catch_up():
        pass
    assert other.index_ready and not store.behind
    assert "Shape" in [s.name for s in other.index.definitions()]  # type: ignore[union-attr]
    assert plain.index is None


def test_a_snapshot_is_unaffected_by_later_edits() -> None:
    store = DocumentStore()
    doc = store.open("file:///w/shapes.py", "python", 1, PY)
    assert doc.index is not None
    snapshot = doc.snapshot()
    offset = PY.index("def describe")
    store.change(doc.uri, 2, [("explain", lsp_range(doc.text, offset + 4, offset + 12))])
    assert snapshot.text == PY and snapshot.version == 1 and "explain" in doc.text
    assert list(nodes(snapshot.tree)) == list(nodes(fresh(snapshot).tree))  # type: ignore[arg-type]
    assert "describe" in [s.name for s in snapshot.index.definitions()]  # type: ignore[union-attr]
    assert "explain" in [s.name for s in doc.index.definitions()]
    assert snapshot.uri not in store or store.get(snapshot.uri) is doc


def test_uri_to_path() -> None:
    assert uri_to_path("file:///home/u/a%20b.py") == "/home/u/a b.py"
    assert uri_to_path("file:///c%3A/x/y.py") == "c:/x/y.py"
    assert uri_to_path("untitled:Untitled-1") == "Untitled-1"
    assert uri_to_path("/plain/path.py") == "/plain/path.py"


# ---------------------------------------------------------------------------------------------- property
SNIPPETS = ["x", "(", ")", ":", "\n", "    ", "def ", "class ", "return ", '"', "😀", "漢", "\r\n", "#", "{", "}", ";"]
SAMPLES = {
    "python": "inventory.py",
    "javascript": "inventory.js",
    "go": "inventory.go",
    "rust": "inventory.rs",
    "cpp": "inventory.cpp",
}


def _random_edits(data: st.DataObject, doc: Document, count: int) -> list[tuple[int, int, str, str]]:
    """Apply random edits; return them as (start, end of the new text, new text, old text) for undoing."""
    done = []
    for _ in range(count):
        size = len(doc.text)
        start = data.draw(st.integers(0, size))
        end = data.draw(st.integers(start, min(size, start + 12)))
        # keep CRLF pairs whole so that offsets and LSP positions agree
        if 0 < start < size and doc.text[start - 1 : start + 1] == "\r\n":
            start -= 1
        if 0 < end < size and doc.text[end - 1 : end + 1] == "\r\n":
            end += 1
        text = "".join(data.draw(st.lists(st.sampled_from(SNIPPETS), max_size=4)))
        old = doc.text[start:end]
        edit(doc, start, end, text)
        done.append((start, start + len(text), text, old))
    return done


def test_a_comment_made_by_an_edit_is_attached_like_a_fresh_parse_does_when_two_regions_are_refreshed() -> None:
    # found by test_random_edits_match_a_fresh_parse: with two regions to refresh, the definition right after
    # the first (`name: str`, found again in the second) had its doc comments recomputed from the node at its
    # range, the assignment, not the statement the query captures, and lost the comment above it
    text = (DATA / SAMPLES["python"]).read_text()
    doc = Document("file:///w/inventory.py", "python", 1, text)
    assert doc.index is not None
    comment_at = text.index("class Item:")
    edit(doc, comment_at - 124, comment_at - 122, "")  # in parse_quantity, above: a region of its own
    edit(doc, comment_at - 2, comment_at - 2, "#")  # "#class Item:", a comment above `name: str`
    assert_index_consistent(doc)


@pytest.mark.parametrize("language", sorted(SAMPLES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_match_a_fresh_parse(language: str, data: st.DataObject) -> None:
    """Incremental parsing gives the fresh parse's tree whenever that tree is error-free (with syntax errors,
    tree-sitter's error recovery may legitimately depend on history), and the index always matches."""
    text = (DATA / SAMPLES[language]).read_text()
    doc = Document(f"file:///w/{SAMPLES[language]}", language, 1, text)
    assert doc.index is not None
    _random_edits(data, doc, data.draw(st.integers(1, 6)))
    reference = fresh(doc)
    assert doc.text == reference.text
    assert doc.tree is not None and reference.tree is not None
    assert_index_consistent(doc)
    if not reference.tree.root_node.has_error:
        assert list(nodes(doc.tree)) == list(nodes(reference.tree))
        assert symbols(doc) == symbols(reference)
    else:
        assert doc.tree.root_node.has_error


@pytest.mark.parametrize("language", sorted(SAMPLES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_edits_then_undo_give_the_original_tree(language: str, data: st.DataObject) -> None:
    text = (DATA / SAMPLES[language]).read_text()
    doc = Document(f"file:///w/{SAMPLES[language]}", language, 1, text)
    original = list(nodes(doc.tree))  # type: ignore[arg-type]
    assert doc.index is not None
    original_symbols = symbols(doc)
    done = _random_edits(data, doc, data.draw(st.integers(1, 8)))
    for start, end, _, old in reversed(done):
        edit(doc, start, end, old)
    assert doc.text == text
    assert list(nodes(doc.tree)) == original  # type: ignore[arg-type]
    assert symbols(doc) == original_symbols
    assert_index_consistent(doc)


def test_default_size_limit_keeps_huge_documents_as_text() -> None:
    from lsp.context import DEFAULT_MAX_SIZE, context_at

    text = "x = 1\n" * (DEFAULT_MAX_SIZE // 6 + 10)
    doc = Document("file:///w/huge.py", "python", 1, text)
    assert doc.tree is None and doc.index is None
    ctx = context_at(doc, len(text) // 2)
    assert ctx.language == "Python" and ctx.scopes == [] and len(ctx.prefix) == len(text) // 2
    doc.apply_change("y", ((3, 0), (3, 1)), 2)
    assert doc.text.split("\n")[3] == "y = 1" and doc.tree is None


# ---------------------------------------------------------------------------------------------- suspended re-parses
def _big_javascript(functions: int = 400) -> str:
    return "".join(
        f"export function helper{i}(value, scale = 1) {{\n  let total = 0;\n"
        f"  for (let step = 0; step < {i % 7 + 2}; step++) {{\n    total += value * scale + helper{i}(step);\n  }}\n"
        "  return total;\n}\n\n"
        for i in range(functions)
    )


def test_a_long_reparse_is_suspended_and_resumed_in_slices() -> None:
    """Opening a bracket makes tree-sitter re-parse the rest of the file: with a budget the edit returns
    at once, the parse goes on slice by slice, and the finished tree is the one an unbounded parse gives."""
    text = _big_javascript()
    doc = Document("file:///w/big.js", "javascript", 1, text)
    reference = Document("file:///w/big.js", "javascript", 1, text)
    at = text.index("  return total;", len(text) // 2)
    typed = "compute(this.items["
    for i, char in enumerate(typed):
        doc.apply_change(char, lsp_range(doc.text, at + i, at + i), doc.version + 1, budget=0.0)
        reference.apply_change(char, lsp_range(reference.text, at + i, at + i), reference.version + 1)
    assert not doc.parsed and doc.has_tree
    steps = 1
    while not doc.parse_step(0.0):  # (tree-sitter makes some progress before it checks the time)
        steps += 1
    assert steps > 1 and doc.parsed
    assert list(nodes(doc.tree)) == list(nodes(reference.tree))  # type: ignore[arg-type]
    assert symbols(doc) == symbols(reference)


def test_reading_the_tree_finishes_a_pending_parse_and_a_new_edit_restarts_it() -> None:
    text = _big_javascript()
    doc = Document("file:///w/big.js", "javascript", 1, text)
    at = text.index("  return total;", len(text) // 2)
    doc.apply_change("f(", lsp_range(doc.text, at, at), 2, budget=0.0)
    assert not doc.parsed
    doc.parse_step(0.0)  # part of the way, then the user types on
    doc.apply_change(");", lsp_range(doc.text, at + 2, at + 2), 3, budget=0.0)
    tree = doc.tree
    assert doc.parsed and tree is not None
    assert list(nodes(tree)) == list(nodes(fresh(doc).tree))  # type: ignore[arg-type]
    assert not tree.root_node.has_error  # "f();" closed the bracket again
    assert_index_consistent(doc)


def test_suspended_parses_of_two_documents_in_one_language_do_not_mix() -> None:
    store = DocumentStore()
    texts = [_big_javascript(300), _big_javascript(200).replace("helper", "util")]
    for i, text in enumerate(texts):
        store.open(f"file:///w/{i}.js", "javascript", 1, text)
    for i, text in enumerate(texts):
        at = text.index("  return total;", len(text) // 2)
        store.change(f"file:///w/{i}.js", 2, [("g([", lsp_range(text, at, at))], budget=0.0)
    assert store.behind
    rounds = 0
    while not store.catch_up(0.001):
        rounds += 1
        assert rounds < 10_000
    assert not store.behind
    for i in range(2):
        doc = store.get(f"file:///w/{i}.js")
        assert list(nodes(doc.tree)) == list(nodes(fresh(doc).tree))  # type: ignore[arg-type]


@pytest.mark.parametrize("language", sorted(SAMPLES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edits_with_suspended_parses_match_unbounded_parsing(language: str, data: st.DataObject) -> None:
    """Edits with tiny budgets, slices of progress in between: the tree read at the end is the fresh parse's
    when that has no syntax error (as for unbounded parsing: error recovery may depend on history), and the
    index matches it."""
    text = (DATA / SAMPLES[language]).read_text()
    doc = Document(f"file:///w/{SAMPLES[language]}", language, 1, text)
    unbounded = Document(f"file:///w/{SAMPLES[language]}", language, 1, text)
    assert doc.index is not None and unbounded.index is not None
    for _ in range(data.draw(st.integers(1, 6))):
        size = len(doc.text)
        start = data.draw(st.integers(0, size))
        end = data.draw(st.integers(start, min(size, start + 12)))
        if any(0 < at < size and doc.text[at - 1 : at + 1] == "\r\n" for at in (start, end)):
            continue
        text = "".join(data.draw(st.lists(st.sampled_from(SNIPPETS), max_size=4)))
        budget = data.draw(st.sampled_from([0.0, 0.0001, None]))
        doc.apply_change(text, lsp_range(doc.text, start, end), doc.version + 1, budget=budget)
        unbounded.apply_change(text, lsp_range(unbounded.text, start, end), unbounded.version + 1)
        for _ in range(data.draw(st.integers(0, 2))):
            doc.parse_step(0.0)
    assert doc.text == unbounded.text
    reference = fresh(doc)
    assert doc.tree is not None and reference.tree is not None
    assert doc.parsed
    assert_index_consistent(doc)
    if not reference.tree.root_node.has_error:
        assert list(nodes(doc.tree)) == list(nodes(reference.tree))
        assert symbols(doc) == symbols(reference) == symbols(unbounded)
    else:
        assert doc.tree.root_node.has_error


def test_a_tree_replaced_by_a_re_parse_is_freed_by_the_catch_up_and_a_snapshot_keeps_its_own() -> None:
    store = DocumentStore()
    doc = store.open("file:///w/shapes.py", "python", 1, PY)
    while not store.catch_up():
        pass
    offset = PY.index("def describe")
    store.change(doc.uri, 2, [("(", lsp_range(doc.text, offset, offset))], budget=1e-6)
    snapshot = doc.snapshot()
    assert snapshot.tree is not None  # the snapshot finishes the re-parse in a parser of its own
    assert not doc.retired  # what the snapshot replaced is the snapshot's
    assert doc.tree is not None and doc.retired  # the document's own re-parse: its old tree is left to free
    assert store.behind
    while not store.catch_up():
        pass
    assert not doc.retired
