"""An action's request: the document as it was asked about, taken at once, and running the model on it.

`snapshot` runs before anything is awaited (the progress bar's round trip to the client is the first
await): the text, its version, the target range and the context are those the user saw when they chose
the action, and an edit arriving meanwhile changes none of them. The result belongs to that version.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lsp.actions.test_targets import Placement, has_tests_module, place_tests
from lsp.assistant import Assistant
from lsp.cleanup import extract_code, reindent_block
from lsp.context.code_context import CodeContext, DefinitionSource
from lsp.context.documents import Document
from lsp.context.extract import selection_context
from lsp.context.syntax import parses_cleanly, target_range
from lsp.prompt.budget import Budget
from lsp.prompt.templates import Action
from lsp.uris import inside, shown_path

__all__ = ["RUNNABLE", "ActionRequest", "ActionResult", "Progress", "run", "snapshot"]

RUNNABLE: tuple[Action, ...] = ("explain", "refactor", "docstring", "tests", "fix", "ask")
Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class ActionRequest:
    """What an action works on: a snapshot of the document (later edits do not reach it), the target
    (str offsets in that snapshot, widened to the enclosing function when nothing was selected), the context
    around it, and for tests where they go. ``root`` and ``folders`` are the workspace's."""

    action: Action
    doc: Document
    start: int
    end: int
    context: CodeContext
    instruction: str = ""
    diagnostics: tuple[str, ...] = ()
    placement: Placement | None = None
    root: str | None = None
    folders: tuple[str, ...] = ()

    @property
    def version(self) -> int:
        return self.doc.version

    @property
    def selection(self) -> str:
        return self.doc.text[self.start : self.end]


@dataclass(frozen=True)
class ActionResult:
    request: ActionRequest
    text: str  # code (replacement or tests) or markdown
    reply: str  # what the model said, unedited
    parses: bool | None  # code replacements: whether the document parses without new errors with it
    prompt_tokens: int

    @property
    def version(self) -> int:
        return self.request.version


def snapshot(
    action: Action,
    doc: Document,
    start: int,
    end: int,
    *,
    instruction: str = "",
    diagnostics: Sequence[str] = (),
    others: Iterable[Document] = (),
    root: str | None = None,
    folders: Sequence[str] = (),
    is_file: Callable[[str], bool] = os.path.isfile,
    workspace: DefinitionSource | None = None,
) -> ActionRequest:
    """The request for `action` on `doc` between str offsets `start` and `end`, fixed now. Synchronous on
    purpose: nothing may run between reading the document and taking its copy."""
    copy = doc.snapshot()
    start, end = target_range(copy, start, end)
    context = selection_context(copy, start, end, others=others, root=root, workspace=workspace)
    placement: Placement | None = None
    if action == "tests":
        placement, note = _plan_tests(copy, root, tuple(folders), is_file)
        instruction = "\n".join(part for part in (instruction, note) if part)
    return ActionRequest(
        action, copy, start, end, context, instruction, tuple(diagnostics), placement, root, tuple(folders)
    )


async def run(assistant: Assistant, request: ActionRequest, progress: Progress | None = None) -> ActionResult:
    """The model's answer to `request`, cleaned: markdown as it came, code re-indented to the target's
    indentation and checked against the snapshot."""
    spec = assistant.store.spec(request.action)
    max_new = min(assistant.settings.max_new_tokens, spec.max_new_tokens)
    test_path = shown_path(request.placement.path, request.root) if request.placement else ""
    prompt_tokens = 0

    async def ask(budget: Budget) -> str:
        nonlocal prompt_tokens
        prompt = assistant.prompt(
            request.action,
            request.context,
            budget,
            selection=request.selection,
            instruction=request.instruction,
            diagnostics=list(request.diagnostics),
            test_path=test_path,
        )
        prompt_tokens = prompt.tokens
        return await assistant.generate(prompt, assistant.settings.temperature, progress=progress)

    reply = await assistant.with_length_retry(ask, max_new)
    if spec.reply == "markdown":
        return ActionResult(request, reply.strip(), reply, None, prompt_tokens)
    code = extract_code(reply)
    if request.action == "tests":
        return ActionResult(request, code, reply, None, prompt_tokens)
    selection = request.selection
    code = reindent_block(code, selection)
    if selection.endswith("\n") and not code.endswith("\n"):
        code += "\n"
    parses = parses_cleanly(request.doc, request.start, request.end, code)
    return ActionResult(request, code, reply, parses, prompt_tokens)


def _plan_tests(
    doc: Document, root: str | None, folders: tuple[str, ...], is_file: Callable[[str], bool]
) -> tuple[Placement | None, str]:
    """Where the tests go, and what the model must know about it (said through the instruction). Only a
    file inside the workspace folders is ever read or targeted; without one, the tests are shown."""
    if not doc.uri.startswith("file:"):
        return None, ""
    placement = place_tests(
        doc.path,
        doc.language.name if doc.language else doc.language_id,
        root,
        is_file=lambda p: inside(p, folders) and is_file(p),
        is_dir=lambda p: inside(p, folders) and os.path.isdir(p),
    )
    if not placement.in_source and not inside(placement.path, folders):
        return None, ""
    name = shown_path(placement.path, root)
    if placement.in_source and doc.language is not None and doc.language.name == "rust":
        if has_tests_module(doc):
            return placement, (
                "The file already has a `mod tests`: reply with only the new test functions (and any `use` they "
                "need), without a module around them; they are added to that module."
            )
        return placement, ""
    if placement.in_source or placement.exists:
        return placement, (
            f"`{name}` exists already: reply with only the new tests and the imports they need; they are "
            "appended at the end of that file."
        )
    return placement, ""
