"""A per-document table of definitions and imports, kept up to date incrementally.

Built once from the language's index query, then maintained across edits: symbols away from an edit are
kept (and shifted), symbols touching the edit or a range whose syntax changed are dropped, and only those
regions are queried again. This keeps context extraction cheap while the user types in a large file.
Positions are UTF-8 byte offsets, like tree-sitter's.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from contextlib import suppress

from tree_sitter import Tree

from .languages import Language, LanguageSpec
from .symbols import CLASS_KINDS, NAMESPACE_KINDS, Symbol, collect_symbols, definition_bounds

__all__ = ["FileIndex"]


def _intersects(symbol: Symbol, lo: int, hi: int) -> bool:
    """Closed-interval test: touching counts (an insertion right after a node may extend it)."""
    return symbol.outer <= hi and symbol.end >= lo


def _merge(ranges: Iterable[tuple[int, int]]) -> list[list[int]]:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return merged


def _discard(items: list[Symbol], symbol: Symbol) -> None:
    with suppress(ValueError):
        items.remove(symbol)  # identity: symbols have no __eq__


def _outer(symbol: Symbol) -> int:
    return symbol.outer


def _order(symbol: Symbol) -> tuple[int, int]:
    return (symbol.outer, -symbol.end)


class FileIndex:
    """Definitions and imports of one document, sorted by where they start (``outer``).

    Derived tables (nesting, names, outline, imports) are recomputed after each change in one pass.
    """

    def __init__(self, language: Language, tree: Tree, data: bytes) -> None:
        self.language = language
        self.symbols: list[Symbol] = []
        self._dirty: list[tuple[int, int]] = []
        self._by_name: dict[str, list[Symbol]] = {}
        self._outline: list[Symbol] = []
        self._imports: list[Symbol] = []
        self._removed: list[Symbol] = []  # dropped by edits, to take out of the tables at the next refresh
        self._set(collect_symbols(language, tree, data, None))

    # ------------------------------------------------------------------ maintenance
    def _set(self, symbols: list[Symbol]) -> None:
        symbols.sort(key=_order)
        self.symbols = symbols
        self._finalize()

    @property
    def stale(self) -> bool:
        return bool(self._dirty)

    def apply_edit(self, start: int, old_end: int, new_end: int) -> None:
        """Record an edit (bytes ``[start, old_end)`` replaced, the new text ends at ``new_end``)."""
        delta = new_end - old_end
        dirty: list[tuple[int, int]] = []
        for lo, hi in self._dirty:
            if hi < start:
                dirty.append((lo, hi))
            elif lo > old_end:
                dirty.append((lo + delta, hi + delta))
            else:
                dirty.append((min(lo, start), max(hi + delta, new_end)))
        dirty.append((start, new_end))
        symbols = self.symbols
        tail = bisect_right(symbols, old_end, key=_outer)  # the symbols after the edit: moved
        if delta:
            for symbol in symbols[tail:]:
                symbol.outer += delta
                symbol.end += delta
        # before them, those reaching the edit are dropped: found again by refresh if they still exist
        touched = [i for i in range(tail) if symbols[i].end >= start]
        for i in reversed(touched):
            symbol = symbols.pop(i)
            self._removed.append(symbol)
            dirty.append((min(symbol.outer, start), symbol.end + delta if symbol.end >= old_end else new_end))
        self._dirty = dirty

    def invalidate(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Mark byte ranges (in current coordinates) whose syntax changed."""
        self._dirty.extend(ranges)
        if len(self._dirty) > 8:
            self._dirty = [(lo, hi) for lo, hi in _merge(self._dirty)]

    def refresh(self, tree: Tree, data: bytes) -> None:
        """Query the dirty regions again on the current tree."""
        if not self._dirty:
            return
        regions = _merge(self._dirty)
        self._dirty = []
        symbols = self.symbols
        removed = self._removed
        self._removed = []
        while True:  # drop the symbols touching a region, grow the region to cover them, until stable
            grown = False
            for region in regions:
                lo, hi = region
                last = bisect_right(symbols, hi, key=_outer)
                touched = [i for i in range(last) if symbols[i].end >= lo]
                for i in reversed(touched):
                    symbol = symbols.pop(i)
                    removed.append(symbol)
                    if symbol.outer < region[0] or symbol.end > region[1]:
                        region[0] = min(region[0], symbol.outer)
                        region[1] = max(region[1], symbol.end)
                        grown = True
            if not grown:
                break
            regions = _merge([(lo, hi) for lo, hi in regions])
        # nothing left touches a region: what the query finds there is new (but may be found twice)
        known: set[tuple[int, int, str, str]] = set()
        size = len(data)
        found: list[Symbol] = []
        for lo, hi in regions:
            # matches overlapping the range come whole, and a pattern rooted at the file's root node (module
            # constants) overlaps any range: keep only what touches the region, like what was dropped
            for symbol in collect_symbols(self.language, tree, data, (max(0, lo - 1), min(size, hi + 1))):
                if _intersects(symbol, lo, hi) and symbol.key not in known:
                    known.add(symbol.key)
                    found.append(symbol)
        found.sort(key=_order)
        for symbol in found:
            symbols.insert(bisect_right(symbols, _order(symbol), key=_order), symbol)
        # the doc comments of the definition right after a region may have changed: check where it starts
        spec = self.language.spec
        reordered = False
        for _, hi in regions:
            index = bisect_right(symbols, hi, key=_outer)
            if index < len(symbols):
                reordered |= self._reattach(symbols, index, tree, data, spec)
        if reordered or len(removed) + len(found) > len(symbols) // 4:
            self._finalize()
        else:
            self._update(removed, found)

    @staticmethod
    def _reattach(symbols: list[Symbol], index: int, tree: Tree, data: bytes, spec: LanguageSpec) -> bool:
        """Recompute where a symbol starts (its doc comments); True if the symbols had to be sorted again."""
        symbol = symbols[index]
        start = symbol.start
        node = tree.root_node.descendant_for_byte_range(start, symbol.end)
        if node is None or node.end_byte != symbol.end:
            return False
        _, _, outer = definition_bounds(node, spec, data)
        if outer != symbol.outer and symbol.base != "import":
            symbol.move_outer(outer)
            symbols.sort(key=_order)
            return True
        return False

    def _update(self, removed: list[Symbol], added: list[Symbol]) -> None:
        """Update the derived tables for removed and added symbols (see :meth:`_finalize`).

        Sound because a removed scope takes all its members with it (they touch the region grown to cover
        it), so the symbols kept never have a removed parent.
        """
        by_name = self._by_name
        for symbol in removed:
            if symbol.base == "import":
                _discard(self._imports, symbol)
                continue
            if symbol.name:
                entries = by_name.get(symbol.name)
                if entries is not None:
                    _discard(entries, symbol)
                    if not entries:
                        del by_name[symbol.name]
            _discard(self._outline, symbol)
        symbols = self.symbols
        for symbol in added:  # in order: parents come before their members
            index = bisect_left(symbols, _order(symbol), key=_order)
            while symbols[index] is not symbol:
                index += 1
            parent = symbols[index - 1] if index else None
            while parent is not None and not (
                parent.scope and parent.end >= symbol.end and parent.end > symbol.outer
            ):
                parent = parent.parent
            container = parent
            while container is not None and container.base in NAMESPACE_KINDS:
                container = container.parent
            symbol.parent = parent
            symbol.container = container
            depth = symbol.depth = container.depth + 1 if container is not None else 0
            base = symbol.base
            if base == "import":
                insort(self._imports, symbol, key=_order)
                continue
            method = base == "function" and parent is not None and parent.kind in CLASS_KINDS
            symbol.kind = "method" if method else base
            if not symbol.name:
                continue
            by_name.setdefault(symbol.name, []).append(symbol)
            if depth == 0 or (
                depth == 1 and parent is container and container is not None and container.kind in CLASS_KINDS
            ):
                insort(self._outline, symbol, key=_order)

    def _finalize(self) -> None:
        """Nesting (depth, parent, methods inside classes), the names table, the outline and the imports."""
        stack: list[Symbol] = []
        containers: list[Symbol] = []  # the stack without namespaces
        by_name: dict[str, list[Symbol]] = {}
        outline: list[Symbol] = []
        imports: list[Symbol] = []
        for symbol in self.symbols:
            while stack and (stack[-1].end < symbol.end or stack[-1].end <= symbol.outer):
                popped = stack.pop()
                if containers and containers[-1] is popped:
                    containers.pop()
            parent = stack[-1] if stack else None
            container = containers[-1] if containers else None
            symbol.parent = parent
            symbol.container = container
            depth = symbol.depth = len(containers)
            base = symbol.base
            if base == "import":
                imports.append(symbol)
                continue
            if base == "function" and parent is not None and parent.kind in CLASS_KINDS:
                symbol.kind = "method"
            else:
                symbol.kind = base
            if symbol.scope:
                stack.append(symbol)
                if base not in NAMESPACE_KINDS:
                    containers.append(symbol)
            name = symbol.name
            if not name:
                continue
            entries = by_name.get(name)
            if entries is None:
                by_name[name] = [symbol]
            else:
                entries.append(symbol)
            if depth == 0 or (
                depth == 1 and parent is container and container is not None and container.kind in CLASS_KINDS
            ):
                outline.append(symbol)
        self._by_name = by_name
        self._outline = outline
        self._imports = imports

    # ------------------------------------------------------------------ queries
    def definitions(self) -> Iterator[Symbol]:
        """All definitions (not imports), in order."""
        return (s for s in self.symbols if s.base != "import")

    def imports(self) -> list[Symbol]:
        return self._imports

    @property
    def outline(self) -> list[Symbol]:
        """Named top-level and class-level definitions, in order."""
        return self._outline

    @property
    def by_name(self) -> dict[str, list[Symbol]]:
        return self._by_name

    def between(self, lo: int, hi: int) -> list[Symbol]:
        """Symbols starting (``outer``) in bytes ``[lo, hi)``."""
        symbols = self.symbols
        first = bisect_left(symbols, lo, key=_outer)
        last = bisect_left(symbols, hi, lo=first, key=_outer)
        return symbols[first:last]

    def children(self, parent: Symbol) -> list[Symbol]:
        """Definitions directly inside ``parent``."""
        symbols = self.symbols
        index = bisect_right(symbols, parent.outer, key=_outer)
        result: list[Symbol] = []
        for symbol in symbols[index:]:
            if symbol.outer >= parent.end:
                break
            if symbol.parent is parent:
                result.append(symbol)
        return result
