"""textDocument/completion and textDocument/inlineCompletion, from one pipeline."""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

from lsp.context.documents import Document
from lsp.errors import CodellamaError
from lsp.features.common import document, offset, to_range
from lsp.server import CodellamaServer
from lsp.stdio import MESSAGE_ARRIVED
from lsp.templates import code_block

log = logging.getLogger(__name__)

# The event loop wakes up to a millisecond after a timer is due (epoll's timeouts are whole milliseconds,
# rounded up): the debounce's timer is set this much early, and the last of it is waited for by yielding to
# the loop (which goes on serving messages) until the moment comes.
TIMER_SPIN = 0.0012
# The preparation (context and prompt) starts this long before the debounce ends: its average duration times
# the factor, plus the seconds, so that it is done in time even when it takes a little longer.
PREPARATION_MARGIN = 1.5, 0.001


class _Preparation:
    """How long building a completion's context and prompt takes (a moving average): that work is done in
    the last moments of the debounce, so the model is called when the debounce ends, not that much later."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def lead(self, debounce: float) -> float:
        # At most a quarter of the debounce: a request that types ahead of a prepared generation joins it,
        # so the model may be called that much sooner after the last keystroke than the debounce says.
        factor, extra = PREPARATION_MARGIN
        return min(self.seconds * factor + extra, debounce / 4) if self.seconds else 0.0

    def observe(self, seconds: float) -> None:
        seconds = min(seconds, 0.05)  # one slow outlier (a garbage collection) must not set the pace
        self.seconds = seconds if not self.seconds else 0.8 * self.seconds + 0.2 * seconds


def register(server: CodellamaServer) -> None:
    preparation = _Preparation()

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: CodellamaServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        doc = document(ls, params.text_document.uri)
        at = offset(doc, params.position)
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        snapshot, text = await _complete(ls, doc, at, invoked=invoked, preparation=preparation)
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
        snapshot, text = await _complete(ls, doc, at, invoked=invoked, preparation=preparation)
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


async def _complete(
    ls: CodellamaServer, doc: Document, at: int, *, invoked: bool, preparation: _Preparation
) -> tuple[Document, str]:
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
    snapshot = doc.snapshot()
    uri = doc.uri
    loop = asyncio.get_running_loop()
    wait = 0.0 if invoked else settings.debounce_ms / 1000  # none when the user asked explicitly
    lead = preparation.lead(wait)
    # The debounce: no model call before the user paused this long, counted from when the request reached
    # the server (the edit read with it was handled first: that time is part of the pause, not added to it).
    arrived = MESSAGE_ARRIVED.get()
    now = loop.time()
    model_at = (now if arrived is None else min(arrived, now)) + wait
    started: float | None = None

    async def ready() -> None:
        nonlocal started
        if started is not None:  # once: a retry with a shorter prompt is not preparation
            preparation.observe(loop.time() - started)
            started = None
        if model_at - loop.time() > TIMER_SPIN:
            await asyncio.sleep(model_at - loop.time() - TIMER_SPIN)
        while loop.time() < model_at:  # noqa: ASYNC110 - a spin of at most TIMER_SPIN, by design
            await asyncio.sleep(0)

    async def generate() -> str:
        # The context is built only for a generation (cache hits and superseded keystrokes cost none), in
        # the last `lead` seconds of the debounce. The live document is used when it has not changed (its
        # index is warm), else the snapshot.
        nonlocal started
        started = loop.time()
        live = ls.documents.get(uri) if uri in ls.documents else None
        source = live if live is doc and doc.version == snapshot.version else snapshot
        others = [d for d in ls.documents if d.uri != uri]
        ls.status("busy")
        try:
            context = assistant.completion_context(source, at, others=others, root=ls.root)
            text = await assistant.complete_context(context, doc=snapshot, offset=at, ready=ready)
        except CodellamaError as error:
            ls.report(error, "completion")  # once for all the requests waiting on this generation
            return ""
        except asyncio.CancelledError:
            ls.status("idle")
            raise
        ls.succeeded()
        return text

    text = await flow.complete(
        uri,
        snapshot.text[:at],
        snapshot.text[at:],
        generate,
        debounce=model_at - lead - loop.time(),
    )
    return snapshot, text


def _documentation(ls: CodellamaServer, code: str) -> str | types.MarkupContent:
    """The suggestion shown in full beside the list: as a Markdown code block where the client reads
    Markdown there, else as plain text (LSP: only the formats the client lists)."""
    text_document = ls.client_capabilities.text_document
    completion = text_document.completion if text_document else None
    item = completion.completion_item if completion else None
    if item and item.documentation_format and types.MarkupKind.Markdown in item.documentation_format:
        return types.MarkupContent(kind=types.MarkupKind.Markdown, value=code_block(code))
    return code
