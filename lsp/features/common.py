"""What the feature modules share: finding the document and position a request names, and turning our
errors into answers."""

from __future__ import annotations

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams

from lsp.context.documents import Document, UnknownDocument
from lsp.context.positions import InvalidPosition
from lsp.errors import CodellamaError
from lsp.server import CodellamaServer


def document(ls: CodellamaServer, uri: str) -> Document:
    try:
        return ls.documents.get(uri)
    except UnknownDocument:
        raise JsonRpcInvalidParams(f"document {uri} is not open (send textDocument/didOpen first)") from None


def offset(doc: Document, position: types.Position) -> int:
    try:
        return doc.lines.offset_at(position.line, position.character, strict=True)
    except InvalidPosition as error:
        raise JsonRpcInvalidParams(
            f"invalid position {position.line}:{position.character} in {doc.uri}: {error}"
        ) from None


def offsets(doc: Document, range_: types.Range) -> tuple[int, int]:
    start, end = offset(doc, range_.start), offset(doc, range_.end)
    return (start, end) if start <= end else (end, start)


def to_range(doc: Document, start: int, end: int) -> types.Range:
    (sl, sc), (el, ec) = doc.lines.position_at(start), doc.lines.position_at(end)
    return types.Range(types.Position(sl, sc), types.Position(el, ec))


def request_error(error: CodellamaError) -> JsonRpcException:
    """An error answer whose message is the sentence the user should read."""
    return JsonRpcInternalError(str(error))
