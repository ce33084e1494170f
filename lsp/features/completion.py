"""textDocument/completion and textDocument/inlineCompletion, from one pipeline."""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

from lsp.errors import CodellamaError
from lsp.features.common import document, offset, to_range
from lsp.server import CodellamaServer

log = logging.getLogger(__name__)


def register(server: CodellamaServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: CodellamaServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        doc = document(ls, params.text_document.uri)
        at = offset(doc, params.position)
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        text = await _complete(ls, doc.uri, at, invoked=invoked)
        if not text:
            return types.InlineCompletionList(items=[])
        here = to_range(doc, at, at)
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=text, range=here)])

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", " "], resolve_provider=False),
    )
    async def completion(ls: CodellamaServer, params: types.CompletionParams) -> types.CompletionList:
        doc = document(ls, params.text_document.uri)
        at = offset(doc, params.position)
        invoked = params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        text = await _complete(ls, doc.uri, at, invoked=invoked)
        if not text:
            return types.CompletionList(is_incomplete=True, items=[])
        # Clients filter items by the word being typed: the edit starts at that word, so it must be repeated.
        word_start = at
        while word_start > 0 and (doc.text[word_start - 1].isalnum() or doc.text[word_start - 1] == "_"):
            word_start -= 1
        word = doc.text[word_start:at]
        first_line = text.split("\n", 1)[0]
        item = types.CompletionItem(
            label=(word + first_line).strip()[:80] or first_line[:80],
            kind=types.CompletionItemKind.Snippet,
            detail="CodeLlama",
            documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{word + text}\n```"),
            filter_text=word + first_line,
            insert_text_format=types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(range=to_range(doc, word_start, at), new_text=word + text),
            sort_text="0",
            preselect=True,
        )
        return types.CompletionList(is_incomplete=True, items=[item])


async def _complete(ls: CodellamaServer, uri: str, at: int, *, invoked: bool) -> str:
    doc = ls.documents.get(uri)
    if not ls.completions_enabled or doc.language_id in ls.settings.completion.disabled_languages:
        return ""
    try:
        assistant = ls.assistant()
        context = assistant.completion_context(doc, at, others=[d for d in ls.documents if d.uri != uri], root=ls.root)
        debounce = 0.0 if invoked else ls.settings.completion.debounce_ms / 1000
        ls.status("busy")
        text = await ls.completion_flow.complete(
            uri, context.prefix, context.suffix, lambda: assistant.complete_context(context), debounce=debounce
        )
    except CodellamaError as error:
        ls.report(error, "completion")
        return ""
    except asyncio.CancelledError:
        ls.status("idle")
        raise
    ls.succeeded()
    return text
