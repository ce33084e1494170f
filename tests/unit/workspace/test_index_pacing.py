"""How the workspace index shares the server process: the indexing process is started by the reader thread,
not by the caller (the event loop); commands sent before it runs are kept for it; a close while it starts
leaves no process; the reader hands the interpreter lock over in short turns; the persisted rows are read
as they are used."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lsp.workspace import WorkspaceIndex
from lsp.workspace import index as index_module
from lsp.workspace.index import Pacer
from lsp.workspace.store import SummaryStore


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_start_leaves_the_process_start_to_the_reader_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "w", "m.py", "def f(x):\n    return x\n")
    spawned_on: list[threading.Thread] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        spawned_on.append(threading.current_thread())
        time.sleep(0.2)  # a slow fork: the caller must not wait for it
        return real(*args, **kwargs)

    monkeypatch.setattr(index_module.subprocess, "Popen", popen)
    index = WorkspaceIndex(str(tmp_path / "w"), persist=False)
    started = time.perf_counter()
    index.start()
    returned_after = time.perf_counter() - started
    index.update([str(tmp_path / "w" / "m.py")])  # sent before the process runs: kept for it
    try:
        assert index.wait_scanned(60) and index.wait_updates(1, 60)
        assert spawned_on and spawned_on[0] is not threading.current_thread()
        assert returned_after < 0.2
        assert [d.name for _, d in index.named("f")] == ["f"]
    finally:
        index.close()


def test_a_close_while_the_process_starts_leaves_no_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "w", "m.py", "def f(x):\n    return x\n")
    processes: list[subprocess.Popen[str]] = []
    real = subprocess.Popen
    release = threading.Event()

    def popen(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        process: subprocess.Popen[str] = real(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr(index_module.subprocess, "Popen", popen)
    index = WorkspaceIndex(str(tmp_path / "w"), persist=False)
    index.start()
    closing = threading.Thread(target=index.close)
    closing.start()
    time.sleep(0.05)
    release.set()
    closing.join(10)
    index.close()
    assert index.wait_scanned(10) and index.closed and index.pid is None
    assert processes and all(p.poll() is not None for p in processes)


def test_the_pacer_pauses_after_a_turn_of_cpu_time() -> None:
    pacer = Pacer(turn=0.001, pause=0.0002)
    pacer.tick()
    assert pacer.pauses == 0  # a cheap item: the lock released, no pause
    deadline = time.thread_time() + 0.003
    while time.thread_time() < deadline:
        pass
    pacer.tick()
    assert pacer.pauses == 1
    pacer.tick()
    assert pacer.pauses == 1  # a new turn began


def test_persisted_rows_are_read_as_they_are_iterated(tmp_path: Path) -> None:
    root = tmp_path / "w"
    for i in range(5):
        _write(root, f"m{i}.py", f"def f{i}(x):\n    return x\n")
    index = WorkspaceIndex(str(root), cache=tmp_path / "cache")
    index.start()
    assert index.wait_scanned(60)
    index.close()
    store = SummaryStore(str(root), tmp_path / "cache" / "workspaces", readonly=True)
    try:
        rows = store.rows()
        assert not isinstance(rows, (list, dict))
        first = next(iter(rows))
        assert first[0].startswith(str(root)) and '"definitions"' in first[1]
        assert sorted(p for p, _ in [first, *rows]) == sorted(str(root / f"m{i}.py") for i in range(5))
    finally:
        store.close()
    restarted = WorkspaceIndex(str(root), cache=tmp_path / "cache")
    restarted.start()
    try:
        assert restarted.wait_scanned(60)
        assert len(restarted) == 5 and restarted.stats.loaded_after is not None
    finally:
        restarted.close()
