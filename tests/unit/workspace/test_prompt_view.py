"""`codellama-lsp prompt`: the workspace section and its cost, the root found from the file by default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, clean_env


def _run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**clean_env(), "XDG_CACHE_HOME": str(cache)}
    return subprocess.run([sys.executable, "-m", "lsp", "prompt", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=180)


def test_prompt_view_shows_the_workspace_section(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src" / "tax").mkdir(parents=True)
    (project / "go.mod").write_text("module example.com/shop\n")
    (project / "src" / "tax" / "rate.go").write_text(
        "package tax\n\n// Rate is the tax rate of a country.\nfunc Rate(country string) float64 {\n"
        "\tif country == \"FR\" {\n\t\treturn 0.2\n\t}\n\treturn 0.1\n}\n\nvar unused = 1\n\nfunc x() {}\n"
        "func y() {}\nfunc z() {}\n"
    )
    main = project / "src" / "tax" / "total.go"
    main.write_text("package tax\n\nfunc Total(amount float64, country string) float64 {\n"
                    "\treturn amount * (1 + Rate(country))\n}\n")
    result = _run(f"{main}:4:10", cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert "// Rate is the tax rate of a country.\nfunc Rate(country string) float64 { ... }" in result.stdout
    assert f"workspace: {project}" in result.stderr  # found from go.mod
    assert "1 definitions from other files shown" in result.stderr
    assert "src/tax/rate.go: func Rate(country string) float64" in result.stderr
    alone = _run(f"{main}:4:10", "--no-workspace", cache=tmp_path / "cache")
    assert "func Rate(" not in alone.stdout and "workspace:" not in alone.stderr
    other_root = _run(f"{main}:4:10", "--root", str(project / "src" / "tax"), cache=tmp_path / "cache")
    assert f"workspace: {project / 'src' / 'tax'}" in other_root.stderr
    assert os.listdir(tmp_path / "cache" / "codellama-lsp" / "workspaces")  # persisted in the user's cache
