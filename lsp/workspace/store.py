"""The persisted index: one SQLite file per workspace root in the user's cache folder, rows keyed by path
with the size and mtime they were read at, so that a restart re-reads only the files that changed.

Any database problem (a corrupt file, a read-only cache, a lock) turns persistence off with a log line: the
index then lives in memory only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from .summary import FileSummary

__all__ = ["SummaryStore", "cache_dir"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # rows of another layout are dropped, and their files read again


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/codellama-lsp`` (``~/.cache/codellama-lsp``), or the platform's equivalent."""
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    elif os.uname().sysname == "Darwin" and not os.environ.get("XDG_CACHE_HOME"):
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "codellama-lsp"


class SummaryStore:
    """Rows ``(path, size, mtime_ns, summary JSON)`` of one workspace. Used from one thread at a time."""

    def __init__(self, root: str, folder: Path | None = None, *, readonly: bool = False) -> None:
        folder = folder or cache_dir() / "workspaces"
        key = hashlib.sha256(os.path.abspath(root).encode("utf-8", "surrogateescape")).hexdigest()[:24]
        self.path = folder / f"{key}.sqlite"
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        if readonly:  # the server's own look at what the indexing process wrote: never a change
            try:
                db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                     timeout=2.0)
                if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                    self._db = db
                else:
                    db.close()
            except (sqlite3.Error, OSError, ValueError) as error:
                log.debug("workspace index: no persisted index to load (%s): %s", self.path, error)
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=2.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                db.execute("DROP TABLE IF EXISTS files")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute(
                "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, data TEXT)"
            )
            db.execute("INSERT OR REPLACE INTO files VALUES ('', 0, 0, ?)", (json.dumps({"root": root}),))
            db.commit()
            self._db = db
        except (sqlite3.Error, OSError) as error:
            log.warning("workspace index: not persisted (%s: %s)", self.path, error)

    def rows(self) -> Iterator[tuple[str, str]]:
        """Every stored row as (path, summary JSON text), read as it is iterated (a restart adds each row to
        the index as it comes, never holding them all)."""
        if self._db is None:
            return
        try:
            cursor = self._db.execute("SELECT path, data FROM files WHERE path != ''")
            for path, data in cursor:
                if isinstance(path, str) and isinstance(data, str):
                    yield path, data
        except sqlite3.Error as error:
            self._fail(error)

    def load(self) -> dict[str, tuple[int, int, str]]:
        """Every stored row: path -> (size, mtime_ns, the summary as JSON text). Not decoded here: a restart
        passes unchanged files' summaries on as they are."""
        rows: dict[str, tuple[int, int, str]] = {}
        if self._db is None:
            return rows
        try:
            with self._lock:
                cursor = self._db.execute("SELECT path, size, mtime_ns, data FROM files WHERE path != ''")
                for path, size, mtime, data in cursor:
                    if isinstance(data, str) and isinstance(size, int) and isinstance(mtime, int):
                        rows[path] = (size, mtime, data)
        except sqlite3.Error as error:
            self._fail(error)
        return rows

    def put(self, items: list[tuple[str, int, int, FileSummary]]) -> None:
        if self._db is None or not items:
            return
        try:
            with self._lock:
                self._db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                    [(p, s, m, json.dumps(summary.to_json(), separators=(",", ":"))) for p, s, m, summary in items],
                )
                self._db.commit()
        except sqlite3.Error as error:
            self._fail(error)

    def delete(self, paths: list[str]) -> None:
        if self._db is None or not paths:
            return
        try:
            with self._lock:
                self._db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])
                self._db.commit()
        except sqlite3.Error as error:
            self._fail(error)

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None

    def _fail(self, error: sqlite3.Error) -> None:
        log.warning("workspace index: persistence off after a database error (%s): %s", self.path, error)
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
