"""Fixtures shared by the suites: a TGI-protocol server over real HTTP, and helpers to drive it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


class TGI:
    """A running tests/tgi_server.py process and its control routes."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def script(self, *replies: dict[str, Any], default: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"replies": list(replies)}
        if default is not None:
            body["default"] = default
        self.http.post("/_control/script", json=body).raise_for_status()

    def reset(self) -> None:
        self.http.post("/_control/reset").raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return list(self.http.get("/_control/requests").json())

    def streams(self) -> dict[str, Any]:
        return dict(self.http.get("/_control/streams").json())

    def connections(self) -> list[tuple[str, int]]:
        """Every request received, with the number of the TCP connection it came on."""
        return [(hit, number) for hit, number in self.http.get("/_control/connections").json()]

    def close(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def start_tgi(*extra: str) -> TGI:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "tgi_server.py"), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the TGI test server did not start: {line!r}")
    return TGI(process, f"http://127.0.0.1:{int(line.split()[1])}")


@pytest.fixture(scope="session")
def tgi_server() -> Iterator[TGI]:
    server = start_tgi()
    yield server
    server.close()


@pytest.fixture
def tgi(tgi_server: TGI) -> TGI:
    tgi_server.reset()
    return tgi_server


def server_command() -> list[str]:
    return [sys.executable, "-m", "lsp", "serve"]


def clean_env() -> dict[str, str]:
    """The environment for a server under test: no settings leaking in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODELLAMA_LSP_") and k != "HF_TOKEN"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env
