"""Open documents: text, line index, syntax tree kept up to date incrementally, definitions index.

A :class:`Document` applies LSP content changes with ``tree.edit`` and an incremental re-parse. The re-parse
can be given a time budget: most edits re-parse in a millisecond or two, but one that leaves a bracket or a
string open makes tree-sitter re-parse the rest of the file with error recovery (tens of milliseconds for a
5,000-line file). Such a parse is suspended when its budget runs out and resumed later, in slices
(:meth:`Document.parse_step`, :meth:`DocumentStore.catch_up`; see :mod:`.resumable`), so that a server keeps
answering while it runs; a newer edit abandons it and starts again. Whoever reads :attr:`Document.tree` gets
the finished tree.

The open documents of a session live in a :class:`~lsp.context.store.DocumentStore`.

Not thread safe: use a store and its documents from one thread at a time (parsers are per thread, so
separate stores may live in separate threads).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence

from tree_sitter import Parser, Tree

from lsp.uris import uri_to_path

from .index import FileIndex
from .languages import Language, language_for, parser_for
from .positions import Encoding, LineIndex, encode, point_after
from .resumable import parse_within

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TREE_BUDGET",
    "Change",
    "Document",
    "Range",
    "UnknownDocument",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 5 * 1024 * 1024  # bytes of UTF-8; larger documents are kept as plain text
DEFAULT_TREE_BUDGET = 4 * 1024 * 1024  # bytes of source whose trees a store keeps in memory
PARSE_SLICE = 0.004  # seconds a re-parse runs before it is suspended, when the caller gives a budget

# ((start line, start character), (end line, end character)), characters in the document's position encoding
Range = tuple[tuple[int, int], tuple[int, int]]
Change = tuple[str, Range | None]  # (text, range); range None = the whole document


class UnknownDocument(KeyError):
    """The document is not open."""


class Document:
    """One open text document: its text, line index, language, tree and definitions index."""

    def __init__(
        self,
        uri: str,
        language_id: str,
        version: int,
        text: str,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        language: Language | bool | None = True,
        encoding: Encoding = "utf-16",
        budget: float | None = None,
    ) -> None:
        """``language=True`` looks the language up from ``language_id`` and the URI's extension; pass a
        :class:`Language` or ``None`` (plain text) to choose. ``encoding`` is the unit of the characters
        of the positions the client sends and receives for it (the negotiated position encoding). With a
        ``budget`` (seconds), a parse that takes longer is left pending, like a re-parse (:meth:`parse_step`)."""
        self.uri = uri
        self.encoding: Encoding = encoding
        self.language_id = language_id
        self.version = version
        self.path = uri_to_path(uri)
        self.max_size = max_size
        if language is True or language is False:
            self._language: Language | None = language_for(language_id, self.path) if language else None
        else:
            self._language = language
        self._text = text
        self._data: bytes | None = None
        self._lines: LineIndex | None = None
        self._tree: Tree | None = None
        self._pending = False  # the text changed since _tree was parsed; _tree is edited to match it
        self._parser: Parser | None = None  # holds this document's suspended parse, if any
        self._evicted = False
        self._index: FileIndex | None = None
        self._index_version = -1  # version the index describes when the tree is gone
        self._retired: list[Tree] = []  # trees replaced by a re-parse, freed by release_retired
        self.on_parse: Callable[[Document], None] | None = None  # set by a store (memory accounting)
        self._parse(budget)

    # ------------------------------------------------------------------ properties
    @property
    def text(self) -> str:
        return self._text

    @property
    def data(self) -> bytes:
        """The UTF-8 encoding of the text (what tree-sitter sees)."""
        if self._data is None:
            self._data = encode(self._text)
        return self._data

    @property
    def lines_due(self) -> bool:
        """Whether the line index is to be built (after opening, or after the store dropped it): the first
        edit needs it, so :meth:`DocumentStore.catch_up` builds it rather than that edit. Not for a document
        whose tree the store dropped: that saves the memory of its line index too."""
        return self._lines is None and not self._evicted

    @property
    def lines(self) -> LineIndex:
        if self._lines is None:
            self._lines = LineIndex(self._text, data=self._data)
        return self._lines

    @property
    def language(self) -> Language | None:
        return self._language

    @property
    def parseable(self) -> bool:
        """Whether the document gets a tree: known language, not too large, no NUL byte."""
        if self._language is None:
            return False
        size = len(self._text)
        if size > self.max_size or (size * 4 > self.max_size and len(self.data) > self.max_size):
            return False  # (a str of n characters takes 1 to 4 n bytes)
        return "\x00" not in self._text

    @property
    def tree(self) -> Tree | None:
        """The syntax tree of the current text, or None for plain text (unknown language, huge or binary
        document).

        A re-parse left pending by :meth:`apply_changes` is finished here, and a tree dropped by the store to
        save memory is parsed again.
        """
        if self._pending:
            self.parse_step(None)
        elif self._tree is None and self._evicted:
            self._parse()
        return self._tree

    @property
    def parsed(self) -> bool:
        """Whether :attr:`tree` is available without parsing (true for plain text)."""
        return not self._pending and not (self._tree is None and self._evicted)

    @property
    def caught_up(self) -> bool:
        """Whether the tree and the definitions index are up to date (reading them does no work)."""
        return self.parsed and not self.index_due

    @property
    def parse_pending(self) -> bool:
        """Whether a parse or re-parse of the current text is under way (left for :meth:`parse_step`)."""
        return self._pending

    @property
    def has_tree(self) -> bool:
        """Whether a tree is in memory now (without parsing)."""
        return self._tree is not None

    @property
    def index_ready(self) -> bool:
        """Whether :attr:`index` is available without parsing or querying."""
        if self._index is None:
            return False
        if self._tree is None:
            return self._index_version == self.version
        return not self._pending and not self._index.stale

    @property
    def index_stale(self) -> bool:
        """Whether the document has a definitions index that edits have made stale (brought up to date when
        next read, or by :meth:`DocumentStore.catch_up`)."""
        return self._index is not None and self._tree is not None and not self.index_ready

    @property
    def index_due(self) -> bool:
        """Whether the document has a tree but no up-to-date definitions index: stale, or never built (a
        document just opened). :meth:`DocumentStore.catch_up` builds it, so that a request does not."""
        return self._tree is not None and self._language is not None and not self.index_ready

    @property
    def index(self) -> FileIndex | None:
        """The definitions and imports of the document, up to date; None for plain text."""
        if self._index is not None and self._tree is None and self._index_version == self.version:
            return self._index  # tree dropped, text unchanged since: the index is still right
        tree = self.tree
        if tree is None or self._language is None:
            return None
        if self._index is None:
            self._index = FileIndex(self._language, tree, self.data)
        else:
            self._index.refresh(tree, self.data)
        self._index_version = self.version
        return self._index

    def index_step(self, budget: float) -> bool:
        """Build or bring up to date the definitions index for at most about ``budget`` seconds; returns
        whether it is up to date. Until then :attr:`index` would finish the work in one piece."""
        tree = self._tree
        if tree is None or self._pending or self._language is None:
            return self.index_ready
        if self._index is None:
            self._index = FileIndex(self._language, None, self.data)
        done = self._index.refresh(tree, self.data, budget)
        if done:
            self._index_version = self.version
        return done

    @property
    def size(self) -> int:
        """Bytes of UTF-8 text."""
        return len(self.data)

    # ------------------------------------------------------------------ parsing
    def _parse(self, budget: float | None = None) -> None:
        """Parse the whole text; with a ``budget``, in slices (see :meth:`parse_step`)."""
        self._evicted = False
        self._abandon()
        if not self.parseable:
            self._pending = False
            self._tree = None
            self._index = None
            return
        self._tree = None
        self._pending = True
        self.parse_step(budget)

    def parse_step(self, budget: float | None = None) -> bool:
        """Go on with a pending parse or re-parse for at most ``budget`` seconds (None: until it is done).

        Returns whether the tree now matches the text. A suspended parse resumes where it stopped.
        """
        if not self._pending:
            return True
        old = self._tree
        assert self._language is not None
        if budget is None:
            parser = self._parser or parser_for(self._language)
            tree = parser.parse(self.data) if old is None else parser.parse(self.data, old)
        else:
            if self._parser is None:
                self._parser = self._language.new_parser()
            parsed = parse_within(self._parser, self.data, old, budget)
            if parsed is None:
                return False
            tree = parsed
        self._parser = None
        self._pending = False
        self._reparsed(old, tree)
        return True

    def _abandon(self) -> None:
        """Forget a suspended parse (the text it was reading is changing)."""
        if self._parser is not None:
            self._parser.reset()
            self._parser = None

    @property
    def retired(self) -> bool:
        """Whether a tree that a re-parse replaced is still to be freed (:meth:`release_retired`)."""
        return bool(self._retired)

    def release_retired(self) -> None:
        """Free one tree that a re-parse replaced (when nothing else holds it: a snapshot may)."""
        if self._retired:
            self._retired.pop()

    def _reparsed(self, old: Tree | None, tree: Tree) -> None:
        if old is not None:
            # Freeing a large file's tree after an edit that re-parsed most of it takes milliseconds: left to
            # the store's catch-up, in a slice of its own, rather than added to the slice that ends the parse.
            self._retired.append(old)
        self._tree = tree
        if old is None:  # a first parse (or again, after the store dropped the tree)
            if self._index_version != self.version:
                self._index = None
        elif self._index is not None:
            # The index is brought up to date when next read, once for many keystrokes: not on the path of
            # each of them (a completion reads it while it is debounced, typing through a suggestion never).
            self._index.invalidate((r.start_byte, r.end_byte) for r in old.changed_ranges(tree))
        self._parsed()

    def _parsed(self) -> None:
        if self.on_parse is not None:
            self.on_parse(self)

    def snapshot(self) -> Document:
        """The document as it is now, unaffected by later edits (which change a Document in place: its text,
        and its tree through ``tree.edit``). The copy gets its own tree (a tree-sitter copy is cheap: shared,
        copy-on-write) and no definitions index (it builds its own if it is ever asked); it is in no store.

        Nothing is parsed here: a re-parse still pending is finished by the copy when its tree is first
        read (in a parser of its own), and a tree the store dropped is parsed again then."""
        self.lines  # noqa: B018 - computed once here rather than in both copies
        snapshot = copy.copy(self)
        snapshot._tree = self._tree.copy() if self._tree is not None else None
        snapshot._parser = None  # a suspended parse belongs to the original; the copy starts its own
        snapshot._index = None
        snapshot._index_version = -1
        snapshot._retired = []  # the original's are the store's to free
        snapshot.on_parse = None
        return snapshot

    def drop_tree(self) -> None:
        """Free the tree (the store's memory bound) with the line index and the UTF-8 copy of the text; they
        are computed again when next needed. The definitions index is brought up to date and kept."""
        if self._tree is None:
            return
        self.index  # noqa: B018 - bring the index up to date while the tree is there
        self._tree = None
        self._evicted = True
        self._lines = None
        self._data = None

    # ------------------------------------------------------------------ changes
    def apply_change(self, text: str, range: Range | None, version: int, *, budget: float | None = None) -> None:
        """Apply one LSP content change: ``range`` None replaces the whole document."""
        self.apply_changes([(text, range)], version, budget=budget)

    def apply_changes(self, changes: Sequence[Change], version: int, *, budget: float | None = None) -> None:
        """Apply LSP content changes in order, editing the tree for each, then re-parse once.

        With a ``budget`` (seconds) for the whole call, an incremental re-parse that takes longer is left
        pending (:attr:`parsed` false) for :meth:`parse_step` or the next read of :attr:`tree` to finish.
        """
        started = time.perf_counter()
        self._abandon()
        tree = self._tree
        reparse = False
        for text, rng in changes:
            if rng is None:
                self._replace_all(text)
                tree = None
                reparse = True
                continue
            lines = self.lines
            start = lines.offset_at(*rng[0], encoding=self.encoding)
            end = lines.offset_at(*rng[1], encoding=self.encoding)
            if end < start:
                start, end = end, start
            if start == end and not text:
                continue
            reparse = True
            if tree is not None:
                inserted = encode(text)
                start_byte = lines.byte_at(start)
                old_end_byte = lines.byte_at(end)
                start_point = lines.point_at(start)
                old_end_point = lines.point_at(end)
                new_end_byte = start_byte + len(inserted)
                tree.edit(start_byte, old_end_byte, new_end_byte, start_point, old_end_point,
                          point_after(start_point, inserted))
                if self._index is not None:
                    self._index.apply_edit(start_byte, old_end_byte, new_end_byte)
                data = self.data
                self._data = data[:start_byte] + inserted + data[old_end_byte:]
            else:
                self._data = None
                self._index = None
            self._text = self._text[:start] + text + self._text[end:]
            self._lines = lines.edited(start, end, text, self._text, self._data)
        self.version = version
        if not reparse:
            return
        if budget is not None:
            # moving a large file's lines and definitions takes milliseconds of the budget; the parse has what
            # is left, and a quarter at least, so that it always gets on
            budget = max(budget / 4, budget - (time.perf_counter() - started))
        if tree is None and self._evicted:
            self._index = None  # parsed again when needed
            return
        if tree is None or not self.parseable:
            self._parse(budget)
            return
        self._pending = True
        self.parse_step(budget)

    def _replace_all(self, text: str) -> None:
        self._pending = False
        self._text = text
        self._data = None
        self._lines = None
        self._index = None

    def __repr__(self) -> str:
        name = self._language.name if self._language else "text"
        return f"Document({self.uri!r}, {name}, v{self.version}, {len(self._text)} chars)"
