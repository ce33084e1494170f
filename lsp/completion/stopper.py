"""When a completion is complete: the stream is closed as soon as the partial reply decides it, and the
clean-up's syntax questions are answered over the document (a window of it, for a large one)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from tree_sitter import Node

from lsp.cleanup import clean_completion, completion_decided, prepare_cleanup
from lsp.context.code_context import CodeContext
from lsp.context.documents import Document
from lsp.context.syntax import block_end, parses_cleanly

__all__ = ["CompletionStopper"]

LOCAL_PARSE_CHARS = 4000  # documents at least this long are checked on a window around the cursor
MAX_WINDOW_CHARS = 12_000  # the most of it a window takes (a parse of 12,000 characters: about 2 ms)

# Syntax checks re-parse the code around the cursor for every streamed line. Where that code is huge (a
# minified one-line file has a single top-level statement), a parse takes seconds on the event loop: there
# the clean-up goes without syntax checks rather than stall the server.
MAX_CHECKED_LINE = 4000
MAX_CHECKED_DOCUMENT = 2_000_000

def _checkable(doc: Document, offset: int) -> bool:
    text = doc.text
    if len(text) > MAX_CHECKED_DOCUMENT:
        return False
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return (len(text) if end < 0 else end) - start <= MAX_CHECKED_LINE

def _end_byte(node: Node | None) -> int:
    return node.end_byte if node is not None else 0


class CompletionStopper:
    """Decide from the partial reply that the completion is complete, so the stream can be closed; and
    answer the clean-up's syntax questions (lsp.cleanup.Syntax) over the document, when there is one."""

    def __init__(self, context: CodeContext, *, max_lines: int, doc: Document | None, offset: int | None) -> None:
        self.context = context
        self.max_lines = max_lines
        self.doc = doc
        self.offset = len(context.prefix) if offset is None else offset
        self._checks_syntax = doc is not None and doc.language is not None and _checkable(doc, self.offset)
        self._newlines = 0
        self._prepared = False
        self._window: tuple[Document, int] | None = None
        # the stream's decisions and the clean-up ask about the same texts: each answer costs a parse
        self._parses: dict[str, bool] = {}
        self._block_ends: dict[str, int | None] = {}

    @property
    def syntax(self) -> CompletionStopper | None:
        """What answers the clean-up's syntax questions: this stopper, when the document can be parsed.
        (Not kept in an attribute: a stopper referring to itself would be freed, with the document and the
        syntax tree it holds, only by a pass of the garbage collector, milliseconds on the event loop.)"""
        return self if self._checks_syntax else None

    def done(self, reply: str) -> bool:
        if not self._prepared:  # the first tokens: the model goes on generating meanwhile
            self.prepare()
        # Nothing is decided in the middle of a line: look again only when a line ends.
        newlines = reply.count("\n")
        if newlines == self._newlines:
            return False
        self._newlines = newlines
        decided = bool(self._ask(completion_decided, reply))
        if not decided and self.syntax is not None:
            # The clean-up of the answer asks syntax questions (a parse each) about the code: asked now,
            # between tokens, about the code so far, they are answered from memory after the last token,
            # which usually only closes the code block.
            self.clean(reply)
        return decided

    def clean(self, reply: str) -> str:
        """What to insert, from the model's (whole) reply."""
        return str(self._ask(clean_completion, reply))

    def _ask(self, question: Callable[..., object], reply: str) -> object:
        context = self.context
        return question(
            reply,
            context.prefix,
            context.suffix,
            single_line=context.single_line,
            max_lines=self.max_lines,
            syntax=self.syntax,
            language=context.language,
        )

    def prepare(self) -> None:
        """Do now the work every decision and the clean-up need: the parse of the code around the cursor,
        the lines and the indentation style around it."""
        self._prepared = True
        prepare_cleanup(self.context.prefix, self.context.suffix, self.context.language)
        if self.syntax is not None:
            self._local()

    def parses(self, inserted: str) -> bool:
        if inserted not in self._parses:
            doc, offset = self._local()
            self._parses[inserted] = parses_cleanly(doc, offset, offset, inserted)
        return self._parses[inserted]

    def block_end(self, inserted: str) -> int | None:
        if inserted not in self._block_ends:
            doc, offset = self._local()
            self._block_ends[inserted] = block_end(doc, offset, inserted)
        return self._block_ends[inserted]

    def _local(self) -> tuple[Document, int]:
        """The document, or for a large one the top-level statements around the cursor (the one it is in or
        before, and its neighbours) as a document of their own: each question costs a parse, and parsing
        a window instead of the whole file keeps the answer fast."""
        if self._window is not None:
            return self._window
        doc = self.doc
        assert doc is not None
        tree = doc.tree
        self._window = (doc, self.offset)
        if tree is None or len(doc.text) < LOCAL_PARSE_CHARS:
            return self._window
        lines = doc.lines
        byte = lines.byte_at(self.offset)
        root = tree.root_node
        count = root.child_count
        # the first top-level node ending at or after the cursor (bisected: a file may have tens of thousands;
        # Node.first_child_for_byte crashes past the last one)
        at = bisect_left(range(count), byte, key=lambda i: _end_byte(root.child(i)))
        before = root.child(at - 1) if at > 0 else None
        after = root.child(at + 1) if at + 1 < count else None
        first = before.start_byte if before is not None else 0
        last = after.end_byte if after is not None else len(doc.data)
        start, end = lines.offset_of_byte(first), lines.offset_of_byte(last)
        # an unclosed bracket makes the rest of the file one statement: a parse of it all would hold the server
        start = max(start, self.offset - MAX_WINDOW_CHARS // 2)
        end = min(end, self.offset + MAX_WINDOW_CHARS // 2)
        start = lines.line_start(lines.line_of(start))  # whole lines: indentation is syntax in some languages
        end = max(end, lines.line_end(lines.line_of(end)))
        window = Document(doc.uri, doc.language_id, doc.version, doc.text[start:end], language=doc.language)
        self._window = (window, self.offset - start)
        return self._window

