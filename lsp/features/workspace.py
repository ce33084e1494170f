"""The workspace indexes' upkeep: one index per workspace folder, started once the client names its folders
and kept in line with them and with the settings at run time (:func:`sync`: ``workspace.enable`` turned on or
off, the caps or the exclusions changed, folders added or removed); kept current by
``workspace/didChangeWatchedFiles`` (watchers registered where the client allows dynamic registration) and by
saves; closed at shutdown. Open documents need nothing here: their own text is used while they are open.

Starting and stopping an index's process never happens on the event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lsprotocol import types

from lsp.context.languages import LANGUAGES
from lsp.server import CodellamaServer
from lsp.uris import uri_to_path

if TYPE_CHECKING:
    from lsp.workspace import WalkLimits, WorkspaceIndex
    from lsp.workspace.roots import WorkspaceRoots

log = logging.getLogger(__name__)

WATCHED_EXTENSIONS = sorted({ext.lstrip(".") for spec in LANGUAGES for ext in spec.extensions})
WATCH_GLOB = "**/*.{" + ",".join(WATCHED_EXTENSIONS) + "}"
# A deleted folder is reported as one event for the folder's own path, which no source-file glob matches:
# deletions are watched everywhere (the server ignores those of paths it indexes nothing under).
DELETE_GLOB = "**/*"


@dataclass
class _State:
    roots: WorkspaceRoots
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    watching: bool = False
    closed: bool = False  # shut down: no index starts any more


_STATES: weakref.WeakKeyDictionary[CodellamaServer, _State] = weakref.WeakKeyDictionary()
_FOLDERS_CHANGED: weakref.WeakSet[CodellamaServer] = weakref.WeakSet()  # their folders alone count, even none


def _state(ls: CodellamaServer) -> _State:
    state = _STATES.get(ls)
    if state is None:
        # imported here, not with this module: a server with the setting off never loads the index's modules
        from lsp.workspace.roots import WorkspaceRoots

        state = _STATES[ls] = _State(WorkspaceRoots())
        ls.workspace_definitions.source = state.roots
    return state


def _roots(ls: CodellamaServer) -> WorkspaceRoots | None:
    state = _STATES.get(ls)
    return state.roots if state is not None and len(state.roots) else None


def limits(ls: CodellamaServer) -> WalkLimits:
    from lsp.workspace import WalkLimits

    settings = ls.settings.workspace
    return WalkLimits(settings.max_files, settings.max_file_size, settings.max_total_size, tuple(settings.exclude))


def folders(ls: CodellamaServer) -> list[str]:
    """The workspace folders' paths; the root the client named when it named no folders (and never changed
    them)."""
    paths = [uri_to_path(f.uri) for f in ls.workspace.folders.values() if f.uri.startswith("file:")]
    if not paths and ls not in _FOLDERS_CHANGED and ls.root:
        paths = [ls.root]
    return list(dict.fromkeys(os.path.abspath(p) for p in paths))


def prepare(ls: CodellamaServer) -> None:
    """Set up the indexes' state while ``initialize`` is answered, when an index will run: the client sends
    nothing else until it has the answer, whereas loading the index's modules in :func:`sync` holds up its
    messages (the server loads them before the first message when the setting is on by default)."""
    if ls.settings.workspace.enable and ls.root is not None:
        _state(ls)


async def sync(ls: CodellamaServer) -> None:
    """Bring the indexes in line with the folders and the settings: start those missing, stop those no
    longer wanted (the setting turned off, a folder removed), restart those whose caps or exclusions
    changed; then ask for watchers, once. Serialised: a call waits for the one before it."""
    if not ls.settings.workspace.enable and _roots(ls) is None:
        return  # nothing runs, nothing to start: not even the index's modules are loaded
    state = _state(ls)
    async with state.lock:
        if state.closed:
            return
        wanted = folders(ls) if ls.settings.workspace.enable else []
        caps = limits(ls)
        stale = [index for index in state.roots.indexes() if index.root not in wanted or index.limits != caps]
        for index in stale:
            state.roots.detach(index.root)  # no longer used from now on
        if stale:
            log.info("workspace index: stopping %s", ", ".join(index.root for index in stale))
            await asyncio.to_thread(_close, stale)
        for root in wanted:
            if state.roots.get(root) is not None:
                continue
            if not os.path.isdir(root):
                log.warning("workspace index: the workspace folder %s is not a folder; no index", root)
                continue
            index = await asyncio.to_thread(_open, state.roots, root, caps)
            if state.closed:  # shut down meanwhile
                await asyncio.to_thread(_close, [index])
                return
            state.roots.attach(index)
        if len(state.roots) and not state.watching:
            state.watching = True  # asked once per session: a client that cannot or will not is not asked again
            await register_watchers(ls)


def _open(roots: WorkspaceRoots, root: str, caps: WalkLimits) -> WorkspaceIndex:
    index = roots.open(root, caps)
    atexit.register(index.close)  # whatever happens to the task that asked for it
    return index


def _close(indexes: list[WorkspaceIndex]) -> None:
    for index in indexes:
        index.close()
        atexit.unregister(index.close)


async def close(ls: CodellamaServer) -> None:
    """Stop every index (at shutdown); none starts afterwards."""
    state = _STATES.get(ls)
    if state is None:
        return
    state.closed = True
    async with state.lock:
        indexes = state.roots.indexes()
        for index in indexes:
            state.roots.detach(index.root)
        await asyncio.to_thread(_close, indexes)


def sync_in_background(ls: CodellamaServer) -> None:
    """:func:`sync` without holding up the message that asked for it."""
    task = asyncio.ensure_future(sync(ls))
    ls.tasks.add(task)
    task.add_done_callback(ls.tasks.discard)


async def register_watchers(ls: CodellamaServer) -> bool:
    """Ask the client to watch the source files, and deletions (of folders too), when it supports
    registering that dynamically."""
    workspace = ls.client_capabilities.workspace
    watched = workspace.did_change_watched_files if workspace else None
    if watched is None or not watched.dynamic_registration:
        log.info("workspace index: the client cannot watch files for us; saves keep the index current")
        return False
    options = types.DidChangeWatchedFilesRegistrationOptions(watchers=[
        types.FileSystemWatcher(glob_pattern=WATCH_GLOB, kind=types.WatchKind.Create | types.WatchKind.Change),
        types.FileSystemWatcher(glob_pattern=DELETE_GLOB, kind=types.WatchKind.Delete),
    ])
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


def register(server: CodellamaServer) -> None:
    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_workspace_folders(ls: CodellamaServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        # pygls has updated ls.workspace.folders before this runs
        _FOLDERS_CHANGED.add(ls)
        sync_in_background(ls)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: CodellamaServer, params: types.DidChangeWatchedFilesParams) -> None:
        roots = _roots(ls)
        if roots is None:
            return
        changed: dict[WorkspaceIndex, list[str]] = {}
        deleted: dict[WorkspaceIndex, list[str]] = {}
        for event in params.changes:
            if not event.uri.startswith("file:"):
                continue
            path = uri_to_path(event.uri)
            if event.type == types.FileChangeType.Deleted:
                for index in roots.touching(path):
                    if index.covers(path) or index.holds_under(path):
                        deleted.setdefault(index, []).append(path)
            else:
                for index in roots.holding(path):
                    if index.covers(path):
                        changed.setdefault(index, []).append(path)
        # a rename arrives as a deletion and a creation: forget first, then read
        for index, paths in deleted.items():
            index.remove(paths)
        for index, paths in changed.items():
            index.update(paths)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CodellamaServer, params: types.DidSaveTextDocumentParams) -> None:
        roots = _roots(ls)
        if roots is not None and params.text_document.uri.startswith("file:"):
            path = uri_to_path(params.text_document.uri)
            for index in roots.holding(path):
                index.update([path])
