"""didOpen / didChange / didClose: keep each document's text and tree current."""

from __future__ import annotations

import logging

from lsprotocol import types

from lsp.context.documents import PARSE_SLICE, Change, UnknownDocument
from lsp.server import CodellamaServer

log = logging.getLogger(__name__)


def register(server: CodellamaServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CodellamaServer, params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        ls.documents.open(doc.uri, doc.language_id, doc.version, doc.text, budget=PARSE_SLICE)
        ls.catch_up_later()  # its definitions index, built between messages rather than by the next request

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CodellamaServer, params: types.DidChangeTextDocumentParams) -> None:
        changes: list[Change] = []
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                r = change.range
                changes.append((change.text, ((r.start.line, r.start.character), (r.end.line, r.end.character))))
            else:
                changes.append((change.text, None))
        try:
            # a re-parse that outlasts its slice goes on between messages, not before the next one is read
            ls.documents.change(params.text_document.uri, params.text_document.version, changes, budget=PARSE_SLICE)
        except UnknownDocument as error:
            # A notification has no answer; the client will resend on open. Keep serving.
            log.warning("ignored change for %s: %s", params.text_document.uri, error)
            return
        ls.catch_up_later()

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CodellamaServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.completion_flow.forget(params.text_document.uri)
        try:
            ls.documents.close(params.text_document.uri)
        except UnknownDocument:
            log.debug("close of a document that was not open: %s", params.text_document.uri)
