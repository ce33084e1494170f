"""Context extraction: document + position -> what a code model should see. Pure functions over text and
trees (no server), fast enough to run on every completion request.

Offsets are Python ``str`` indices into ``doc.text``; tree-sitter works in UTF-8 bytes and the conversion
goes through :class:`~lsp.context.positions.LineIndex`.
"""

from __future__ import annotations

from collections.abc import Iterable

from tree_sitter import Node, Tree

from .code_context import CodeContext, DefinitionSource, relative_path
from .documents import Document
from .related import related_definitions
from .scopes import describe_scopes, scope_nodes
from .snippets import imports_used, outline

__all__ = ["BLOCK_OPENERS", "context_at", "selection_context"]

# how far around the cursor to look for names the code refers to (lines before, after)
REFERENCE_WINDOW = (40, 15)
# definitions of this file lying entirely this close to the cursor are in plain view: not repeated
NEAR_WINDOW = (20, 5)
MAX_DEFINITIONS = 10
MAX_SNIPPET_LINES = 20
MAX_OUTLINE = 300


# ---------------------------------------------------------------------------------------------- single line
# What ends a line that opens a block: the rest of the statement goes on the next lines.
BLOCK_OPENERS = ("{", "(", "[", ":", "=>", "->", " do", " then", "\\")
_CLOSERS = frozenset(")]}>;,'\"` \t")


def _single_line(doc: Document, offset: int, tree: Tree | None) -> bool:
    """Heuristic: is a single-line completion expected at ``offset``?

    Yes when code follows the cursor on its line, when the cursor is in a comment or a one-line string,
    or when the line before the cursor holds an unfinished statement that does not open a block.
    """
    lines = doc.lines
    line = lines.line_of(offset)
    before = doc.text[lines.line_start(line) : offset]
    after = doc.text[offset : lines.line_end(line)]
    if after.strip() and not set(after) <= _CLOSERS:
        return True
    if tree is not None and doc.language is not None:
        byte = lines.byte_at(offset)
        node: Node | None = tree.root_node.descendant_for_byte_range(max(0, byte - 1), byte)
        spec = doc.language.spec
        data = doc.data
        while node is not None and node.parent is not None:
            comment = node.type in spec.comments
            if node.start_byte < byte < node.end_byte or (
                # at the end of a line comment (not after a closed block comment)
                comment and byte == node.end_byte and not data[node.start_byte : node.end_byte].endswith((b"*/", b"]]"))
            ):
                if comment:
                    return True
                if node.type in spec.strings:
                    return b"\n" not in data[node.start_byte : node.end_byte]
            node = node.parent
    stripped = before.rstrip()
    if not stripped:
        return False
    return not stripped.endswith(BLOCK_OPENERS)


# ---------------------------------------------------------------------------------------------- public API
def context_at(
    doc: Document,
    offset: int,
    *,
    others: Iterable[Document] = (),
    root: str | None = None,
    max_definitions: int = MAX_DEFINITIONS,
    max_snippet_lines: int = MAX_SNIPPET_LINES,
    max_outline: int = MAX_OUTLINE,
    workspace: DefinitionSource | None = None,
) -> CodeContext:
    """The context for a completion at ``offset`` (a str index into ``doc.text``, clamped)."""
    text = doc.text
    offset = max(0, min(offset, len(text)))
    return _context(doc, offset, offset, others, root, max_definitions, max_snippet_lines, max_outline,
                    single_line=None, workspace=workspace)


def selection_context(
    doc: Document,
    start: int,
    end: int,
    *,
    others: Iterable[Document] = (),
    root: str | None = None,
    max_definitions: int = MAX_DEFINITIONS,
    max_snippet_lines: int = MAX_SNIPPET_LINES,
    max_outline: int = MAX_OUTLINE,
    workspace: DefinitionSource | None = None,
) -> CodeContext:
    """The context for rewriting ``[start, end)``: prefix and suffix around the range, the scopes that
    enclose it, the definitions the selected and nearby code refers to."""
    text = doc.text
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    single = "\n" not in text[start:end] and "\r" not in text[start:end]
    return _context(doc, start, end, others, root, max_definitions, max_snippet_lines, max_outline,
                    single_line=single, workspace=workspace)


def _context(
    doc: Document,
    start: int,
    end: int,
    others: Iterable[Document],
    root: str | None,
    max_definitions: int,
    max_snippet_lines: int,
    max_outline: int,
    single_line: bool | None,
    workspace: DefinitionSource | None = None,
) -> CodeContext:
    text = doc.text
    language = doc.language
    tree = doc.tree
    path = relative_path(doc, root)
    prefix, suffix = text[:start], text[end:]
    if language is None or tree is None:
        return CodeContext(
            language=language.display_name if language else "text",
            path=path, prefix=prefix, suffix=suffix, scopes=[], imports=[], definitions=[], outline=[],
            single_line=_single_line(doc, start, None) if single_line is None else single_line,
        )
    lines = doc.lines
    start_byte = lines.byte_at(start)
    end_byte = lines.byte_at(end) if end != start else start_byte
    chain = scope_nodes(language, tree, start_byte, None if end == start else end_byte, doc.data)
    index = doc.index
    assert index is not None
    first_line = lines.line_of(start)
    last_line = lines.line_of(end)
    window = (
        lines.byte_at(lines.line_start(first_line - REFERENCE_WINDOW[0])),
        lines.byte_at(lines.line_end(last_line + REFERENCE_WINDOW[1])),
    )
    near = (
        lines.byte_at(lines.line_start(first_line - NEAR_WINDOW[0])),
        lines.byte_at(lines.line_end(last_line + NEAR_WINDOW[1])),
    )
    first_window_line = max(0, first_line - REFERENCE_WINDOW[0])
    window_lines = min(lines.line_count - 1, last_line + REFERENCE_WINDOW[1]) - first_window_line + 1
    line_bytes = (window[1] - window[0]) / max(1, window_lines)
    definitions, names = related_definitions(doc, index, tree, window, near, line_bytes, (start_byte, end_byte), others,
                                  root, max_definitions, max_snippet_lines, workspace)
    return CodeContext(
        language=language.display_name,
        path=path,
        prefix=prefix,
        suffix=suffix,
        scopes=describe_scopes(doc, chain),
        imports=imports_used(doc, index, names),
        definitions=definitions,
        outline=outline(doc, index, start_byte, max_outline),
        single_line=_single_line(doc, start, tree) if single_line is None else single_line,
    )
