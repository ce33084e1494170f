"""workspace/executeCommand: actions run by name (for editor plugins and key bindings), and the commands
code actions carry (show an explanation, review a proposal).

`codellama.run` {action, uri, range?, instruction?, diagnostics?, apply?, show?} is how a client asks for
what a plain code action cannot carry: Ask (action "ask" with the question as `instruction`) and Refactor
with an instruction ({action: "refactor", instruction, apply: true}). It answers {action, kind, text, uri,
version, range, parses, applied?, stale?, targetUri?}; markdown answers are also shown (unless
`show` is false), code answers applied when `apply` is true. Cancelled, from the progress bar or with
$/cancelRequest, it answers the RequestCancelled error.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcRequestCancelled

from lsp.compat import request_future
from lsp.features.code_actions import (
    REVIEW_PROPOSAL,
    RUN_ACTION,
    RUNNABLE,
    SHOW_EXPLANATION,
    Delivery,
    Request,
    deliver,
    perform,
    range_from,
    range_json,
    tell,
    text_edit,
)
from lsp.features.common import document
from lsp.server import CodellamaServer

log = logging.getLogger(__name__)

TOGGLE_COMPLETIONS = "codellama.toggleCompletions"
APPLY = "Apply anyway"


def register(server: CodellamaServer) -> None:
    @server.command(RUN_ACTION)
    async def run_action(ls: CodellamaServer, *args: Any) -> dict[str, Any]:
        follow_cancel_request(ls)
        arg = _argument(args)
        request = _request(ls, arg)
        result = await perform(ls, request)
        if result is None:  # cancelled from the progress bar: the standard answer, which clients expect
            raise JsonRpcRequestCancelled("cancelled from the progress bar")
        delivery = deliver(ls, request, result)
        answer = _answer(request, delivery, result.parses)
        if delivery.kind == "markdown":
            if arg.get("show", True):
                await show_markdown(ls, delivery.title, delivery.text, delivery.uri, delivery.range)
        elif arg.get("apply"):
            answer["applied"] = await apply_delivery(ls, delivery)
        elif delivery.kind == "stale":
            tell(ls, delivery.reason, types.MessageType.Warning)
        return answer

    @server.command(SHOW_EXPLANATION)
    async def show_explanation(ls: CodellamaServer, *args: Any) -> None:
        arg = _argument(args)
        source = arg.get("range")
        where = range_from(source) if source is not None else None
        title, markdown = str(arg.get("title", "Explanation")), str(arg.get("markdown", ""))
        await show_markdown(ls, title, markdown, arg.get("uri"), where)

    @server.command(REVIEW_PROPOSAL)
    async def review_proposal(ls: CodellamaServer, *args: Any) -> bool:
        """The proposal is shown first, then the user decides; it lands only on the version it was made for."""
        arg = _argument(args)
        text, reason = str(arg.get("text", "")), str(arg.get("reason", ""))
        await show_markdown(ls, str(arg.get("title", "Proposal")), f"**{reason}**\n\n```\n{text}\n```")
        target = range_from(arg.get("range"))
        return await _apply(ls, str(arg.get("uri")), _int(arg.get("version")), target, text, parses=False)

    @server.command(TOGGLE_COMPLETIONS)
    def toggle_completions(ls: CodellamaServer, *args: Any) -> bool:
        enabled = args[0] if args and isinstance(args[0], bool) else None
        return ls.toggle_completions(enabled)


def follow_cancel_request(ls: CodellamaServer) -> None:
    """Let $/cancelRequest of workspace/executeCommand cancel the command's task.

    pygls (2.x) runs a command from its own executeCommand handler, a generator: the request's future is
    that handler's, and the command runs as a separate task. $/cancelRequest cancels the future (the client
    gets its "cancelled" answer) but not the task, so the model's stream would run to its end. Tie them."""
    protocol = ls.protocol
    msg_id = protocol.msg_id  # the executeCommand request's id: the task was created in its context
    task = asyncio.current_task()
    request = request_future(protocol, msg_id) if msg_id is not None else None
    if request is None or task is None:
        return
    loop = asyncio.get_running_loop()
    request.add_done_callback(lambda f: loop.call_soon_threadsafe(task.cancel) if f.cancelled() else None)


async def apply_delivery(ls: CodellamaServer, delivery: Delivery) -> bool:
    """Apply a code result through workspace/applyEdit; never a stale one, and a proposal that does not parse
    only if the user says so."""
    if delivery.kind == "stale":
        tell(ls, delivery.reason, types.MessageType.Warning)
        return False
    if delivery.kind == "review":
        return await _apply(ls, delivery.uri, delivery.version, delivery.range, delivery.text, parses=False)
    if delivery.edit is None:
        return False
    return await _apply_edit(ls, delivery.edit)


