"""Definitions and imports of a syntax tree (or a byte range of it), found with the language's index query.

Built once from the language's index query, then maintained across edits: symbols away from an edit are
kept (and shifted), symbols touching the edit or a range whose syntax changed are dropped, and only those
regions are queried again. This keeps context extraction cheap while the user types in a large file.
Positions are UTF-8 byte offsets, like tree-sitter's.
"""

from __future__ import annotations

from tree_sitter import Node, QueryCursor, Tree

from .languages import Language, LanguageSpec

__all__ = ["CLASS_KINDS", "NAMESPACE_KINDS", "Symbol", "collect_symbols", "definition_bounds", "signature_end"]

# kinds whose function members are reported as methods
CLASS_KINDS = frozenset(
    {"class", "struct", "interface", "trait", "impl", "enum", "union", "object", "protocol", "record"}
)
# kinds that only group definitions: what they contain still counts as top level in an outline
NAMESPACE_KINDS = frozenset({"module", "namespace", "package"})
_PRIORITY = {"scope": 3, "import": 2, "definition": 1}


class Symbol:
    """A definition (or import) found in a document. Byte offsets; mutable only by :class:`FileIndex`.

    Only ``outer`` and ``end`` are stored as absolute offsets (the others relative to ``outer``), so that
    moving a symbol after an edit is cheap.
    """

    __slots__ = (
        "_name", "_sig", "_start", "base", "cache", "container", "depth", "end", "kind", "name", "outer",
        "parent", "scope",
    )

    def __init__(self, kind: str, name: str, start: int, end: int, outer: int, sig_end: int,
                 scope: bool, name_at: int = -1) -> None:
        self.kind = kind  # "function", "method", "class", "variable", ..., "import"
        self.base = kind  # the kind as captured (a method may be captured as a function)
        self.name = name
        self.outer = outer  # start including decorators, export keyword, attached doc comments
        self.end = end  # the end of the definition node
        self._start = start - outer
        self._sig = sig_end - outer if sig_end >= 0 else -1
        self._name = name_at - outer if name_at >= 0 else -1
        self.scope = scope  # True for @scope.* captures
        self.depth = 0  # number of enclosing scope symbols, namespaces and modules not counted
        self.parent: Symbol | None = None  # innermost enclosing scope symbol
        self.container: Symbol | None = None  # innermost enclosing scope symbol that is not a namespace
        self.cache: tuple[str, str] | None = None  # texts computed by the extractor (positions are stable)

    @property
    def start(self) -> int:
        """Where the signature starts (the definition node, or ``export`` etc. before it)."""
        return self.outer + self._start

    @property
    def sig_end(self) -> int:
        """Where the body starts (the signature ends), -1 if there is no body."""
        return self.outer + self._sig if self._sig >= 0 else -1

    @property
    def name_at(self) -> int:
        """Where the name is, -1 if none."""
        return self.outer + self._name if self._name >= 0 else -1

    def move_outer(self, outer: int) -> None:
        """Let the symbol begin at ``outer`` (its doc comments changed), its other positions staying put."""
        shift = self.outer - outer
        self.outer = outer
        self._start += shift
        if self._sig >= 0:
            self._sig += shift
        if self._name >= 0:
            self._name += shift

    def same_as(self, other: Symbol) -> bool:
        """Whether ``other`` (found by a later query) is this definition, at the same place."""
        return (
            self.outer == other.outer and self.end == other.end and self._start == other._start
            and self._sig == other._sig and self._name == other._name and self.base == other.base
            and self.name == other.name and self.scope == other.scope
        )

    @property
    def key(self) -> tuple[int, int, str, str]:
        return (self.outer + self._start, self.end, self.base, self.name)

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


def definition_bounds(node: Node, spec: LanguageSpec, data: bytes) -> tuple[Node, int, int]:
    """Where a definition begins: ``(outermost node, signature start, start)``.

    The outermost node goes through wrappers (decorators) and prefixes (``export``, ``template<...>``); the
    signature starts at the outermost prefix; the start also takes the doc comments and attributes right
    above the definition.
    """
    outer = node
    head = node.start_byte
    parent = outer.parent
    while parent is not None:
        if parent.type in spec.prefixes:
            if sum(1 for child in parent.named_children if child.type == outer.type) != 1:
                break  # a group: `const ( A = 1; B = 2 )`
            head = parent.start_byte
        elif parent.type not in spec.wrappers:
            break
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
    return outer, head, start


def signature_end(body: Node | None, spec: LanguageSpec) -> int:
    """Where a signature ends: at the body, or at the comments right before it. -1 without a body."""
    if body is None:
        return -1
    end = body.start_byte
    sibling = body.prev_sibling
    while sibling is not None and sibling.type in spec.comments:
        end = sibling.start_byte
        sibling = sibling.prev_sibling
    return end


def collect_symbols(language: Language, tree: Tree, data: bytes, byte_range: tuple[int, int] | None) -> list[Symbol]:
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
        if main is None or (byte_range is not None and (
            main.end_byte < byte_range[0] or main.start_byte > byte_range[1]
        )):
            continue
        names = captures.get("name")
        name = ""
        name_at = -1
        if names:
            name_at = names[0].start_byte
            name = data[name_at : names[0].end_byte].decode("utf-8", "replace")
        bodies = captures.get("body")
        sig_end = signature_end(bodies[0] if bodies else None, spec)
        _, head, start = definition_bounds(main, spec, data)
        if kind == "import":
            start = head  # no doc comments
        symbol = Symbol(kind, name, head, main.end_byte, start, sig_end, scope, name_at)
        # one node captured by several patterns: keep the most specific capture(s)
        key = (main.start_byte, main.end_byte)
        current = best.get(key)
        if current is None or current[0] < priority:
            best[key] = (priority, [symbol])
        elif current[0] == priority and all(s.name != name or s.base != kind for s in current[1]):
            current[1].append(symbol)
    return [symbol for _, symbols in best.values() for symbol in symbols]
