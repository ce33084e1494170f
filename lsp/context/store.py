"""The open documents of a session, most recently used first, with a bound on the memory their syntax
trees take (a tree of a large file costs ~40 bytes per byte of source): the least recently used documents
lose their tree, which is parsed again if needed; their definitions index is kept, so cross-file context
still works.

Not thread safe: use a store and its documents from one thread at a time.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

from .documents import DEFAULT_MAX_SIZE, DEFAULT_TREE_BUDGET, PARSE_SLICE, Change, Document, UnknownDocument
from .positions import Encoding

__all__ = ["DocumentStore"]

log = logging.getLogger(__name__)


def _queries_due(doc: Document) -> bool:
    return doc.language is not None and doc.has_tree and doc.language.queries.pending


def _compile_query(doc: Document, _budget: float) -> None:
    assert doc.language is not None
    doc.language.queries.compile_next()


# The upkeep edits leave for later, most urgent first: whether a document needs it, and one step of it of
# at most about ``budget`` seconds.
_UPKEEP: tuple[tuple[Callable[[Document], bool], Callable[[Document, float], object]], ...] = (
    (lambda doc: doc.parse_pending, lambda doc, budget: doc.parse_step(budget)),
    (lambda doc: doc.retired, lambda doc, _: doc.release_retired()),  # a tree a re-parse replaced
    (lambda doc: doc.lines_due, lambda doc, _: doc.lines),  # a few milliseconds for 25,000 lines
    (_queries_due, _compile_query),  # one compilation
    # a piece of the index overshoots more than a parse slice
    (lambda doc: doc.has_tree and doc.index_due, lambda doc, budget: doc.index_step(budget / 2)),
)


class DocumentStore:
    """The open documents, most recently used first, with a bound on the memory their trees take."""

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE, tree_budget: int = DEFAULT_TREE_BUDGET) -> None:
        """``max_size``: documents larger than this (UTF-8 bytes) are not parsed. ``tree_budget``: the
        total size of the documents whose trees stay in memory (the most recently used one always does)."""
        self.max_size = max_size
        self.tree_budget = tree_budget
        self._encoding: Encoding = "utf-16"
        self._docs: OrderedDict[str, Document] = OrderedDict()  # least recently used first

    @property
    def encoding(self) -> Encoding:
        """The position encoding of the ranges in changes (and of every open document's positions)."""
        return self._encoding

    @encoding.setter
    def encoding(self, encoding: Encoding) -> None:
        self._encoding = encoding
        for doc in self._docs.values():
            doc.encoding = encoding

    def open(self, uri: str, language_id: str, version: int, text: str, *, budget: float | None = None) -> Document:
        """Open (or reopen) a document; with a ``budget``, a long parse is left for :meth:`catch_up`."""
        doc = Document(uri, language_id, version, text, max_size=self.max_size, encoding=self._encoding,
                       budget=budget)
        self._docs[uri] = doc
        self._docs.move_to_end(uri)
        doc.on_parse = self._parsed
        self._parsed(doc)
        return doc

    def change(self, uri: str, version: int, changes: Sequence[Change], *, budget: float | None = None) -> Document:
        """Apply the content changes of a ``didChange`` in order; with a ``budget``, a long re-parse is left
        for :meth:`catch_up` (see :meth:`Document.apply_changes`).

        Raises :class:`UnknownDocument` if the document is not open. A ``version`` that is not newer than the
        document's is logged and the changes applied all the same: the client sends what it changed, and
        dropping it would leave the server's copy different from the editor's for good.
        """
        doc = self.get(uri)
        if version <= doc.version:
            log.warning("%s: change to version %d follows version %d; applied", uri, version, doc.version)
        doc.apply_changes(changes, version, budget=budget)
        return doc

    @property
    def behind(self) -> bool:
        """Whether an open document has upkeep left: a re-parse pending, a tree it replaced to free, a line
        index to build, a query of its language to compile, or a definitions index to build or bring up to
        date."""
        return any(due(doc) for doc in self._docs.values() for due, _ in _UPKEEP)

    def catch_up(self, budget: float = PARSE_SLICE) -> bool:
        """Do one step of the upkeep edits left for later (see :attr:`behind`), the most urgent kind first
        and, within a kind, the most recently used document first. Returns whether nothing is left."""
        docs = list(reversed(self._docs.values()))
        for due, step in _UPKEEP:
            doc = next((doc for doc in docs if due(doc)), None)
            if doc is not None:
                step(doc, budget)
                break
        return not self.behind

    def close(self, uri: str) -> None:
        """Forget a document (closing an unknown document is not an error)."""
        doc = self._docs.pop(uri, None)
        if doc is not None:
            doc.on_parse = None

    def get(self, uri: str) -> Document:
        """The open document ``uri`` (marked as most recently used)."""
        try:
            doc = self._docs[uri]
        except KeyError:
            raise UnknownDocument(uri) from None
        self._docs.move_to_end(uri)
        return doc

    def __contains__(self, uri: object) -> bool:
        return uri in self._docs

    def __len__(self) -> int:
        return len(self._docs)

    def __iter__(self) -> Iterator[Document]:
        """The open documents, most recently used first."""
        return iter(list(reversed(self._docs.values())))

    def _parsed(self, doc: Document) -> None:
        """Keep the trees of the most recently used documents within the budget."""
        if doc.uri in self._docs:
            self._docs.move_to_end(doc.uri)
        total = 0
        for other in reversed(self._docs.values()):
            if not other.has_tree:
                continue
            total += other.size
            if total > self.tree_budget and other is not doc:
                log.debug("dropping the tree of %s to save memory", other.uri)
                other.drop_tree()
                total -= other.size
