"""Actions under real clients' recorded capabilities (Neovim 0.11, VS Code, Emacs), on text with emoji,
accents and CJK: an edit that arrives while the server waits for the client cannot move an action's target;
an editor that never answers the server's requests does not hold the user's request forever; Write tests
never reads or targets a file outside the workspace folders."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from tests.conftest import TGI, clean_env, server_command
from tests.e2e.helpers import answer_registrations, edit_doc, open_doc

CLIENTS = ["neovim", "visual-studio-code", "emacs"]
SOURCE = (
    "# Café ☕ statistics: 平均\n"
    "def mean(values):\n"
    '    """Moyenne des valeurs 🎯, 平均値."""\n'
    "    return sum(values) / len(values)\n"
    "\n"
    "\n"
    'LABEL = "naïve 🚀 试验"\n'
)
MEAN_LINES = types.Range(types.Position(1, 0), types.Position(4, 0))  # line starts: the same in every encoding
TARGET = types.Range(types.Position(1, 0), types.Position(3, 36))  # mean() without its line break (ASCII)
MEAN = SOURCE.split("\n", 1)[1].split("\n\n", 1)[0] + "\n"
REPLY = '```python\ndef mean(values):\n    """Moyenne 🎯."""\n    return sum(values) / max(len(values), 1)\n```'


@dataclass
class Editor:
    """What the editor does when the server asks it something: answer, or never answer; and what to do
    just before answering the progress request (the user typing)."""

    root: Path
    hang: set[str] = field(default_factory=set)
    before_progress: list[Any] = field(default_factory=list)
    applied: list[types.WorkspaceEdit] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)


EDITOR: list[Editor] = []  # the running test's editor, read by the client's handlers


async def _never() -> None:
    """Not answering until the test ends (then the answer comes late, which the server must ignore)."""
    await EDITOR[-1].released.wait()


def make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    default_create = DEFAULT_CLIENT_FEATURES[types.WINDOW_WORK_DONE_PROGRESS_CREATE]

    async def create(ls: LanguageClient, params: types.WorkDoneProgressCreateParams) -> None:
        editor = EDITOR[-1]
        for step in editor.before_progress:
            step(ls)
        if "progress" in editor.hang:
            await _never()
        default_create(ls, params)

    async def show_document(ls: LanguageClient, params: types.ShowDocumentParams) -> types.ShowDocumentResult:
        EDITOR[-1].shown.append(params.uri)
        if "show" in EDITOR[-1].hang:
            await _never()
        return types.ShowDocumentResult(success=True)

    async def apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams) -> Any:
        EDITOR[-1].applied.append(params.edit)
        if "apply" in EDITOR[-1].hang:
            await _never()
        return types.ApplyWorkspaceEditResult(applied=True)

    features = {
        **DEFAULT_CLIENT_FEATURES,
        types.WINDOW_WORK_DONE_PROGRESS_CREATE: create,
        types.WINDOW_SHOW_DOCUMENT: show_document,
        types.WORKSPACE_APPLY_EDIT: apply_edit,
    }
    register_lsp_features(client, features)
    answer_registrations(client)
    return client


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    root = tmp_path / "project"
    root.mkdir()
    EDITOR.append(Editor(root))
    return EDITOR[-1]


@pytest_lsp.fixture(
    params=CLIENTS,
    config=ClientServerConfig(server_command=server_command(), server_env=clean_env(), client_factory=make_client),
)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest, tgi: TGI, editor: Editor):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            initialization_options={"codellama": {"endpoint": tgi.url, "requestTimeout": 10}},
            root_uri=editor.root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=editor.root.as_uri(), name="project")],
        )
    )
    yield
    editor.released.set()
    await lsp_client.shutdown_session()


async def run(client: LanguageClient, **arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codellama.run", arguments=[arguments])
    )


def range_json(r: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": r.start.line, "character": r.start.character},
        "end": {"line": r.end.line, "character": r.end.character},
    }


async def test_an_edit_while_the_server_waits_for_the_progress_bar_cannot_move_the_target(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    uri = (editor.root / "stats.py").as_uri()
    open_doc(client, uri, SOURCE)
    # The user types a line above the function while the server waits for the progress token: the server
    # must still work on (and answer for) the text it was asked about.
    editor.before_progress.append(lambda ls: edit_doc(ls, uri, 2, (0, 0), (0, 0), "import math  # 数学\n"))
    tgi.script({"text": REPLY})
    answer = await run(client, action="refactor", uri=uri, range=range_json(MEAN_LINES), apply=True)

    [body] = tgi.requests()
    assert MEAN.rstrip("\n") in body["inputs"]  # the target as it was asked about
    assert "import math" not in body["inputs"]
    assert answer["version"] == 1 and answer["range"] == range_json(TARGET)
    assert answer["stale"] is True and answer["applied"] is False
    assert editor.applied == []  # nothing lands on the moved text


async def test_without_an_edit_the_snapshot_result_lands_on_its_version(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    uri = (editor.root / "stats.py").as_uri()
    open_doc(client, uri, SOURCE)
    tgi.script({"text": REPLY})
    answer = await run(client, action="refactor", uri=uri, range=range_json(MEAN_LINES), apply=True)
    assert answer["applied"] is True
    [edit] = editor.applied
    [change] = edit.document_changes or []
    assert isinstance(change, types.TextDocumentEdit) and change.text_document.version == 1
    [text_edit] = change.edits
    assert isinstance(text_edit, types.TextEdit) and text_edit.range == TARGET
    assert "Moyenne 🎯" in text_edit.new_text


async def test_an_editor_that_never_answers_does_not_hold_the_request(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    """No answer to the progress token: the work goes on without a bar. No answer to showDocument: the
    explanation comes as a message. No answer to applyEdit: the answer carries the edit."""
    uri = (editor.root / "stats.py").as_uri()
    open_doc(client, uri, SOURCE)
    editor.hang.update({"progress", "show", "apply"})
    tgi.script({"text": "Il calcule la moyenne 🎯 (平均)."}, {"text": REPLY})

    explained = await asyncio.wait_for(run(client, action="explain", uri=uri, range=range_json(MEAN_LINES)), 60)
    assert "moyenne 🎯" in explained["text"]
    assert any("moyenne 🎯" in m.message for m in client.messages if m.type == types.MessageType.Info)

    applied = await asyncio.wait_for(
        run(client, action="refactor", uri=uri, range=range_json(MEAN_LINES), apply=True), 60
    )
    assert applied["applied"] is False
    [change] = applied["edit"]["documentChanges"]
    assert change["textDocument"] == {"uri": uri, "version": 1}
    assert "Moyenne 🎯" in change["edits"][0]["newText"]


async def test_write_tests_never_reads_or_targets_files_outside_the_workspace(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    outside = editor.root.parent / "outside"
    outside.mkdir()
    (outside / "test_stats.py").write_text("SECRET = 'ne pas lire 🔒'\n")
    (outside / "stats.py").write_text(SOURCE)
    uri = editor.root.as_uri() + "/../outside/stats.py"  # a path that looks as if it were in the workspace
    open_doc(client, uri, SOURCE)
    tgi.script({"text": "```python\ndef test_mean():\n    assert mean([1, 3]) == 2\n```"})
    answer = await run(client, action="tests", uri=uri, range=range_json(MEAN_LINES), apply=True, show=False)

    [body] = tgi.requests()
    assert "ne pas lire" not in body["inputs"] and "outside/test_stats.py" not in body["inputs"]
    assert "targetUri" not in answer and "no file to put tests beside" in answer["text"]
    assert editor.applied == []
    assert (outside / "test_stats.py").read_text() == "SECRET = 'ne pas lire 🔒'\n"
