"""The workspace index as the server sees it: tables of every indexed file's definitions and imports, fed
by the indexing process (:mod:`lsp.workspace.worker`) through a reader thread.

Queries are dictionary look-ups under a lock held for microseconds. The reader thread starts the indexing
process itself (a fork and exec: milliseconds the event loop does not wait for) and hands the interpreter
lock over often: a ``sleep(0)`` after every message (it lets a waiting event loop in most of the time, not
always: the releasing thread may take the lock straight back) and, after each millisecond of its own CPU
time, a sleep of a fraction of one, so that the event loop waits about a millisecond at most, not the
interpreter's 5 ms switch interval.
"""

from __future__ import annotations

import contextlib
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
TURN = 0.001  # seconds of the reader thread's CPU time between two pauses
PAUSE = 0.0002  # seconds: long enough for a thread waiting for the interpreter lock to take it


class Pacer:
    """Lets other threads have the interpreter lock: :meth:`tick` after each unit of work releases it
    (``sleep(0)``) and, once :data:`TURN` of this thread's CPU time has passed, sleeps :data:`PAUSE` so that
    a waiting thread surely takes it. Blocking reads cost no CPU time: they never bring a pause."""

    def __init__(self, turn: float = TURN, pause: float = PAUSE) -> None:
        self.turn = turn
        self.pause = pause
        self.pauses = 0
        self._started = time.thread_time()

    def tick(self) -> None:
        if time.thread_time() - self._started < self.turn:
            time.sleep(0)
            return
        time.sleep(self.pause)
        self.pauses += 1
        self._started = time.thread_time()


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
        self._pipe = threading.Lock()  # the process's stdin, and the commands sent before it started
        self._pending: list[dict[str, Any]] | None = []  # None once the process runs (or never will)
        self._closed = False
        self.pacer = Pacer()
        self._scanned = threading.Event()
        self._answers = threading.Condition()
        self._updates = 0
        self.generation = 0  # bumped at every change (callers may cache on it)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the indexing process and the first walk (returns at once: the reader thread starts the
        process; commands sent meanwhile wait for it)."""
        if self._reader is not None or self._closed:
            return
        self.stats = IndexStats()
        self._reader = threading.Thread(target=self._run, name="codellama-workspace-index", daemon=True)
        self._reader.start()

    def _spawn(self) -> subprocess.Popen[str] | None:
        config: dict[str, Any] = {
            "root": self.root,
            "limits": {**asdict(self.limits), "exclude": list(self.limits.exclude)},
            "persist": self.persist,
            "cache": str(self.cache / "workspaces") if self.cache else None,
        }
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "lsp.workspace.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True, encoding="utf-8",
                errors="surrogateescape", bufsize=1,
                # `-m` puts the working folder first on sys.path: never the workspace, whose own packages
                # (an `attrs/` folder, say) would shadow the ones the indexer imports
                cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            )
        except OSError as error:
            log.warning("workspace index: could not start the indexing process: %s", error)
            with self._pipe:
                self._pending = None
            return None
        with self._pipe:
            if not self._closed:  # (else closed while it started)
                pending, self._pending = self._pending or [], None
                self._process = process
                for message in [config, {"scan": True}, *pending]:
                    self._write(process, message)
                return process
        self._stop(process)
        return None

    def _run(self) -> None:
        process = self._spawn()
        if process is not None and process.stdout is not None:
            if self.persist:
                self._load_persisted()
            self._read(process.stdout)
        self._finished()

    def _load_persisted(self) -> None:
        """The persisted summaries, into the tables while the indexing process starts and walks (it then
        sends only what changed): a restart is current for unchanged files in a fraction of a second."""
        from .store import SummaryStore  # sqlite3 only once an index runs

        store = SummaryStore(self.root, self.cache / "workspaces" if self.cache else None, readonly=True)
        loaded = 0
        try:
            for path, data in store.rows():
                if self._closed:
                    break
                loaded += 1
                if self.covers(path):  # a damaged row is skipped: the walk reads the file again
                    with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                        self.add_json(data)
                self.pacer.tick()
        finally:
            store.close()
        self.stats.loaded_after = time.perf_counter() - self.stats.started
        self.stats.reused = loaded

    def close(self) -> None:
        """Stop the indexing process (it finishes the command it is on, for 2 s at most) and the reader.
        Blocks: call it off the event loop (or at exit)."""
        with self._pipe:
            self._closed = True
            self._pending = None
            process, self._process = self._process, None
        if process is not None:
            self._stop(process)
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=2)

    @staticmethod
    def _stop(process: subprocess.Popen[str]) -> None:
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        """The indexing process's id while it runs (tests, stats)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def closed(self) -> bool:
        return self._closed

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
        inside = self.root + os.sep
        if not path.startswith(inside) or not is_source(path):
            return False
        return SKIPPED_DIRS.isdisjoint(path[len(inside) :].split(os.sep)[:-1])  # (relpath: 10 times slower)

    def holds_under(self, path: str) -> bool:
        """Whether ``path`` is an indexed file or a folder with indexed files under it (a deleted folder
        is reported by its own path)."""
        path = os.path.abspath(path)
        inside = path.rstrip(os.sep) + os.sep
        with self._lock:
            return path in self._files or any(
                (folder + os.sep).startswith(inside) for folder, files in self._modules.folders.items() if files
            )

    def _send(self, message: dict[str, Any]) -> None:
        with self._pipe:
            if self._pending is not None:  # the process is starting: sent once it runs
                self._pending.append(message)
                return
            if self._process is not None:
                self._write(self._process, message)

    @staticmethod
    def _write(process: subprocess.Popen[str], message: dict[str, Any]) -> None:
        if process.stdin is None:
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
            self.pacer.tick()

    def _finished(self) -> None:
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
