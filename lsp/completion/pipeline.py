"""One completion, start to end: context, budget, prompt, model, clean-up.

Plain Python over documents and an :class:`~lsp.assistant.Assistant` (the generation and budget the code
actions share); the LSP feature and the command line both call it. The work before the model call (context,
stopper, prompt) is :func:`prepare_completion`, so that the LSP feature can do it while a request is
debounced; :func:`complete_prepared` asks the model and cleans the reply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lsp.assistant import Assistant
from lsp.completion.stopper import CompletionStopper
from lsp.context.code_context import CodeContext, DefinitionSource
from lsp.context.documents import Document
from lsp.context.extract import context_at
from lsp.continuation import continuation_prompt, continuing
from lsp.prompt.budget import Budget, BuiltPrompt


@dataclass
class PreparedCompletion:
    """What a completion needs before the model is asked: its context, the stopper that decides when the
    reply is complete, and the prompt (None when the model's limits are not known yet: they are read when
    the model is asked, never while a request may still be superseded)."""

    context: CodeContext
    stopper: CompletionStopper
    max_new_tokens: int
    prompt: BuiltPrompt | None = None
    budget: Budget | None = None  # what ``prompt`` was built for


def prepare_context(
    doc: Document, offset: int, *, others: Iterable[Document] = (), root: str | None = None,
    workspace: DefinitionSource | None = None,
) -> CodeContext:
    """What the model needs to complete at ``offset``: taken at once, so later edits cannot shift it."""
    return context_at(doc, offset, others=others, root=root, workspace=workspace)


def prepare_completion(
    assistant: Assistant, context: CodeContext, *, doc: Document | None = None, offset: int | None = None
) -> PreparedCompletion:
    """Everything before the model call for the cursor of ``context``; with ``doc`` (the document as the
    request saw it) and the cursor's ``offset`` in it, the syntax of the document decides where the
    suggestion ends."""
    settings = assistant.settings.completion
    max_new = min(settings.max_new_tokens, assistant.store.spec("complete").max_new_tokens)
    # the stopper prepares on the first tokens, while the model goes on: not between the debounce and the model
    stopper = CompletionStopper(context, max_lines=settings.max_lines, doc=doc, offset=offset)
    prepared = PreparedCompletion(context, stopper, max_new)
    budget = assistant.known_budget(max_new)
    if budget is not None:
        prepared.prompt, prepared.budget = _prompt(assistant, context, budget), budget
    return prepared


async def complete_prepared(assistant: Assistant, prepared: PreparedCompletion) -> str:
    """Ask the model for ``prepared``'s completion (with its prompt, when that was built for the budget
    that holds now) and clean its reply."""

    async def ask(budget: Budget) -> str:
        prompt = prepared.prompt
        if prompt is None or prepared.budget != budget:
            prompt = _prompt(assistant, prepared.context, budget)
        temperature = assistant.settings.completion.temperature
        return await assistant.generate(prompt, temperature, stop_when=prepared.stopper.done)

    reply = await assistant.with_length_retry(ask, prepared.max_new_tokens)
    return prepared.stopper.clean(reply)


async def complete(
    assistant: Assistant,
    doc: Document,
    offset: int,
    *,
    others: Iterable[Document] = (),
    root: str | None = None,
) -> str:
    """The text to insert at ``offset`` in ``doc`` (which does not change meanwhile: the command line's). The
    stream is closed when the block ends, and the suggestion is cut back to what adds no syntax error."""
    context = prepare_context(doc, offset, others=others, root=root, workspace=assistant.workspace)
    prepared = prepare_completion(assistant, context, doc=doc, offset=offset)
    return await complete_prepared(assistant, prepared)


def _prompt(assistant: Assistant, context: CodeContext, budget: Budget) -> BuiltPrompt:
    # Small local models continue code; the 70B model and chat servers get the instruction dialogue.
    local = continuing(assistant.backend)
    if local is not None:
        return continuation_prompt(assistant.store.spec("complete"), context, local.completion_budget())
    return assistant.prompt("complete", context, budget)
