"""workspace/executeCommand: actions run by name (for editor plugins and key bindings), and the commands
code actions carry (show an explanation, review a proposal)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from lsprotocol import types

from lsp.errors import CodellamaError
from lsp.features.code_actions import REVIEW_PROPOSAL, SHOW_EXPLANATION, _range_from, text_edit
from lsp.features.common import document, offsets, request_error, to_range
from lsp.features.progress import with_progress
from lsp.server import CodellamaServer

log = logging.getLogger(__name__)

RUN_ACTION = "codellama.run"
TOGGLE_COMPLETIONS = "codellama.toggleCompletions"
APPLY = "Apply anyway"
SHOW = "Show proposal"


def register(server: CodellamaServer) -> None:
    @server.command(RUN_ACTION)
    async def run_action(ls: CodellamaServer, *args: Any) -> dict[str, Any]:
        """Arguments: {action, uri, range?, instruction?, apply?}. Returns {kind, text, uri, range, version,
        applied?}; markdown results are also shown to the user, code results applied when `apply`."""
        arg = args[0] if args and isinstance(args[0], dict) else {}
        action = arg.get("action")
        if action not in ls.prompt_store.actions:
            raise request_error(
                CodellamaError(f"unknown action {action!r}; one of {', '.join(ls.prompt_store.actions)}")
            )
        doc = document(ls, str(arg.get("uri")))
        start, end = offsets(doc, _range_from(arg.get("range")))
        title = ls.prompt_store.spec(action).title
        try:
            assistant = ls.assistant()
            ls.status("busy")
            result = await with_progress(
                ls,
                f"CodeLlama: {title}",
                lambda report: assistant.run(
                    action,
                    doc,
                    start,
                    end,
                    instruction=str(arg.get("instruction") or ""),
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
        answer: dict[str, Any] = {
            "action": action,
            "kind": ls.prompt_store.spec(action).reply,
            "text": result.text,
            "uri": doc.uri,
            "version": result.version,
            "range": _range_json(target),
            "parses": result.parses,
        }
        if answer["kind"] == "markdown":
            if arg.get("show", True):
                await show_markdown(ls, title, result.text)
        elif arg.get("apply"):
            answer["applied"] = await _apply(ls, doc.uri, result.version, target, result.text, result.parses)
        return answer

    @server.command(SHOW_EXPLANATION)
    async def show_explanation(ls: CodellamaServer, *args: Any) -> None:
        arg = args[0] if args and isinstance(args[0], dict) else {}
        await show_markdown(ls, str(arg.get("title", "Explanation")), str(arg.get("markdown", "")))

    @server.command(REVIEW_PROPOSAL)
    async def review_proposal(ls: CodellamaServer, *args: Any) -> bool:
        arg = args[0] if args and isinstance(args[0], dict) else {}
        target = _range_from(arg.get("range"))
        text = str(arg.get("text", ""))
        await show_markdown(ls, str(arg.get("title", "Proposal")), f"{arg.get('reason', '')}\n\n```\n{text}\n```")
        return await _apply(ls, str(arg.get("uri")), int(arg.get("version", -1)), target, text, False)

    @server.command(TOGGLE_COMPLETIONS)
    def toggle_completions(ls: CodellamaServer, *args: Any) -> bool:
        enabled = args[0] if args and isinstance(args[0], bool) else None
        return ls.toggle_completions(enabled)


async def _apply(
    ls: CodellamaServer, uri: str, version: int, target: types.Range, text: str, parses: bool | None
) -> bool:
    if parses is False:
        choice = await ls.window_show_message_request_async(
            types.ShowMessageRequestParams(
                type=types.MessageType.Warning,
                message="codellama: the proposed code would introduce syntax errors. Apply it anyway?",
                actions=[types.MessageActionItem(APPLY), types.MessageActionItem("Cancel")],
            )
        )
        if choice is None or choice.title != APPLY:
            return False
    doc = ls.documents.get(uri)
    if doc.version != version:
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Warning, message="codellama: the document changed; not applied"
            )
        )
        return False
    result = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=text_edit(uri, version, target, text), label="CodeLlama")
    )
    return bool(result and result.applied)


async def show_markdown(ls: CodellamaServer, title: str, markdown: str) -> None:
    """Readable in any client: a markdown file shown with window/showDocument where supported, else a message."""
    window = ls.client_capabilities.window
    if window and window.show_document and window.show_document.support:
        folder = Path(tempfile.gettempdir()) / "codellama-lsp"
        folder.mkdir(exist_ok=True)
        safe = "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-") or "explanation"
        path = folder / f"{safe}.md"
        path.write_text(f"# {title}\n\n{markdown}\n", encoding="utf-8")
        result = await ls.window_show_document_async(
            types.ShowDocumentParams(uri=path.as_uri(), take_focus=False, external=False)
        )
        if result and result.success:
            return
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=f"{title}\n\n{markdown}"))


def _range_json(r: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": r.start.line, "character": r.start.character},
        "end": {"line": r.end.line, "character": r.end.character},
    }
