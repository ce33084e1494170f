"""The command line, run as the real command: each way it used to mislead or crash now says what happened."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, TGI, clean_env

SOURCE = "def add(a, b):\n    return \n"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp", *args], capture_output=True, text=True, env=clean_env(), cwd=ROOT, timeout=120
    )


def _source(tmp_path: Path, text: str = SOURCE) -> Path:
    path = tmp_path / "café.py"
    path.write_text(text, encoding="utf-8")
    return path


def test_complete_that_keeps_nothing_says_why(tmp_path: Path, tgi: TGI) -> None:
    tgi.script({"text": ""})
    result = _run("complete", f"{_source(tmp_path)}:2:12", "--endpoint", tgi.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "no completion at" in result.stderr and "suggested nothing that fits" in result.stderr


def test_an_empty_file_is_not_sent_to_the_model(tmp_path: Path, tgi: TGI) -> None:
    path = _source(tmp_path, " \n\n")
    for args in (["complete", f"{path}:1:1"], ["explain", str(path)], ["refactor", f"{path}:1-2"]):
        result = _run(*args, "--endpoint", tgi.url)
        assert result.returncode == 1 and "is empty" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert tgi.requests() == []


def test_check_fails_when_a_refused_setting_would_fall_back_to_the_embedded_model() -> None:
    result = _run("check", "--endpoint", "ftp://not-a-model-server")
    assert result.returncode == 1
    assert "codellama.endpoint" in result.stderr
    assert "status:    failed" in result.stdout and "ok" not in result.stdout


def test_prompt_does_not_claim_a_calibration_that_did_not_happen(tmp_path: Path) -> None:
    result = _run("prompt", f"{_source(tmp_path)}:2:12")
    assert result.returncode == 0, result.stderr
    assert "not calibrated yet" in result.stderr and "calibrated by" not in result.stderr


def test_an_unknown_action_is_a_clear_error(tmp_path: Path) -> None:
    result = _run("prompt", f"{_source(tmp_path)}:1", "--action", "bogus")
    assert result.returncode == 1
    assert "unknown action 'bogus'" in result.stderr and "explain" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_tokenizer_is_our_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = _run("prompt", f"{_source(tmp_path)}:2:12", "--tokenizer", str(missing))
    assert result.returncode == 1
    expected = f"codellama-lsp: no tokenizer.json at {missing} (give the file, or the folder that holds it)"
    assert result.stderr.strip() == expected


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _message(body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


def _read_message(stream: socket.socket) -> dict[str, object]:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += stream.recv(1)
    length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
    body = b""
    while len(body) < length:
        body += stream.recv(length - len(body))
    return dict(json.loads(body))


def _wait_for_id(stream: socket.socket, wanted: int) -> None:
    while _read_message(stream).get("id") != wanted:
        pass


def test_serve_tcp_exits_cleanly_without_a_traceback() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "lsp", "serve", "--tcp", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=ROOT,
    )
    try:
        stream = None
        for _ in range(600):
            try:
                stream = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        assert stream is not None, "the server did not listen"
        with stream:
            initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
            stream.sendall(_message(initialize))
            _wait_for_id(stream, 1)
            stream.sendall(_message({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
            stream.sendall(_message({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
            _wait_for_id(stream, 2)
            stream.sendall(_message({"jsonrpc": "2.0", "method": "exit"}))
            assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    assert "Traceback" not in process.stderr.read()


def test_explain_and_refactor_through_the_model(tmp_path: Path, tgi: TGI) -> None:
    path = _source(tmp_path, "def add(a, b):\n    return a+b  # café ☕\n\n\nX = 1\n")
    tgi.script({"text": "`add` adds **a** and b 🎯."})
    explained = _run("explain", f"{path}:1-2", "--endpoint", tgi.url)
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout == "`add` adds **a** and b 🎯.\n"

    tgi.script({"text": "```python\ndef add(a, b):\n    return a + b  # café ☕\n```"})
    refactored = _run("refactor", f"{path}:1-2", "--endpoint", tgi.url, "--apply")
    assert refactored.returncode == 0, refactored.stderr
    assert "-    return a+b  # café ☕\n+    return a + b  # café ☕\n" in refactored.stdout
    assert path.read_text(encoding="utf-8") == "def add(a, b):\n    return a + b  # café ☕\n\n\nX = 1\n"
