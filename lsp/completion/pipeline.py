"""One completion, start to end: context, budget, prompt, model, clean-up.

Plain Python over documents and an :class:`~lsp.assistant.Assistant` (the generation and budget the code
actions share); the LSP feature and the command line both call it.
"""

from __future__ import annotations

from collections.abc import Iterable

from lsp.assistant import Assistant
from lsp.completion.stopper import CompletionStopper
from lsp.context.code_context import CodeContext, DefinitionSource
from lsp.context.documents import Document
from lsp.context.extract import context_at
from lsp.continuation import continuation_prompt, continuing
from lsp.prompt.budget import Budget


def completion_context(
    doc: Document, offset: int, *, others: Iterable[Document] = (), root: str | None = None,
    workspace: DefinitionSource | None = None,
) -> CodeContext:
    """What the model needs to complete at ``offset``: taken at once, so later edits cannot shift it."""
    return context_at(doc, offset, others=others, root=root, workspace=workspace)


async def complete(
    assistant: Assistant,
    doc: Document,
    offset: int,
    *,
    others: Iterable[Document] = (),
    root: str | None = None,
    snapshot: Document | None = None,
) -> str:
    """The text to insert at ``offset`` in ``doc``. The stream is closed when the block ends, and the
    suggestion is cut back to what adds no syntax error in ``snapshot`` (the document as the request saw it;
    ``doc`` itself when it cannot change meanwhile)."""
    context = completion_context(doc, offset, others=others, root=root, workspace=assistant.workspace)
    return await complete_context(assistant, context, doc=snapshot or doc, offset=offset)


async def complete_context(
    assistant: Assistant, context: CodeContext, *, doc: Document | None = None, offset: int | None = None
) -> str:
    """The text to insert at the cursor of ``context``; with ``doc`` and the cursor's ``offset`` in it, the
    syntax of the document decides where the suggestion ends."""
    settings = assistant.settings.completion
    spec = assistant.store.spec("complete")
    max_new = min(settings.max_new_tokens, spec.max_new_tokens)
    # the stopper prepares on the first tokens, while the model goes on: not between the debounce and the model
    stopper = CompletionStopper(context, max_lines=settings.max_lines, doc=doc, offset=offset)

    async def ask(budget: Budget) -> str:
        # Small local models continue code; the 70B model and chat servers get the instruction dialogue.
        local = continuing(assistant.backend)
        if local is not None:
            prompt = continuation_prompt(spec, context, local.completion_budget())
        else:
            prompt = assistant.prompt("complete", context, budget)
        return await assistant.generate(prompt, settings.temperature, stop_when=stopper.done)

    reply = await assistant.with_length_retry(ask, max_new)
    return stopper.clean(reply)
