"""`codellama-lsp prompt --messages` prints the exact text sent to TGI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, clean_env
from tests.unit.test_chat_format import CARD_STRING

CARD = [
    {"role": "system", "content": "System prompt "},
    {"role": "user", "content": "First user query"},
    {"role": "assistant", "content": "Model response to first query"},
    {"role": "user", "content": "Second user query"},
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
    )


def test_prompt_messages_prints_the_card_string_minus_bos(tmp_path: Path) -> None:
    path = tmp_path / "dialog.json"
    path.write_text(json.dumps(CARD))
    result = _run("prompt", "--messages", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == CARD_STRING.removeprefix("<s>")


def test_prompt_messages_json_is_the_whole_tgi_body(tmp_path: Path) -> None:
    path = tmp_path / "dialog.json"
    path.write_text(json.dumps(CARD))
    result = _run("prompt", "--messages", str(path), "--json", "--max-new-tokens", "64")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["inputs"] == CARD_STRING.removeprefix("<s>")
    assert body["parameters"]["max_new_tokens"] == 64
    assert body["parameters"]["return_full_text"] is False
    assert body["parameters"]["stop"][0] == "<step>"


def test_bad_messages_fail_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "dialog.json"
    path.write_text(json.dumps([{"role": "assistant", "content": "x"}]))
    result = _run("prompt", "--messages", str(path))
    assert result.returncode == 1 and result.stdout == ""
    assert "role" in result.stderr
