"""The definitions enclosing a position or a range (functions, methods, classes), found with the
language's scope query."""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Node, QueryCursor, Tree

from .code_context import Scope
from .documents import Document
from .languages import Language
from .snippets import signature_text
from .symbols import CLASS_KINDS, definition_bounds, signature_end


def is_open(node: Node, body: Node | None) -> bool:
    """Whether code typed at the node's very end still belongs to it: Python-like blocks have no closing
    token (``}``, ``end``), so a cursor right after their last statement is still inside."""
    last = node.child(node.child_count - 1) if node.child_count else None
    if last is not None and not last.is_named and not last.is_missing:
        return False
    if body is not None and body.child_count:
        last = body.child(body.child_count - 1)
        if not last.is_named and not last.is_missing:
            return False
    return True


@dataclass(frozen=True)
class ScopeNode:
    kind: str
    node: Node
    name: str
    body: Node | None


def collect_scopes(
    language: Language, tree: Tree, data: bytes, byte: int, end_byte: int | None
) -> dict[tuple[int, int, str], ScopeNode]:
    if end_byte is None:  # a cursor: from the node around the character before it
        node: Node | None = tree.root_node.descendant_for_byte_range(max(0, byte - 1), byte)
    else:
        node = tree.root_node.descendant_for_byte_range(byte, end_byte)
    cursor = QueryCursor(language.scope_query)
    cursor.set_max_start_depth(0)
    kinds = language.kinds
    found: dict[tuple[int, int, str], ScopeNode] = {}
    while node is not None:
        for _, captures in cursor.matches(node):
            for capture, nodes in captures.items():
                if not capture.startswith("scope."):
                    continue
                scope = nodes[0]
                bodies = captures.get("body")
                body = bodies[0] if bodies else None
                if end_byte is None:
                    inside = scope.start_byte < byte < scope.end_byte or (
                        byte == scope.end_byte and scope.start_byte < byte and is_open(scope, body)
                    )
                else:
                    inside = scope.start_byte <= byte and end_byte <= scope.end_byte and (
                        scope.start_byte < byte or end_byte < scope.end_byte
                    )
                if not inside:
                    continue
                names = captures.get("name")
                name = ""
                if names:
                    name = data[names[0].start_byte : names[0].end_byte].decode("utf-8", "replace")
                key = (scope.start_byte, scope.end_byte, capture)
                found.setdefault(key, ScopeNode(kinds[capture], scope, name, body))
        node = node.parent
    return found


def indentation(data: bytes, byte: int) -> int | None:
    """Columns of whitespace before ``byte`` on its line, None if code precedes it on the line."""
    line_start = data.rfind(b"\n", 0, byte) + 1
    before = data[line_start:byte]
    if before.strip():
        return None
    return len(before.expandtabs(8))


def scope_nodes(
    language: Language, tree: Tree, byte: int, end_byte: int | None, data: bytes
) -> list[ScopeNode]:
    """The scope nodes enclosing ``[byte, end_byte]`` (a cursor when end_byte is None), outermost first.

    ``data`` is the source of ``tree``. A cursor on an indented blank stretch after an open block
    (Python-like, with no closing token) belongs to the blocks indented less than the cursor.
    """
    found = collect_scopes(language, tree, data, byte, end_byte)
    if end_byte is None:
        indent = indentation(data, byte)
        previous = byte
        while previous > 0 and data[previous - 1] in b" \t\r\n\f":
            previous -= 1
        if indent and previous < byte:
            for key, scope in collect_scopes(language, tree, data, previous, None).items():
                node = scope.node
                if key in found or node.end_byte > byte or not is_open(node, scope.body):
                    continue
                own = indentation(data, node.start_byte)
                if own is not None and own < indent:
                    found[key] = scope
    chain = sorted(found.values(), key=lambda s: (s.node.start_byte, -s.node.end_byte))
    result: list[ScopeNode] = []
    for scope in chain:
        kind = scope.kind
        if kind == "function" and result and result[-1].kind in CLASS_KINDS:
            kind = "method"
        result.append(ScopeNode(kind, scope.node, scope.name, scope.body))
    return result


def describe_scopes(doc: Document, chain: list[ScopeNode]) -> list[Scope]:
    scopes: list[Scope] = []
    lines = doc.lines
    assert doc.language is not None
    for scope in chain:
        node = scope.node
        sig_end = signature_end(scope.body, doc.language.spec)
        _, head, _ = definition_bounds(node, doc.language.spec, doc.data)
        signature = signature_text(doc, head, sig_end, node.end_byte)
        start = lines.offset_of_byte(node.start_byte)
        end = lines.offset_of_byte(node.end_byte)
        scopes.append(Scope(scope.kind, scope.name, signature, lines.line_of(start), lines.line_of(end)))
    return scopes
