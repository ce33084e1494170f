"""The workspace index through the real server: a definition from a file that is not open reaches the prompt
TGI receives; watchers are registered only where the client allows it; renames, deletions and a file edited
outside the editor keep the index current. Runs under real clients' recorded capabilities."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from lsp.features.lifecycle import STATS_METHOD
from tests.conftest import TGI, clean_env, server_command
from tests.e2e.helpers import open_doc, wait_for

CLIENTS = ["neovim", "visual-studio-code", "emacs"]

MODELS = '''"""Invoices. Fäktüra 🧾 請求書."""


class Invoice:
    """A bill sent to a customer."""

    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.lines: list[tuple[str, float]] = []

    def add_line(self, label: str, amount: float) -> None:
        self.lines.append((label, amount))

    def total_with_tax(self, rate: float = 0.2) -> float:
        """The amount due, tax included."""
        subtotal = sum(amount for _, amount in self.lines)
        return round(subtotal * (1 + rate), 2)


def make_invoice(customer: str, *labels: str) -> Invoice:
    """An invoice with one line per label, at zero."""
    invoice = Invoice(customer)
    for label in labels:
        invoice.add_line(label, 0.0)
    return invoice
'''

APP = '''"""Billing entry points — café ☕, naïve, 東京."""

from .models import Invoice, make_invoice


def bill(customer: str) -> float:
    invoice = make_invoice(customer, "ün", "deux")
    return''' + " \n"


def _server_env() -> dict[str, str]:
    """The persisted index goes to a cache folder of this test run, not the user's."""
    env = clean_env()
    env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="codellama-lsp-cache-")
    return env


def _workspace(root: Path) -> None:
    (root / "billing").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'billing'\n")
    (root / "billing" / "__init__.py").write_text("")
    (root / "billing" / "models.py").write_text(MODELS, encoding="utf-8")
    (root / "billing" / "app.py").write_text(APP, encoding="utf-8")
    (root / "node_modules" / "junk").mkdir(parents=True)
    (root / "node_modules" / "junk" / "index.js").write_text("export function make_invoice() {}\n")


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    return value


async def _stats(client: LanguageClient) -> dict[str, Any]:
    result: dict[str, Any] = _plain(await client.protocol.send_request_async(STATS_METHOD, {}))
    return result


async def _until(client: LanguageClient, predicate: Any, what: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        workspace = (await _stats(client))["workspace"]
        if predicate(workspace):
            return workspace
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {workspace}")
        await asyncio.sleep(0.05)


async def _prompt_at_end_of(client: LanguageClient, tgi: TGI, uri: str, text: str) -> str:
    """Complete at the end of the last line; the user turn TGI received."""
    tgi.reset()
    lines = text.split("\n")
    position = types.Position(len(lines) - 2, len(lines[-2]))
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri), position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    bodies = [r for r in tgi.requests() if "inputs" in r]
    assert bodies, "no generation reached TGI"
    return str(bodies[-1]["inputs"])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "shop"
    _workspace(workspace)
    return workspace


@pytest_lsp.fixture(
    params=CLIENTS,
    config=ClientServerConfig(server_command=server_command(), server_env=_server_env()),
)
async def client(request: Any, lsp_client: LanguageClient, tgi: TGI, root: Path, tmp_path: Path):
    registrations: list[types.RegistrationParams] = []
    lsp_client.registrations = registrations  # type: ignore[attr-defined]

    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(ls: LanguageClient, params: types.RegistrationParams) -> None:
        registrations.append(params)

    capabilities = client_capabilities(request.param)
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="shop")],
            initialization_options={"codellama": {"endpoint": tgi.url, "completion": {"debounceMs": 0}}},
        )
    )
    lsp_client.kind = request.param  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_definition_from_an_unopened_file_reaches_the_prompt(client: LanguageClient, tgi: TGI,
                                                                     root: Path) -> None:
    await _until(client, lambda w: w["scanned"], "the first walk")
    app = root / "billing" / "app.py"
    open_doc(client, app.as_uri(), APP)
    prompt = await _prompt_at_end_of(client, tgi, app.as_uri(), APP)
    assert "def make_invoice(customer: str, *labels: str) -> Invoice" in prompt
    assert "billing/models.py" in prompt
    assert "def total_with_tax(self, rate: float = 0.2) -> float" in prompt  # the class's members
    assert "node_modules" not in prompt
    assert prompt.count("billing/models.py") == prompt.count("From `billing/models.py`:")  # once each


async def test_watchers_only_where_the_client_allows_dynamic_registration(client: LanguageClient) -> None:
    await _until(client, lambda w: w["scanned"], "the first walk")
    kind = client.kind  # type: ignore[attr-defined]
    watched = client_capabilities(kind).workspace
    watchers = watched.did_change_watched_files if watched else None
    allowed = bool(watchers and watchers.dynamic_registration)

    def registered() -> list[str]:
        return [r.method for p in client.registrations for r in p.registrations]  # type: ignore[attr-defined]

    if allowed:  # wait for the registration itself: a busy machine delivers it late
        await wait_for(lambda: types.WORKSPACE_DID_CHANGE_WATCHED_FILES in registered())
    else:
        await asyncio.sleep(0.2)  # (an absence cannot be waited for: a registration sent now would be in)
    assert (types.WORKSPACE_DID_CHANGE_WATCHED_FILES in registered()) == allowed, (kind, registered())


async def test_edits_outside_the_editor_renames_and_deletions(client: LanguageClient, tgi: TGI, root: Path) -> None:
    before = await _until(client, lambda w: w["scanned"], "the first walk")
    models = root / "billing" / "models.py"
    # edited outside the editor (a git checkout, a formatter): the watcher tells, or a save does
    models.write_text(MODELS.replace("def make_invoice(customer: str, *labels: str)",
                                     "def make_invoice(customer: str, *labels: str, currency: str = 'EUR')"),
                      encoding="utf-8")
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=models.as_uri(), type=types.FileChangeType.Changed)]))
    await _until(client, lambda w: w["generation"] > before["generation"], "the changed file read again")
    app = root / "billing" / "app.py"
    open_doc(client, app.as_uri(), APP)
    prompt = await _prompt_at_end_of(client, tgi, app.as_uri(), APP)
    assert "currency: str = 'EUR'" in prompt

    # renamed: a deletion and a creation
    moved = root / "billing" / "invoices.py"
    models.rename(moved)
    state = (await _stats(client))["workspace"]
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=models.as_uri(), type=types.FileChangeType.Deleted),
        types.FileEvent(uri=moved.as_uri(), type=types.FileChangeType.Created),
    ]))
    await _until(client, lambda w: w["updates"] > state["updates"], "the renamed file read")
    text = APP.replace(".models", ".invoices") + "\n"
    open_doc(client, app.as_uri().replace("app.py", "app2.py"), text)
    prompt = await _prompt_at_end_of(client, tgi, app.as_uri().replace("app.py", "app2.py"), text)
    assert "billing/invoices.py" in prompt and "billing/models.py" not in prompt

    # deleted: its definitions are gone from the prompt
    moved.unlink()
    state = (await _stats(client))["workspace"]
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=moved.as_uri(), type=types.FileChangeType.Deleted)]))
    await _until(client, lambda w: w["generation"] > state["generation"], "the deleted file forgotten")
    prompt = await _prompt_at_end_of(client, tgi, app.as_uri().replace("app.py", "app2.py"), text)
    assert "def make_invoice(" not in prompt
