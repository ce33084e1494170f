"""The upkeep a large file needs (its first parse, the definitions index after an edit that re-parses the rest
of the file) goes in small steps that a server runs between messages, and each step leaves the document
readable with what it knew before."""

from __future__ import annotations

import gc
import tracemalloc

from lsp.completion.stopper import CompletionStopper
from lsp.context.documents import Document
from lsp.context.extract import context_at
from lsp.context.index import FileIndex
from lsp.context.snippets import symbol_texts
from lsp.context.store import DocumentStore
from lsp.context.syntax import block_end, parses_cleanly
from tests.e2e.helpers import records
from tests.unit.context.helpers import assert_index_consistent, fresh, index_state, nodes

URI = "file:///project/records.js"
TINY = 1e-6  # a budget no step fits in: each call does the least it can


def _row(text: str) -> int:
    lines = text.split("\n")
    return next(i for i, line in enumerate(lines) if line.startswith("export function helper100(")) + 1


def test_a_large_file_is_parsed_and_indexed_in_steps_after_it_opens() -> None:
    text = records(400)
    store = DocumentStore()
    doc = store.open(URI, "javascript", 1, text, budget=TINY)
    assert store.behind and not doc.caught_up
    steps = 0
    while not store.catch_up(TINY):
        steps += 1
    assert steps > 10
    assert doc.caught_up
    assert list(nodes(doc.tree)) == list(nodes(fresh(doc).tree))  # type: ignore[arg-type]
    assert_index_consistent(doc)


def test_an_index_refresh_in_steps_keeps_what_it_knew_until_it_is_done() -> None:
    text = records(400)
    doc = Document(URI, "javascript", 1, text)
    index = doc.index
    assert index is not None
    before = index_state(index)
    row = _row(text)
    typed = "  compute(this.items["  # an open bracket: the rest of the file is parsed again with error recovery
    doc.apply_changes([(typed, ((row, 0), (row, 0)))], 2)
    doc.tree  # noqa: B018 - the re-parse, done; the index is now stale over the rest of the file
    assert doc.index_due
    moved = index_state(index)  # what was known, moved with the edit
    assert sorted(moved["names"]) == sorted(before["names"])  # type: ignore[call-overload]
    steps = 0
    while not doc.index_step(TINY):
        steps += 1
        # between steps, every definition known before is still there, where it now is, nested as it was
        assert index_state(index) == moved
    assert steps > 10
    assert_index_consistent(doc)


def _bracket_opened(text: str) -> Document:
    """A document with its index built, then edited so that a bracket opens: the rest of the file is parsed
    again, and its index is to be refreshed."""
    doc = Document(URI, "javascript", 1, text)
    doc.index  # noqa: B018
    row = _row(text)
    doc.apply_changes([("  compute(this.items[", ((row, 0), (row, 0)))], 2)
    doc.tree  # noqa: B018
    return doc


def _insert_first_then_refresh(doc: Document, inserted: str) -> FileIndex | None:
    doc.apply_changes([(inserted, ((1, 0), (1, 0)))], 3)
    doc.tree  # noqa: B018
    while not doc.index_step(TINY):
        pass
    return doc.index


def test_an_edit_during_a_refresh_starts_it_again_on_the_new_text() -> None:
    doc = _bracket_opened(records(300))
    for _ in range(5):
        doc.index_step(TINY)
    index = _insert_first_then_refresh(doc, "export function added(x) { return x; }\n")
    assert index is not None and "added" in index.by_name
    assert_index_consistent(doc)


def test_an_edit_during_the_last_steps_of_a_refresh_leaves_a_consistent_index() -> None:
    text = records(200)
    doc = _bracket_opened(text)
    steps = 1
    while not doc.index_step(TINY):
        steps += 1
    # the last steps rebuild the tables; an edit between any two of them must not leave half of it behind
    for at in range(max(1, steps - 12), steps):
        doc = _bracket_opened(text)
        for _ in range(at):
            doc.index_step(TINY)
        index = _insert_first_then_refresh(doc, "export class Added { run() {} }\n")
        assert index is not None and "Added" in index.by_name and index.by_name["run"][0].kind == "method"
        assert_index_consistent(doc)


