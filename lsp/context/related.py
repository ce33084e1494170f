"""The definitions the code around the cursor refers to: in this document, the other open documents and
the workspace index, ranked by how near the cursor their names are used."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from tree_sitter import QueryCursor, Tree

from .code_context import DefinitionSource, Snippet, relative_path
from .documents import Document
from .index import FileIndex
from .languages import Language
from .snippets import snippet_text, symbol_texts, title_of
from .symbols import CLASS_KINDS, Symbol

MAX_AMBIGUITY = 8  # a name defined more often than this in one file tells nothing about what is meant
MAX_OTHER_DOCUMENTS = 30
OTHERS_TIME_BUDGET = 0.1  # seconds spent parsing/indexing other documents for one request
OTHER_FILE_FACTOR = 0.8  # a definition in another file scores this much of one in this file


def _document_index(doc: Document, deadline: float) -> FileIndex | None:
    """The index of another document, unless it has to be built (a query, maybe a parse) past the deadline:
    then it is skipped this time (the indexes built stay, later requests get further)."""
    if doc.language is None:
        return None
    if not doc.index_ready and time.perf_counter() > deadline:
        return None
    return doc.index


def _reference_names(
    language: Language, tree: Tree, data: bytes, lo: int, hi: int, cursor_byte: int, line_bytes: float, skip: set[int],
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
            if node.end_byte - start < 2:
                continue
            raw = data[start : node.end_byte]
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


def related_definitions(
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
    names = _reference_names(doc.language, tree, doc.data, window[0], window[1], inside[0], line_bytes, skip, imports)
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
        signature = symbol_texts(owner, symbol)[0]
        title = title_of(signature)  # without the path: the prompt prints it once, beside the title
        path = relative_path(owner, root) if owner is not doc else None
        text = snippet_text(owner, owner_index, symbol, max_snippet_lines)
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
