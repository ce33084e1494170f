"""Parts of the real VS Code test (tests/editors/test_vscode_real.py): code-server with its own HOME and the
packaged extension, and the workbench page as a user sees it (keys, the status item, the code action menu,
ghost text, text on screen)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
from playwright.sync_api import Frame, Page

from tests.conftest import clean_env

# Marketplace requests go to a closed loopback port: nothing leaves the machine.
GALLERY = {"serviceUrl": "http://127.0.0.1:9/gallery", "itemUrl": "http://127.0.0.1:9/items"}
T = TypeVar("T")
# A MutationObserver that notes (page clock, ms) when a text first appears: the time a user would see it,
# without the delay of polling from the test.
WATCH = """(needle) => {
    window.__codellamaSeen = null;
    const observer = new MutationObserver((mutations) => {
        for (const m of mutations) {
            const node = m.type === 'characterData' ? m.target : m.target;
            if ((node.textContent || '').replace(/\u00a0/g, ' ').includes(needle)) {
                window.__codellamaSeen = performance.now();
                observer.disconnect();
                return;
            }
        }
    });
    observer.observe(document.body, { subtree: true, childList: true, characterData: true });
    return performance.now();
}"""
# The ghost text, drawn as decorations (one per colored piece): their text, or the CSS content they draw.
GHOST_TEXT = """(els) => els.map((el) => el.textContent || [getComputedStyle(el, '::before').content,
    getComputedStyle(el, '::after').content].filter((t) => t && t !== 'none' && t !== 'normal').join('')).join('')"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(what: str, probe: Callable[[], T | None], timeout: float = 30.0, every: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout} s: {what}")
        time.sleep(every)


def server_executable() -> str:
    beside = Path(sys.executable).parent / "codellama-lsp"
    return str(beside) if beside.exists() else shutil.which("codellama-lsp") or "codellama-lsp"


