"""The tables derived from a document's definitions, sorted by where they start: each one's nesting (parent,
container, depth, method or function) and the names table, the outline and the imports.

Computed a step of symbols at a time, so that a refresh of a large file's index spreads the work over
slices between messages.
"""

from __future__ import annotations

import time
from array import array

from .symbols import CLASS_KINDS, NAMESPACE_KINDS, Symbol

__all__ = ["Nesting"]


class Nesting:
    """The derived tables of a sorted list of symbols (nesting, names, outline, imports), computed a step of
    symbols at a time, then put in place at once by :meth:`apply`: until then the symbols, which may be
    in an index's tables too, are left as they are."""

    STEP = 256  # symbols between two looks at the clock

    def __init__(self, symbols: list[Symbol], *, names: bool = True) -> None:
        """``names``: build the names table too (else the caller updates the one it has)."""
        self.symbols = symbols
        self.done = 0
        self.stack: list[int] = []  # indices of the enclosing scopes
        self.containers: list[int] = []  # the stack without namespaces
        # per symbol, arrays of machine integers: nothing for the garbage collector to walk
        self.parents = array("l")  # index of the parent, -1 for none
        self.owners = array("l")  # index of the container, -1 for none
        self.depths = array("l")
        self.methods = array("b")  # a function in a class-like parent
        self.by_name: dict[str, list[Symbol]] | None = {} if names else None
        self.outline: list[Symbol] = []
        self.imports: list[Symbol] = []

    def run(self, deadline: float | None = None) -> bool:
        """Go on until done, or until ``deadline`` (``time.perf_counter()``) is past; returns whether done."""
        symbols = self.symbols
        stack, containers = self.stack, self.containers
        parents, owners, depths, methods = self.parents, self.owners, self.depths, self.methods
        by_name, outline, imports = self.by_name, self.outline, self.imports
        while self.done < len(symbols):
            stop = min(len(symbols), self.done + self.STEP)
            for i in range(self.done, stop):
                symbol = symbols[i]
                while stack and (symbols[stack[-1]].end < symbol.end or symbols[stack[-1]].end <= symbol.outer):
                    popped = stack.pop()
                    if containers and containers[-1] == popped:
                        containers.pop()
                parent = stack[-1] if stack else -1
                container = containers[-1] if containers else -1
                parents.append(parent)
                owners.append(container)
                depth = len(containers)
                depths.append(depth)
                base = symbol.base
                method = base == "function" and parent >= 0 and self.kind(parent) in CLASS_KINDS
                methods.append(method)
                if base == "import":
                    imports.append(symbol)
                    continue
                if symbol.scope:
                    stack.append(i)
                    if base not in NAMESPACE_KINDS:
                        containers.append(i)
                name = symbol.name
                if not name:
                    continue
                if by_name is not None:
                    entries = by_name.get(name)
                    if entries is None:
                        by_name[name] = [symbol]
                    else:
                        entries.append(symbol)
                if depth == 0 or (depth == 1 and parent == container and self.kind(container) in CLASS_KINDS):
                    outline.append(symbol)
            self.done = stop
            if deadline is not None and stop < len(symbols) and time.perf_counter() > deadline:
                return False
        return True

    def kind(self, index: int) -> str:
        return "method" if self.methods[index] else self.symbols[index].base

    def apply(self) -> None:
        """Set each symbol's nesting (the tables are read from :attr:`by_name` and the others)."""
        symbols = self.symbols
        for i, symbol in enumerate(symbols):
            parent, container = self.parents[i], self.owners[i]
            symbol.parent = symbols[parent] if parent >= 0 else None
            symbol.container = symbols[container] if container >= 0 else None
            symbol.depth = self.depths[i]
            symbol.kind = self.kind(i)
