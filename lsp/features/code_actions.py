"""textDocument/codeAction (cheap: only lists) and codeAction/resolve (runs the model)."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types

from lsp.errors import CodellamaError
from lsp.features.common import document, offsets, request_error, to_range
from lsp.features.progress import with_progress
from lsp.server import CodellamaServer
from lsp.templates import Action

log = logging.getLogger(__name__)

SHOW_EXPLANATION = "codellama.showExplanation"
REVIEW_PROPOSAL = "codellama.reviewProposal"

# The actions offered on every selection (or the enclosing function), with standard kinds so that
# clients can filter them.
OFFERED: tuple[tuple[Action, str], ...] = (
    ("explain", types.CodeActionKind.Empty),
    ("refactor", types.CodeActionKind.RefactorRewrite),
    ("docstring", types.CodeActionKind.RefactorRewrite),
)


def register(server: CodellamaServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[
                types.CodeActionKind.Empty,
                types.CodeActionKind.RefactorRewrite,
                types.CodeActionKind.QuickFix,
            ],
            resolve_provider=True,
        ),
    )
    def code_action(ls: CodellamaServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        doc = document(ls, params.text_document.uri)
        offsets(doc, params.range)  # validates the range
        wanted = params.context.only
        actions = []
        for action, kind in OFFERED:
            if wanted and not any(kind == w or kind.startswith(f"{w}.") for w in wanted):
                continue
            title = f"CodeLlama: {ls.prompt_store.spec(action).title}"
            data = {
                "uri": doc.uri,
                "version": doc.version,
                "range": _range_data(params.range),
                "action": action,
            }
            actions.append(types.CodeAction(title=title, kind=kind, data=data))
        return actions

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: CodellamaServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        name = data.get("action")
        if name not in ls.prompt_store.actions:
            return action
        doc = document(ls, str(data.get("uri")))
        if doc.version != data.get("version"):
            action.disabled = types.CodeActionDisabled(reason="the document changed; ask again")
            return action
        start, end = offsets(doc, _range_from(data.get("range")))
        title = ls.prompt_store.spec(name).title
        try:
            assistant = ls.assistant()
            ls.status("busy")
            result = await with_progress(
                ls,
                f"CodeLlama: {title}",
                lambda report: assistant.run(
                    name,
                    doc,
                    start,
                    end,
                    instruction=str(data.get("instruction") or ""),
                    others=[d for d in ls.documents if d.uri != doc.uri],
                    root=ls.root,
                    progress=report,
                ),
            )
        except CodellamaError as error:
            ls.report(error, title)
            raise request_error(error) from error
        ls.succeeded()
        target = to_range(doc, result.start, result.end)
        if ls.prompt_store.spec(name).reply == "markdown":
            action.command = types.Command(
                title=title,
                command=SHOW_EXPLANATION,
                arguments=[{"title": title, "markdown": result.text, "uri": doc.uri, "range": _range_data(target)}],
            )
            return action
        if doc.version != result.version:
            action.disabled = types.CodeActionDisabled(reason="the document changed while the model was working")
            return action
        if result.parses is False:
            # Not applied silently: the user sees the proposal and decides.
            action.command = types.Command(
                title=f"{title} (proposal does not parse)",
                command=REVIEW_PROPOSAL,
                arguments=[
                    {
                        "title": title,
                        "uri": doc.uri,
                        "version": result.version,
                        "range": _range_data(target),
                        "text": result.text,
                        "reason": "the proposed code would introduce syntax errors",
                    }
                ],
            )
            return action
        action.edit = text_edit(doc.uri, result.version, target, result.text)
        return action


def text_edit(uri: str, version: int, target: types.Range, text: str) -> types.WorkspaceEdit:
    """A versioned edit: a client refuses it if the document moved on, so stale text never lands."""
    return types.WorkspaceEdit(
        document_changes=[
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
                edits=[types.TextEdit(range=target, new_text=text)],
            )
        ]
    )


def _range_data(r: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": r.start.line, "character": r.start.character},
        "end": {"line": r.end.line, "character": r.end.character},
    }


def _range_from(data: Any) -> types.Range:
    try:
        s, e = data["start"], data["end"]
        return types.Range(
            types.Position(int(s["line"]), int(s["character"])),
            types.Position(int(e["line"]), int(e["character"])),
        )
    except (KeyError, TypeError, ValueError):
        return types.Range(types.Position(0, 0), types.Position(0, 0))
