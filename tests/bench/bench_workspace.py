"""Benchmark of the workspace index (issue #16) on real third-party code installed at run time.

Run: ``python tests/bench/bench_workspace.py`` (``--quick`` for a short run). Packages come from PyPI (a wheel,
unpacked) and npm (``npm pack``), pinned, cached under ``~/.cache/codellama-lsp-bench`` (never committed).
Prints:

* cross-file recall: at seeded positions inside functions the rest of a statement line is hidden, only that
  file is open, and the completion prompt is built as the server builds it (real 70B tokenizer, TGI's
  default limits); of the names the hidden text uses that are defined in other files of the package, the
  share that reaches the prompt's definitions (target >= 80%); the same without the index (the open file
  alone); and the same-file recall for definitions outside the code shown around the cursor;
* indexing a workspace of 2,000 files (copies of the packages' sources): the background walk's time, the
  resident memory the index adds to the server process (and the indexing process's own), the longest the
  event loop is held meanwhile (target < 10 ms), and a restart with the persisted index (target: current for
  unchanged files in under 1 s). A hold is counted two ways: the CPU time of the event loop's thread in each
  callback (``time.thread_time``; what the index makes the loop do, whatever else runs on the machine) and
  the longest gap of a 1 ms ticker (wall time: on a busy machine mostly the other processes; the same ticker
  with nothing else running shows that share), also without the time the thread waited for a CPU (Linux's
  run-queue wait, ``/proc/.../schedstat``): what remains is the callbacks and waits for the interpreter lock;
* ``context_at`` with and without the index loaded (the added latency of a completion's context).

Not a pytest module (no test_ prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lsp.context import Document, context_at
from lsp.prompt.tokens import load_counter
from lsp.workspace import WorkspaceDefinitions, WorkspaceIndex
from tests.support.llama_vocab import tokenizer_json_path
from tests.support.workspace_corpus import npm_package, pypi_package
from tests.support.workspace_recall import Recall, measure, source_files

PACKAGES: list[tuple[str, str, str, tuple[str, ...]]] = [
    # (name, registry, folder inside the package, suffixes)
    ("packaging", "pypi", "packaging", (".py",)),
    ("click", "pypi", "click", (".py",)),
    ("httpx", "pypi", "httpx", (".py",)),
    ("attrs", "pypi", "attr", (".py",)),
    ("axios", "npm", "lib", (".js",)),
    ("rxjs", "npm", "src/internal", (".ts",)),
]


def _root(name: str, registry: str) -> Path:
    return pypi_package(name) if registry == "pypi" else npm_package(name)


def recall_table(files_per_package: int, per_file: int) -> Recall:
    counter = load_counter(str(tokenizer_json_path()))
    total = Recall()
    print(f"{'package':<11} {'positions':>9} {'cross-file':>16} {'without index':>13} {'same-file':>14}")
    for name, registry, folder, suffixes in PACKAGES:
        root = _root(name, registry)
        files = source_files(root, folder, suffixes, files_per_package)
        with tempfile.TemporaryDirectory() as cache:
            result = measure(root, files, counter, per_file=per_file, cache=Path(cache))
        total.add(result)
        print(f"{name:<11} {result.positions:>9} {result.cross:>9.0%} ({result.cross_hit:>3}/{result.cross_total:<3})"
              f" {result.baseline:>13.0%} {result.same:>7.0%} ({result.same_hit}/{result.same_total})")
    print(f"{'all':<11} {total.positions:>9} {total.cross:>9.0%} ({total.cross_hit:>3}/{total.cross_total:<3})"
          f" {total.baseline:>13.0%} {total.same:>7.0%} ({total.same_hit}/{total.same_total})   target >= 80%")
    return total


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def build_workspace(target: Path, count: int) -> int:
    """``count`` source files: the packages' sources, copied into as many folders as needed."""
    sources: list[tuple[Path, Path]] = []
    for name, registry, folder, suffixes in PACKAGES:
        root = _root(name, registry)
        sources += [(root, p) for p in sorted((root / folder).rglob("*")) if p.suffix in suffixes]
    written = 0
    copy = 0
    while written < count:
        for root, path in sources:
            if written >= count:
                break
            destination = target / f"copy{copy}" / path.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            written += 1
        copy += 1
    (target / ".git").mkdir(exist_ok=True)
    return written


@dataclass
class Holds:
    """The event loop's longest callback, by the CPU time of the loop's thread and by wall time, and the
    longest gap of a 1 ms ticker."""

    cpu: float = 0.0
    wall: float = 0.0
    gap: float = 0.0
    gap_scheduled: float = 0.0  # the gap less the time the OS kept the thread off a CPU
    callbacks: int = 0
    gaps: list[float] = field(default_factory=list)  # every gap less the waits for a CPU

    def __str__(self) -> str:
        gaps = sorted(self.gaps) or [0.0]
        p99 = gaps[int(len(gaps) * 0.99)]
        return (f"longest hold {self.cpu * 1000:.2f} ms CPU ({self.wall * 1000:.1f} ms wall); longest ticker gap "
                f"{self.gap * 1000:.1f} ms, without waits for a CPU {self.gap_scheduled * 1000:.1f} ms "
                f"(p99 {p99 * 1000:.2f} ms, {len(gaps)} ticks); {self.callbacks} callbacks")