def test_context_after_the_steps_sees_a_definition_far_from_the_cursor() -> None:
    text = records(300)
    store = DocumentStore()
    doc = store.open(URI, "javascript", 1, text, budget=TINY)
    while not store.catch_up(TINY):
        pass
    row = _row(text)
    typed = "  helper250("
    store.change(URI, 2, [(typed, ((row, 0), (row, 0)))], budget=TINY)
    while not store.catch_up(TINY):
        pass
    context = context_at(doc, doc.lines.offset_at(row, len(typed)))
    assert any(s.title.startswith("export function helper250") or "helper250" in s.title for s in context.definitions)


def test_completion_checks_in_a_huge_file_with_an_open_bracket_answer_as_the_whole_file_would() -> None:
    # the reply's syntax is judged on a window of the file around the cursor, not on all of it
    text = records(1040)
    row = _row(text)
    replies = ["index]);", "index]);\n  return total;\n}\n\nexport function more() {\n  return 1;\n}\n",
               "scale);\n  return total;\n}\n", "return total;\n}\n"]
    for typed in ("  compute(this.items[", "  const total = value * (", "  "):
        doc = Document(URI, "javascript", 1, text)
        doc.apply_changes([(typed, ((row, 0), (row, 0)))], 2)
        offset = doc.lines.offset_at(row, len(typed))
        stopper = CompletionStopper(context_at(doc, offset), max_lines=8, doc=doc, offset=offset)
        assert stopper.syntax is not None
        for reply in replies:
            assert stopper.parses(reply) == parses_cleanly(doc, offset, offset, reply), (typed, reply)
            assert stopper.block_end(reply) == block_end(doc, offset, reply), (typed, reply)


def test_definitions_found_again_by_a_refresh_are_kept_and_their_texts_follow_the_text() -> None:
    # A definition an edit touches is dropped and found again by the refresh. When it is found at the same
    # place it stays the same object (an edit that opens a bracket drops thousands: new objects for all of
    # them each keystroke would keep the garbage collector busy on the event loop), but without its cached
    # texts, since a text can change where no position does.
    text = records(300)
    doc = Document(URI, "javascript", 1, text)
    index = doc.index
    assert index is not None
    far = index.by_name["helper299"][0]
    signature_before = symbol_texts(doc, far)[0]
    line = next(i for i, line in enumerate(text.split("\n")) if line.startswith("export function helper299("))
    column = text.split("\n")[line].index("(") + 1
    doc.apply_changes([("Q", ((line, column), (line, column + 1)))], 2)  # the same length: no position moves
    while not doc.index_step(TINY):
        pass
    assert_index_consistent(doc)
    assert index.by_name["helper299"] == [far]
    signature = symbol_texts(doc, far)[0]
    assert signature == signature_before.replace("(value", "(Qalue") and signature != signature_before


def test_indexing_and_context_of_a_large_file_parsed_in_steps_take_memory_in_proportion_to_it() -> None:
    text = records(400)
    size = len(text.encode())
    row = _row(text)
    gc.collect()
    tracemalloc.start()
    try:
        store = DocumentStore()
        doc = store.open(URI, "javascript", 1, text, budget=0.002)
        while not store.catch_up(0.002):
            pass
        for _ in range(20):
            context_at(doc, doc.lines.offset_at(row + 3, 4))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(doc.index.symbols) > 2000  # type: ignore[union-attr]
    # the syntax tree takes about 40 bytes per byte of text; the text, its copies, its line tables and its
    # ~2,000 definitions a few more (a copy of the text per name read would be hundreds)
    assert held < 60 * size, f"{held / size:.0f} bytes held per byte of a {size}-byte document"
