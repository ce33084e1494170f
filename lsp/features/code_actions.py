"""textDocument/codeAction (cheap: only lists) and codeAction/resolve (runs the model).

Offered on the selection, or on the enclosing function/class without one: Explain, Refactor, Add docstring,
Write tests, and a quickfix per diagnostic in the request's context. Ask needs the user's words, which a
plain code action cannot ask for: it is the `codellama.run` command (action "ask", with an instruction),
as is Refactor with an instruction (see commands.py).

The flow shared with `codellama.run` lives here too: `perform` runs an action with progress, `deliver`
turns its result into what the client gets (markdown, a versioned edit, a proposal to review, or nothing
when the document moved on).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp.assistant import ActionResult
from lsp.context.documents import Document
from lsp.context.positions import LineIndex
from lsp.errors import CodellamaError
from lsp.features.common import document, offsets, request_error, to_range
from lsp.features.progress import ActionCancelled, with_progress
from lsp.server import CodellamaServer
from lsp.templates import Action
from lsp.test_files import Placement, appended, has_tests_module, place_tests, rust_insertion

log = logging.getLogger(__name__)

SHOW_EXPLANATION = "codellama.showExplanation"
REVIEW_PROPOSAL = "codellama.reviewProposal"
RUN_ACTION = "codellama.run"

# Standard kinds, so that clients can filter (`only`) and place them in their menus. Explain changes
# nothing (the empty kind); Write tests adds a file, neither a rewrite nor an extraction: plain `refactor`
# keeps it in the lightbulb, where VS Code would hide a `source` action.
OFFERED: tuple[tuple[Action, str], ...] = (
    ("explain", types.CodeActionKind.Empty),
    ("refactor", types.CodeActionKind.RefactorRewrite),
    ("docstring", types.CodeActionKind.RefactorRewrite),
    ("tests", types.CodeActionKind.Refactor),
)
RUNNABLE: tuple[Action, ...] = ("explain", "refactor", "docstring", "tests", "fix", "ask")
MAX_FIXES = 5  # quickfixes listed for one request (one per diagnostic)
MAX_TITLE = 60
MAX_QUOTE = 120  # characters of code quoted in a diagnostic's description


def register(server: CodellamaServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[
                types.CodeActionKind.Empty,
                types.CodeActionKind.QuickFix,
                types.CodeActionKind.Refactor,
                types.CodeActionKind.RefactorRewrite,
            ],
            resolve_provider=True,
        ),
    )
    def code_action(ls: CodellamaServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        doc = document(ls, params.text_document.uri)
        offsets(doc, params.range)  # validates the range
        wanted = params.context.only
        actions: list[types.CodeAction] = []
        if _wanted(types.CodeActionKind.QuickFix, wanted):
            fixes = (_fix(doc, d) for d in params.context.diagnostics[:MAX_FIXES])
            actions.extend(fix for fix in fixes if fix is not None)
        for action, kind in OFFERED:
            if _wanted(kind, wanted):
                data = {"uri": doc.uri, "version": doc.version, "range": range_json(params.range), "action": action}
                title = f"CodeLlama: {ls.prompt_store.spec(action).title}"
                actions.append(types.CodeAction(title=title, kind=kind, data=data))
        if not _resolves(ls):
            # A client that cannot resolve (eglot) would pick an action that does nothing: give each the
            # command that runs it instead.
            for item in actions:
                item.command = _run_command(item)
        return actions

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: CodellamaServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        name = data.get("action")
        if name not in RUNNABLE:
            return action
        doc = document(ls, str(data.get("uri")))
        if doc.version != data.get("version"):
            action.disabled = types.CodeActionDisabled(reason="the document changed; ask again")
            return action
        request = Request(
            name,
            doc,
            range_from(data.get("range")),
            instruction=str(data.get("instruction") or ""),
            diagnostics=[str(d) for d in data.get("diagnostics") or []],
        )
        result = await perform(ls, request)
        if result is None:  # cancelled from the progress bar: nothing to apply
            return action
        return _resolved(ls, action, deliver(ls, request, result))


def _resolves(ls: CodellamaServer) -> bool:
    text_document = ls.client_capabilities.text_document
    code_action = text_document.code_action if text_document else None
    support = code_action.resolve_support if code_action else None
    return support is not None and {"edit", "command"} & set(support.properties) != set()


def _run_command(action: types.CodeAction) -> types.Command:
    data = dict(action.data) if isinstance(action.data, dict) else {}
    arguments = {key: data[key] for key in ("action", "uri", "range", "instruction", "diagnostics") if key in data}
    return types.Command(title=action.title, command=RUN_ACTION, arguments=[{**arguments, "apply": True, "show": True}])


def _resolved(ls: CodellamaServer, action: types.CodeAction, delivery: Delivery) -> types.CodeAction:
    if delivery.kind == "markdown":
        action.command = types.Command(
            title=delivery.title, command=SHOW_EXPLANATION, arguments=[delivery.explanation()]
        )
    elif delivery.kind == "review":
        action.command = types.Command(
            title=f"{delivery.title} (proposal does not parse)",
            command=REVIEW_PROPOSAL,
            arguments=[delivery.proposal()],
        )
    elif delivery.kind == "edit":
        action.edit = delivery.edit
    else:  # stale: the client asked and waited, so it hears why nothing happens
        tell(ls, delivery.reason, types.MessageType.Warning)
        action.disabled = types.CodeActionDisabled(reason=delivery.reason)
    return action


# ---------------------------------------------------------------------------------------------- the flow
@dataclass
class Request:
    """An action on a document: what the handlers got, with the tests' destination once chosen."""

    action: Action
    doc: Document
    range: types.Range  # as the client sent it, for the document's version at that time
    instruction: str = ""
    diagnostics: list[str] = field(default_factory=list)
    placement: Placement | None = None  # tests: where they go (chosen when the action runs)


