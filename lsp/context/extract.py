"""Context extraction: document + position -> what a code model should see. Pure functions over text and
trees (no server), fast enough to run on every completion request.

Offsets are Python ``str`` indices into ``doc.text``; tree-sitter works in UTF-8 bytes and the conversion
goes through :class:`~lsp.context.positions.LineIndex`.
"""

from __future__ import annotations

import os
import re
import time
from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from tree_sitter import Node, QueryCursor, Tree

from lsp.uris import uri_to_path

from .documents import Document
from .index import CLASS_KINDS, FileIndex, Symbol, definition_bounds, signature_end
from .languages import Language
from .positions import encode, point_after

__all__ = [
    "CodeContext",
    "DefinitionSource",
    "Scope",
    "Snippet",
    "block_end",
    "context_at",
    "count_errors",
    "parses_cleanly",
    "relative_path",
    "relative_path_of",
    "selection_context",
    "target_range",
]

# how far around the cursor to look for names the code refers to (lines before, after)
REFERENCE_WINDOW = (40, 15)
# definitions of this file lying entirely this close to the cursor are in plain view: not repeated
NEAR_WINDOW = (20, 5)
MAX_DEFINITIONS = 10
MAX_SNIPPET_LINES = 20
MAX_OUTLINE = 300
MAX_AMBIGUITY = 8  # a name defined more often than this in one file tells nothing about what is meant
MAX_OTHER_DOCUMENTS = 30
OTHERS_TIME_BUDGET = 0.1  # seconds spent parsing/indexing other documents for one request
OTHER_FILE_FACTOR = 0.8  # a definition in another file scores this much of one in this file
MAX_SIGNATURE = 400  # characters


@dataclass(frozen=True)
class Scope:
    """One enclosing definition: ``kind`` ("function", "method", "class"...), its name, its signature
    (the header up to the body) and its LSP line span."""

    kind: str
    name: str
    signature: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Snippet:
    """A definition shown to the model: a title (e.g. ``def helper(x)`` or ``util.py: class Foo``), its text,
    its file (None for the current one) and its relevance score (higher is better)."""

    title: str
    text: str
    path: str | None
    score: float
    start_line: int = -1  # LSP lines of the definition in its file (so a prompt can skip what it shows)
    end_line: int = -1
    scope: str = ""  # the class it belongs to when shown without it (a member of another file's class)


@dataclass(frozen=True)
class CodeContext:
    """Everything the prompt engine may use for a position or a selection."""

    language: str  # display name, "text" if unknown
    path: str  # relative to the workspace root if given, else the URI's path
    prefix: str  # full text before the cursor/selection
    suffix: str  # full text after the cursor/selection
    scopes: list[Scope]  # enclosing chain, outermost first
    imports: list[str]  # import statements of the file, as text
    definitions: list[Snippet]  # definitions the nearby code refers to, best first
    outline: list[str]  # one line per top-level/class-level definition
    single_line: bool  # the cursor context suggests a single-line completion


class DefinitionSource(Protocol):
    """Definitions from beyond the open documents (the workspace index)."""

    def definitions_for(
        self, doc: Document, names: Mapping[str, float], skip_paths: Collection[str], local_names: Collection[str]
    ) -> list[Snippet]:
        """Snippets for the ``names`` used near the cursor in ``doc`` (weighted by closeness), from files
        other than ``skip_paths`` (shown otherwise), ``local_names`` being defined in ``doc`` itself."""
        ...


# ---------------------------------------------------------------------------------------------- helpers
def relative_path(doc: Document, root: str | None) -> str:
    """The document's path relative to the workspace ``root`` (a path or a ``file:`` URI) when inside it."""
    return relative_path_of(doc.path, root)


def relative_path_of(path: str, root: str | None) -> str:
    """``path`` relative to the workspace ``root`` (a path or a ``file:`` URI) when inside it."""
    if root:
        base = uri_to_path(root) if "://" in root else root
        base = base.rstrip("/\\") or "/"
        try:
            if os.path.commonpath([os.path.abspath(path), os.path.abspath(base)]) == os.path.abspath(base):
                return os.path.relpath(path, base).replace(os.sep, "/")
        except ValueError:  # different drives
            pass
    return path


def _text(doc: Document, start_byte: int, end_byte: int) -> str:
    lines = doc.lines
    return doc.text[lines.offset_of_byte(start_byte) : lines.offset_of_byte(end_byte)]


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip("\r")


