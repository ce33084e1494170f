"""The VS Code extension in real VS Code: code-server (VS Code's workbench and extension host, from npm) with
the packaged .vsix installed, driven in headless Chromium by Playwright, against tests/tgi_server.py.

It checks what a user sees: the status item; ghost text after typing, accepted with Tab; the CodeLlama
actions in the Ctrl+. menu; Explain showing its answer as it is written (the first words' time is
measured); Refactor applying an edit; the status turning to an error when the model server is down and
back when it returns. A screenshot of each step goes to test-artifacts/vscode-real/ (CI artifacts).

The tools come from `bash .ci/vscode-tools` (Chromium and libkrb5-dev from Debian, Node 24 from PyPI,
code-server from npm, cached); `bash .ci/run` installs them and Playwright, and sets
CODELLAMA_LSP_VSCODE_TOOLS to their folder. Without it the test is skipped (it fails instead when
CODELLAMA_LSP_REQUIRE_VSCODE=1, as in CI). Nothing leaves loopback: the marketplace is pointed at a
closed loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import ROOT, TGI, clean_env, start_tgi
from tests.editors.test_vscode_client import built_extension  # noqa: F401  (the packaged .vsix fixture)

TOOLS = os.environ.get("CODELLAMA_LSP_VSCODE_TOOLS")
REQUIRED = os.environ.get("CODELLAMA_LSP_REQUIRE_VSCODE") == "1"
ARTIFACTS = ROOT / "test-artifacts" / "vscode-real"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

try:
    from playwright.sync_api import Frame, Page, Route, sync_playwright
except ImportError:  # pragma: no cover - only where Playwright is not installed
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        (TOOLS is None or sync_playwright is None) and not REQUIRED,
        reason="real VS Code: run `bash .ci/run` (or set CODELLAMA_LSP_VSCODE_TOOLS=$(bash .ci/vscode-tools) "
        "and pip install playwright)",
    ),
]

SOURCE = '''def mean(values):
    total = 0
    for v in values:
        total = total + v
    return total / len(values)


def clamp(value, low, high):'''
COMPLETION = "return max(low, min(value, high))"
EXPLANATION = "Streaming words: `mean` adds every value and divides the total by how many there are. " * 3
REFACTORED = "def mean(values):\n    return sum(values) / len(values)"
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

    def __init__(self, base: Path, vsix: Path, workspace: Path, endpoint: str) -> None:
        assert TOOLS is not None, "CODELLAMA_LSP_VSCODE_TOOLS is not set (bash .ci/run sets it)"
        tools = Path(TOOLS)
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

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.shots: list[str] = []

    def shot(self, name: str) -> None:
        path = ARTIFACTS / f"{len(self.shots) + 1:02d}-{name}.png"
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
        until("quick open lists the file", lambda: self.page.locator(".quick-input-list .monaco-list-row").count())
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


@pytest.fixture
def code_server(tmp_path: Path, built_extension: Path) -> Iterator[tuple[CodeServer, TGI]]:  # noqa: F811
    tgi = start_tgi()
    project = tmp_path / "project"
    project.mkdir()
    (project / "stats.py").write_text(SOURCE + "\n", encoding="utf-8")
    server = CodeServer(tmp_path, built_extension, project, tgi.url)
    try:
        server.start()
        yield server, tgi
    finally:
        server.stop()
        tgi.close()  # the test may have closed it already (the model server going down): closing is idempotent


def test_the_extension_in_real_vs_code(code_server: tuple[CodeServer, TGI]) -> None:
    server, tgi = code_server
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    report: dict[str, Any] = {}
    assert sync_playwright is not None, "pip install playwright (bash .ci/run does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            blocked: list[str] = []
            report["blocked_requests"] = blocked

            def loopback_only(route: Route) -> None:
                """The browser talks to code-server on loopback, and to nothing else."""
                host = urlsplit(route.request.url).hostname or ""
                if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", loopback_only)
            page.goto(f"{server.url}/?folder={server.workspace}")
            ui = Workbench(page, server.workspace)
            _walk_through(ui, server, tgi, report)
        except BaseException:
            try:
                ui.shot("failure")
            finally:
                (ARTIFACTS / "code-server.log").write_text(server.log.read_text(errors="replace"))
            raise
        finally:
            (ARTIFACTS / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
            browser.close()


def _walk_through(ui: Workbench, server: CodeServer, tgi: TGI, report: dict[str, Any]) -> None:
    page = ui.page
    until("the workbench", lambda: page.locator(".monaco-workbench").count(), timeout=60)

    # 1. The status item: the extension started the server, which reports idle.
    ui.open_file("stats.py")
    idle = until("the status item shows the server idle", lambda: (s := ui.status()) and "CodeLlama" in s
                 and "starting" not in s and s, timeout=60)
    report["status_idle"] = idle
    assert "error" not in idle
    ui.shot("status-idle")

    # 2. Ghost text after typing, accepted with Tab.
    tgi.script(default={"text": f"```python\n{COMPLETION}\n```"})
    ui.go_to(8)
    ui.keys("Enter")
    # Ghost text on the cursor's line is an injected decoration (its text lives in CSS): the editor's line
    # shows it, the file does not have it until Tab.
    ghost = page.locator(".monaco-editor .ghost-text-decoration")
    until("ghost text", lambda: ghost.count(), timeout=30)
    report["ghost_text"] = ghost.evaluate_all(GHOST_TEXT)
    assert COMPLETION[:10] in report["ghost_text"].replace("\xa0", " "), report["ghost_text"]
    ui.shot("ghost-text")
    ui.keys("Tab")
    saved = ui.save_and_read("stats.py")
    report["after_tab"] = saved
    assert f"    {COMPLETION}" in saved
    ui.shot("ghost-text-accepted")
    tgi.reset()

    # 3. The CodeLlama actions in the Ctrl+. menu.
    ui.go_to(3)
    actions = ui.code_actions()
    report["code_actions"] = actions
    for title in ("CodeLlama: Explain", "CodeLlama: Refactor", "CodeLlama: Add docstring"):
        assert any(title in a for a in actions), actions
    ui.shot("code-actions")

    # 4. Explain: the answer appears as it is written (300 ms before the first token, then 20 tokens/s).
    tgi.script({"text": EXPLANATION, "delay": 0.3, "chunk_delay": 0.05})
    clicked = ui.watch("Streaming words")
    started = time.monotonic()
    ui.choose("CodeLlama: Explain")
    until("the live view opens", lambda: page.locator('.tab[aria-label^="CodeLlama- Explain"]').count(), every=0.01)
    report["view_open_ms"] = round((time.monotonic() - started) * 1000)
    until("the first words of the explanation", lambda: ui.frame_text("Streaming words"), timeout=30, every=0.01)
    report["first_words_polled_ms"] = round((time.monotonic() - started) * 1000)
    seen = until("the page noted the first words", ui.seen_at)
    report["first_words_ms"] = round(seen - clicked)
    first = ui.frame_text("Streaming words") or ""
    ui.shot("explain-first-words")
    whole = until("the whole explanation", lambda: _complete(ui), timeout=60)
    report["whole_answer_ms"] = round((time.monotonic() - started) * 1000)
    first, whole = _answer(first), _answer(whole)
    report["first_text"], report["whole_text"] = first, whole
    # the first words were on screen while the rest was still being written
    assert "… writing" in first and first.count("Streaming words") < 3, first
    ui.shot("explain-answer")

    # 4b. Explain again, now that the workbench has shown such a view once (a user's usual case).
    tgi.script({"text": EXPLANATION.replace("Streaming words", "Warm words"), "delay": 0.3, "chunk_delay": 0.05})
    ui.open_file("stats.py")
    ui.go_to(3)
    ui.code_actions()
    clicked = ui.watch("Warm words")
    ui.choose("CodeLlama: Explain")
    until("the first words of the second explanation", lambda: ui.frame_text("Warm words"), timeout=30, every=0.01)
    report["first_words_warm_ms"] = round(until("the page noted them", ui.seen_at) - clicked)
    ui.shot("explain-again-first-words")
    until("the second explanation is complete", lambda: _complete(ui, "Warm words"), timeout=60)

    # 5. Refactor applies an edit (after a live preview of the code).
    tgi.script({"text": f"```python\n{REFACTORED}\n```", "chunk_delay": 0.02})
    ui.open_file("stats.py")
    ui.go_to(3)
    ui.code_actions()
    ui.choose("CodeLlama: Refactor")
    refactored = until("the refactoring lands", lambda: REFACTORED in (t := ui.save_and_read("stats.py")) and t)
    report["after_refactor"] = refactored
    ui.shot("refactor-applied")

    # 6. The model server goes down: the status turns to an error; it returns: the status recovers.
    port = int(tgi.url.rsplit(":", 1)[1])
    tgi.close()
    ui.open_file("stats.py")
    ui.go_to(2)
    ui.code_actions()
    ui.choose("CodeLlama: Explain")
    report["status_down"] = until("the status shows the error", lambda: "error" in (s := ui.status()) and s)
    ui.shot("status-model-down")
    back = start_tgi("--port", str(port))
    try:
        back.script({"text": "Back again."})
        ui.keys("Escape")
        ui.open_file("stats.py")
        ui.go_to(2)
        ui.code_actions()
        ui.choose("CodeLlama: Explain")
        report["status_back"] = until("the status recovers", lambda: "error" not in (s := ui.status()) and s)
        until("the answer after the model server returned", lambda: ui.frame_text("Back again."))
        ui.shot("status-model-back")
    finally:
        back.close()
    report["screenshots"] = ui.shots
    assert report["blocked_requests"] == [], "the browser asked for something beyond loopback"
    print(
        f"\nVS Code: first words {report['first_words_ms']} ms (again: {report['first_words_warm_ms']} ms), "
        f"whole answer {report['whole_answer_ms']} ms"
    )


def _answer(page_text: str) -> str:
    """The explanation's text in the page's text, from its first words on."""
    return page_text[page_text.find("Streaming words") :]


def _complete(ui: Workbench, needle: str = "Streaming words") -> str | None:
    """The explanation's text once the live view says it is no longer being written."""
    text = ui.frame_text(needle)
    return text if text and "writing" not in text and text.count(needle) == 3 else None
