"""URIs and paths: dot segments are resolved, and `inside` is not fooled by `..` or a symbolic link."""

from __future__ import annotations

import os
from pathlib import Path

from lsp.uris import inside, path_to_uri, shown_path, uri_to_path


def test_uri_to_path() -> None:
    assert uri_to_path("file:///home/u/a%20b.py") == "/home/u/a b.py"
    assert uri_to_path("file:///c%3A/x/y.py") == "c:/x/y.py"
    assert uri_to_path("file:///w/project/../outside/x.py") == "/w/outside/x.py"
    assert uri_to_path("untitled:Untitled-1") == "Untitled-1"
    assert uri_to_path("/plain/path.py") == "/plain/path.py"


def test_path_to_uri_round_trips() -> None:
    for path in ("/home/u/a b.py", "c:/x/y.py", "/tmp/café/平均.py"):
        assert uri_to_path(path_to_uri(path)) == path


def test_inside_the_workspace(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link")
    assert inside(str(root / "src" / "x.py"), [str(root)])
    assert inside(str(root / "src" / "x.py"), [root.as_uri()])
    assert not inside(str(root / ".." / "outside" / "x.py"), [str(root)])
    assert not inside(str(root / "link" / "x.py"), [str(root)])  # a link out of the workspace
    assert not inside(str(tmp_path / "project-2" / "x.py"), [str(root)])  # a sibling with the same prefix
    assert not inside(str(root / "x.py"), [])


def test_shown_path() -> None:
    assert shown_path("/w/p/tests/test_x.py", "/w/p") == "tests/test_x.py"
    assert shown_path("/elsewhere/x.py", "/w/p") == "/elsewhere/x.py"
