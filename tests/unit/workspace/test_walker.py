"""Which files the workspace walk reads: .gitignore rules, skipped folders, caps, and bad trees survived."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from lsp.workspace.walker import GitIgnore, WalkLimits, find_root, walk


def _names(root: Path, limits: WalkLimits | None = None) -> list[str]:
    return sorted(os.path.relpath(e.path, root) for e in walk(str(root), limits or WalkLimits()))


def _touch(path: Path, text: str = "x = 1\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_gitignore_rules_and_skipped_folders(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("# generated\n/generated/\n*.gen.py\nbuild_*\n!keep.gen.py\n")
    for name in ["app.py", "generated/out.py", "pkg/generated/inner.py", "x.gen.py", "keep.gen.py",
                 "build_tmp/a.py", "node_modules/m/index.js", ".git/hooks/h.py", "venv2/lib/a.py",
                 "dist/bundle.js", "pkg/__pycache__/a.py", "notes.txt", "pkg/mod.ts"]:
        _touch(tmp_path / name)
    (tmp_path / "venv2" / "pyvenv.cfg").write_text("home = /usr\n")  # a virtualenv under another name
    _touch(tmp_path / "pkg" / ".gitignore", "local_*.py\n")
    _touch(tmp_path / "pkg" / "local_x.py")
    assert _names(tmp_path) == ["app.py", "keep.gen.py", "pkg/generated/inner.py", "pkg/mod.ts"]


def test_extra_excludes_from_the_settings(tmp_path: Path) -> None:
    for name in ["a.py", "vendor/b.py", "src/c_pb2.py"]:
        _touch(tmp_path / name)
    assert _names(tmp_path, WalkLimits(exclude=("vendor/", "*_pb2.py"))) == ["a.py"]


def test_caps_on_files_and_sizes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(30):
        _touch(tmp_path / f"m{i:02}.py")
    _touch(tmp_path / "big.py", "x = 1\n" * 100_000)
    with caplog.at_level(logging.INFO):
        assert len(_names(tmp_path, WalkLimits(max_files=10))) == 10
        assert "big.py" not in _names(tmp_path, WalkLimits(max_file_size=4096))
        assert len(_names(tmp_path, WalkLimits(max_total_size=60))) == 10  # 6 bytes each
    assert "more than 10 source files" in caplog.text


def test_bad_trees_are_walked_around(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _touch(tmp_path / "ok.py")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)  # a symlink loop
    (tmp_path / "dangling.py").symlink_to(tmp_path / "missing.py")
    locked = tmp_path / "locked"
    _touch(locked / "secret.py")
    os.chmod(locked, 0)
    bad_name = os.fsencode(str(tmp_path)) + b"/caf\xe9.py"  # not UTF-8
    with open(bad_name, "wb") as handle:
        handle.write(b"x = 1\n")
    huge = tmp_path / "huge.py"
    with open(huge, "wb") as handle:  # 50 MB, sparse
        handle.truncate(50 * 1024 * 1024)
    try:
        with caplog.at_level(logging.INFO):
            names = _names(tmp_path)
    finally:
        os.chmod(locked, 0o755)
    assert "ok.py" in names and "huge.py" not in names
    assert not any(n.startswith("loop") for n in names)
    if os.geteuid() != 0:  # root reads anything
        assert "locked/secret.py" not in names
    assert "not UTF-8" in caplog.text


def test_many_files_stop_at_the_cap_quickly(tmp_path: Path) -> None:
    for folder in range(50):
        for i in range(60):
            _touch(tmp_path / f"d{folder:02}" / f"m{i:02}.py", "")
    names = _names(tmp_path, WalkLimits(max_files=500))
    assert len(names) == 500
    assert names[0].startswith("d00/")  # breadth first, in name order: the same files every time


def test_gitignore_patterns() -> None:
    ignore = GitIgnore.parse("/w", ["**/cache/**", "docs/*.py", "[Tt]emp*", "!/docs/keep.py"])
    assert ignore.decide("/w/a/cache/b/c.py", False)
    assert ignore.decide("/w/docs/x.py", False)
    assert ignore.decide("/w/docs/sub/x.py", False) is None
    assert ignore.decide("/w/Temp1.py", False) and ignore.decide("/w/a/temp.py", False)
    assert ignore.decide("/w/docs/keep.py", False) is False


def test_root_is_found_from_the_file(tmp_path: Path) -> None:
    _touch(tmp_path / "proj" / "go.mod", "module example.com/proj\n")
    _touch(tmp_path / "proj" / "pkg" / "deep" / "x.go", "package deep\n")
    assert find_root(str(tmp_path / "proj" / "pkg" / "deep" / "x.go")) == str(tmp_path / "proj")
    lonely = tmp_path / "lonely"
    _touch(lonely / "y.py")
    assert find_root(str(lonely / "y.py")) in (str(lonely), str(tmp_path), "/")