@dataclass(frozen=True)
class Delivery:
    """What a result becomes for the client.

    kind: "markdown" (an explanation or answer), "edit" (a versioned WorkspaceEdit), "review" (code that
    would add syntax errors: shown, applied only if the user says so), "stale" (the document changed while
    the model ran: nothing may be applied)."""

    kind: Literal["markdown", "edit", "review", "stale"]
    title: str
    uri: str
    version: int
    range: types.Range
    text: str = ""
    edit: types.WorkspaceEdit | None = None
    reason: str = ""
    target_uri: str | None = None  # where the edit goes when not the document itself (tests)

    def explanation(self) -> dict[str, Any]:
        """Arguments of codellama.showExplanation (our editor plugins render them themselves)."""
        return {"title": self.title, "markdown": self.text, "uri": self.uri, "range": range_json(self.range)}

    def proposal(self) -> dict[str, Any]:
        """Arguments of codellama.reviewProposal."""
        return {
            "title": self.title,
            "uri": self.uri,
            "version": self.version,
            "range": range_json(self.range),
            "text": self.text,
            "reason": self.reason,
        }


async def perform(ls: CodellamaServer, request: Request) -> ActionResult | None:
    """Run the action with a progress bar; None when the user cancelled it there. Failures become an error
    answer (and one message); $/cancelRequest propagates as CancelledError, closing the model's stream."""
    title = ls.prompt_store.spec(request.action).title
    doc = request.doc
    start, end = offsets(doc, request.range)
    instruction = request.instruction
    if request.action == "tests":
        request.placement, note = _plan_tests(ls, doc)
        instruction = "\n".join(part for part in (instruction, note) if part)
    try:
        assistant = ls.assistant()
        ls.status("busy")
        result = await with_progress(
            ls,
            f"CodeLlama: {title}",
            lambda report: assistant.run(
                request.action,
                doc,
                start,
                end,
                instruction=instruction,
                diagnostics=request.diagnostics,
                test_path=_test_path(ls, request.placement),
                others=[d for d in ls.documents if d.uri != doc.uri],
                root=ls.root,
                progress=report,
            ),
            about={"action": request.action, "uri": doc.uri},
        )
    except ActionCancelled:
        ls.status("idle")
        return None
    except asyncio.CancelledError:
        ls.status("idle")
        raise
    except CodellamaError as error:
        ls.report(error, title)
        raise request_error(error) from error
    ls.succeeded()
    return result