class CodeServer:
    """code-server with its own HOME, user data, extensions and config; the packaged .vsix installed."""

    def __init__(self, tools: Path, base: Path, vsix: Path, workspace: Path, endpoint: str) -> None:
        self.binary = str(tools / "code-server")
        self.port = free_port()
        self.home = base / "home"
        self.data = base / "user-data"
        self.extensions = base / "extensions"
        self.config = base / "config.yaml"
        self.log = base / "code-server.log"
        for folder in (self.home, self.data / "User", self.data / "Machine", self.extensions):
            folder.mkdir(parents=True, exist_ok=True)
        self.config.write_text(f"bind-addr: 127.0.0.1:{self.port}\nauth: none\ncert: false\n", encoding="utf-8")
        (self.data / "User" / "settings.json").write_text(
            json.dumps(
                {
                    "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
                    "editor.wordBasedSuggestions": "off",
                    "editor.suggestOnTriggerCharacters": False,
                    "editor.inlineSuggest.enabled": True,
                    "workbench.startupEditor": "none",
                    "workbench.tips.enabled": False,
                    "extensions.ignoreRecommendations": True,
                    "telemetry.telemetryLevel": "off",
                    "chat.disableAIFeatures": True,
                    "files.autoSave": "off",
                    "codellama.endpoint": endpoint,
                    "codellama.maxRetries": 0,
                    "codellama.connectTimeout": 2,
                    "codellama.requestTimeout": 10,
                    "codellama.completion.debounceMs": 0,
                }
            ),
            encoding="utf-8",
        )
        # Machine-scoped settings are ignored in User/settings.json of a code-server window.
        (self.data / "Machine" / "settings.json").write_text(
            json.dumps({"codellama.serverPath": server_executable(), "codellama.serverArgs": ["serve"]}),
            encoding="utf-8",
        )
        self.env = clean_env()
        self.env.update(
            {
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "XDG_DATA_HOME": str(self.home / ".local" / "share"),
                "XDG_CACHE_HOME": str(self.home / ".cache"),
                "PATH": f"{tools / 'node-bin'}{os.pathsep}{self.env.get('PATH', '')}",
                "EXTENSIONS_GALLERY": json.dumps(GALLERY),
            }
        )
        self.common = ["--config", str(self.config), "--user-data-dir", str(self.data),
                       "--extensions-dir", str(self.extensions)]
        installed = subprocess.run(
            [self.binary, *self.common, "--install-extension", str(vsix)],
            env=self.env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )
        assert installed.returncode == 0, f"installing the .vsix failed:\n{installed.stdout}\n{installed.stderr}"
        self.workspace = workspace
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [self.binary, *self.common, "--auth", "none", "--disable-telemetry", "--disable-update-check",
                 "--disable-workspace-trust", "--bind-addr", f"127.0.0.1:{self.port}", str(self.workspace)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

        def healthy() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text(errors="replace")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        until("code-server answers /healthz", healthy, timeout=120, every=0.25)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class Workbench:
    """The page, as a user sees it: keys, the status item, the code action menu, webview text."""

    def __init__(self, page: Page, folder: Path, artifacts: Path) -> None:
        self.page = page
        self.folder = folder
        self.artifacts = artifacts
        self.shots: list[str] = []

    def shot(self, name: str) -> None:
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        self.shots.append(path.name)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.page.keyboard.press(key)

    def status(self) -> str:
        item = self.page.locator('#workbench\\.parts\\.statusbar .statusbar-item[id$="codellama.status"]')
        return item.first.inner_text(timeout=2000) if item.count() else ""

    def open_file(self, name: str) -> None:
        self.keys("Control+p")
        self.quick_input_shown(True)
        self.page.keyboard.type(name)
        # the list first shows recently opened editors: wait until the file heads it
        first = self.page.locator(".quick-input-list .monaco-list-row").first
        until("quick open lists the file", lambda: first.count() and name in first.inner_text())
        self.keys("Enter")
        self.quick_input_shown(False)
        until(f"{name} is open", lambda: self.page.locator(f'.tab[aria-label^="{name}"]').count())
        self.page.locator(".editor-group-container.active .monaco-editor .view-lines").first.click()

    def go_to(self, line: int, end: bool = True) -> None:
        """Ctrl+G to a line (then End); returns once the editor has the cursor there again."""
        self.keys("Control+g")
        self.quick_input_shown(True)
        self.page.keyboard.type(str(line))
        self.keys("Enter")
        self.quick_input_shown(False)
        if end:
            self.keys("End")
        cursor = self.page.locator("#workbench\\.parts\\.statusbar .statusbar-item", has_text=f"Ln {line},")
        until(f"the cursor on line {line}", lambda: cursor.count())

    def quick_input_shown(self, shown: bool) -> None:
        widget = self.page.locator(".quick-input-widget")
        until(f"quick input {'shown' if shown else 'hidden'}", lambda: widget.first.is_visible() == shown)

    def code_actions(self) -> list[str]:
        self.keys("Control+Period")
        rows = self.page.locator(".action-widget .monaco-list-row")
        until("the code action menu", lambda: rows.count())
        return [text.strip() for text in rows.all_inner_texts()]

    def choose(self, title: str) -> None:
        self.page.locator(".action-widget .monaco-list-row", has_text=title).first.click()

    def watch(self, needle: str) -> float:
        """Note in the page when `needle` first appears in the workbench's DOM; returns the page's clock now."""
        return float(self.page.evaluate(WATCH, needle))

    def seen_at(self) -> float | None:
        value = self.page.evaluate("() => window.__codellamaSeen ?? null")
        return None if value is None else float(value)

    def frame_text(self, needle: str) -> str | None:
        """The text of the first frame (the markdown preview is a webview: nested iframes) holding `needle`."""
        for frame in self.page.frames:
            text = _text(frame)
            if needle in text:
                return text
        return None

    def save_and_read(self, name: str) -> str:
        self.keys("Control+s")
        time.sleep(0.3)
        return (self.folder / name).read_text(encoding="utf-8")


def _text(frame: Frame) -> str:
    try:
        # editors draw spaces as no-break spaces
        return str(frame.evaluate("() => document.body ? document.body.innerText : ''")).replace("\xa0", " ")
    except Exception:  # a frame that navigates or goes away between the listing and the read
        return ""