async def _apply(ls: CodellamaServer, uri: str, version: int, target: types.Range, text: str, *, parses: bool) -> bool:
    if not parses:
        choice = await ls.window_show_message_request_async(
            types.ShowMessageRequestParams(
                type=types.MessageType.Warning,
                message="codellama: the proposed code would introduce syntax errors. Apply it anyway?",
                actions=[types.MessageActionItem(APPLY), types.MessageActionItem("Cancel")],
            )
        )
        if choice is None or choice.title != APPLY:
            return False
    return await _apply_edit(ls, text_edit(uri, version, target, text))


async def _apply_edit(ls: CodellamaServer, edit: types.WorkspaceEdit) -> bool:
    """workspace/applyEdit, after checking the versions we know: the client would refuse a stale edit too,
    but the user deserves to hear why."""
    for change in edit.document_changes or []:
        if not isinstance(change, types.TextDocumentEdit) or change.text_document.version is None:
            continue
        uri = change.text_document.uri
        if uri not in ls.documents or ls.documents.get(uri).version != change.text_document.version:
            tell(ls, "the document changed; not applied", types.MessageType.Warning)
            return False
    workspace = ls.client_capabilities.workspace
    if not (workspace and workspace.apply_edit):
        tell(ls, "your editor does not let the server apply edits (workspace/applyEdit)", types.MessageType.Warning)
        return False
    result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="CodeLlama"))
    if result and not result.applied and result.failure_reason:
        tell(ls, f"the edit was not applied: {result.failure_reason}", types.MessageType.Warning)
    return bool(result and result.applied)


# ---------------------------------------------------------------------------------------------- markdown
async def show_markdown(
    ls: CodellamaServer, title: str, markdown: str, uri: str | None = None, where: types.Range | None = None
) -> None:
    """Readable in any client: a markdown file shown with window/showDocument where supported, else a message."""
    text = _explanation_markdown(title, markdown, uri, where)
    window = ls.client_capabilities.window
    if window and window.show_document and window.show_document.support:
        path = ls.scratch.write(title, text)
        if path is not None:
            try:
                result = await ls.window_show_document_async(
                    types.ShowDocumentParams(uri=path.as_uri(), take_focus=False, external=False)
                )
            except Exception as error:  # the message below still reaches the user
                log.warning("window/showDocument failed: %s", error)
                result = None
            if result and result.success:
                return
    ls.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=text))


def _explanation_markdown(title: str, markdown: str, uri: str | None, where: types.Range | None) -> str:
    """A heading, where it came from, the text (as our editor plugins render it)."""
    lines = [f"# {title}", ""]
    if uri:
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        if where is not None:
            # A range that ends at the start of a line does not include that line.
            ends_at_line_start = where.end.character == 0 and where.end.line > where.start.line
            last = where.end.line if ends_at_line_start else where.end.line + 1
            span = f"lines {where.start.line + 1}–{last}" if last > where.start.line + 1 else f"line {last}"
            name = f"{name}, {span}"
        lines += [f"*{name}*", ""]
    lines += [markdown.rstrip(), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- arguments
def _argument(args: tuple[Any, ...]) -> dict[str, Any]:
    return args[0] if args and isinstance(args[0], dict) else {}


def _request(ls: CodellamaServer, arg: dict[str, Any]) -> Request:
    action = arg.get("action")
    if action not in RUNNABLE:
        raise JsonRpcInvalidParams(f"unknown action {action!r}; one of {', '.join(RUNNABLE)}")
    instruction = str(arg.get("instruction") or "").strip()
    if action == "ask" and not instruction:
        raise JsonRpcInvalidParams("ask needs the question as `instruction`")
    diagnostics = [_diagnostic_text(d) for d in arg.get("diagnostics") or [] if d]
    doc = document(ls, str(arg.get("uri")))
    return Request(action, doc, range_from(arg.get("range")), instruction=instruction, diagnostics=diagnostics)


def _diagnostic_text(value: Any) -> str:
    """A diagnostic as the model reads it: a string as is, an LSP Diagnostic as `message (source code)`."""
    if not isinstance(value, dict):
        return str(value)
    origin = " ".join(str(value[k]) for k in ("source", "code") if value.get(k) not in (None, ""))
    message = str(value.get("message", "")).strip()
    return f"{message} ({origin})" if origin else message


def _answer(request: Request, delivery: Delivery, parses: bool | None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "action": request.action,
        "kind": "markdown" if delivery.kind == "markdown" else "code",
        "text": delivery.text,
        "uri": delivery.uri,
        "version": delivery.version,
        "range": range_json(delivery.range),
        "parses": parses,
    }
    if delivery.kind == "stale":
        answer["stale"] = True
    if delivery.target_uri is not None:
        answer["targetUri"] = delivery.target_uri
    return answer


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
