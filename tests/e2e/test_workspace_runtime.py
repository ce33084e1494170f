"""The workspace index follows the session, through the real server under real clients' recorded capabilities:
``workspace.enable`` turned on and off at run time, caps and exclusions changed, workspace folders added and
removed (one index each), a deleted folder forgotten (the registered watchers report it), and the indexing
processes stopped by ``shutdown``, not only at exit."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.conftest import TGI, server_command
from tests.e2e.helpers import editor_client, open_doc
from tests.e2e.workspace_kit import APP, CLIENTS, make_workspace, prompt_at_end_of, server_env, stats, until

WATCHING = ["visual-studio-code", "emacs"]  # the recorded clients that let the server register watchers
TOOLS = '''def rounded_price(amount: float, step: float = 0.05) -> float:
    """The amount rounded to the nearest step."""
    return round(round(amount / step) * step, 2)
'''
SHOP = '''from .tools import rounded_price


def checkout(amount: float) -> float:
    price = rounded_price(amount)
    return''' + " \n"
_numbers = itertools.count()


def _settings(tgi: TGI, **workspace: Any) -> dict[str, Any]:
    return {"endpoint": tgi.url, "completion": {"debounceMs": 0}, "workspace": workspace}


def _configure(client: LanguageClient, tgi: TGI, **workspace: Any) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": _settings(tgi, **workspace)}))


async def _prompt_in(client: LanguageClient, tgi: TGI, folder: Path, text: str) -> str:
    """The prompt of a completion at the end of ``text``, in a new document of ``folder`` (a new one each
    time: the completion cache would otherwise answer)."""
    uri = (folder / f"scratch_{next(_numbers)}.py").as_uri()
    open_doc(client, uri, text)
    return await prompt_at_end_of(client, tgi, uri, text)


async def _indexers(client: LanguageClient) -> list[int]:
    return _indexers_of((await stats(client))["pid"])


def _indexers_of(server: int) -> list[int]:
    """The server's indexing processes (its children running the indexer), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # not a process, or gone meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server and b"lsp.workspace.worker" in command and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


async def _until_indexers(client: LanguageClient, predicate: Any, what: str) -> list[int]:
    for _ in range(1200):  # (a bound that only turns a hang into a failure)
        pids = await _indexers(client)
        if predicate(pids):
            return pids
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: {pids}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    workspace = tmp_path / "shop"
    make_workspace(workspace)
    return workspace


@pytest.fixture
def settings() -> dict[str, Any]:
    return {}  # the workspace settings at initialize


@pytest_lsp.fixture(
    params=CLIENTS,
    config=ClientServerConfig(server_command=server_command(), server_env=server_env(), client_factory=editor_client),
)
async def client(request: Any, lsp_client: LanguageClient, tgi: TGI, root: Path, settings: dict[str, Any]):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="shop")],
            initialization_options={"codellama": _settings(tgi, **settings)},
        )
    )
    lsp_client.kind = request.param  # type: ignore[attr-defined]
    yield
    if not getattr(lsp_client, "shut_down", False):
        await lsp_client.shutdown_session()


@pytest.mark.parametrize("settings", [{"enable": False}])
async def test_the_index_starts_and_stops_with_the_setting(client: LanguageClient, tgi: TGI, root: Path,
                                                           settings: dict[str, Any]) -> None:
    assert (await stats(client))["workspace"]["files"] == 0
    assert "def make_invoice(" not in await _prompt_in(client, tgi, root / "billing", APP)

    _configure(client, tgi, enable=True)
    await until(client, lambda w: w["scanned"] and w["files"] == 3, "the index started by the setting")
    assert "def make_invoice(customer: str, *labels: str) -> Invoice" in await _prompt_in(
        client, tgi, root / "billing", APP)
    assert len(await _indexers(client)) == 1

    _configure(client, tgi, enable=False)
    await _until_indexers(client, lambda pids: not pids, "the indexing process stopped by the setting")
    assert (await stats(client))["workspace"]["files"] == 0
    assert "def make_invoice(" not in await _prompt_in(client, tgi, root / "billing", APP)


async def test_caps_and_exclusions_apply_at_run_time(client: LanguageClient, tgi: TGI, root: Path) -> None:
    await until(client, lambda w: w["scanned"] and w["files"] == 3, "the first walk")
    first = await _indexers(client)

    _configure(client, tgi, exclude=["billing/models.py"])
    await until(client, lambda w: w["scanned"] and w["files"] == 2, "the walk without the excluded file")
    excluded = await _until_indexers(client, lambda pids: len(pids) == 1 and pids != first, "a new indexer")
    assert "def make_invoice(" not in await _prompt_in(client, tgi, root / "billing", APP)

    _configure(client, tgi, maxFiles=1)  # the exclusion is gone, the cap is new
    await until(client, lambda w: w["scanned"] and w["files"] == 1, "the walk under the new cap")
    await _until_indexers(client, lambda pids: len(pids) == 1 and pids not in (first, excluded), "a new indexer")


