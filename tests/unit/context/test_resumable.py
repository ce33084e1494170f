"""Resumable parses: they stop within their budget, resume to the tree an unbounded parse gives, and keep
no copy of the text they read (py-tree-sitter 0.26 leaks what a read callback returns)."""

from __future__ import annotations

import gc
import tracemalloc

import tree_sitter
from tree_sitter import Parser

from lsp.context.languages import language_for
from lsp.context.resumable import parse_within

from .helpers import nodes


def _source(functions: int) -> bytes:
    return "".join(
        f"function helper{i}(value) {{\n  let total = value * {i};\n  return total + helper{i}(value - 1);\n}}\n\n"
        for i in range(functions)
    ).encode()


def _ts_language() -> tree_sitter.Language:
    language = language_for("javascript")
    assert language is not None
    return language.ts_language


def test_a_suspended_parse_resumes_to_the_tree_of_an_unbounded_parse() -> None:
    data = _source(3000)
    parser = Parser(_ts_language())
    at = data.index(b"  return total", len(data) // 2)
    edited = data[:at] + b"compute([" + data[at:]
    old = parser.parse(data)
    old.edit(at, at, at + 9, (0, 0), (0, 0), (0, 0))  # points are not used to match text here
    slices = 1
    tree = parse_within(parser, edited, old, 0.0)
    while tree is None:
        slices += 1
        tree = parse_within(parser, edited, old, 0.0)
    assert slices > 1
    assert list(nodes(tree)) == list(nodes(Parser(_ts_language()).parse(edited)))


def test_suspended_parses_keep_no_copy_of_the_text() -> None:
    data = _source(3000)  # ~300 kB: every leaked parse would keep all of it
    parser = Parser(_ts_language())
    parse_within(parser, data, None, 10.0)  # warm-up: caches
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(8):
            while parse_within(parser, data, None, 0.002) is None:
                pass
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < len(data), f"{grown} bytes kept after 8 parses of {len(data)} bytes"


def test_reading_node_texts_of_a_resumed_parse_keeps_nothing() -> None:
    data = _source(2000)
    parser = Parser(_ts_language())
    tree = None
    while tree is None:
        tree = parse_within(parser, data, None, 0.002)
    names = [node for node in nodes_of(tree.root_node) if node.type == "identifier"]
    assert len(names) > 10_000
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        read = sum(len(node.text or b"") for node in names)  # each asks the tree's source: our read callback
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert read > 50_000
    assert grown < len(data) // 4, f"{grown} bytes kept after reading {len(names)} names of a {len(data)}-byte text"


def nodes_of(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    found = [node]
    for child in node.children:
        found.extend(nodes_of(child))
    return found
