"""What an action's result becomes for the user: markdown to read, a versioned edit, a proposal to review,
or nothing when the document moved on. Never an edit of text other than the one the model saw.

Edits are versioned with the version of the request's snapshot: a client refuses such an edit once the
document has changed, so stale text cannot land even when the client applies it late.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from lsprotocol import types

from lsp.actions.request import ActionResult
from lsp.actions.test_targets import appended, rust_insertion
from lsp.cleanup.rewrites import rewrite_warning
from lsp.context.documents import Document
from lsp.prompt.templates import PromptStore
from lsp.uris import inside, path_to_uri, shown_path

__all__ = [
    "CLIENT_ANSWER_SECONDS",
    "Delivery",
    "ToRange",
    "client_answer",
    "deliver",
    "explanation_markdown",
    "range_from",
    "range_json",
    "text_edit",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
ToRange = Callable[[Document, int, int], types.Range]  # str offsets to a range in the client's encoding
MAX_TITLE = 60
# How long the server waits for the client to answer a request it made (a progress token, showing a
# document, applying an edit): an editor answers these at once, and one that never does must not hold the
# user's request forever.
CLIENT_ANSWER_SECONDS = 5.0
STALE = "the document changed while the model was working; nothing was applied, ask again"


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

UNPARSABLE = "the proposed code would introduce syntax errors"


def deliver(
    store: PromptStore,
    result: ActionResult,
    current: Document | None,
    *,
    open_docs: Iterable[Document],
    to_range: ToRange,
    can_create_files: bool,
) -> Delivery:
    """The result as the client should get it; `current` is the document as it is now (None: closed since).
    Nothing stale is ever made into an edit."""
    request = result.request
    title = store.spec(request.action).title
    if request.action == "ask" and request.instruction:
        title = short(f"{title}: {request.instruction}")
    target = to_range(request.doc, request.start, request.end)  # in the snapshot, at its version
    base = Delivery("markdown", title, request.doc.uri, request.version, target, result.text)
    if store.spec(request.action).reply == "markdown":
        return base
    if current is None:
        return replace(base, kind="stale", reason="the document was closed while the model was working")
    if request.action == "tests":
        return _deliver_tests(result, base, current, open_docs, to_range, can_create_files)
    if current.version != request.version:
        return replace(base, kind="stale", reason=STALE)
    if result.parses is False:
        return replace(base, kind="review", reason=UNPARSABLE)
    # A model too small for the task may answer with unrelated code: shown for review, not applied.
    if warning := rewrite_warning(request.selection, result.text, request.doc.language_id):
        return replace(base, kind="review", reason=warning)
    return replace(base, kind="edit", edit=text_edit(base.uri, base.version, target, result.text))


def text_edit(uri: str, version: int | None, target: types.Range, text: str) -> types.WorkspaceEdit:
    """A versioned edit: a client refuses it if the document moved on, so stale text never lands."""
    return types.WorkspaceEdit(document_changes=[_document_edit(uri, version, target, text)])


async def client_answer(request: Awaitable[T], what: str, seconds: float = CLIENT_ANSWER_SECONDS) -> T | None:
    """The client's answer to a request the server made, or None when it did not answer in time (logged).
    The request is left to finish in the background: a late answer then finds it and is dropped quietly."""
    task = asyncio.ensure_future(request)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        log.warning("the editor did not answer %s within %.0f s; going on without it", what, seconds)
        task.add_done_callback(_consume)
        return None
    return task.result()


def explanation_markdown(title: str, markdown: str, uri: str | None, where: types.Range | None) -> str:
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


def short(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1].rstrip() + "…"


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


# ---------------------------------------------------------------------------------------------- tests
def _deliver_tests(
    result: ActionResult,
    base: Delivery,
    current: Document,
    open_docs: Iterable[Document],
    to_range: ToRange,
    can_create_files: bool,
) -> Delivery:
    """Tests go to their own file (created if needed) or into the source itself, at an insertion point
    computed from the current text, with its version: the document changing while the model ran does no
    harm. Only files inside the workspace folders are read or targeted (the request checked the place)."""
    request = result.request
    placement = request.placement
    code = base.text
    language = current.language.name if current.language else None
    if placement is None:
        text = f"This document has no file to put tests beside; here they are:\n\n```\n{code.rstrip()}\n```"
        return replace(base, text=text)
    if placement.in_source:
        if language == "rust":
            offset, text = rust_insertion(current, code)
        else:
            offset, text = len(current.text), appended(current.text, code, language)
        edit = text_edit(current.uri, current.version, to_range(current, offset, offset), text)
        return replace(base, kind="edit", text=text, edit=edit, target_uri=current.uri)
    existing = next((d for d in open_docs if d.path == placement.path), None)
    if existing is not None:  # open in the editor: its text may be newer than the disk's
        text = appended(existing.text, code, language)
        end = to_range(existing, len(existing.text), len(existing.text))
        edit = text_edit(existing.uri, existing.version, end, text)
        return replace(base, kind="edit", text=text, edit=edit, target_uri=existing.uri)
    uri = path_to_uri(placement.path)
    on_disk = _read(placement.path, request.folders)
    if on_disk is not None:
        text = appended(on_disk, code, language)
        disk = Document(uri, current.language_id, 0, on_disk)
        end = to_range(disk, len(on_disk), len(on_disk))
        return replace(base, kind="edit", text=text, edit=text_edit(uri, None, end, text), target_uri=uri)
    text = appended("", code, language)
    if not can_create_files:
        name = shown_path(placement.path, request.root)
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


def _read(path: str, folders: tuple[str, ...]) -> str | None:
    if not inside(path, folders):  # checked when the place was chosen; a link may have changed since
        return None
    try:
        return Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None


def _document_edit(uri: str, version: int | None, target: types.Range, text: str) -> types.TextDocumentEdit:
    return types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
        edits=[types.TextEdit(range=target, new_text=text)],
    )


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved
