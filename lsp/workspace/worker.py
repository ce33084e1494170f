"""The indexing process: walks the workspace, parses what changed since the persisted index, and streams
file summaries to the server as JSON lines on its stdout.

A process of its own because py-tree-sitter holds the interpreter lock for a whole parse or query (a 500 kB
file: ~100 ms); in a thread of the server it would stall every request for that long. Here it costs the
server only the decoding of small JSON lines, and a parser crash on a strange file takes down this
process, not the server.

Commands (one JSON object per line on stdin): ``{"scan": true}``, ``{"update": [paths]}``,
``{"remove": [paths]}``. Answers: ``{"file": summary, "size": n, "mtime": ns}``, ``{"gone": path}``,
``{"scanned": stats}``, ``{"updated": n}``. A scan sends only what differs from the persisted index, which
the server loads itself while this process starts.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from lsp.context.languages import language_for

from .store import SummaryStore
from .summary import FileSummary, summarise
from .walker import FileEntry, WalkLimits, walk

log = logging.getLogger("lsp.workspace.worker")

BATCH = 64


class Indexer:
    def __init__(self, root: str, limits: WalkLimits, store: SummaryStore | None, out: TextIO) -> None:
        self.root = root
        self.limits = limits
        self.store = store
        self.out = out
        self.known: dict[str, tuple[int, int]] = {}

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, separators=(",", ":")) + "\n")

    def send_file(self, summary: FileSummary, size: int, mtime: int) -> None:
        # "file" first and "size" right after it: the server keeps the summary's text without decoding it
        data = json.dumps(summary.to_json(), separators=(",", ":"))
        self.out.write(f'{{"file":{data},"size":{size},"mtime":{mtime}}}\n')

    def read(self, entry: FileEntry) -> FileSummary | None:
        language = language_for(None, entry.path)
        if language is None:
            return None
        try:
            with open(entry.path, "rb") as handle:
                raw = handle.read(self.limits.max_file_size + 1)
        except OSError as error:
            log.info("workspace: cannot read %s: %s", entry.path, error)
            return None
        if len(raw) > self.limits.max_file_size or b"\x00" in raw[:8192]:
            return None  # grew past the cap, or binary
        try:
            return summarise(entry.path, raw.decode("utf-8", "replace"), language)
        except Exception as error:  # one bad file must not stop the walk
            log.warning("workspace: could not index %s: %s", entry.path, error)
            return None

    def scan(self) -> None:
        started = time.perf_counter()
        stored = self.store.load() if self.store is not None else {}
        parsed = reused = 0
        batch: list[tuple[str, int, int, FileSummary]] = []
        seen: set[str] = set()
        for entry in walk(self.root, self.limits):
            seen.add(entry.path)
            row = stored.get(entry.path)
            if row is not None and row[0] == entry.size and row[1] == entry.mtime_ns:
                reused += 1  # the server loaded it from the store itself
                self.known[entry.path] = (entry.size, entry.mtime_ns)
                continue
            summary = self.read(entry)
            parsed += 1
            if summary is None:
                continue
            batch.append((entry.path, entry.size, entry.mtime_ns, summary))
            self.known[entry.path] = (entry.size, entry.mtime_ns)
            self.send_file(summary, entry.size, entry.mtime_ns)
            if len(batch) >= BATCH:
                self._flush(batch)
        self._flush(batch)
        gone = [p for p in stored if p not in seen]
        for path in gone:
            self.send({"gone": path})
        if self.store is not None:
            self.store.delete(gone)
        self.send({"scanned": {"files": len(self.known), "parsed": parsed, "reused": reused,
                               "seconds": round(time.perf_counter() - started, 3)}})

    def update(self, paths: list[str]) -> None:
        done = 0
        for path in paths:
            try:
                info = os.stat(path)
            except OSError:
                self.remove([path])
                continue
            if not os.path.isfile(path) or info.st_size > self.limits.max_file_size:
                self.remove([path])
                continue
            summary = self.read(FileEntry(path, info.st_size, info.st_mtime_ns))
            if summary is None:
                self.remove([path])
                continue
            if self.store is not None:
                self.store.put([(path, info.st_size, info.st_mtime_ns, summary)])
            self.known[path] = (info.st_size, info.st_mtime_ns)
            self.send_file(summary, info.st_size, info.st_mtime_ns)
            done += 1
        self.send({"updated": done})

    def remove(self, paths: list[str]) -> None:
        for path in paths:
            prefix = path.rstrip("/") + "/"
            gone = [p for p in self.known if p == path or p.startswith(prefix)]  # a folder: all inside
            for p in gone:
                del self.known[p]
                self.send({"gone": p})
            if self.store is not None:
                self.store.delete(gone or [path])

    def _flush(self, batch: list[tuple[str, int, int, FileSummary]]) -> None:
        if self.store is not None:
            self.store.put(batch)
        batch.clear()
        self.out.flush()


def main() -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="codellama-lsp index: %(message)s")
    config = json.loads(sys.stdin.readline() or "{}")
    root = config.get("root")
    if not root:
        return 2
    limits = WalkLimits(**config.get("limits", {}))
    limits = WalkLimits(limits.max_files, limits.max_file_size, limits.max_total_size, tuple(limits.exclude))
    cache = config.get("cache")
    store = SummaryStore(root, Path(cache) if cache else None) if config.get("persist", True) else None
    indexer = Indexer(root, limits, store, sys.stdout)
    for line in sys.stdin:
        try:
            command = json.loads(line)
        except ValueError:
            continue
        if command.get("scan"):
            indexer.scan()
        if "update" in command:
            indexer.update([p for p in command["update"] if isinstance(p, str)])
        if command.get("remove"):
            indexer.remove([p for p in command["remove"] if isinstance(p, str)])
        sys.stdout.flush()
    if store is not None:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
