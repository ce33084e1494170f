"""The three queries a language's query file makes, compiled when first needed, one at a time.

Compiling a query is one call into tree-sitter that holds the interpreter throughout: 1 to 20 ms per query
for most grammars, 70 ms for C++. Compiling all of them when a document opens held the event loop for the
sum; compiled apart, a server spreads them over slices of its own between messages
(:meth:`LanguageQueries.compile_next`), and whatever needs one first compiles it.

A query file that does not compile (a grammar whose node types changed) is logged once, and the language
gets empty queries: its documents are parsed, but have no definitions, references or scopes.
"""

from __future__ import annotations

import logging
import threading

from tree_sitter import Language as TSLanguage
from tree_sitter import Query, QueryError

__all__ = ["LanguageQueries"]

log = logging.getLogger(__name__)


class LanguageQueries:
    """The index query (scopes, definitions and imports), the reference query (``@reference`` patterns)
    and the scope query (``@scope.*`` patterns) of a query file, and its kinds of definitions."""

    def __init__(self, name: str, ts_language: TSLanguage, source: str) -> None:
        self.name = name
        self.source = source
        self._ts_language = ts_language
        self._lock = threading.Lock()
        self._index: Query | None = None
        self._kinds: dict[str, str] = {}
        self._parts: tuple[bytes, bytes] = (b"", b"")  # the reference and the scope patterns' text
        self._subsets: list[Query | None] = [None, None]  # the reference and the scope queries

    @property
    def index(self) -> Query:
        """Every pattern of the file but the ``@reference`` ones."""
        with self._lock:
            if self._index is None:
                self._index = self._compile_index()
            return self._index

    @property
    def kinds(self) -> dict[str, str]:
        """``"scope.function" -> "function"``, ``"definition.constant" -> "constant"``, ..."""
        self.index  # noqa: B018 - read from it
        return self._kinds

    @property
    def reference(self) -> Query:
        return self._subset(0)

    @property
    def scope(self) -> Query:
        return self._subset(1)

    @property
    def compiled(self) -> int:
        """How many of the three are compiled."""
        return sum(query is not None for query in (self._index, *self._subsets))

    @property
    def pending(self) -> bool:
        """Whether a query is still to be compiled."""
        return self.compiled < 3

    def compile_next(self) -> None:
        """Compile one query still to be compiled (the index query first)."""
        if self._index is None:
            self.index  # noqa: B018
        elif None in self._subsets:
            self._subset(self._subsets.index(None))

    def _subset(self, which: int) -> Query:
        self.index  # noqa: B018 - which patterns are which is known from it
        with self._lock:
            query = self._subsets[which]
            if query is None:
                query = self._subsets[which] = self._compile(self._parts[which])
            return query

    def _compile_index(self) -> Query:
        try:
            query: Query = Query(self._ts_language, self.source)
        except QueryError as error:
            log.error("the query file for %s does not compile (%s): its documents get no definitions", self.name,
                      error)
            return self._compile(b"")
        raw = self.source.encode("utf-8")
        references: list[bytes] = []
        scopes: list[bytes] = []
        for index in range(query.pattern_count):
            pattern = raw[query.start_byte_for_pattern(index) : query.end_byte_for_pattern(index)]
            if b"@reference" in pattern:
                query.disable_pattern(index)
                references.append(pattern)
            if b"@scope." in pattern:
                scopes.append(pattern)
        self._parts = (b"\n".join(references), b"\n".join(scopes))
        for index in range(query.capture_count):
            capture = query.capture_name(index)
            if capture.startswith(("scope.", "definition.")):
                self._kinds[capture] = capture.split(".", 1)[1]
        return query

    def _compile(self, patterns: bytes) -> Query:
        query: Query = Query(self._ts_language, patterns.decode("utf-8"))
        return query
