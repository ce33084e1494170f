"""The workspace folders' indexes: one :class:`WorkspaceIndex` per folder, as a single source of definitions
(a document's definitions come from the index of the folder that holds it) and a single target of file
events (each goes to every index whose folder it is in).

Which folders are indexed, and with which caps, is decided by ``lsp/features/workspace.py``; this module
only keeps the table. Opening and closing indexes block (a process starts or stops): call them off the
event loop.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from lsp.context.code_context import Snippet
from lsp.context.documents import Document

from .index import WorkspaceIndex
from .retrieval import WorkspaceDefinitions
from .walker import WalkLimits

__all__ = ["WorkspaceRoots"]


class WorkspaceRoots:
    def __init__(self, cache: Path | None = None) -> None:
        self.cache = cache  # None: the user's cache folder
        self._sources: dict[str, WorkspaceDefinitions] = {}  # folder -> its index's definitions

    # ------------------------------------------------------------------ the table
    def indexes(self) -> list[WorkspaceIndex]:
        return [source.index for source in self._sources.values() if source.index is not None]

    def get(self, root: str) -> WorkspaceIndex | None:
        source = self._sources.get(os.path.abspath(root))
        return source.index if source is not None else None

    def open(self, root: str, limits: WalkLimits) -> WorkspaceIndex:
        """A started index of ``root`` (reads the folder's module settings: blocks briefly)."""
        index = WorkspaceIndex(root, limits, cache=self.cache)
        index.start()
        return index

    def attach(self, index: WorkspaceIndex) -> None:
        self._sources[index.root] = WorkspaceDefinitions(index, index.root)

    def detach(self, root: str) -> WorkspaceIndex | None:
        """Take ``root``'s index out of the table (it is no longer used; the caller closes it)."""
        source = self._sources.pop(os.path.abspath(root), None)
        return source.index if source is not None else None

    def __len__(self) -> int:
        return len(self._sources)

    # ------------------------------------------------------------------ routing
    def holding(self, path: str) -> list[WorkspaceIndex]:
        """The indexes whose folder holds ``path``."""
        path = os.path.abspath(path)
        return [index for index in self.indexes() if path.startswith(index.root + os.sep)]

    def touching(self, path: str) -> list[WorkspaceIndex]:
        """The indexes a deletion of ``path`` (a file or a folder) concerns: those holding it, and those
        whose folder is inside it."""
        path = os.path.abspath(path)
        inside = path.rstrip(os.sep) + os.sep
        return [index for index in self.indexes()
                if path.startswith(index.root + os.sep) or (index.root + os.sep).startswith(inside)]

    def _source_for(self, path: str) -> WorkspaceDefinitions | None:
        """The definitions of the innermost folder holding ``path``; for a file outside every folder, those
        of the first folder (its symbol table still names definitions)."""
        path = os.path.abspath(path)
        best: WorkspaceDefinitions | None = None
        for root, source in self._sources.items():
            if path.startswith(root + os.sep) and (best is None or len(root) > len(best.root or "")):
                best = source
        return best or next(iter(self._sources.values()), None)

    # ------------------------------------------------------------------ as the server's source
    def definitions_for(
        self, doc: Document, names: Mapping[str, float], skip_paths: Collection[str], local_names: Collection[str]
    ) -> list[Snippet]:
        source = self._source_for(doc.path) if doc.path else None
        return source.definitions_for(doc, names, skip_paths, local_names) if source is not None else []

    def stats(self) -> dict[str, Any]:
        """Totals over the folders (``scanned``: every folder's first walk is done), and each folder's."""
        folders = [{"root": index.root, "files": len(index), "scanned": index.scanned,
                    "updates": index.updates_answered, "generation": index.generation, "pid": index.pid}
                   for index in self.indexes()]
        return {
            "files": sum(f["files"] for f in folders),
            "scanned": bool(folders) and all(f["scanned"] for f in folders),
            "updates": sum(f["updates"] for f in folders),
            "generation": sum(f["generation"] for f in folders),
            "folders": folders,
        }

