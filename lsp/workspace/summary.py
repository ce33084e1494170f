"""One file, summarised for the workspace index: its definitions (name, kind, signature, the first line of
its documentation, lines, members) and its imports. Built from the same tree-sitter queries as the open
documents' index, on a worker thread; stored as plain data (JSON in the persisted index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from lsp.context.documents import Document
from lsp.context.index import FileIndex
from lsp.context.languages import Language
from lsp.context.symbols import CLASS_KINDS, Symbol

from .imports import ImportRef, parse_imports

__all__ = ["SMALL_DEFINITION_LINES", "Definition", "FileSummary", "summarise"]

SMALL_DEFINITION_LINES = 6  # a definition this short is shown whole: its body says more than a signature
MAX_MEMBERS = 24
MAX_LINE = 240  # characters of a signature line or a doc line
_DOC_MARKERS = re.compile(r"^\s*(?:/\*\*?|\*/|\*|///?|//!|#+|--+|;+)\s?")
_PY_STRING = re.compile(r"^[rRbBuUfF]{0,2}(\"\"\"|'''|\"|')")


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str  # "function", "method", "class", "variable", ...
    signature: str  # the header as written (tabs kept), up to the body; the first line without a body
    doc: str  # the first line of its documentation, "" if none
    line: int  # 0-based first line of the definition (with its decorators and doc comments)
    end_line: int
    parent: str  # the enclosing class-like definition's name, "" at top level
    text: str  # the whole definition when it is small, else ""
    members: tuple[str, ...] = ()  # for class-like definitions: their members' one-line signatures


@dataclass(frozen=True)
class FileSummary:
    path: str
    language: str  # our language name (languages.py)
    indent: str  # the file's indentation unit ("\t", "    ", "  ")
    definitions: tuple[Definition, ...]
    imports: tuple[ImportRef, ...]

    @cached_property
    def top_level(self) -> dict[str, list[Definition]]:
        """Top-level definitions by name (what an import of this file can bind)."""
        table: dict[str, list[Definition]] = {}
        for definition in self.definitions:
            if not definition.parent:
                table.setdefault(definition.name, []).append(definition)
        return table

    @cached_property
    def by_name(self) -> dict[str, list[Definition]]:
        table: dict[str, list[Definition]] = {}
        for definition in self.definitions:
            table.setdefault(definition.name, []).append(definition)
        return table

    def to_json(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies every field, several times slower
        return {
            "path": self.path, "language": self.language, "indent": self.indent,
            "definitions": [
                [d.name, d.kind, d.signature, d.doc, d.line, d.end_line, d.parent, d.text, list(d.members)]
                for d in self.definitions
            ],
            "imports": [[i.module, [list(n) for n in i.names], i.binding, i.star] for i in self.imports],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> FileSummary:
        return FileSummary(
            path=data["path"],
            language=data["language"],
            indent=data["indent"],
            definitions=tuple(
                Definition(name, kind, signature, doc, line, end_line, parent, text, tuple(members))
                for name, kind, signature, doc, line, end_line, parent, text, members in data["definitions"]
            ),
            imports=tuple(
                ImportRef(module, tuple((a, b) for a, b in names), binding, star)
                for module, names, binding, star in data["imports"]
            ),
        )


def _indent_unit(text: str) -> str:
    for line in text.split("\n", 400)[:400]:
        if line[:1] == "\t":
            return "\t"
        if line[:1] == " " and line.strip():
            width = len(line) - len(line.lstrip(" "))
            return " " * min(width, 8)
    return "    "


def _slice(doc: Document, start: int, end: int) -> str:
    lines = doc.lines
    return doc.text[lines.offset_of_byte(start) : lines.offset_of_byte(end)]


def _line_indent(doc: Document, byte: int) -> str:
    lines = doc.lines
    offset = lines.offset_of_byte(byte)
    line_start = lines.line_start(lines.line_of(offset))
    head = doc.text[line_start:offset]
    return head[: len(head) - len(head.lstrip())]


def _dedent(text: str, indent: str) -> str:
    if not indent:
        return text
    return "\n".join(line[len(indent) :] if line.startswith(indent) else line for line in text.split("\n"))


def _signature(doc: Document, symbol: Symbol) -> str:
    if symbol.sig_end > symbol.start:
        text = _slice(doc, symbol.start, symbol.sig_end).rstrip()
    else:
        text = _slice(doc, symbol.start, min(symbol.end, symbol.start + 4 * MAX_LINE)).split("\n", 1)[0].rstrip()
    return _dedent(text, _line_indent(doc, symbol.start))[: 2 * MAX_LINE]


def _doc_line(doc: Document, symbol: Symbol, python: bool) -> str:
    if python and symbol.sig_end > 0:
        body = _slice(doc, symbol.sig_end, min(symbol.end, symbol.sig_end + 2 * MAX_LINE)).lstrip()
        match = _PY_STRING.match(body)
        if match:
            inner = body[match.end() :].lstrip()
            line = inner.split("\n", 1)[0]
            line = line.split(match.group(1), 1)[0].strip()
            return line[:MAX_LINE]
        return ""
    if symbol.outer < symbol.start:
        for raw in _slice(doc, symbol.outer, symbol.start).split("\n"):
            line = _DOC_MARKERS.sub("", raw).strip()
            if line and not line.startswith(("@", "#[")):
                return line[:MAX_LINE]
    return ""


def _member_line(doc: Document, symbol: Symbol) -> str:
    return " ".join(_signature(doc, symbol).split())[:MAX_LINE]


def _definition(doc: Document, index: FileIndex, symbol: Symbol, python: bool) -> Definition:
    lines = doc.lines
    first = lines.line_of(lines.offset_of_byte(symbol.outer))
    last = lines.line_of(lines.offset_of_byte(symbol.end))
    text = ""
    if last - first < SMALL_DEFINITION_LINES:
        text = _dedent(_slice(doc, symbol.outer, symbol.end), _line_indent(doc, symbol.outer))
    members: tuple[str, ...] = ()
    if symbol.kind in CLASS_KINDS:
        members = tuple(_member_line(doc, child) for child in index.children(symbol)[:MAX_MEMBERS] if child.name)
    parent = symbol.parent.name if symbol.parent is not None and symbol.parent.kind in CLASS_KINDS else ""
    return Definition(
        name=symbol.name, kind=symbol.kind, signature=_signature(doc, symbol),
        doc=_doc_line(doc, symbol, python), line=first, end_line=last, parent=parent, text=text, members=members,
    )


def summarise(path: str, text: str, language: Language) -> FileSummary:
    """The summary of a file's text (parsed here: call it off the event loop)."""
    doc = Document("file://" + path, language.name, 0, text, language=language)
    index = doc.index
    definitions: list[Definition] = []
    python = language.name == "python"
    if index is not None:
        definitions = [_definition(doc, index, s, python) for s in index.outline if s.name]
        import_texts = [_slice(doc, s.start, s.end) for s in index.imports()]
    else:
        import_texts = []
    imports = parse_imports(language.name, import_texts, text)
    doc.drop_tree()
    return FileSummary(path, language.name, _indent_unit(text), tuple(definitions), tuple(imports))