async def test_workspace_folders_added_and_removed(client: LanguageClient, tgi: TGI, root: Path,
                                                   tmp_path: Path) -> None:
    await until(client, lambda w: w["scanned"], "the first walk")
    tools = tmp_path / "tools"
    (tools / "pricing").mkdir(parents=True)
    (tools / "pricing" / "__init__.py").write_text("")
    (tools / "pricing" / "tools.py").write_text(TOOLS)
    client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
        event=types.WorkspaceFoldersChangeEvent(added=[types.WorkspaceFolder(uri=tools.as_uri(), name="tools")],
                                                removed=[])))
    await until(client, lambda w: w["files"] == 5 and w["scanned"], "the added folder's walk")
    assert len(await _indexers(client)) == 2  # one index per folder
    # each document's definitions come from the index of its own folder
    assert "def rounded_price(amount: float, step: float = 0.05) -> float" in await _prompt_in(
        client, tgi, tools / "pricing", SHOP)
    assert "def make_invoice(customer: str, *labels: str) -> Invoice" in await _prompt_in(
        client, tgi, root / "billing", APP)

    client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
        event=types.WorkspaceFoldersChangeEvent(added=[], removed=[types.WorkspaceFolder(uri=root.as_uri(),
                                                                                       name="shop")])))
    await _until_indexers(client, lambda pids: len(pids) == 1, "the removed folder's indexing process stopped")
    assert (await stats(client))["workspace"]["files"] == 2
    assert "def make_invoice(" not in await _prompt_in(client, tgi, root / "billing", APP)
    assert "def rounded_price(" in await _prompt_in(client, tgi, tools / "pricing", SHOP)


def _glob(pattern: str) -> re.Pattern[str]:
    """An LSP glob pattern (``*``, ``**``, ``?``, ``{a,b}``) as a regular expression over relative paths."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "{":
            end = pattern.index("}", i)
            out, i = out + "(?:" + "|".join(re.escape(a) for a in pattern[i + 1 : end].split(",")) + ")", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def _reported(client: LanguageClient, root: Path, path: Path, kind: types.WatchKind) -> bool:
    """Whether the client, watching with the watchers the server registered, reports ``kind`` for ``path``."""
    relative = path.relative_to(root).as_posix()
    for registration in client.registrations.values():  # type: ignore[attr-defined]
        if registration.method != types.WORKSPACE_DID_CHANGE_WATCHED_FILES:
            continue
        options: Any = registration.register_options
        watchers = options["watchers"] if isinstance(options, dict) else options.watchers
        for watcher in watchers:
            glob = watcher["globPattern"] if isinstance(watcher, dict) else watcher.glob_pattern
            watched = (watcher.get("kind") if isinstance(watcher, dict) else watcher.kind) or 7
            if isinstance(glob, str) and watched & kind and _glob(glob).match(relative):
                return True
    return False


@pytest.mark.parametrize("client", WATCHING, indirect=True)
async def test_a_deleted_folder_is_forgotten(client: LanguageClient, tgi: TGI, root: Path) -> None:
    await until(client, lambda w: w["scanned"] and w["files"] == 3, "the first walk")
    await until(client, lambda w: bool(client.registrations), "the watchers")  # type: ignore[attr-defined]
    assert "def make_invoice(" in await _prompt_in(client, tgi, root, APP.replace(".models", "billing.models"))
    folder = root / "billing"
    shutil.rmtree(folder)
    # a client reports a deleted folder as one event for the folder's path, where a watcher matches it
    assert _reported(client, root, folder, types.WatchKind.Delete), "no registered watcher reports the folder"
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
        changes=[types.FileEvent(uri=folder.as_uri(), type=types.FileChangeType.Deleted)]))
    await until(client, lambda w: w["files"] == 0, "the deleted folder's files forgotten")
    assert "def make_invoice(" not in await _prompt_in(client, tgi, root, APP.replace(".models", "billing.models"))


async def test_shutdown_stops_the_indexing_processes(client: LanguageClient) -> None:
    await until(client, lambda w: w["scanned"], "the first walk")
    assert len(await _indexers(client)) == 1
    server = (await stats(client))["pid"]
    await client.shutdown_async(None)
    client.shut_down = True  # type: ignore[attr-defined]
    try:
        # stopped by shutdown itself, before exit (the server still runs: its children are still its own)
        assert Path(f"/proc/{server}").exists()
        assert _indexers_of(server) == []
    finally:
        client.exit(None)
