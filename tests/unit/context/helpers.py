"""Shared helpers for the context tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tree_sitter import Node, Tree

from lsp.context.documents import Document
from lsp.context.index import FileIndex
from lsp.context.positions import LineIndex


def nodes(tree: Tree) -> Iterator[tuple[str, int, int, tuple[int, int], tuple[int, int], bool]]:
    """Every node of a tree with its position, in document order."""
    stack: list[Node] = [tree.root_node]
    while stack:
        node = stack.pop()
        yield (node.type, node.start_byte, node.end_byte, tuple(node.start_point), tuple(node.end_point),
               node.is_missing)
        stack.extend(reversed(node.children))


def lsp_range(text: str, start: int, end: int) -> tuple[tuple[int, int], tuple[int, int]]:
    index = LineIndex(text)
    return index.position_at(start), index.position_at(end)


def fresh(doc: Document) -> Document:
    """A new document with the same text, parsed from scratch."""
    return Document(doc.uri, doc.language_id, doc.version, doc.text)


DATA = Path(__file__).with_name("data")


def index_symbols(index: FileIndex) -> list[tuple[str, str, int, int, int, int, int]]:
    return sorted((s.base, s.name, s.start, s.end, s.outer, s.sig_end, s.name_at) for s in index.symbols)


def symbols(doc: Document) -> list[tuple[str, str, int, int, int, int, int]]:
    index = doc.index
    assert index is not None
    return index_symbols(index)


def _key(symbol: object) -> tuple[int, int, str, str] | None:
    return symbol.key if symbol is not None else None  # type: ignore[attr-defined,no-any-return]


def index_state(index: FileIndex) -> dict[str, object]:
    """Everything an index derives, comparable between indexes built differently."""
    return {
        "symbols": [(s.key, s.outer, s.kind, s.depth, _key(s.parent), _key(s.container)) for s in index.symbols],
        "outline": [s.key for s in index.outline],
        "imports": [s.key for s in index.imports()],
        "names": {name: sorted(s.key for s in entries) for name, entries in index.by_name.items()},
    }


def assert_index_consistent(doc: Document) -> None:
    """The incrementally maintained index equals one built from scratch on the same tree."""
    index = doc.index
    assert index is not None and doc.tree is not None and doc.language is not None
    assert index_state(index) == index_state(FileIndex(doc.language, doc.tree, doc.data))
