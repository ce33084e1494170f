"""Scratch files for the user: one private folder per server, and no pile of folders of servers gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsp.scratch import PREFIX, ScratchFolder


def _exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_files_are_written_in_a_private_folder_named_after_the_process(tmp_path: Path) -> None:
    scratch = ScratchFolder(str(tmp_path))
    first = scratch.write("Explain: parse_quantity", "# one")
    second = scratch.write("Explain: parse_quantity", "# two")
    assert first is not None and first == second and second.read_text() == "# two"
    assert first.name == "explain-parse-quantity.md"
    assert first.parent.name.startswith(f"{PREFIX}{os.getpid()}-")
    assert first.parent.stat().st_mode & 0o077 == 0  # no one else may read or list it


@pytest.mark.skipif(os.name != "posix", reason="liveness of a process id is probed on POSIX only")
def test_folders_of_exited_servers_are_removed_and_others_kept(tmp_path: Path) -> None:
    gone = tmp_path / f"{PREFIX}{_exited_pid()}-abc"
    gone.mkdir()
    (gone / "explain.md").write_text("old")
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = tmp_path / f"{PREFIX}{running.pid}-def"
        alive.mkdir()
        unrelated = tmp_path / f"{PREFIX}notes"
        unrelated.mkdir()
        path = ScratchFolder(str(tmp_path)).write("Explain", "# new")
    finally:
        running.kill()
        running.wait()
    assert path is not None and path.exists()
    assert not gone.exists()
    assert alive.exists() and unrelated.exists()


def test_an_unwritable_place_gives_none_not_an_error(tmp_path: Path) -> None:
    assert ScratchFolder(str(tmp_path / "missing" / "deeper")).write("Explain", "text") is None
