"""A per-document table of definitions and imports, kept up to date incrementally.

Built once from the language's index query, then maintained across edits: symbols away from an edit are
kept (and shifted), symbols touching the edit or a range whose syntax changed are dropped, and only those
regions are queried again. This keeps context extraction cheap while the user types in a large file.
Positions are UTF-8 byte offsets, like tree-sitter's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from tree_sitter import Node, QueryCursor, Tree

from .languages import Language, LanguageSpec

__all__ = ["CLASS_KINDS", "FileIndex", "Symbol", "outer_start"]

# kinds whose function members are reported as methods
CLASS_KINDS = frozenset(
    {"class", "struct", "interface", "trait", "impl", "enum", "union", "object", "protocol", "record"}
)
# kinds that only group definitions: what they contain still counts as top level in an outline
NAMESPACE_KINDS = frozenset({"module", "namespace", "package"})
_PRIORITY = {"scope": 3, "import": 2, "definition": 1}


class Symbol:
    """A definition (or import) found in a document. Byte offsets; mutable only by :class:`FileIndex`."""

    __slots__ = (
        "base", "cache", "container", "depth", "end", "kind", "name", "name_at", "outer", "parent", "scope",
        "sig_end", "start",
    )

    def __init__(self, kind: str, name: str, start: int, end: int, outer: int, sig_end: int,
                 scope: bool, name_at: int = -1) -> None:
        self.kind = kind  # "function", "method", "class", "variable", ..., "import"
        self.base = kind  # the kind as captured (a method may be captured as a function)
        self.name = name
        self.start = start  # the definition node
        self.end = end
        self.outer = outer  # start including decorators, export keyword, attached doc comments
        self.sig_end = sig_end  # where the body starts (the signature ends), -1 if there is no body
        self.scope = scope  # True for @scope.* captures
        self.name_at = name_at  # where the name is, -1 if none
        self.depth = 0  # number of enclosing scope symbols, namespaces and modules not counted
        self.parent: Symbol | None = None  # innermost enclosing scope symbol
        self.container: Symbol | None = None  # innermost enclosing scope symbol that is not a namespace
        self.cache: tuple[str, str] | None = None  # texts computed by the extractor (positions are stable)

    def shift(self, delta: int) -> None:
        self.start += delta
        self.end += delta
        self.outer += delta
        if self.sig_end >= 0:
            self.sig_end += delta
        if self.name_at >= 0:
            self.name_at += delta

    @property
    def key(self) -> tuple[int, int, str, str]:
        return (self.start, self.end, self.base, self.name)

    @property
    def outline_level(self) -> bool:
        """Top-level, or directly in a top-level class-like definition (namespaces do not count)."""
        container = self.container
        return self.depth == 0 or (
            self.depth == 1 and container is not None and container.kind in CLASS_KINDS
            and self.parent is container
        )

    def __repr__(self) -> str:
        return f"Symbol({self.kind} {self.name!r} {self.start}-{self.end} depth={self.depth})"


def outer_start(node: Node, spec: LanguageSpec, data: bytes) -> tuple[Node, int]:
    """The outermost node of a definition (through wrappers like decorators or ``export``) and the byte
    where the definition starts once the doc comments and attributes right above it are included."""
    outer = node
    parent = outer.parent
    while parent is not None and parent.type in spec.wrappers:
        outer = parent
        parent = outer.parent
    start = outer.start_byte
    sibling = outer.prev_sibling
    current_row = outer.start_point.row
    while sibling is not None and sibling.type in spec.attached:
        if sibling.end_point.row < current_row - 1:
            break  # a blank line separates it
        column = sibling.start_point.column
        if data[sibling.start_byte - column : sibling.start_byte].strip():
            break  # a trailing comment of the previous line
        start = sibling.start_byte
        current_row = sibling.start_point.row
        sibling = sibling.prev_sibling
    return outer, start


def _symbols(language: Language, tree: Tree, data: bytes, byte_range: tuple[int, int] | None) -> list[Symbol]:
    cursor = QueryCursor(language.index_query)
    if byte_range is not None:
        cursor.set_byte_range(*byte_range)
    spec = language.spec
    kinds = language.kinds
    best: dict[tuple[int, int], tuple[int, list[Symbol]]] = {}
    for _, captures in cursor.matches(tree.root_node):
        main: Node | None = None
        kind = ""
        scope = False
        priority = 0
        for capture, nodes in captures.items():
            if capture in kinds:
                main = nodes[0]
                kind = kinds[capture]
                scope = capture.startswith("scope.")
                priority = _PRIORITY["scope" if scope else "definition"]
            elif capture == "import":
                main = nodes[0]
                kind = "import"
                priority = _PRIORITY["import"]
        if main is None:
            continue
        names = captures.get("name")
        name = ""
        name_at = -1
        if names:
            text = names[0].text
            name = text.decode("utf-8", "replace") if text else ""
            name_at = names[0].start_byte
        bodies = captures.get("body")
        sig_end = bodies[0].start_byte if bodies else -1
        _, start = outer_start(main, spec, data) if kind != "import" else (main, main.start_byte)
        symbol = Symbol(kind, name, main.start_byte, main.end_byte, start, sig_end, scope, name_at)
        # one node captured by several patterns: keep the most specific capture(s)
        key = (main.start_byte, main.end_byte)
        current = best.get(key)
        if current is None or current[0] < priority:
            best[key] = (priority, [symbol])
        elif current[0] == priority and all(s.name != name or s.base != kind for s in current[1]):
            current[1].append(symbol)
    return [symbol for _, symbols in best.values() for symbol in symbols]


def _intersects(symbol: Symbol, lo: int, hi: int) -> bool:
    """Closed-interval test: touching counts (an insertion right after a node may extend it)."""
    return symbol.outer <= hi and symbol.end >= lo


class FileIndex:
    """Definitions and imports of one document, sorted by start."""

    def __init__(self, language: Language, tree: Tree, data: bytes) -> None:
        self.language = language
        self.symbols: list[Symbol] = []
        self._dirty: list[tuple[int, int]] = []
        self._by_name: dict[str, list[Symbol]] | None = None
        self._finalized = False
        self._set(_symbols(language, tree, data, None))

    # ------------------------------------------------------------------ maintenance
    def _set(self, symbols: list[Symbol]) -> None:
        symbols.sort(key=lambda s: (s.start, -s.end))
        self.symbols = symbols
        self._by_name = None
        self._finalized = False

    @property
    def stale(self) -> bool:
        return bool(self._dirty)

    def apply_edit(self, start: int, old_end: int, new_end: int) -> None:
        """Record an edit (bytes ``[start, old_end)`` replaced, the new text ends at ``new_end``)."""
        delta = new_end - old_end
        kept: list[Symbol] = []
        for symbol in self.symbols:
            if symbol.end < start:
                kept.append(symbol)
            elif symbol.outer > old_end:
                symbol.shift(delta)
                kept.append(symbol)
        if len(kept) != len(self.symbols):
            self.symbols = kept
            self._by_name = None
            self._finalized = False
        dirty: list[tuple[int, int]] = []
        for lo, hi in self._dirty:
            if hi < start:
                dirty.append((lo, hi))
            elif lo > old_end:
                dirty.append((lo + delta, hi + delta))
            else:
                dirty.append((min(lo, start), max(hi + delta, new_end)))
        dirty.append((start, new_end))
        self._dirty = dirty

    def invalidate(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Mark byte ranges (in current coordinates) whose syntax changed."""
        for lo, hi in ranges:
            before = len(self.symbols)
            self.symbols = [s for s in self.symbols if not _intersects(s, lo, hi)]
            if len(self.symbols) != before:
                self._by_name = None
                self._finalized = False
            self._dirty.append((lo, hi))

    def refresh(self, tree: Tree, data: bytes) -> None:
        """Query the dirty regions again on the current tree."""
        if not self._dirty:
            return
        regions = sorted(self._dirty)
        self._dirty = []
        merged: list[list[int]] = []
        for lo, hi in regions:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        # symbols still present inside a dirty region are found again below: drop them first
        symbols = [s for s in self.symbols if not any(_intersects(s, lo, hi) for lo, hi in merged)]
        known = {s.key for s in symbols}
        size = len(data)
        for lo, hi in merged:
            for symbol in _symbols(self.language, tree, data, (max(0, lo - 1), min(size, hi + 1))):
                if symbol.key not in known:
                    known.add(symbol.key)
                    symbols.append(symbol)
        self._set(symbols)

    # ------------------------------------------------------------------ queries
    def _finalize(self) -> None:
        """Compute nesting (depth, parent) and turn functions inside classes into methods."""
        if self._finalized:
            return
        stack: list[Symbol] = []
        containers: list[Symbol] = []  # the stack without namespaces
        for symbol in self.symbols:
            while stack and (stack[-1].end < symbol.end or stack[-1].end <= symbol.start):
                if containers and containers[-1] is stack.pop():
                    containers.pop()
            parent = stack[-1] if stack else None
            symbol.parent = parent
            symbol.container = containers[-1] if containers else None
            symbol.depth = len(containers)
            method = symbol.base == "function" and parent is not None and parent.kind in CLASS_KINDS
            symbol.kind = "method" if method else symbol.base
            if symbol.scope:
                stack.append(symbol)
                if symbol.kind not in NAMESPACE_KINDS:
                    containers.append(symbol)
        self._finalized = True

    def definitions(self) -> Iterator[Symbol]:
        """All definitions (not imports), in order."""
        self._finalize()
        return (s for s in self.symbols if s.kind != "import")

    def imports(self) -> list[Symbol]:
        return [s for s in self.symbols if s.kind == "import"]

    @property
    def by_name(self) -> dict[str, list[Symbol]]:
        if self._by_name is None:
            self._finalize()
            table: dict[str, list[Symbol]] = {}
            for symbol in self.symbols:
                if symbol.name and symbol.kind != "import":
                    table.setdefault(symbol.name, []).append(symbol)
            self._by_name = table
        return self._by_name

    def between(self, lo: int, hi: int) -> list[Symbol]:
        """Symbols starting in bytes ``[lo, hi)``."""
        symbols = self.symbols
        first = bisect_left(symbols, lo, key=lambda s: s.start)
        last = bisect_left(symbols, hi, lo=first, key=lambda s: s.start)
        return symbols[first:last]

    def children(self, parent: Symbol) -> list[Symbol]:
        """Definitions directly inside ``parent``."""
        self._finalize()
        index = bisect_left(self.symbols, parent.start, key=lambda s: s.start)
        return [s for s in self.symbols[index:] if s.start < parent.end and s.parent is parent]
