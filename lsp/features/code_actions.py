"""textDocument/codeAction (cheap: only lists) and codeAction/resolve (runs the model): the LSP adapter over
lsp/actions.

Offered on the selection, or on the enclosing function/class without one: Explain, Refactor, Add docstring,
Write tests, and a quickfix per diagnostic in the request's context. Ask needs the user's words, which a
plain code action cannot ask for: it is the `codellama.run` command (action "ask", with an instruction),
as is Refactor with an instruction (see commands.py). `request_for`, `perform` and `delivered` are the
steps both share.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp.actions.delivery import UNPARSABLE, Delivery, deliver, range_from, range_json, short
from lsp.actions.request import RUNNABLE, ActionRequest, ActionResult, run, snapshot
from lsp.context.documents import Document
from lsp.errors import CodellamaError
from lsp.features.common import document, offsets, request_error, to_range
from lsp.features.progress import ActionCancelled, with_progress
from lsp.prompt.templates import Action
from lsp.server import CodellamaServer
from lsp.uris import uri_to_path

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
MAX_FIXES = 5  # quickfixes listed for one request (one per diagnostic)
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
        request = request_for(
            ls,
            name,
            doc,
            range_from(data.get("range")),
            instruction=str(data.get("instruction") or ""),
            diagnostics=[str(d) for d in data.get("diagnostics") or []],
        )
        result = await perform(ls, request)
        if result is None:  # cancelled from the progress bar: nothing to apply
            return action
        return _resolved(ls, action, delivered(ls, result))


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
            title=f"{delivery.title} ({'proposal does not parse' if delivery.reason == UNPARSABLE else 'review it'})",
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
def request_for(
    ls: CodellamaServer,
    action: Action,
    doc: Document,
    target: types.Range,
    *,
    instruction: str = "",
    diagnostics: Sequence[str] = (),
) -> ActionRequest:
    """The request, fixed now (before anything is awaited): see lsp.actions.request."""
    start, end = offsets(doc, target)
    open_paths = {d.path for d in ls.documents}
    return snapshot(
        action,
        doc,
        start,
        end,
        instruction=instruction,
        diagnostics=diagnostics,
        others=[d for d in ls.documents if d.uri != doc.uri],
        root=ls.root,
        folders=workspace_folders(ls),
        is_file=lambda p: p in open_paths or os.path.isfile(p),
        workspace=ls.workspace_definitions,
    )


async def perform(ls: CodellamaServer, request: ActionRequest) -> ActionResult | None:
    """Run the action with a progress bar; None when the user cancelled it there. Failures become an error
    answer (and one message); $/cancelRequest propagates as CancelledError, closing the model's stream."""
    title = ls.prompt_store.spec(request.action).title
    try:
        assistant = ls.assistant()
        ls.status("busy")
        result = await with_progress(
            ls,
            f"CodeLlama: {title}",
            lambda report: run(assistant, request, report),
            about={"action": request.action, "uri": request.doc.uri},
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


def delivered(ls: CodellamaServer, result: ActionResult) -> Delivery:
    """The result for this client, against the document as it is now."""
    uri = result.request.doc.uri
    current = ls.documents.get(uri) if uri in ls.documents else None
    return deliver(
        ls.prompt_store,
        result,
        current,
        open_docs=list(ls.documents),
        to_range=to_range,
        can_create_files=_can_create_files(ls),
    )


def workspace_folders(ls: CodellamaServer) -> list[str]:
    """The workspace folders' paths (the root alone for a client that sent no folders)."""
    folders = [uri_to_path(folder.uri) for folder in ls.workspace.folders.values()]
    return folders or ([ls.root] if ls.root else [])


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
        title=short(f"CodeLlama: Fix “{message}”"),
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


def _can_create_files(ls: CodellamaServer) -> bool:
    workspace = ls.client_capabilities.workspace
    edits = workspace.workspace_edit if workspace else None
    operations = (edits.resource_operations if edits else None) or []
    return bool(edits and edits.document_changes) and types.ResourceOperationKind.Create in operations


# ---------------------------------------------------------------------------------------------- small parts
def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    """Whether a kind passes the client's `only` filter (kinds are hierarchical: `refactor` takes
    `refactor.rewrite`)."""
    return not only or any(kind == w or kind.startswith(f"{w}.") for w in only)
