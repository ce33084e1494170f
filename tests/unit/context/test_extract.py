"""Context extraction per language: enclosing scopes, imports, related definitions (this file and other open
files), outline, single-line heuristics, target ranges and selections."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from lsp.context import (
    CodeContext,
    Document,
    context_at,
    selection_context,
    target_range,
)

from .helpers import DATA


@dataclass(frozen=True)
class Case:
    language_id: str
    file: str
    marker: str  # the cursor is put at the start of this text
    scopes: list[tuple[str, str]]  # (kind, name), outermost first
    first_import: str
    local_definition: str  # title of a definition of this file referred to near the cursor
    other_file: str  # another open document...
    other_language_id: str
    other_text: str
    other_definition: str  # ...and the title of its definition the code refers to
    outline: list[str]  # some lines of the outline


CASES = [
    Case(
        "python", "inventory.py", 'log_event("restock"',
        [("class", "Inventory"), ("method", "restock")],
        "from __future__ import annotations",
        "class Item",
        "events.py", "python",
        "import logging\n\n\ndef log_event(what: str, count: int) -> None:\n"
        '    """Log a stock event."""\n    logging.info("%s %d", what, count)\n',
        "def log_event(what: str, count: int) -> None",
        [
            "def parse_quantity(raw: str) -> int:",
            "class Inventory:",
            "    def add(self, name: str, raw_quantity: str) -> Item:",
        ],
    ),
    Case(
        "javascript", "inventory.js", 'logEvent("restock"',
        [("function", "restock")],
        'import { readFile, writeFile } from "fs/promises";',
        "class Item",
        "events.js", "javascript",
        "export function logEvent(what, count) {\n  console.log(what, count);\n}\n",
        "export function logEvent(what, count)",
        ["export function parseQuantity(raw)", "class Item", "  totalWeight(unit)"],
    ),
    Case(
        "javascriptreact", "Inventory.jsx", "<td>{formatQuantity",
        [("function", "Row")],
        'import React, { useState } from "react";',
        "",
        "format.js", "javascript",
        "export function formatQuantity(quantity) {\n  return quantity.toLocaleString();\n}\n",
        "export function formatQuantity(quantity)",
        ["function Row({ item })", "export default function InventoryTable({ items })"],
    ),
    Case(
        "typescript", "inventory.ts", 'logEvent("restock"',
        [("function", "restock")],
        'import { promises as fs } from "fs";',
        "export class Inventory",
        "events.ts", "typescript",
        "export function logEvent(what: string, count: number): void {\n  console.log(what, count);\n}\n",
        "export function logEvent(what: string, count: number): void",
        ["export interface Item", "export class Inventory", "  add(name: string, rawQuantity: string): Item"],
    ),
    Case(
        "typescriptreact", "InventoryTable.tsx", "visible.map",
        [("function", "InventoryTable")],
        'import React, { useState } from "react";',
        "",
        "inventory.ts", "typescript",
        "export interface Item {\n  name: string;\n  quantity: number;\n}\n",
        "export interface Item",
        ["interface Props", "function formatQuantity(quantity: number): string"],
    ),
    Case(
        "go", "inventory.go", 'logEvent("save"',
        [("method", "Save")],
        'import (\n\t"encoding/json"',
        "type Item struct",
        "events.go", "go",
        "package inventory\n\nimport \"log\"\n\n// logEvent logs a stock event.\n"
        "func logEvent(what string, count int) {\n\tlog.Printf(\"%s %d\", what, count)\n}\n",
        "func logEvent(what string, count int)",
        ["type Item struct", "func ParseQuantity(raw string) (int, error)", "func (inv *Inventory) Save() error"],
    ),
    Case(
        "rust", "inventory.rs", 'log_event("save"',
        [("impl", "Inventory"), ("method", "save")],
        "use std::collections::HashMap;",
        "pub struct Item",
        "events.rs", "rust",
        "/// Log a stock event.\npub fn log_event(what: &str, count: usize) {\n    println!(\"{what} {count}\");\n}\n",
        "pub fn log_event(what: &str, count: usize)",
        ["pub struct Item", "impl Store for Inventory", "    pub fn new(path: &Path) -> Self"],
    ),
    Case(
        "java", "Inventory.java", 'Events.log("save"',
        [("class", "Inventory"), ("method", "save")],
        "import java.io.IOException;",
        "static class Item",
        "Events.java", "java",
        "package com.example.inventory;\n\nfinal class Events {\n"
        "    static void log(String what, int count) {\n        System.out.println(what + count);\n    }\n}\n",
        "final class Events",
        ["public class Inventory", "    public Item add(String name, String rawQuantity)"],
    ),
    Case(
        "c", "inventory.c", 'log_event("save"',
        [("function", "inventory_save")],
        "#include <stdio.h>",
        "typedef struct inventory",
        "events.h", "c",
        "#pragma once\n\n/* Log a stock event. */\nvoid log_event(const char *what, int count);\n",
        "void log_event(const char *what, int count);",
        ["struct item", "static int parse_quantity(const char *raw)"],
    ),
    Case(
        "cpp", "inventory.cpp", 'logEvent("add"',
        [("namespace", "inventory"), ("class", "Inventory"), ("method", "add")],
        "#include <map>",
        "int parseQuantity(const std::string &raw)",
        "events.hpp", "cpp",
        "#pragma once\n#include <string>\n\nvoid logEvent(const std::string &what, int count);\n",
        "void logEvent(const std::string &what, int count);",
        [
            "int parseQuantity(const std::string &raw)",
            "class Inventory",
            "template <typename T> T clampQuantity(T value, T limit)",
        ],
    ),
    Case(
        "lua", "inventory.lua", 'util.log_event("restock"',
        [("function", "restock")],
        'local json = require("json")',
        "local Inventory = {}",
        "util.lua", "lua",
        "local M = {}\n\n-- Log a stock event.\nfunction M.log_event(what, count)\n"
        "  print(what, count)\nend\n\nreturn M\n",
        "function M.log_event(what, count)",
        ["local function parse_quantity(raw)", "function Inventory:add(name, raw)"],
    ),
    Case(
        "shellscript", "inventory.sh", 'log_event "saved"',
        [("function", "save_all")],
        "source ./lib/common.sh",
        'DEFAULT_PATH="inventory.txt"',
        "lib/common.sh", "shellscript",
        "#!/bin/sh\n# Log a stock event.\nlog_event() {\n  echo \"$1 $2\" >&2\n}\n",
        "log_event()",
        ["parse_quantity()", "function save_all"],
    ),
    Case(
        "ruby", "inventory.rb", 'Util.log_event("save"',
        [("module", "Shop"), ("class", "Inventory"), ("method", "save")],
        'require "json"',
        "class Item",
        "lib/util.rb", "ruby",
        "module Util\n  # Log a stock event.\n  def self.log_event(what, count)\n"
        "    puts \"#{what} #{count}\"\n  end\nend\n",
        "module Util",
        ["module Shop", "  class Inventory", "    def add(name, raw)"],
    ),
]


def _context(case: Case) -> tuple[Document, CodeContext]:
    text = (DATA / case.file).read_text()
    doc = Document(f"file:///work/shop/{case.file}", case.language_id, 1, text)
    other = Document(f"file:///work/shop/{case.other_file}", case.other_language_id, 1, case.other_text)
    unrelated = Document("file:///work/shop/notes.txt", "plaintext", 1, "log_event Item logEvent\n")
    offset = text.index(case.marker)
    return doc, context_at(doc, offset, others=[unrelated, other, doc], root="file:///work/shop")


@pytest.mark.parametrize("case", CASES, ids=[c.language_id for c in CASES])
def test_context_per_language(case: Case) -> None:
    doc, ctx = _context(case)
    assert doc.tree is not None and not doc.tree.root_node.has_error
    assert ctx.language == doc.language.display_name  # type: ignore[union-attr]
    assert ctx.path == case.file
    assert ctx.prefix + ctx.suffix == doc.text
    assert ctx.suffix.startswith(case.marker)
    assert [(s.kind, s.name) for s in ctx.scopes] == case.scopes
    innermost = ctx.scopes[-1]
    assert case.marker.split("(")[0].split(" ")[0] not in innermost.signature
    assert innermost.start_line < doc.lines.line_of(len(ctx.prefix)) <= innermost.end_line
    # only the imports whose names the nearby code uses
    everything = [line for line in doc.text.split("\n") if line.startswith(case.first_import.split()[0])]
    assert ctx.imports and len(ctx.imports) <= len(everything) + 1
    titles = [d.title for d in ctx.definitions]
    if case.local_definition:
        assert case.local_definition in titles
    assert case.other_definition in titles
    other = next(d for d in ctx.definitions if d.title == case.other_definition)
    assert other.path == case.other_file and other.path not in other.title  # the prompt prints it once
    assert other.text.strip() and other.score > 0
    assert all(d.path != "notes.txt" for d in ctx.definitions)
    assert [d.score for d in ctx.definitions] == sorted((d.score for d in ctx.definitions), reverse=True)
    for line in case.outline:
        assert line in ctx.outline
    assert ctx.single_line  # the cursor is before code on its line


def test_scope_signatures_and_lines() -> None:
    text = (DATA / "inventory.py").read_text()
    doc = Document("file:///w/inventory.py", "python", 1, text)
    ctx = context_at(doc, text.index("item.quantity += parse_quantity"))
    assert [s.signature for s in ctx.scopes] == [
        "class Inventory:",
        "def add(self, name: str, raw_quantity: str) -> Item:",
    ]
    lines = text.split("\n")
    assert lines[ctx.scopes[1].start_line].strip().startswith("def add(")
    assert lines[ctx.scopes[1].end_line].strip() == "return item"
    assert "def parse_quantity(raw: str) -> int" in [d.title for d in ctx.definitions]
    snippet = next(d for d in ctx.definitions if d.title == "def parse_quantity(raw: str) -> int")
    assert snippet.text.startswith("def parse_quantity(raw: str) -> int:\n    \"\"\"Parse a quantity")
    assert snippet.path is None
    assert text.split("\n")[snippet.start_line].startswith("def parse_quantity")


def test_python_cursor_on_indented_blank_line_after_a_body() -> None:
    text = "class A:\n    def f(self):\n        x = 1\n        \n\ndef g():\n    pass\n"
    doc = Document("file:///w/a.py", "python", 1, text)
    blank = text.index("        \n") + 8
    assert [s.name for s in context_at(doc, blank).scopes] == ["A", "f"]
    assert [s.name for s in context_at(doc, blank - 4).scopes] == ["A"]
    assert [s.name for s in context_at(doc, text.index("def g")).scopes] == []
    assert [s.name for s in context_at(doc, len(text)).scopes] == []


def test_closed_blocks_end_at_their_closing_token() -> None:
    text = "function f() {\n  return 1;\n}\nconst x = 2;\n"
    doc = Document("file:///w/a.js", "javascript", 1, text)
    assert [s.name for s in context_at(doc, text.index("}") + 1).scopes] == []
    assert [s.name for s in context_at(doc, text.index("}")).scopes] == ["f"]


def test_large_definitions_are_summarised() -> None:
    body = "\n".join(f"        self.v{i} = {i}" for i in range(40))
    other = Document(
        "file:///w/big.py", "python", 1,
        f"class Big:\n    def __init__(self):\n{body}\n\n    def run(self, n):\n        return n\n",
    )
    doc = Document("file:///w/main.py", "python", 1, "from big import Big\n\nb = Big()\nb.run(3)\n")
    ctx = context_at(doc, len(doc.text), others=[other], max_snippet_lines=10)
    snippet = next(d for d in ctx.definitions if d.title.endswith("class Big"))
    assert snippet.text.split("\n") == ["class Big:", "    def __init__(self):", "    def run(self, n):", "    ..."]


def test_relevance_prefers_names_used_more_and_closer() -> None:
    util = Document("file:///w/util.py", "python", 1, "def far():\n    pass\n\n\ndef near():\n    pass\n")
    text = "from util import far, near\n\n\ndef main():\n    far()\n" + "    x = 1\n" * 30
    text += "    near()\n    near()\n"
    doc = Document("file:///w/main.py", "python", 1, text)
    ctx = context_at(doc, len(text), others=[util], root="/w")
    assert [d.title for d in ctx.definitions][:2] == ["def near()", "def far()"]


def test_plain_text_context() -> None:
    doc = Document("file:///w/notes.txt", "plaintext", 1, "hello world\nsecond line\n")
    ctx = context_at(doc, 5)
    assert ctx.language == "text"
    assert ctx.prefix == "hello" and ctx.suffix == " world\nsecond line\n"
    assert ctx.scopes == [] and ctx.imports == [] and ctx.definitions == [] and ctx.outline == []
    assert ctx.single_line
    assert not context_at(doc, len(doc.text)).single_line
    assert target_range(doc, 14, 14) == (12, 23)
    assert target_range(doc, 2, 14) == (0, 23)


def test_path_without_root_and_outside_root() -> None:
    doc = Document("file:///home/u/proj/src/a.py", "python", 1, "x = 1\n")
    assert context_at(doc, 0).path == "/home/u/proj/src/a.py"
    assert context_at(doc, 0, root="/home/u/proj").path == "src/a.py"
    assert context_at(doc, 0, root="file:///home/u/proj/").path == "src/a.py"
    assert context_at(doc, 0, root="/elsewhere").path == "/home/u/proj/src/a.py"
    untitled = Document("untitled:Untitled-1", "python", 1, "x = 1\n")
    assert context_at(untitled, 0, root="/home/u/proj").path == "Untitled-1"


def test_offsets_are_clamped_and_unicode_is_respected() -> None:
    text = "s = '😀漢'\ndef f(x):\n    return x  # 注释\n"
    doc = Document("file:///w/u.py", "python", 1, text)
    ctx = context_at(doc, text.index("x  #"))
    assert [s.name for s in ctx.scopes] == ["f"]
    assert ctx.prefix.endswith("return ")
    assert context_at(doc, 10_000).suffix == ""
    assert context_at(doc, -3).prefix == ""
    assert context_at(doc, text.index("注")).single_line  # in a comment


@pytest.mark.parametrize(
    ("language_id", "text", "expected"),
    [
        ("python", "def f(x):|\n", False),  # a block opens: the body may span lines
        ("python", "def f(x):\n    |\n", False),  # an empty line in a body
        ("python", "x = |\n", True),  # an unfinished statement
        ("python", "x = foo(a, |)\n", True),  # inside arguments, code after the cursor
        ("python", "print(|\n", False),  # an opening bracket may go on over several lines
        ("python", "# a comment |\n", True),
        ("python", 'x = "abc|"\n', True),
        ("python", 'def f():\n    """Doc|\n    """\n', False),  # a docstring over several lines
        ("javascript", "function f() {|\n}\n", False),
        ("javascript", "const x = |;\n", True),
        ("go", "package m\n\nfunc f() {\n\tx := |\n}\n", True),
        ("rust", "fn f() {\n    let x = 1;\n    |\n}\n", False),
    ],
)
def test_single_line_heuristic(language_id: str, text: str, expected: bool) -> None:
    offset = text.index("|")
    doc = Document(f"file:///w/x.{language_id}", language_id, 1, text.replace("|", ""))
    assert context_at(doc, offset).single_line is expected


# ---------------------------------------------------------------------------------------------- ranges
def test_target_range_without_selection_takes_the_function_with_decorators_and_comments() -> None:
    text = (
        "import functools\n\n\n# Cached.\n# Really.\n@functools.cache\ndef f(x):\n    return x + 1\n\n\n"
        "class A:\n    x = 1\n\n    def m(self):\n        def inner():\n            return 2\n        return inner()\n"
    )
    doc = Document("file:///w/a.py", "python", 1, text)
    start, end = target_range(doc, text.index("x + 1"), text.index("x + 1"))
    assert text[start:end] == "# Cached.\n# Really.\n@functools.cache\ndef f(x):\n    return x + 1"
    start, end = target_range(doc, text.index("return 2"), text.index("return 2"))
    assert text[start:end] == "def inner():\n            return 2"
    start, end = target_range(doc, text.index("return inner"), text.index("return inner"))
    assert text[start:end].startswith("def m(self):") and text[start:end].endswith("return inner()")
    start, end = target_range(doc, text.index("x = 1"), text.index("x = 1"))
    assert text[start:end].startswith("class A:")
    start, end = target_range(doc, 3, 3)
    assert text[start:end] == "import functools"


def test_target_range_includes_export_doc_comments_and_attributes() -> None:
    js = "/** Doc. */\nexport function f(a) {\n  return a;\n}\n"
    doc = Document("file:///w/a.js", "javascript", 1, js)
    assert target_range(doc, js.index("return"), js.index("return")) == (0, len(js) - 1)
    rs = "use x;\n\n/// Doc.\n#[inline]\npub fn f() -> u8 {\n    1\n}\n"
    doc = Document("file:///w/a.rs", "rust", 1, rs)
    start, end = target_range(doc, rs.index("1\n}"), rs.index("1\n}"))
    assert rs[start:end] == "/// Doc.\n#[inline]\npub fn f() -> u8 {\n    1\n}"


def test_selection_cutting_through_nodes_is_expanded() -> None:
    text = "def f(x):\n    a = x + 1\n    b = a * 2\n    c = b - 3\n    return c\n"
    doc = Document("file:///w/a.py", "python", 1, text)
    # from the middle of "a = x + 1" to the middle of "b = a * 2": both statements
    start, end = target_range(doc, text.index("x + 1"), text.index("* 2"))
    assert text[start:end] == "a = x + 1\n    b = a * 2"
    # whole statements selected with their indentation and newline: kept as they are (trimmed)
    start, end = target_range(doc, text.index("    b ="), text.index("    return"))
    assert text[start:end] == "b = a * 2\n    c = b - 3"
    # part of an expression: the smallest whole nodes
    start, end = target_range(doc, text.index("x + 1") + 1, text.index("x + 1") + 4)
    assert text[start:end] == "x + 1"
    # a selection from inside the function to after it takes the function
    text2 = text + "\n\nprint(f(1))\n"
    doc2 = Document("file:///w/b.py", "python", 1, text2)
    start, end = target_range(doc2, text2.index("b = a"), text2.index("(1))"))
    assert text2[start:end] == text2.strip()


def test_selection_context() -> None:
    text = (DATA / "inventory.py").read_text()
    doc = Document("file:///w/inventory.py", "python", 1, text)
    start = text.index("    def add(")
    end = text.index("        return item\n") + len("        return item")
    start, end = target_range(doc, start + 8, end)
    assert text[start:end].startswith("def add(") and text[start:end].endswith("return item")
    ctx = selection_context(doc, start, end)
    assert ctx.prefix == text[:start] and ctx.suffix == text[end:]
    assert [(s.kind, s.name) for s in ctx.scopes] == [("class", "Inventory")]
    assert not ctx.single_line
    assert "def parse_quantity(raw: str) -> int" in [d.title for d in ctx.definitions]
    one_line = selection_context(doc, text.index("item.quantity +="), text.index("(raw_quantity)"))
    assert one_line.single_line
    assert [s.name for s in one_line.scopes] == ["Inventory", "add"]


def test_store_as_others_skips_the_document_itself() -> None:
    from lsp.context import DocumentStore

    store = DocumentStore()
    store.open("file:///w/util.py", "python", 1, "def helper(x):\n    return x\n")
    doc = store.open("file:///w/main.py", "python", 1, "from util import helper\n\n\nhelper(1)\n")
    ctx = context_at(store.get(doc.uri), len(doc.text), others=store, root="/w")
    assert [d.title for d in ctx.definitions] == ["def helper(x)"]
