"""Definitions as text: signatures, outline lines, import statements and shortened bodies, sliced from a
document by the byte ranges its index keeps."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Collection

from .documents import Document
from .index import FileIndex
from .symbols import CLASS_KINDS, Symbol

MAX_SIGNATURE = 400  # characters


def text_between(doc: Document, start_byte: int, end_byte: int) -> str:
    lines = doc.lines
    return doc.text[lines.offset_of_byte(start_byte) : lines.offset_of_byte(end_byte)]


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip("\r")


def collapse(text: str) -> str:
    """Whitespace runs to one space."""
    return " ".join(text.split())


def title_of(signature: str) -> str:
    title = collapse(signature)
    while title and title[-1] in "{:=":
        title = title[:-1].rstrip()
    if title.endswith(("=>", " do", " then")):
        title = title.rsplit(" ", 1)[0] if " " in title else title
    return title[:MAX_SIGNATURE]


def signature_text(doc: Document, start: int, sig_end: int, end: int) -> str:
    """The header of a definition: up to its body, else its first line."""
    if sig_end > start:
        text = text_between(doc, start, sig_end)
    else:  # the first line (no need to slice a whole class to find it)
        text = first_line(text_between(doc, start, min(end, start + 8 * MAX_SIGNATURE)))
    return text.rstrip()[:MAX_SIGNATURE]


def symbol_texts(doc: Document, symbol: Symbol) -> tuple[str, str]:
    """(signature, outline line) of a symbol, cached on the symbol for as long as it stays in the index."""
    cached = symbol.cache
    if cached is not None:
        return cached
    signature = signature_text(doc, symbol.start, symbol.sig_end, symbol.end)
    lines = doc.lines
    start = lines.offset_of_byte(symbol.start)
    line_start = lines.line_start(lines.line_of(start))
    indent = doc.text[line_start:start]
    indent = indent[: len(indent) - len(indent.lstrip())]
    line = collapse(signature)
    if symbol.sig_end < 0 and line.endswith("{"):
        line = line[:-1].rstrip()
    result = (signature, indent + line)
    symbol.cache = result
    return result


def outline(doc: Document, index: FileIndex, cursor_byte: int, limit: int) -> list[str]:
    """Signatures of the top-level and class-level definitions (those nearest the cursor if too many)."""
    entries = index.outline
    if len(entries) > limit:
        middle = bisect_left(entries, cursor_byte, key=lambda s: s.outer)
        first = max(0, min(middle - limit // 2, len(entries) - limit))
        entries = entries[first : first + limit]
    return [symbol_texts(doc, s)[1] for s in entries]


_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_NAMELESS_IMPORTS = frozenset({"c", "cpp", "bash", "ruby"})


def import_texts(doc: Document, index: FileIndex) -> list[str]:
    """The file's import statements as text, each once."""
    seen: set[str] = set()
    result: list[str] = []
    for symbol in index.imports():
        text = symbol.cache
        if text is None:
            text = (text_between(doc, symbol.start, symbol.end).strip(), "")
            symbol.cache = text
        if text[0] not in seen:
            seen.add(text[0])
            result.append(text[0])
    return result


def imports_used(doc: Document, index: FileIndex, used: Collection[str]) -> list[str]:
    """The import statements that bind a name the nearby code uses (the rest of the import block tells the
    model little and may take a third of the budget in a module with many imports). Includes and requires
    that bind no name (C, C++, shell, Ruby) are all kept."""
    texts = import_texts(doc, index)
    if doc.language is None or doc.language.name in _NAMELESS_IMPORTS:
        return texts
    return [text for text in texts if any(w in used for w in _WORD.findall(text))]


def snippet_text(doc: Document, index: FileIndex, symbol: Symbol, max_lines: int) -> str:
    text = text_between(doc, symbol.outer, symbol.end)
    if text.count("\n") < max_lines or symbol.sig_end < 0:
        if text.count("\n") >= max_lines:
            text = "\n".join(text.split("\n")[:max_lines])
        return _dedent_tail(doc, symbol, text)
    header = text_between(doc, symbol.outer, symbol.sig_end).rstrip()
    lines = doc.lines
    start = lines.offset_of_byte(symbol.start)
    line_start = lines.line_start(lines.line_of(start))
    indent = doc.text[line_start:start]
    indent = indent[: len(indent) - len(indent.lstrip())]
    body = text_between(doc, symbol.sig_end, symbol.end).split("\n")
    body_indent = indent + _indent_unit(doc, symbol.sig_end, body, indent)
    if body[0].strip() in ("{", "{{"):  # the brace stays on the signature's line (Go requires it there)
        header = f"{header} {body[0].strip()}"
        body = body[1:]
    parts = [header]
    if symbol.kind in CLASS_KINDS:
        for child in index.children(symbol)[: max_lines - 2]:
            parts.append(body_indent + collapse(symbol_texts(doc, child)[0]))
    else:
        parts.extend(line.rstrip() for line in body[: max(0, max_lines // 2)] if line.strip())
        if parts and len(parts) > 1 and not parts[1].startswith(indent):
            parts[1] = body_indent + parts[1].lstrip()
    parts.append(body_indent + "...")
    return _dedent_tail(doc, symbol, "\n".join(parts))


def _indent_unit(doc: Document, body_start: int, body: list[str], indent: str) -> str:
    """The indentation the body adds to the definition's own (tabs stay tabs)."""
    lines = doc.lines
    offset = lines.offset_of_byte(body_start)
    head = doc.text[lines.line_start(lines.line_of(offset)) : offset]
    if not head.strip() and len(head) > len(indent):  # a body without braces starts at its first statement
        return head[len(indent) :]
    for line in body[1:40]:
        if line.strip() and line.startswith(indent):
            extra = line[len(indent) :]
            unit = extra[: len(extra) - len(extra.lstrip())]
            if unit:
                return unit
    return "\t" if indent.startswith("\t") else "    "


def _dedent_tail(doc: Document, symbol: Symbol, text: str) -> str:
    """Remove from every line the indentation of the definition's first line (nested definitions)."""
    lines = doc.lines
    start = lines.offset_of_byte(symbol.outer)
    line_start = lines.line_start(lines.line_of(start))
    indent = doc.text[line_start:start]
    if not indent or indent.strip():
        return text
    out = []
    for line in text.split("\n"):
        out.append(line[len(indent) :] if line.startswith(indent) else line)
    return "\n".join(out)