def _collapse(text: str) -> str:
    """Whitespace runs to one space."""
    return " ".join(text.split())


def _title(signature: str) -> str:
    title = _collapse(signature)
    while title and title[-1] in "{:=":
        title = title[:-1].rstrip()
    if title.endswith(("=>", " do", " then")):
        title = title.rsplit(" ", 1)[0] if " " in title else title
    return title[:MAX_SIGNATURE]


def _signature(doc: Document, start: int, sig_end: int, end: int) -> str:
    """The header of a definition: up to its body, else its first line."""
    if sig_end > start:
        text = _text(doc, start, sig_end)
    else:  # the first line (no need to slice a whole class to find it)
        text = _first_line(_text(doc, start, min(end, start + 8 * MAX_SIGNATURE)))
    return text.rstrip()[:MAX_SIGNATURE]


def _is_open(node: Node, body: Node | None) -> bool:
    """Whether code typed at the node's very end still belongs to it: Python-like blocks have no closing
    token (``}``, ``end``), so a cursor right after their last statement is still inside."""
    last = node.child(node.child_count - 1) if node.child_count else None
    if last is not None and not last.is_named and not last.is_missing:
        return False
    if body is not None and body.child_count:
        last = body.child(body.child_count - 1)
        if not last.is_named and not last.is_missing:
            return False
    return True


@dataclass(frozen=True)
class _ScopeNode:
    kind: str
    node: Node
    name: str
    body: Node | None


def _collect_scopes(
    language: Language, tree: Tree, byte: int, end_byte: int | None
) -> dict[tuple[int, int, str], _ScopeNode]:
    if end_byte is None:  # a cursor: from the node around the character before it
        node: Node | None = tree.root_node.descendant_for_byte_range(max(0, byte - 1), byte)
    else:
        node = tree.root_node.descendant_for_byte_range(byte, end_byte)
    cursor = QueryCursor(language.scope_query)
    cursor.set_max_start_depth(0)
    kinds = language.kinds
    found: dict[tuple[int, int, str], _ScopeNode] = {}
    while node is not None:
        for _, captures in cursor.matches(node):
            for capture, nodes in captures.items():
                if not capture.startswith("scope."):
                    continue
                scope = nodes[0]
                bodies = captures.get("body")
                body = bodies[0] if bodies else None
                if end_byte is None:
                    inside = scope.start_byte < byte < scope.end_byte or (
                        byte == scope.end_byte and scope.start_byte < byte and _is_open(scope, body)
                    )
                else:
                    inside = scope.start_byte <= byte and end_byte <= scope.end_byte and (
                        scope.start_byte < byte or end_byte < scope.end_byte
                    )
                if not inside:
                    continue
                names = captures.get("name")
                name = ""
                if names and names[0].text is not None:
                    name = names[0].text.decode("utf-8", "replace")
                key = (scope.start_byte, scope.end_byte, capture)
                found.setdefault(key, _ScopeNode(kinds[capture], scope, name, body))
        node = node.parent
    return found


def _indentation(data: bytes, byte: int) -> int | None:
    """Columns of whitespace before ``byte`` on its line, None if code precedes it on the line."""
    line_start = data.rfind(b"\n", 0, byte) + 1
    before = data[line_start:byte]
    if before.strip():
        return None
    return len(before.expandtabs(8))


def _scope_nodes(
    language: Language, tree: Tree, byte: int, end_byte: int | None = None, data: bytes | None = None
) -> list[_ScopeNode]:
    """The scope nodes enclosing ``[byte, end_byte]`` (a cursor when end_byte is None), outermost first.

    With ``data`` (the source), a cursor on an indented blank stretch after an open block (Python-like,
    with no closing token) belongs to the blocks indented less than the cursor.
    """
    found = _collect_scopes(language, tree, byte, end_byte)
    if end_byte is None and data is not None:
        indent = _indentation(data, byte)
        previous = byte
        while previous > 0 and data[previous - 1] in b" \t\r\n\f":
            previous -= 1
        if indent and previous < byte:
            for key, scope in _collect_scopes(language, tree, previous, None).items():
                node = scope.node
                if key in found or node.end_byte > byte or not _is_open(node, scope.body):
                    continue
                own = _indentation(data, node.start_byte)
                if own is not None and own < indent:
                    found[key] = scope
    chain = sorted(found.values(), key=lambda s: (s.node.start_byte, -s.node.end_byte))
    result: list[_ScopeNode] = []
    for scope in chain:
        kind = scope.kind
        if kind == "function" and result and result[-1].kind in CLASS_KINDS:
            kind = "method"
        result.append(_ScopeNode(kind, scope.node, scope.name, scope.body))
    return result


