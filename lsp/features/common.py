"""What the feature modules share: finding the document a request names, converting positions between the
client's units (the negotiated position encoding) and offsets in the text, and turning our errors into
answers. Every position that enters or leaves the server goes through :func:`offset` and :func:`to_range`."""

from __future__ import annotations

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams

from lsp.context.documents import Document, UnknownDocument
from lsp.context.positions import ENCODINGS, Encoding
from lsp.errors import CodellamaError
from lsp.server import CodellamaServer


def document(ls: CodellamaServer, uri: str) -> Document:
    try:
        return ls.documents.get(uri)
    except UnknownDocument:
        raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)") from None


def offset(doc: Document, position: types.Position) -> int:
    """The offset in ``doc``'s text of a position the client sent. A character past the end of its line means
    the line's end (as LSP says); a line past the last one is an error."""
    lines = doc.lines
    if position.line >= lines.line_count:
        raise JsonRpcInvalidParams(
            f"invalid position {position.line}:{position.character} in {doc.uri}: "
            f"line {position.line} beyond the last line {lines.line_count - 1}"
        )
    return lines.offset_at(position.line, position.character, encoding=doc.encoding)


def offsets(doc: Document, range_: types.Range) -> tuple[int, int]:
    start, end = offset(doc, range_.start), offset(doc, range_.end)
    return (start, end) if start <= end else (end, start)


def position(doc: Document, at: int) -> types.Position:
    """The position the client understands of offset ``at`` in ``doc``'s text."""
    line, character = doc.lines.position_at(at, doc.encoding)
    return types.Position(line, character)


def to_range(doc: Document, start: int, end: int) -> types.Range:
    return types.Range(position(doc, start), position(doc, end))


def negotiated_encoding(value: str | None) -> Encoding:
    """The position encoding pygls agreed on with the client (UTF-16 when none was)."""
    for encoding in ENCODINGS:
        if value == encoding:
            return encoding
    return "utf-16"


def request_error(error: CodellamaError) -> JsonRpcException:
    """An error answer whose message is the sentence the user should read."""
    return JsonRpcInternalError(str(error))