@contextlib.contextmanager
def measured_holds() -> Iterator[Holds]:
    """Time every callback the event loop runs (benchmark only: wraps asyncio's ``Handle._run``)."""
    holds = Holds()
    handle: Any = asyncio.events.Handle
    original = handle._run

    def run(self: Any) -> None:
        cpu = time.thread_time()
        wall = time.perf_counter()
        try:
            original(self)
        finally:
            holds.cpu = max(holds.cpu, time.thread_time() - cpu)
            holds.wall = max(holds.wall, time.perf_counter() - wall)
            holds.callbacks += 1

    handle._run = run
    try:
        yield holds
    finally:
        handle._run = original


def _run_queue_wait() -> float:
    """Seconds this thread has waited for a CPU while runnable (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as handle:
            return int(handle.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def _tick_until(done: Any, holds: Holds, seconds: float = 1e9) -> int:
    loop = asyncio.get_running_loop()
    ticks = 0
    last = started = loop.time()
    waited = _run_queue_wait()
    while not done() and last - started < seconds:
        await asyncio.sleep(0.001)
        now = loop.time()
        now_waited = _run_queue_wait()
        holds.gap = max(holds.gap, now - last - 0.001)
        holds.gaps.append(now - last - 0.001 - (now_waited - waited))
        holds.gap_scheduled = max(holds.gap_scheduled, holds.gaps[-1])
        last, waited = now, now_waited
        ticks += 1
    return ticks


async def _index_while_ticking(root: Path, cache: Path) -> tuple[WorkspaceIndex, float, Holds]:
    """Start an index from the event loop, as the server does, and tick until its walk is done:
    (index, seconds, holds)."""
    with measured_holds() as holds:
        index = WorkspaceIndex(str(root), cache=cache)
        started = time.perf_counter()
        index.start()
        await _tick_until(lambda: index.scanned, holds)
    return index, time.perf_counter() - started, holds


async def _ticking_alone(seconds: float) -> Holds:
    """The same measure with nothing else running: what the machine itself adds."""
    with measured_holds() as holds:
        await _tick_until(lambda: False, holds, seconds)
    return holds


def indexing_table(count: int) -> None:
    alone = asyncio.run(_ticking_alone(2.0))
    print(f"event loop alone over 2 s (the machine's own noise): {alone}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "workspace"
        files = build_workspace(root, count)
        cache = Path(tmp) / "cache"
        before = _rss()
        index, seconds, holds = asyncio.run(_index_while_ticking(root, cache))
        added = _rss() - before
        worker = _rss_of(index._process.pid) if index._process is not None else 0
        print(f"indexing {files} files: {len(index)} indexed in {seconds:.2f} s in the background "
              f"({index.stats.parsed} parsed); resident memory added to the server {added / 2**20:.1f} MB, "
              f"indexing process peak {worker / 2**20:.0f} MB")
        print(f"  event loop meanwhile (target < 10 ms): {holds}")
        definitions_latency(index, root)
        index.close()
        restarted, seconds, holds = asyncio.run(_index_while_ticking(root, cache))
        loaded = restarted.stats.loaded_after or 0.0
        print(f"restart with the persisted index: unchanged files loaded after {loaded:.2f} s, the walk "
              f"confirming them done after {seconds:.2f} s (target < 1 s; {restarted.stats.reused} from the "
              f"cache, {restarted.stats.parsed} read)")
        print(f"  event loop meanwhile (target < 10 ms): {holds}")
        restarted.close()
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def definitions_latency(index: WorkspaceIndex, root: Path) -> None:
    """context_at on the copies of httpx's _client.py, with and without the index loaded."""
    path = next(root.rglob("httpx/_client.py"))
    text = path.read_text()
    doc = Document(path.as_uri(), "python", 1, text)
    source = WorkspaceDefinitions(index, str(root))
    rng = random.Random(4)
    offsets = [rng.randrange(len(text)) for _ in range(200)]
    for label, workspace in (("without the index", None), ("with the index", source)):
        times = []
        for offset in offsets:
            started = time.perf_counter()
            context_at(doc, offset, root=str(root), workspace=workspace)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        print(f"context_at {label}: p50 {statistics.median(times):.2f} ms, p99 {times[int(len(times) * 0.99)]:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--indexing-only", action="store_true", help="skip the recall table")
    args = parser.parse_args()
    if not args.indexing_only:
        recall_table(files_per_package=10 if args.quick else 60, per_file=4 if args.quick else 8)
    indexing_table(400 if args.quick else args.files)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
