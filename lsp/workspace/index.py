"""The workspace index as the server sees it: tables of every indexed file's definitions and imports, fed
by the indexing process (:mod:`lsp.workspace.worker`) through a reader thread.

Queries are dictionary look-ups under a lock held for microseconds; the reader thread holds the
interpreter lock only to decode one file's summary at a time, so the event loop is never held for long.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from .imports import ImportRef, ModuleMap
from .summary import Definition, FileSummary
from .walker import SKIPPED_DIRS, WalkLimits, is_source

__all__ = ["IndexStats", "WorkspaceIndex"]

log = logging.getLogger(__name__)

DECODED_CACHE = 256  # summaries kept decoded


class IndexStats:
    def __init__(self) -> None:
        self.files = 0
        self.parsed = 0
        self.reused = 0
        self.scan_seconds = 0.0
        self.started = time.perf_counter()
        self.current_after: float | None = None  # seconds from start() until the first walk was done
        self.loaded_after: float | None = None  # seconds from start() until the persisted index was loaded


class WorkspaceIndex:
    """Definitions and imports of the files under ``root``. :meth:`start` begins the background walk; the
    tables fill while it runs and are usable at any time."""

    def __init__(self, root: str, limits: WalkLimits | None = None, *, persist: bool = True,
                 cache: Path | None = None) -> None:
        self.root = os.path.abspath(root)
        self.limits = limits or WalkLimits()
        self.persist = persist
        self.cache = cache
        self.stats = IndexStats()
        self._files: dict[str, tuple[str, tuple[str, ...]]] = {}  # path -> (summary JSON, names it defines)
        self._decoded: OrderedDict[str, FileSummary] = OrderedDict()
        self._by_name: dict[str, tuple[str, ...]] = {}  # name -> the paths defining it
        self._lock = threading.Lock()
        self._modules = ModuleMap(self.root, (), self._files.__contains__)
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._scanned = threading.Event()
        self._answers = threading.Condition()
        self._updates = 0
        self.generation = 0  # bumped at every change (callers may cache on it)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the indexing process and the first walk (returns at once)."""
        if self._process is not None:
            return
        config = {
            "root": self.root,
            "limits": {**asdict(self.limits), "exclude": list(self.limits.exclude)},
            "persist": self.persist,
            "cache": str(self.cache / "workspaces") if self.cache else None,
        }
        self.stats = IndexStats()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "lsp.workspace.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True, encoding="utf-8",
                errors="surrogateescape", bufsize=1,
                # `-m` puts the working folder first on sys.path: never the workspace, whose own packages
                # (an `attrs/` folder, say) would shadow the ones the indexer imports
                cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            )
        except OSError as error:
            log.warning("workspace index: could not start the indexing process: %s", error)
            self._scanned.set()
            return
        self._send(config)
        self._send({"scan": True})
        assert self._process.stdout is not None
        self._reader = threading.Thread(target=self._run, args=(self._process.stdout,),
                                        name="codellama-workspace-index", daemon=True)
        self._reader.start()

    def _run(self, stream: IO[str]) -> None:
        if self.persist:
            self._load_persisted()
        self._read(stream)

    def _load_persisted(self) -> None:
        """The persisted summaries, into the tables while the indexing process starts and walks (it then
        sends only what changed): a restart is current for unchanged files in a fraction of a second."""
        from .store import SummaryStore  # sqlite3 only once an index runs

        store = SummaryStore(self.root, self.cache / "workspaces" if self.cache else None, readonly=True)
        try:
            rows = store.load()
        finally:
            store.close()
        for path, (_, _, data) in rows.items():
            if self.covers(path):
                try:
                    self.add_json(data)
                except (ValueError, KeyError, TypeError, IndexError):
                    continue  # a damaged row: the walk reads the file again
            time.sleep(0)  # the event loop's turn, if it waits for the interpreter lock
        self.stats.loaded_after = time.perf_counter() - self.stats.started
        self.stats.reused = len(rows)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)

    def wait_scanned(self, timeout: float | None = None) -> bool:
        """Block until the first walk is done (tests and the command line; never on the event loop)."""
        return self._scanned.wait(timeout)

    @property
    def scanned(self) -> bool:
        return self._scanned.is_set()

    def wait_updates(self, count: int, timeout: float | None = None) -> bool:
        """Block until ``count`` update commands were answered in all (tests and benchmarks)."""
        with self._answers:
            return self._answers.wait_for(lambda: self._updates >= count, timeout)

    @property
    def updates_answered(self) -> int:
        return self._updates

    # ------------------------------------------------------------------ changes
    def update(self, paths: Iterable[str]) -> None:
        """Read these files again (created or changed on disk); folders and skipped files are ignored."""
        # sent even when empty: its answer, in order after earlier commands, tells they are done
        self._send({"update": [os.path.abspath(p) for p in paths if self.covers(p)]})

    def remove(self, paths: Iterable[str]) -> None:
        """Forget these files, or every file under these folders."""
        wanted = [os.path.abspath(p) for p in paths]
        if wanted:
            self._send({"remove": wanted})

    def covers(self, path: str) -> bool:
        """Whether ``path`` is a source file of this workspace that the walk would not skip outright."""
        path = os.path.abspath(path)
        if not path.startswith(self.root + os.sep) or not is_source(path):
            return False
        parts = os.path.relpath(path, self.root).split(os.sep)
        return not any(part in SKIPPED_DIRS for part in parts[:-1])

    def _send(self, message: dict[str, Any]) -> None:
        process = self._process
        if process is None or process.stdin is None:
            return
        try:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
        except (OSError, ValueError) as error:
            log.warning("workspace index: the indexing process is gone (%s); the index stays as it is", error)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                if line.startswith('{"file":'):  # the summary's text is kept as it came (see add_json)
                    self.add_json(line[8 : line.rindex(',"size":')])
                    continue
                message = json.loads(line)
                self._receive(message)
            except Exception as error:  # a bad line must not end the reader
                log.warning("workspace index: bad message from the indexing process: %s", error)
            time.sleep(0)  # the event loop's turn, if it waits for the interpreter lock
        self._scanned.set()
        with self._answers:
            self._updates = 1 << 30  # nothing more will come: release every waiter
            self._answers.notify_all()

    def _receive(self, message: dict[str, Any]) -> None:
        if "gone" in message:
            self.forget(message["gone"])
        elif "scanned" in message:
            stats = message["scanned"]
            self.stats.files = stats["files"]
            self.stats.parsed = stats["parsed"]
            self.stats.reused = stats["reused"]
            self.stats.scan_seconds = stats["seconds"]
            self.stats.current_after = time.perf_counter() - self.stats.started
            log.info("workspace index: %d files (%d read, %d from the cache) in %.2f s", stats["files"],
                     stats["parsed"], stats["reused"], stats["seconds"])
            self._scanned.set()
        elif "updated" in message:
            with self._answers:
                self._updates += 1
                self._answers.notify_all()

    # ------------------------------------------------------------------ tables
    # Summaries are kept as their JSON text and decoded when retrieval reads them (a few recent ones stay
    # decoded): strings are invisible to the cyclic garbage collector, whereas thousands of long-lived
    # summary objects made its full collections hold the event loop for 100 ms and more while they loaded.
    def add_json(self, data: str) -> None:
        """Add (or replace) a file from its summary's JSON text."""
        raw = json.loads(data)
        path = raw["path"]
        names = tuple(sorted({d[0] for d in raw["definitions"]}))
        with self._lock:
            old = self._files.get(path)
            if old is not None:
                self._unlink(path, old[1])
            else:
                self._modules.add(path)
            self._files[path] = (data, names)
            self._decoded.pop(path, None)
            for name in names:
                self._by_name[name] = (*self._by_name.get(name, ()), path)
            self.generation += 1

    def add(self, summary: FileSummary) -> None:
        self.add_json(json.dumps(summary.to_json(), separators=(",", ":")))

    def forget(self, path: str) -> None:
        with self._lock:
            old = self._files.pop(path, None)
            if old is not None:
                self._unlink(path, old[1])
                self._decoded.pop(path, None)
                self._modules.remove(path)
                self.generation += 1

    def _unlink(self, path: str, names: tuple[str, ...]) -> None:
        for name in names:
            paths = tuple(p for p in self._by_name.get(name, ()) if p != path)
            if paths:
                self._by_name[name] = paths
            else:
                self._by_name.pop(name, None)

    def __len__(self) -> int:
        return len(self._files)

    def file(self, path: str) -> FileSummary | None:
        with self._lock:
            summary = self._decoded.get(path)
            if summary is not None:
                self._decoded.move_to_end(path)
                return summary
            entry = self._files.get(path)
            if entry is None:
                return None
            summary = FileSummary.from_json(json.loads(entry[0]))
            self._decoded[path] = summary
            while len(self._decoded) > DECODED_CACHE:
                self._decoded.popitem(last=False)
            return summary

    def paths(self) -> list[str]:
        with self._lock:
            return list(self._files)

    def named(self, name: str) -> list[tuple[str, Definition]]:
        """Where ``name`` is defined (top level or in a class), as (path, definition)."""
        with self._lock:
            paths = self._by_name.get(name, ())
        found: list[tuple[str, Definition]] = []
        for path in paths:
            summary = self.file(path)
            if summary is not None:
                found.extend((path, d) for d in summary.by_name.get(name, ()))
        return found

    def owners(self, name: str) -> tuple[str, ...]:
        """The paths defining ``name`` (nothing decoded: cheap)."""
        return self._by_name.get(name, ())

    def resolve(self, language: str, ref: ImportRef, source: str) -> list[str]:
        with self._lock:
            return self._modules.resolve(language, ref, source)

    def submodule(self, language: str, ref: ImportRef, name: str, source: str) -> list[str]:
        with self._lock:
            return self._modules.submodule(language, ref, name, source)

    def folder(self, path: str) -> list[str]:
        """The indexed files in the folder of ``path`` (Go's package)."""
        with self._lock:
            return list(self._modules.folders.get(os.path.dirname(path), ()))