def deliver(ls: CodellamaServer, request: Request, result: ActionResult) -> Delivery:
    """The result as the client should get it; nothing stale is ever made into an edit."""
    doc = request.doc
    title = ls.prompt_store.spec(request.action).title
    if request.action == "ask" and request.instruction:
        title = _short(f"{title}: {request.instruction}")
    current = doc.version == result.version
    target = to_range(doc, result.start, result.end) if current else request.range
    base = Delivery("markdown", title, doc.uri, result.version, target, result.text)
    if ls.prompt_store.spec(request.action).reply == "markdown":
        return base
    if request.action == "tests":
        return _deliver_tests(ls, request, base)
    if not current:
        reason = "the document changed while the model was working; nothing was applied, ask again"
        return replace(base, kind="stale", reason=reason)
    if result.parses is False:
        return replace(base, kind="review", reason="the proposed code would introduce syntax errors")
    return replace(base, kind="edit", edit=text_edit(doc.uri, result.version, target, result.text))


def text_edit(uri: str, version: int | None, target: types.Range, text: str) -> types.WorkspaceEdit:
    """A versioned edit: a client refuses it if the document moved on, so stale text never lands."""
    return types.WorkspaceEdit(document_changes=[_document_edit(uri, version, target, text)])


def tell(ls: CodellamaServer, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
    ls.window_show_message(types.ShowMessageParams(type=kind, message=f"codellama: {message}"))


# ---------------------------------------------------------------------------------------------- quickfix
def _fix(doc: Document, diagnostic: types.Diagnostic) -> types.CodeAction | None:
    """A quickfix for one diagnostic (from any source): the model sees its message and the code it marks.
    None for a diagnostic whose range does not fit the document (another server's, for another version).

    The fix rewrites the enclosing function (or line), not just the marked span: a fix often needs more
    (an import is out of reach, but a variable defined earlier is not)."""
    message = diagnostic.message.strip().split("\n", 1)[0]
    try:
        start, end = offsets(doc, diagnostic.range)
    except JsonRpcInvalidParams:
        return None
    # A one-line problem: an empty range at it, which the assistant widens to the enclosing function.
    one_line = doc.lines.line_of(start) == doc.lines.line_of(end)
    data = {
        "uri": doc.uri,
        "version": doc.version,
        "range": range_json(to_range(doc, start, start) if one_line else diagnostic.range),
        "action": "fix",
        "diagnostics": [_describe(doc, diagnostic, start, end)],
    }
    return types.CodeAction(
        title=_short(f"CodeLlama: Fix “{message}”"),
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        data=data,
    )


def _describe(doc: Document, diagnostic: types.Diagnostic, start: int, end: int) -> str:
    """`severity: message (source code), at `code` in `its line``: the prompt shows the code without line
    numbers, so the diagnostic points at it by quoting it."""
    severity = diagnostic.severity.name.lower() if diagnostic.severity else "problem"
    origin = " ".join(str(part) for part in (diagnostic.source, diagnostic.code) if part not in (None, ""))
    text = f"{severity}: {' '.join(diagnostic.message.split())}" + (f" ({origin})" if origin else "")
    line = doc.lines.line_text(doc.lines.line_of(start)).strip()[:MAX_QUOTE]
    marked = doc.text[start:end].strip()
    if marked and "\n" not in marked and len(marked) <= MAX_QUOTE and marked != line:
        return f"{text}, at `{marked}` in `{line}`"
    return f"{text}, at `{line}`" if line else text


# ---------------------------------------------------------------------------------------------- tests
def _plan_tests(ls: CodellamaServer, doc: Document) -> tuple[Placement | None, str]:
    """Where the tests go, and what the model must know about it (said through the instruction)."""
    if not doc.uri.startswith("file:"):
        return None, ""
    open_paths = {d.path for d in ls.documents}
    placement = place_tests(
        doc.path,
        doc.language.name if doc.language else None,
        ls.root,
        is_file=lambda p: p in open_paths or os.path.isfile(p),
        is_dir=os.path.isdir,
    )
    name = _shown_path(ls, placement.path)
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


def _test_path(ls: CodellamaServer, placement: Placement | None) -> str:
    return _shown_path(ls, placement.path) if placement else ""


def _deliver_tests(ls: CodellamaServer, request: Request, base: Delivery) -> Delivery:
    """Tests go to their own file (created if needed) or into the source itself. The insertion point is
    computed now, from the current text, so the document changing while the model ran does no harm."""
    placement = request.placement
    doc = request.doc
    code = base.text
    language = doc.language.name if doc.language else None
    if placement is None:
        text = f"This document has no file to put tests beside; here they are:\n\n```\n{code.rstrip()}\n```"
        return replace(base, text=text)
    if placement.in_source:
        if language == "rust":
            offset, text = rust_insertion(doc, code)
        else:
            offset, text = len(doc.text), appended(doc.text, code, language)
        edit = text_edit(doc.uri, doc.version, to_range(doc, offset, offset), text)
        return replace(base, kind="edit", text=text, edit=edit, target_uri=doc.uri)
    existing = next((d for d in ls.documents if d.path == placement.path), None)
    if existing is not None:  # open in the editor: its text may be newer than the disk's
        text = appended(existing.text, code, language)
        end = to_range(existing, len(existing.text), len(existing.text))
        edit = text_edit(existing.uri, existing.version, end, text)
        return replace(base, kind="edit", text=text, edit=edit, target_uri=existing.uri)
    uri = path_to_uri(placement.path)
    on_disk = _read(placement.path)
    if on_disk is not None:
        text = appended(on_disk, code, language)
        line, character = LineIndex(on_disk).position_at(len(on_disk))
        end = types.Range(types.Position(line, character), types.Position(line, character))
        return replace(base, kind="edit", text=text, edit=text_edit(uri, None, end, text), target_uri=uri)
    text = appended("", code, language)
    if not _can_create_files(ls):
        name = _shown_path(ls, placement.path)
        markdown = f"Your editor cannot create files for the server: save these tests as `{name}`.\n\n```\n{text}```"
        return replace(base, text=markdown)
    start = types.Range(types.Position(0, 0), types.Position(0, 0))
    edit = types.WorkspaceEdit(
        document_changes=[
            types.CreateFile(uri=uri, options=types.CreateFileOptions(ignore_if_exists=True)),
            _document_edit(uri, None, start, text),
        ]
    )
    return replace(base, kind="edit", text=text, edit=edit, target_uri=uri)


def _can_create_files(ls: CodellamaServer) -> bool:
    workspace = ls.client_capabilities.workspace
    edits = workspace.workspace_edit if workspace else None
    operations = (edits.resource_operations if edits else None) or []
    return bool(edits and edits.document_changes) and types.ResourceOperationKind.Create in operations


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None


def _shown_path(ls: CodellamaServer, path: str) -> str:
    """A path as the user (and the model) should read it: relative to the workspace when inside it."""
    root = (ls.root or "").rstrip("/")
    return path[len(root) + 1 :] if root and path.startswith(root + "/") else path


def path_to_uri(path: str) -> str:
    """A file: URI for an absolute path as `uri_to_path` gives them (POSIX, or `c:/x` on Windows)."""
    return ("file://" if path.startswith("/") else "file:///") + quote(path, safe="/:")


# ---------------------------------------------------------------------------------------------- small parts
def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    """Whether a kind passes the client's `only` filter (kinds are hierarchical: `refactor` takes
    `refactor.rewrite`)."""
    return not only or any(kind == w or kind.startswith(f"{w}.") for w in only)


def _short(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1].rstrip() + "…"


def _document_edit(uri: str, version: int | None, target: types.Range, text: str) -> types.TextDocumentEdit:
    return types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
        edits=[types.TextEdit(range=target, new_text=text)],
    )


def range_json(r: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": r.start.line, "character": r.start.character},
        "end": {"line": r.end.line, "character": r.end.character},
    }


def range_from(data: Any) -> types.Range:
    try:
        s, e = data["start"], data["end"]
        return types.Range(
            types.Position(int(s["line"]), int(s["character"])),
            types.Position(int(e["line"]), int(e["character"])),
        )
    except (KeyError, TypeError, ValueError):
        return types.Range(types.Position(0, 0), types.Position(0, 0))