def _scopes(doc: Document, chain: list[_ScopeNode]) -> list[Scope]:
    scopes: list[Scope] = []
    lines = doc.lines
    assert doc.language is not None
    for scope in chain:
        node = scope.node
        sig_end = signature_end(scope.body, doc.language.spec)
        _, head, _ = definition_bounds(node, doc.language.spec, doc.data)
        signature = _signature(doc, head, sig_end, node.end_byte)
        start = lines.offset_of_byte(node.start_byte)
        end = lines.offset_of_byte(node.end_byte)
        scopes.append(Scope(scope.kind, scope.name, signature, lines.line_of(start), lines.line_of(end)))
    return scopes


# ---------------------------------------------------------------------------------------------- symbols
def _symbol_texts(doc: Document, symbol: Symbol) -> tuple[str, str]:
    """(signature, outline line) of a symbol, cached on the symbol for as long as it stays in the index."""
    cached = symbol.cache
    if cached is not None:
        return cached
    signature = _signature(doc, symbol.start, symbol.sig_end, symbol.end)
    lines = doc.lines
    start = lines.offset_of_byte(symbol.start)
    line_start = lines.line_start(lines.line_of(start))
    indent = doc.text[line_start:start]
    indent = indent[: len(indent) - len(indent.lstrip())]
    line = _collapse(signature)
    if symbol.sig_end < 0 and line.endswith("{"):
        line = line[:-1].rstrip()
    result = (signature, indent + line)
    symbol.cache = result
    return result


