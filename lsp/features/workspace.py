"""The workspace index's upkeep: started once the client names a workspace, kept current by
``workspace/didChangeWatchedFiles`` (watchers registered where the client allows dynamic registration) and
by saves. Open documents need nothing here: their own text is used while they are open.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import uuid
from typing import TYPE_CHECKING

from lsprotocol import types

from lsp.context.languages import LANGUAGES
from lsp.server import CodellamaServer
from lsp.uris import uri_to_path

if TYPE_CHECKING:
    from lsp.workspace import WalkLimits, WorkspaceIndex

log = logging.getLogger(__name__)

WATCHED_EXTENSIONS = sorted({ext.lstrip(".") for spec in LANGUAGES for ext in spec.extensions})
WATCH_GLOB = "**/*.{" + ",".join(WATCHED_EXTENSIONS) + "}"


def limits(ls: CodellamaServer) -> WalkLimits:
    from lsp.workspace import WalkLimits

    settings = ls.settings.workspace
    return WalkLimits(settings.max_files, settings.max_file_size, settings.max_total_size, tuple(settings.exclude))


def start_index(ls: CodellamaServer) -> WorkspaceIndex | None:
    """Start indexing the workspace root in the background (once; not without a root or when disabled)."""
    existing = _index(ls)
    if existing is not None or not ls.root or not ls.settings.workspace.enable:
        return existing
    if not os.path.isdir(ls.root):
        log.warning("workspace index: the workspace root %s is not a folder; no index", ls.root)
        return None
    # imported here, not with the server: a server without a workspace never loads the index's modules
    from lsp.workspace import WorkspaceDefinitions, WorkspaceIndex

    index = WorkspaceIndex(ls.root, limits(ls))
    index.start()
    atexit.register(index.close)
    ls.workspace_definitions.source = WorkspaceDefinitions(index, ls.root)
    return index


def _index(ls: CodellamaServer) -> WorkspaceIndex | None:
    source = ls.workspace_definitions.source
    return source.index if source is not None else None


async def register_watchers(ls: CodellamaServer) -> bool:
    """Ask the client to watch the source files, when it supports registering that dynamically."""
    workspace = ls.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace else None
    if watched is None or not watched.dynamic_registration:
        log.info("workspace index: the client cannot watch files for us; saves keep the index current")
        return False
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern=WATCH_GLOB)]
    )
    registration = types.Registration(
        id=f"codellama-watch-{uuid.uuid4().hex[:8]}", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=options,
    )
    try:
        await ls.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
    except Exception as error:  # a client that refuses keeps working, with saves only
        log.warning("workspace index: the client refused to watch files: %s", error)
        return False
    return True


def start_in_background(ls: CodellamaServer) -> None:
    """Start the index and ask for watchers without holding up ``initialized``."""
    task = asyncio.ensure_future(on_initialized(ls))
    ls.tasks.add(task)
    task.add_done_callback(ls.tasks.discard)


async def on_initialized(ls: CodellamaServer) -> None:
    if start_index(ls) is not None:
        await register_watchers(ls)


def register(server: CodellamaServer) -> None:
    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: CodellamaServer, params: types.DidChangeWatchedFilesParams) -> None:
        index = _index(ls)
        if index is None:
            return
        changed: list[str] = []
        deleted: list[str] = []
        for event in params.changes:
            path = uri_to_path(event.uri)
            if not event.uri.startswith("file:"):
                continue
            (deleted if event.type == types.FileChangeType.Deleted else changed).append(path)
        # a rename arrives as a deletion and a creation: forget first, then read
        index.remove(deleted)
        index.update(changed)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CodellamaServer, params: types.DidSaveTextDocumentParams) -> None:
        index = _index(ls)
        if index is not None and params.text_document.uri.startswith("file:"):
            index.update([uri_to_path(params.text_document.uri)])
