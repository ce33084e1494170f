"""The workspace index through the real server: a definition from a file that is not open reaches the prompt
TGI receives; watchers are registered only where the client allows it; renames, deletions and a file edited
outside the editor keep the index current. Runs under real clients' recorded capabilities."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.conftest import TGI, server_command
from tests.e2e.helpers import open_doc, wait_for
from tests.e2e.workspace_kit import APP, CLIENTS, MODELS, make_workspace, prompt_at_end_of, server_env, stats, until


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "shop"
    make_workspace(workspace)
    return workspace


@pytest_lsp.fixture(
    params=CLIENTS,
    config=ClientServerConfig(server_command=server_command(), server_env=server_env()),
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
    await until(client, lambda w: w["scanned"], "the first walk")
    app = root / "billing" / "app.py"
    open_doc(client, app.as_uri(), APP)
    prompt = await prompt_at_end_of(client, tgi, app.as_uri(), APP)
    assert "def make_invoice(customer: str, *labels: str) -> Invoice" in prompt
    assert "billing/models.py" in prompt
    assert "def total_with_tax(self, rate: float = 0.2) -> float" in prompt  # the class's members
    assert "node_modules" not in prompt
    assert prompt.count("billing/models.py") == prompt.count("From `billing/models.py`:")  # once each


async def test_watchers_only_where_the_client_allows_dynamic_registration(client: LanguageClient) -> None:
    await until(client, lambda w: w["scanned"], "the first walk")
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
    before = await until(client, lambda w: w["scanned"], "the first walk")
    models = root / "billing" / "models.py"
    # edited outside the editor (a git checkout, a formatter): the watcher tells, or a save does
    models.write_text(MODELS.replace("def make_invoice(customer: str, *labels: str)",
                                     "def make_invoice(customer: str, *labels: str, currency: str = 'EUR')"),
                      encoding="utf-8")
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=models.as_uri(), type=types.FileChangeType.Changed)]))
    await until(client, lambda w: w["generation"] > before["generation"], "the changed file read again")
    app = root / "billing" / "app.py"
    open_doc(client, app.as_uri(), APP)
    prompt = await prompt_at_end_of(client, tgi, app.as_uri(), APP)
    assert "currency: str = 'EUR'" in prompt

    # renamed: a deletion and a creation
    moved = root / "billing" / "invoices.py"
    models.rename(moved)
    state = (await stats(client))["workspace"]
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=models.as_uri(), type=types.FileChangeType.Deleted),
        types.FileEvent(uri=moved.as_uri(), type=types.FileChangeType.Created),
    ]))
    await until(client, lambda w: w["updates"] > state["updates"], "the renamed file read")
    text = APP.replace(".models", ".invoices") + "\n"
    open_doc(client, app.as_uri().replace("app.py", "app2.py"), text)
    prompt = await prompt_at_end_of(client, tgi, app.as_uri().replace("app.py", "app2.py"), text)
    assert "billing/invoices.py" in prompt and "billing/models.py" not in prompt

    # deleted: its definitions are gone from the prompt
    moved.unlink()
    state = (await stats(client))["workspace"]
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=moved.as_uri(), type=types.FileChangeType.Deleted)]))
    await until(client, lambda w: w["generation"] > state["generation"], "the deleted file forgotten")
    prompt = await prompt_at_end_of(client, tgi, app.as_uri().replace("app.py", "app2.py"), text)
    assert "def make_invoice(" not in prompt