def _outline(doc: Document, index: FileIndex, cursor_byte: int, limit: int) -> list[str]:
    """Signatures of the top-level and class-level definitions (those nearest the cursor if too many)."""
    entries = index.outline
    if len(entries) > limit:
        middle = bisect_left(entries, cursor_byte, key=lambda s: s.outer)
        first = max(0, min(middle - limit // 2, len(entries) - limit))
        entries = entries[first : first + limit]
    return [_symbol_texts(doc, s)[1] for s in entries]


_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_NAMELESS_IMPORTS = frozenset({"c", "cpp", "bash", "ruby"})


def import_texts(doc: Document, index: FileIndex) -> list[str]:
    """The file's import statements as text, each once."""
    seen: set[str] = set()
    result: list[str] = []
    for symbol in index.imports():
        text = symbol.cache
        if text is None:
            text = (_text(doc, symbol.start, symbol.end).strip(), "")
            symbol.cache = text
        if text[0] not in seen:
            seen.add(text[0])
            result.append(text[0])
    return result


def _imports(doc: Document, index: FileIndex, used: Collection[str]) -> list[str]:
    """The import statements that bind a name the nearby code uses (the rest of the import block tells the
    model little and may take a third of the budget in a module with many imports). Includes and requires
    that bind no name (C, C++, shell, Ruby) are all kept."""
    texts = import_texts(doc, index)
    if doc.language is None or doc.language.name in _NAMELESS_IMPORTS:
        return texts
    return [text for text in texts if any(w in used for w in _WORD.findall(text))]


def _snippet_text(doc: Document, index: FileIndex, symbol: Symbol, max_lines: int) -> str:
    text = _text(doc, symbol.outer, symbol.end)
    if text.count("\n") < max_lines or symbol.sig_end < 0:
        if text.count("\n") >= max_lines:
            text = "\n".join(text.split("\n")[:max_lines])
        return _dedent_tail(doc, symbol, text)
    header = _text(doc, symbol.outer, symbol.sig_end).rstrip()
    lines = doc.lines
    start = lines.offset_of_byte(symbol.start)
    line_start = lines.line_start(lines.line_of(start))
    indent = doc.text[line_start:start]
    indent = indent[: len(indent) - len(indent.lstrip())]
    body = _text(doc, symbol.sig_end, symbol.end).split("\n")
    body_indent = indent + _indent_unit(doc, symbol.sig_end, body, indent)
    if body[0].strip() in ("{", "{{"):  # the brace stays on the signature's line (Go requires it there)
        header = f"{header} {body[0].strip()}"
        body = body[1:]
    parts = [header]
    if symbol.kind in CLASS_KINDS:
        for child in index.children(symbol)[: max_lines - 2]:
            parts.append(body_indent + _collapse(_symbol_texts(doc, child)[0]))
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


def _document_index(doc: Document, deadline: float) -> FileIndex | None:
    """The index of another document, unless it has to be built (a query, maybe a parse) past the deadline:
    then it is skipped this time (the indexes built stay, later requests get further)."""
    if doc.language is None:
        return None
    if not doc.index_ready and time.perf_counter() > deadline:
        return None
    return doc.index


def _reference_names(
    language: Language, tree: Tree, lo: int, hi: int, cursor_byte: int, line_bytes: float, skip: set[int],
    skip_ranges: Collection[tuple[int, int]] = (),
) -> dict[str, float]:
    """Names used in bytes [lo, hi), weighted by their closeness to the cursor (``line_bytes``: the average
    length of a line, to count the distance in lines), except at ``skip`` bytes (names of definitions) and
    in ``skip_ranges`` (import statements: a name imported is not yet a name used)."""
    cursor = QueryCursor(language.reference_query)
    cursor.set_byte_range(lo, hi)
    scores: dict[str, float] = {}
    scale = 8.0 * max(1.0, line_bytes)  # a name used 8 lines away weighs half as much as one at the cursor
    get = scores.get
    for nodes in cursor.captures(tree.root_node).values():
        for node in nodes:
            start = node.start_byte
            if start in skip or (skip_ranges and any(a <= start < b for a, b in skip_ranges)):
                continue
            raw = node.text
            if not raw or len(raw) < 2:
                continue
            name = raw.decode("utf-8", "replace")
            scores[name] = get(name, 0.0) + 1.0 / (1.0 + abs(start - cursor_byte) / scale)
    return scores


@dataclass
class _Candidate:
    score: float
    owner: Document
    index: FileIndex
    symbol: Symbol


def _add(candidates: dict[int, _Candidate], score: float, owner: Document, index: FileIndex,
         symbol: Symbol) -> None:
    candidate = candidates.get(id(symbol))
    if candidate is None:
        candidates[id(symbol)] = _Candidate(score, owner, index, symbol)
    else:
        candidate.score += score


def _related(
    doc: Document,
    index: FileIndex,
    tree: Tree,
    window: tuple[int, int],
    near: tuple[int, int],
    line_bytes: float,
    inside: tuple[int, int],
    others: Iterable[Document],
    root: str | None,
    max_definitions: int,
    max_snippet_lines: int,
    workspace: DefinitionSource | None,
) -> tuple[list[Snippet], dict[str, float]]:
    """Definitions referred to by the code in ``window`` (bytes), in this and the other documents and the
    workspace; and the names used there, weighted by their closeness to the cursor."""
    assert doc.language is not None
    in_window = index.between(window[0], window[1])
    skip = {s.name_at for s in in_window}
    imports = [(s.start, s.end) for s in in_window if s.base == "import"]
    names = _reference_names(doc.language, tree, window[0], window[1], inside[0], line_bytes, skip, imports)
    if not names:
        return [], names
    candidates: dict[int, _Candidate] = {}

    def visible(symbol: Symbol) -> bool:
        """Not what encloses the cursor, nor what is in plain view around it."""
        return not (symbol.start <= inside[0] and inside[1] <= symbol.end) and not (
            near[0] <= symbol.outer and symbol.end <= near[1]
        )

    by_name = index.by_name
    for name in names.keys() & by_name.keys():
        if len(by_name[name]) > MAX_AMBIGUITY:
            continue
        symbols = [s for s in by_name[name] if visible(s)]
        for symbol in symbols[:3]:
            _add(candidates, names[name] / len(symbols), doc, index, symbol)
    deadline = time.perf_counter() + OTHERS_TIME_BUDGET
    seen = 0
    language_name = doc.language.name
    open_paths = {doc.path}
    for other in others:
        if other is doc or other.uri == doc.uri:
            continue
        open_paths.add(other.path)
        if seen >= MAX_OTHER_DOCUMENTS:
            break
        other_index = _document_index(other, deadline)
        if other_index is None:
            continue
        seen += 1
        factor = OTHER_FILE_FACTOR if other.language and other.language.name == language_name else 0.5
        other_names = other_index.by_name
        for name in names.keys() & other_names.keys():
            if len(other_names[name]) > MAX_AMBIGUITY:
                continue
            symbols = [s for s in other_names[name] if s.outline_level]
            for symbol in symbols[:3]:
                _add(candidates, names[name] * factor / len(symbols), other, other_index, symbol)
    # members are shown through their class: always fields and the like, methods when the class is wanted too
    for key, candidate in list(candidates.items()):
        symbol = candidate.symbol
        parent = symbol.parent
        if parent is None or parent.kind not in CLASS_KINDS or key not in candidates:
            continue
        if candidate.owner is doc and not visible(parent):
            continue
        if symbol.scope and id(parent) not in candidates:
            continue
        del candidates[key]
        _add(candidates, candidate.score, candidate.owner, candidate.index, parent)
    ranked = sorted(candidates.values(), key=lambda c: (-c.score, c.owner is not doc, c.symbol.start))
    snippets: list[Snippet] = []
    used: set[tuple[str, int]] = set()
    for candidate in ranked:
        if len(snippets) >= max_definitions:
            break
        score, owner, owner_index, symbol = candidate.score, candidate.owner, candidate.index, candidate.symbol
        shown = (owner.uri, symbol.start)
        if shown in used:
            continue
        used.add(shown)
        signature = _symbol_texts(owner, symbol)[0]
        title = _title(signature)  # without the path: the prompt prints it once, beside the title
        path = relative_path(owner, root) if owner is not doc else None
        text = _snippet_text(owner, owner_index, symbol, max_snippet_lines)
        lines = owner.lines
        snippets.append(Snippet(
            title=title, text=text, path=path, score=round(score, 4),
            start_line=lines.line_of(lines.offset_of_byte(symbol.outer)),
            end_line=lines.line_of(lines.offset_of_byte(symbol.end)),
        ))
    if workspace is not None:
        found = workspace.definitions_for(doc, names, open_paths, by_name.keys())
        titles = {(s.path, s.title) for s in snippets}
        snippets += [s for s in found if (s.path, s.title) not in titles]
        snippets.sort(key=lambda s: -s.score)  # stable: ties keep this file's definitions first
    return snippets, names


# ---------------------------------------------------------------------------------------------- single line
# What ends a line that opens a block: the rest of the statement goes on the next lines.
BLOCK_OPENERS = ("{", "(", "[", ":", "=>", "->", " do", " then", "\\")
_CLOSERS = frozenset(")]}>;,'\"` \t")


def _single_line(doc: Document, offset: int, tree: Tree | None) -> bool:
    """Heuristic: is a single-line completion expected at ``offset``?

    Yes when code follows the cursor on its line, when the cursor is in a comment or a one-line string,
    or when the line before the cursor holds an unfinished statement that does not open a block.
    """
    lines = doc.lines
    line = lines.line_of(offset)
    before = doc.text[lines.line_start(line) : offset]
    after = doc.text[offset : lines.line_end(line)]
    if after.strip() and not set(after) <= _CLOSERS:
        return True
    if tree is not None and doc.language is not None:
        byte = lines.byte_at(offset)
        node: Node | None = tree.root_node.descendant_for_byte_range(max(0, byte - 1), byte)
        spec = doc.language.spec
        while node is not None and node.parent is not None:
            comment = node.type in spec.comments
            if node.start_byte < byte < node.end_byte or (
                # at the end of a line comment (not after a closed block comment)
                comment and byte == node.end_byte and not (node.text or b"").endswith((b"*/", b"]]"))
            ):
                if comment:
                    return True
                if node.type in spec.strings:
                    raw = node.text or b""
                    return b"\n" not in raw
            node = node.parent
    stripped = before.rstrip()
    if not stripped:
        return False
    return not stripped.endswith(BLOCK_OPENERS)


# ---------------------------------------------------------------------------------------------- public API
def context_at(
    doc: Document,
    offset: int,
    *,
    others: Iterable[Document] = (),
    root: str | None = None,
    max_definitions: int = MAX_DEFINITIONS,
    max_snippet_lines: int = MAX_SNIPPET_LINES,
    max_outline: int = MAX_OUTLINE,
    workspace: DefinitionSource | None = None,
) -> CodeContext:
    """The context for a completion at ``offset`` (a str index into ``doc.text``, clamped)."""
    text = doc.text
    offset = max(0, min(offset, len(text)))
    return _context(doc, offset, offset, others, root, max_definitions, max_snippet_lines, max_outline,
                    single_line=None, workspace=workspace)


def selection_context(
    doc: Document,
    start: int,
    end: int,
    *,
    others: Iterable[Document] = (),
    root: str | None = None,
    max_definitions: int = MAX_DEFINITIONS,
    max_snippet_lines: int = MAX_SNIPPET_LINES,
    max_outline: int = MAX_OUTLINE,
    workspace: DefinitionSource | None = None,
) -> CodeContext:
    """The context for rewriting ``[start, end)``: prefix and suffix around the range, the scopes that
    enclose it, the definitions the selected and nearby code refers to."""
    text = doc.text
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    single = "\n" not in text[start:end] and "\r" not in text[start:end]
    return _context(doc, start, end, others, root, max_definitions, max_snippet_lines, max_outline,
                    single_line=single, workspace=workspace)


def _context(
    doc: Document,
    start: int,
    end: int,
    others: Iterable[Document],
    root: str | None,
    max_definitions: int,
    max_snippet_lines: int,
    max_outline: int,
    single_line: bool | None,
    workspace: DefinitionSource | None = None,
) -> CodeContext:
    text = doc.text
    language = doc.language
    tree = doc.tree
    path = relative_path(doc, root)
    prefix, suffix = text[:start], text[end:]
    if language is None or tree is None:
        return CodeContext(
            language=language.display_name if language else "text",
            path=path, prefix=prefix, suffix=suffix, scopes=[], imports=[], definitions=[], outline=[],
            single_line=_single_line(doc, start, None) if single_line is None else single_line,
        )
    lines = doc.lines
    start_byte = lines.byte_at(start)
    end_byte = lines.byte_at(end) if end != start else start_byte
    chain = _scope_nodes(language, tree, start_byte, None if end == start else end_byte, doc.data)
    index = doc.index
    assert index is not None
    first_line = lines.line_of(start)
    last_line = lines.line_of(end)
    window = (
        lines.byte_at(lines.line_start(first_line - REFERENCE_WINDOW[0])),
        lines.byte_at(lines.line_end(last_line + REFERENCE_WINDOW[1])),
    )
    near = (
        lines.byte_at(lines.line_start(first_line - NEAR_WINDOW[0])),
        lines.byte_at(lines.line_end(last_line + NEAR_WINDOW[1])),
    )
    first_window_line = max(0, first_line - REFERENCE_WINDOW[0])
    window_lines = min(lines.line_count - 1, last_line + REFERENCE_WINDOW[1]) - first_window_line + 1
    line_bytes = (window[1] - window[0]) / max(1, window_lines)
    definitions, names = _related(doc, index, tree, window, near, line_bytes, (start_byte, end_byte), others,
                                  root, max_definitions, max_snippet_lines, workspace)
    return CodeContext(
        language=language.display_name,
        path=path,
        prefix=prefix,
        suffix=suffix,
        scopes=_scopes(doc, chain),
        imports=_imports(doc, index, names),
        definitions=definitions,
        outline=_outline(doc, index, start_byte, max_outline),
        single_line=_single_line(doc, start, tree) if single_line is None else single_line,
    )


# ---------------------------------------------------------------------------------------------- ranges
def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _definition_range(doc: Document, node: Node) -> tuple[int, int]:
    """Str range of a definition node with its decorators, ``export``, doc comments and attributes."""
    assert doc.language is not None
    outer, _, start = definition_bounds(node, doc.language.spec, doc.data)
    lines = doc.lines
    return lines.offset_of_byte(start), lines.offset_of_byte(max(outer.end_byte, node.end_byte))


def target_range(doc: Document, start: int, end: int) -> tuple[int, int]:
    """The range a rewrite of ``[start, end)`` should replace.

    Without a selection (``start == end``): the innermost enclosing function or method (else class),
    with its decorators and doc comments; outside any definition, the line (without its line break).
    A selection that cuts through syntax nodes is expanded to the smallest run of sibling nodes covering it.
    """
    text = doc.text
    start = max(0, min(start, len(text)))
    end = max(0, min(end, len(text)))
    if end < start:
        start, end = end, start
    lines = doc.lines
    tree = doc.tree
    language = doc.language
    if start == end:
        if tree is not None and language is not None:
            chain = _scope_nodes(language, tree, lines.byte_at(start), None, doc.data)
            functions = [s for s in chain if s.kind not in CLASS_KINDS and s.kind != "module"]
            chosen = functions[-1] if functions else (chain[-1] if chain else None)
            if chosen is not None:
                return _definition_range(doc, chosen.node)
        line = lines.line_of(start)
        return lines.line_start(line), lines.line_end(line)
    trimmed = _trim(text, start, end)
    if trimmed[0] == trimmed[1]:
        return start, end
    start, end = trimmed
    if tree is None:
        return lines.line_start(lines.line_of(start)), lines.line_end(lines.line_of(end))
    sb, eb = lines.byte_at(start), lines.byte_at(end)
    node = tree.root_node.descendant_for_byte_range(sb, eb)
    if node is None:
        return start, end
    if node.start_byte == sb and node.end_byte == eb and node.is_named:
        return start, end
    # inside a token, or only part of an anonymous one: the nearest named node, whole
    while (node.child_count == 0 or not node.is_named) and node.parent is not None:
        node = node.parent
    lo, hi = node.start_byte, node.end_byte
    overlapping = [c for c in node.children if c.end_byte > sb and c.start_byte < eb]
    if overlapping and all(c.is_named for c in overlapping):
        # a run of sibling statements or definitions: just those (a container is not replaced whole)
        lo, hi = overlapping[0].start_byte, overlapping[-1].end_byte
    lo, hi = min(lo, sb), max(hi, eb)
    return lines.offset_of_byte(lo), lines.offset_of_byte(hi)


# ---------------------------------------------------------------------------------------------- syntax checks
def count_errors(tree: Tree) -> int:
    """Number of ERROR and MISSING nodes (only subtrees with errors are visited)."""
    root = tree.root_node
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        for child in node.children:
            if child.has_error or child.is_missing:
                stack.append(child)
    return count


def _edited_tree(doc: Document, start: int, end: int, inserted: str) -> tuple[Tree, bytes, int] | None:
    """The tree of the document with ``[start, end)`` replaced (parsed incrementally), its bytes, and the
    byte offset where the replacement starts."""
    tree = doc.tree
    language = doc.language
    if tree is None or language is None:
        return None
    from .languages import parser_for

    lines = doc.lines
    text = doc.text
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    raw = encode(inserted)
    sb, eb = lines.byte_at(start), lines.byte_at(end)
    sp, ep = lines.point_at(start), lines.point_at(end)
    data = doc.data
    new_data = data[:sb] + raw + data[eb:]
    copy = tree.copy()
    copy.edit(sb, eb, sb + len(raw), sp, ep, point_after(sp, raw))
    return parser_for(language).parse(new_data, copy), new_data, sb


def parses_cleanly(doc: Document, start: int, end: int, replacement: str) -> bool:
    """Whether replacing ``[start, end)`` by ``replacement`` adds no syntax error (ERROR or MISSING node).

    Plain-text documents always parse cleanly.
    """
    edited = _edited_tree(doc, start, end, replacement)
    if edited is None:
        return True
    tree = doc.tree
    assert tree is not None
    new_tree = edited[0]
    if not new_tree.root_node.has_error:
        return True
    return count_errors(new_tree) <= count_errors(tree)


def block_end(doc: Document, offset: int, inserted: str) -> int | None:
    """Where, in ``inserted`` (to be inserted at ``offset``), the block the cursor is in or starts ends.

    The block is the innermost definition (function, method, class...) enclosing the cursor; outside any,
    the top-level statement at or after the cursor. Returns a str index into ``inserted`` (just after the
    block's last character), or None when the block does not end within ``inserted`` (or for plain text).
    """
    edited = _edited_tree(doc, offset, offset, inserted)
    if edited is None:
        return None
    tree, data, sb = edited
    language = doc.language
    assert language is not None
    eb = sb + len(encode(inserted))
    chain = _scope_nodes(language, tree, sb, None, data)
    target: Node | None = chain[-1].node if chain else None
    if target is None:
        # outside any definition: the top-level statement containing the cursor, else the first one after
        # it, if it is a block (a definition or a statement over several lines)
        for child in tree.root_node.children:
            if child.end_byte <= sb and not (child.end_byte == sb and _is_open(child, None)):
                continue
            if child.type in language.spec.comments and child.start_byte >= sb:
                continue
            target = child
            break
        if target is None or target.start_byte >= eb:
            return None
        if target.end_point.row == target.start_point.row and not _collect_scopes(
            language, tree, target.start_byte + 1, target.end_byte - 1
        ):
            return None
    end = target.end_byte
    if end <= sb or end > eb:
        return None
    return len(data[sb:end].decode("utf-8", "surrogatepass"))
