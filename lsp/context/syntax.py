"""Syntax questions about a document and an edit to it: what a rewrite should replace, whether an edit
parses without new errors, where the block being written ends."""

from __future__ import annotations

from tree_sitter import Node, Tree

from .documents import Document
from .languages import parser_for
from .positions import encode, point_after
from .scopes import collect_scopes, is_open, scope_nodes
from .symbols import CLASS_KINDS, definition_bounds


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _definition_range(doc: Document, node: Node) -> tuple[int, int]:
    """Str range of a definition node with its decorators, ``export``, doc comments and attributes."""
    assert doc.language is not None
    outer, _, start = definition_bounds(node, doc.language.spec, doc.data)
    lines = doc.lines
    return lines.offset_of_byte(start), lines.offset_of_byte(max(outer.end_byte, node.end_byte))


def target_range(doc: Document, start: int, end: int) -> tuple[int, int]:
    """The range a rewrite of ``[start, end)`` should replace.

    Without a selection (``start == end``): the innermost enclosing function or method (else class),
    with its decorators and doc comments; outside any definition, the line (without its line break).
    A selection that cuts through syntax nodes is expanded to the smallest run of sibling nodes covering it.
    """
    text = doc.text
    start = max(0, min(start, len(text)))
    end = max(0, min(end, len(text)))
    if end < start:
        start, end = end, start
    lines = doc.lines
    tree = doc.tree
    language = doc.language
    if start == end:
        if tree is not None and language is not None:
            chain = scope_nodes(language, tree, lines.byte_at(start), None, doc.data)
            functions = [s for s in chain if s.kind not in CLASS_KINDS and s.kind != "module"]
            chosen = functions[-1] if functions else (chain[-1] if chain else None)
            if chosen is not None:
                return _definition_range(doc, chosen.node)
        line = lines.line_of(start)
        return lines.line_start(line), lines.line_end(line)
    trimmed = _trim(text, start, end)
    if trimmed[0] == trimmed[1]:
        return start, end
    start, end = trimmed
    if tree is None:
        return lines.line_start(lines.line_of(start)), lines.line_end(lines.line_of(end))
    sb, eb = lines.byte_at(start), lines.byte_at(end)
    node = tree.root_node.descendant_for_byte_range(sb, eb)
    if node is None:
        return start, end
    if node.start_byte == sb and node.end_byte == eb and node.is_named:
        return start, end
    # inside a token, or only part of an anonymous one: the nearest named node, whole
    while (node.child_count == 0 or not node.is_named) and node.parent is not None:
        node = node.parent
    lo, hi = node.start_byte, node.end_byte
    overlapping = [c for c in node.children if c.end_byte > sb and c.start_byte < eb]
    if overlapping and all(c.is_named for c in overlapping):
        # a run of sibling statements or definitions: just those (a container is not replaced whole)
        lo, hi = overlapping[0].start_byte, overlapping[-1].end_byte
    lo, hi = min(lo, sb), max(hi, eb)
    return lines.offset_of_byte(lo), lines.offset_of_byte(hi)


def count_errors(tree: Tree) -> int:
    """Number of ERROR and MISSING nodes (only subtrees with errors are visited)."""
    root = tree.root_node
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        for child in node.children:
            if child.has_error or child.is_missing:
                stack.append(child)
    return count


def edited_tree(doc: Document, start: int, end: int, inserted: str) -> tuple[Tree, bytes, int] | None:
    """The tree of the document with ``[start, end)`` replaced (parsed incrementally), its bytes, and the
    byte offset where the replacement starts."""
    tree = doc.tree
    language = doc.language
    if tree is None or language is None:
        return None
    lines = doc.lines
    text = doc.text
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    raw = encode(inserted)
    sb, eb = lines.byte_at(start), lines.byte_at(end)
    sp, ep = lines.point_at(start), lines.point_at(end)
    data = doc.data
    new_data = data[:sb] + raw + data[eb:]
    copy = tree.copy()
    copy.edit(sb, eb, sb + len(raw), sp, ep, point_after(sp, raw))
    return parser_for(language).parse(new_data, copy), new_data, sb


def parses_cleanly(doc: Document, start: int, end: int, replacement: str) -> bool:
    """Whether replacing ``[start, end)`` by ``replacement`` adds no syntax error (ERROR or MISSING node).

    Plain-text documents always parse cleanly.
    """
    edited = edited_tree(doc, start, end, replacement)
    if edited is None:
        return True
    tree = doc.tree
    assert tree is not None
    new_tree = edited[0]
    if not new_tree.root_node.has_error:
        return True
    return count_errors(new_tree) <= count_errors(tree)


def block_end(doc: Document, offset: int, inserted: str) -> int | None:
    """Where, in ``inserted`` (to be inserted at ``offset``), the block the cursor is in or starts ends.

    The block is the innermost definition (function, method, class...) enclosing the cursor; outside any,
    the top-level statement at or after the cursor. Returns a str index into ``inserted`` (just after the
    block's last character), or None when the block does not end within ``inserted`` (or for plain text).
    """
    edited = edited_tree(doc, offset, offset, inserted)
    if edited is None:
        return None
    tree, data, sb = edited
    language = doc.language
    assert language is not None
    eb = sb + len(encode(inserted))
    chain = scope_nodes(language, tree, sb, None, data)
    target: Node | None = chain[-1].node if chain else None
    if target is None:
        # outside any definition: the top-level statement containing the cursor, else the first one after
        # it, if it is a block (a definition or a statement over several lines)
        for child in tree.root_node.children:
            if child.end_byte <= sb and not (child.end_byte == sb and is_open(child, None)):
                continue
            if child.type in language.spec.comments and child.start_byte >= sb:
                continue
            target = child
            break
        if target is None or target.start_byte >= eb:
            return None
        if target.end_point.row == target.start_point.row and not collect_scopes(
            language, tree, data, target.start_byte + 1, target.end_byte - 1
        ):
            return None
    end = target.end_byte
    if end <= sb or end > eb:
        return None
    return len(data[sb:end].decode("utf-8", "surrogatepass"))
