"""The VS Code extension (editors/vscode): its Node protocol test against the real server, and its settings
against the server's.

VS Code itself cannot be downloaded here (nor in CI), so the extension's protocol path is exercised with the
same Node libraries it uses: editors/vscode/test/protocol.test.mjs starts `python -m lsp serve`, initializes
it with the options the extension builds from its settings, and drives completion, code actions, commands
and the status notification against tests/tgi_server.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from lsp.config import Settings
from tests.conftest import ROOT, clean_env, server_command, start_tgi

EXTENSION = ROOT / "editors" / "vscode"
NODE_TEST = "test/protocol.test.mjs"
CLIENT_ONLY = {"serverPath", "serverArgs", "completion.suggestions", "trace.server"}

needs_node = pytest.mark.skipif(
    (shutil.which("node") is None or shutil.which("npm") is None) and not os.environ.get("CI"),
    reason="Node.js and npm are not installed",
)


def _run(args: list[str], *, env: dict[str, str] | None = None, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=EXTENSION, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _shown(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {result.returncode}\n--- stdout\n{result.stdout[-20000:]}\n--- stderr\n{result.stderr[-10000:]}"


@pytest.fixture(scope="module")
def built_extension() -> Path:
    """node_modules (npm ci, only when missing), then `npm run package`: the strict type-check compiles
    src/ to out/ (which the Node test imports), esbuild bundles dist/extension.js, vsce packages the .vsix."""
    if not (EXTENSION / "node_modules").is_dir():
        result = _run(["npm", "ci", "--no-audit", "--no-fund"], timeout=600)
        assert result.returncode == 0, "npm ci failed\n" + _shown(result)
    result = _run(["npm", "run", "package"], timeout=300)
    assert result.returncode == 0, "npm run package failed\n" + _shown(result)
    return EXTENSION / "codellama-lsp.vsix"


@needs_node
def test_the_extension_protocol_path_against_the_real_server(built_extension: Path) -> None:
    tgi = start_tgi()
    try:
        env = clean_env()
        env["CODELLAMA_LSP_TEST_SERVER"] = json.dumps(server_command())
        env["CODELLAMA_LSP_TEST_TGI"] = tgi.url
        result = _run(["node", "--test", "--test-reporter=tap", NODE_TEST], env=env, timeout=300)
    finally:
        tgi.close()
    assert result.returncode == 0, "the Node protocol test failed\n" + _shown(result)
    passed = re.search(r"^# pass (\d+)$", result.stdout, re.M)
    skipped = re.search(r"^# skipped (\d+)$", result.stdout, re.M)
    assert passed and int(passed.group(1)) >= 10, "too few Node tests ran\n" + _shown(result)
    assert skipped and int(skipped.group(1)) == 0, "Node tests were skipped\n" + _shown(result)


def _package_settings() -> dict[str, Any]:
    manifest = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
    properties = manifest["contributes"]["configuration"]["properties"]
    return {key.removeprefix("codellama."): spec for key, spec in properties.items()}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_extension_settings_mirror_the_server_settings() -> None:
    """Every server setting (but the token) is a VS Code setting with the server's default, and no more."""
    server = _flatten(Settings().model_dump(by_alias=True, mode="json"))
    del server["apiToken"]  # SecretStorage, never a setting
    package = _package_settings()
    assert sorted(set(package) - CLIENT_ONLY) == sorted(server)
    for key, default in server.items():
        assert package[key].get("default") == default, f"codellama.{key}: the extension's default differs"


def test_the_extension_sends_only_server_settings() -> None:
    """src/config.ts SERVER_SETTINGS (what the extension sends) is exactly the server's settings."""
    source = (EXTENSION / "src" / "config.ts").read_text(encoding="utf-8")
    block = re.search(r"export const SERVER_SETTINGS = \[(.*?)\] as const;", source, re.S)
    assert block is not None
    sent = re.findall(r"'([\w.]+)'", block.group(1))
    server = _flatten(Settings().model_dump(by_alias=True, mode="json"))
    assert sorted(sent) == sorted(k for k in server if k != "apiToken")


@needs_node
def test_the_extension_packages_into_a_vsix(built_extension: Path) -> None:
    with zipfile.ZipFile(built_extension) as archive:
        names = set(archive.namelist())
    assert {"extension/package.json", "extension/dist/extension.js", "extension/readme.md"} <= names
    assert not any("node_modules" in n or n.endswith(".ts") for n in names), sorted(names)
