"""A per-document table of definitions and imports, kept up to date incrementally.

Built once from the language's index query, then maintained across edits: symbols away from an edit are
kept (and shifted), symbols touching the edit or a range whose syntax changed are dropped, and only those
regions are queried again. This keeps context extraction cheap while the user types in a large file.
Positions are UTF-8 byte offsets, like tree-sitter's.
"""

from __future__ import annotations

import copy
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field

from tree_sitter import Tree

from .languages import Language
from .nesting import Nesting
from .symbols import CLASS_KINDS, NAMESPACE_KINDS, Symbol, collect_symbols

__all__ = ["FileIndex"]

REFRESH_PIECE = 4 * 1024  # bytes


@dataclass
class _Refresh:
    """A refresh under way: the regions it queries, the symbols it keeps and drops, the pieces of the
    regions left to query, what the query found so far, and then the tables it builds from them."""

    regions: list[tuple[int, int]]
    kept: list[Symbol]
    removed: list[Symbol]
    pieces: list[tuple[int, int, int, int]]  # (lo, hi) of a piece, (lo, hi) of its region; last first
    found: list[Symbol] = field(default_factory=list)
    new: list[Symbol] = field(default_factory=list)  # what was found that is not a dropped symbol again
    known: set[tuple[int, int, str, str]] = field(default_factory=set)
    nesting: Nesting | None = None

    def __post_init__(self) -> None:
        self.previous = {_place(symbol): i for i, symbol in enumerate(self.removed)}  # -> index in removed
        self.reused = bytearray(len(self.removed))  # per dropped symbol: found again

    def next_piece(self, lo: int) -> None:
        """Forget what the next piece, from ``lo``, cannot find again: a match comes in each piece it
        reaches, and nothing ending before the piece reaches it. (What is left is what encloses it: the
        set stays small, and so does the garbage collector's work on it.)"""
        self.known = {key for key in self.known if key[1] >= lo}

    def add(self, symbol: Symbol) -> None:
        """Take a symbol the query found; the dropped symbol it equals, if any, in its place.

        An edit that opens a bracket drops every symbol after it, and the query finds most of them again
        unchanged: keeping those objects (their cached texts cleared, as their text may differ) rather than
        thousands of new ones spares the garbage collector, whose passes over young objects would hold
        the event loop for milliseconds each."""
        key = symbol.key
        if key in self.known:
            return
        self.known.add(key)
        index = self.previous.get(_place(symbol))
        if index is not None and self.removed[index].same_as(symbol):
            symbol = self.removed[index]
            symbol.cache = None
            self.reused[index] = 1
        else:
            self.new.append(symbol)
        self.found.append(symbol)

    def renamed(self, by_name: dict[str, list[Symbol]]) -> None:
        """Update a names table for what the refresh dropped and found (the symbols found again are in it
        already: most of them, after an edit that opens a bracket, so most of its lists stay as they are)."""
        for index, symbol in enumerate(self.removed):
            if not self.reused[index] and symbol.base != "import":
                _unname(by_name, symbol)
        for symbol in self.new:
            if symbol.base != "import" and symbol.name:
                by_name.setdefault(symbol.name, []).append(symbol)


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


def _unname(by_name: dict[str, list[Symbol]], symbol: Symbol) -> None:
    entries = by_name.get(symbol.name) if symbol.name else None
    if entries is not None:
        _discard(entries, symbol)
        if not entries:
            del by_name[symbol.name]


def _place(symbol: Symbol) -> int:
    return symbol.outer << 32 | symbol.end  # an int: no new object for the collector to track


def _outer(symbol: Symbol) -> int:
    return symbol.outer


def _order(symbol: Symbol) -> int:
    # by start, the outer of two symbols starting together first; an int rather than a tuple, as sorting
    # makes one key per symbol and a tuple is an object the garbage collector counts (thousands of them
    # would start its passes in the middle of a slice of upkeep)
    return symbol.outer << 32 | (0xFFFFFFFF - symbol.end)


