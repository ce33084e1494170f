"""textDocument/completion and textDocument/inlineCompletion, from one pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lsprotocol import types

from lsp.completion.pipeline import PreparedCompletion, complete_prepared, prepare_completion, prepare_context
from lsp.context.documents import Document
from lsp.errors import CodellamaError
from lsp.features.common import document, offset, to_range
from lsp.prompt.templates import code_block
from lsp.server import CodellamaServer

CATCH_UP_TURNS = 2000  # turns of the event loop a completion waits for the upkeep of its document (slices of ~4 ms)


def register(server: CodellamaServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: CodellamaServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        doc = document(ls, params.text_document.uri)
        at = offset(doc, params.position)
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        snapshot, text = await _complete(ls, doc, at, invoked=invoked)
        if not text:
            return types.InlineCompletionList(items=[])
        here = to_range(snapshot, at, at)
        return types.InlineCompletionList(items=[types.InlineCompletionItem(insert_text=text, range=here)])

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", " "], resolve_provider=False),
    )
    async def completion(ls: CodellamaServer, params: types.CompletionParams) -> types.CompletionList:
        doc = document(ls, params.text_document.uri)
        at = offset(doc, params.position)
        invoked = params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        snapshot, text = await _complete(ls, doc, at, invoked=invoked)
        if not text:
            return types.CompletionList(is_incomplete=True, items=[])
        # Clients filter items by the word being typed: the edit starts at that word, so it must be repeated.
        source = snapshot.text
        word_start = at
        while word_start > 0 and (source[word_start - 1].isalnum() or source[word_start - 1] == "_"):
            word_start -= 1
        word = source[word_start:at]
        first_line = text.split("\n", 1)[0].rstrip("\r")
        item = types.CompletionItem(
            label=(word + first_line).strip()[:80] or first_line[:80],
            kind=types.CompletionItemKind.Snippet,
            detail="CodeLlama",
            documentation=_documentation(ls, word + text),
            filter_text=word + first_line,
            insert_text_format=types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(range=to_range(snapshot, word_start, at), new_text=word + text),
            sort_text="0",
            preselect=True,
        )
        return types.CompletionList(is_incomplete=True, items=[item])


async def _complete(ls: CodellamaServer, doc: Document, at: int, *, invoked: bool) -> tuple[Document, str]:
    """The text to insert at `at`, and the document as it was when asked (what the answer's positions
    refer to: the user may type on while the model answers)."""
    settings = ls.settings.completion
    if not ls.completions_enabled or doc.language_id in settings.disabled_languages:
        return doc, ""
    try:
        assistant = ls.assistant()
    except CodellamaError as error:
        ls.report(error, "completion")
        return doc, ""
    flow = ls.completion_flow
    flow.bind(assistant)
    snapshot = doc.snapshot()  # the text as asked; its tree is not needed before the debounce has passed
    prepared: PreparedCompletion | None = None
    request = asyncio.current_task()  # this request's handler: pygls writes its answer when it ends

    def unchanged() -> bool:
        """Whether the live document still has the text as asked."""
        return doc.uri in ls.documents and ls.documents.get(doc.uri) is doc and doc.version == snapshot.version

    def preparation(source: Document, frozen: Document) -> PreparedCompletion:
        others = [d for d in ls.documents if d.uri != doc.uri]
        context = prepare_context(source, at, others=others, root=ls.root, workspace=assistant.workspace)
        return prepare_completion(assistant, context, doc=frozen, offset=at)

    async def live() -> tuple[Document, Document] | None:
        """The live document once its upkeep is done, and a snapshot of it with its tree (for the clean-up:
        the document may change meanwhile), while it still has the text as asked; else None."""
        if unchanged():
            await _caught_up(ls, doc, snapshot.version)
            if unchanged():
                return doc, doc.snapshot()
        return None

    async def prepare() -> None:
        # While the debounce runs, from the live document; dropped if it changes meanwhile.
        nonlocal prepared
        if (current := await live()) is not None:
            try:
                prepared = preparation(*current)
            except CodellamaError:
                prepared = None  # built again, and reported, when the model is asked

    async def generate() -> str:
        # The context is built only for a generation (cache hits and superseded keystrokes cost none). The
        # live document is used when it has not changed, else the snapshot.
        work = prepared if prepared is not None and unchanged() else None
        ls.status("busy")
        try:
            if work is None:
                # (the first snapshot would finish a pending re-parse in one piece when the clean-up reads it)
                work = preparation(*(await live() or (snapshot, snapshot)))
            text = await complete_prepared(assistant, work)
        except CodellamaError as error:
            ls.report(error, "completion")  # once for all the requests waiting on this generation
            return ""
        except asyncio.CancelledError:
            ls.status("idle")
            raise
        _after_answer(request, ls.succeeded)
        return text

    wait = 0.0 if invoked else settings.debounce_ms / 1000  # no debounce when the user asked explicitly
    text = await flow.complete(
        doc.uri, snapshot.text[:at], snapshot.text[at:], generate, language=doc.language_id, debounce=wait,
        prepare=prepare,
    )
    return snapshot, text


def _after_answer(request: asyncio.Task[object] | None, callback: Callable[[], None]) -> None:
    """Run ``callback`` (the idle status) once ``request``'s handler has ended, so after its answer was
    written (the task's earlier callbacks run first, pygls's writing of the answer among them): a
    notification before the answer would delay it. At once if the request is over (cancelled)."""
    if request is None or request.done():
        callback()
    else:
        request.add_done_callback(lambda _: callback())


async def _caught_up(ls: CodellamaServer, doc: Document, version: int) -> None:
    """Let a pending re-parse and the definitions index's refresh finish in the slices the server runs
    between messages, rather than in one piece here when the context reads them."""
    for _ in range(CATCH_UP_TURNS):
        if doc.caught_up or doc.version != version:
            return
        ls.catch_up_later()
        await asyncio.sleep(0)


def _documentation(ls: CodellamaServer, code: str) -> str | types.MarkupContent:
    """The suggestion shown in full beside the list: as a Markdown code block where the client reads
    Markdown there, else as plain text (LSP: only the formats the client lists)."""
    text_document = ls.client_capabilities.text_document
    completion = text_document.completion if text_document else None
    item = completion.completion_item if completion else None
    if item and item.documentation_format and types.MarkupKind.Markdown in item.documentation_format:
        return types.MarkupContent(kind=types.MarkupKind.Markdown, value=code_block(code))
    return code