class FileIndex:
    """Definitions and imports of one document, sorted by where they start (``outer``).

    Derived tables (nesting, names, outline, imports) are updated after a small change, and rebuilt after
    a large one (in steps, when the refresh has a budget).
    """

    def __init__(self, language: Language, tree: Tree | None, data: bytes) -> None:
        self.language = language
        self.symbols: list[Symbol] = []
        self._dirty: list[tuple[int, int]] = []
        self._by_name: dict[str, list[Symbol]] = {}
        self._outline: list[Symbol] = []
        self._imports: list[Symbol] = []
        self._removed: list[Symbol] = []  # dropped by edits, to take out of the tables at the next refresh
        self._job: _Refresh | None = None
        if tree is None:  # built by refresh, in slices if it is given a budget
            self._dirty.append((0, len(data)))
        else:
            self._set(collect_symbols(language, tree, data, None))

    # ------------------------------------------------------------------ maintenance
    def _set(self, symbols: list[Symbol]) -> None:
        symbols.sort(key=_order)
        nesting = Nesting(symbols)
        nesting.run()
        self._install(nesting)

    @property
    def stale(self) -> bool:
        return bool(self._dirty)

    def apply_edit(self, start: int, old_end: int, new_end: int) -> None:
        """Record an edit (bytes ``[start, old_end)`` replaced, the new text ends at ``new_end``)."""
        self._job = None
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
        self._job = None
        self._dirty.extend(ranges)
        if len(self._dirty) > 8:
            self._dirty = [(lo, hi) for lo, hi in _merge(self._dirty)]

    def refresh(self, tree: Tree, data: bytes, budget: float | None = None) -> bool:
        """Query the dirty regions again on the current tree; with a ``budget`` (seconds), stop after about
        that long and go on from there at the next call. Returns whether the index is up to date.

        Until a refresh is complete the tables stay as they were (symbols away from the edits, moved with
        them), so that what reads the index in between sees every definition it saw before; an edit or
        an invalidation abandons a refresh under way (its regions stay dirty)."""
        if not self._dirty:
            return True
        job = self._job
        if job is None:
            job = self._job = self._plan()
        deadline = None if budget is None else time.perf_counter() + budget
        size = len(data)
        pieces = job.pieces
        while pieces:
            if deadline is not None and time.perf_counter() > deadline:
                return False
            lo, hi, region_lo, region_hi = pieces.pop()
            job.next_piece(max(0, lo - 1))
            # matches overlapping the range come whole, and a pattern rooted at the file's root node (module
            # constants) overlaps any range: keep only what touches the region, like what was dropped
            for symbol in collect_symbols(self.language, tree, data, (max(0, lo - 1), min(size, hi + 1))):
                if _intersects(symbol, region_lo, region_hi):
                    job.add(symbol)
        if job.nesting is None:
            if deadline is not None and time.perf_counter() > deadline:
                return False  # the tables are rebuilt in slices of their own
            if self._merge(job, tree, data):
                return True
        assert job.nesting is not None
        if not job.nesting.run(deadline):
            return False
        if job.nesting.by_name is None:
            job.renamed(self._by_name)
        self._install(job.nesting)
        self._done()
        return True

    def _plan(self) -> _Refresh:
        """The regions to query again: the dirty ones, grown to cover every symbol touching them."""
        regions = _merge(self._dirty)
        symbols = list(self.symbols)
        removed = list(self._removed)
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
        pieces = [
            (piece, min(hi, piece + REFRESH_PIECE), lo, hi)
            for lo, hi in regions
            for piece in range(lo, max(hi, lo + 1), REFRESH_PIECE)
        ]
        pieces.reverse()  # popped from the end: in order
        return _Refresh([(lo, hi) for lo, hi in regions], symbols, removed, pieces)

    def _merge(self, job: _Refresh, tree: Tree, data: bytes) -> bool:
        """Merge what a refresh found with what it kept. A few changes go in place at once (True); else the
        tables are rebuilt, in steps (:attr:`_Refresh.nesting`)."""
        found = job.found
        # nothing kept touches a region: what the query found there is new
        symbols = job.kept + found
        symbols.sort(key=_order)  # two sorted runs: merged in linear time
        # the doc comments of the definition right after a region may have changed: check where it starts
        reordered = False
        for _, hi in job.regions:
            index = bisect_right(symbols, hi, key=_outer)
            if index < len(symbols):
                reordered |= self._reattach(symbols, index, tree, data)
        if reordered or len(job.removed) + len(found) > len(symbols) // 4:
            # a moved symbol is a copy the names table does not have: the table is built again then
            job.nesting = Nesting(symbols, names=reordered)
            return False
        self.symbols = symbols
        self._update(job.removed, found)
        self._done()
        return True

    def _done(self) -> None:
        self._job = None
        self._dirty = []
        self._removed = []

    def _install(self, nesting: Nesting) -> None:
        nesting.apply()
        self.symbols = nesting.symbols
        if nesting.by_name is not None:
            self._by_name = nesting.by_name
        self._outline = nesting.outline
        self._imports = nesting.imports

    def _reattach(self, symbols: list[Symbol], index: int, tree: Tree, data: bytes) -> bool:
        """Recompute where a symbol starts (its doc comments); True if the symbols had to be sorted again.

        The symbol is found again by the query that found it, over its own bytes: the node a position
        lookup gives may be a child with the same range (an assignment in its statement), whose doc
        comments are its parent's. A symbol that moves is replaced by a moved copy: the one in the tables
        stays as it is until the new tables replace them."""
        symbol = symbols[index]
        if symbol.base == "import":
            return False
        again = next((found for found in collect_symbols(self.language, tree, data, (symbol.start, symbol.end))
                      if found.key == symbol.key), None)
        if again is None or again.outer == symbol.outer:
            return False
        moved = symbols[index] = copy.copy(symbol)
        moved.cache = None
        moved.move_outer(again.outer)
        symbols.sort(key=_order)
        return True

    def _update(self, removed: list[Symbol], added: list[Symbol]) -> None:
        """Update the derived tables for removed and added symbols (see :class:`Nesting`).

        Sound because a removed scope takes all its members with it (they touch the region grown to cover
        it), so the symbols kept never have a removed parent.
        """
        by_name = self._by_name
        for symbol in removed:
            if symbol.base == "import":
                _discard(self._imports, symbol)
                continue
            _unname(by_name, symbol)
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
