"""workspace/executeCommand `codellama.run` through the real server: every action by name (Ask and Refactor
with an instruction only exist this way), applying results safely, progress and cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests.conftest import TGI
from tests.e2e.helpers import edit_doc, editor_config, open_doc, wait_for
from tests.e2e.test_code_actions import CLIENTS, IN_MEAN, MEAN, SLOW, SOURCE, Editor, initialize_editor, single_edit

RUN = "codellama.run"
CONFIG = editor_config()


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    root = tmp_path / "project"
    root.mkdir()
    return Editor(root)


@pytest_lsp.fixture(params=CLIENTS, config=CONFIG)
async def client(lsp_client: LanguageClient, tgi: TGI, editor: Editor, request: pytest.FixtureRequest):
    await initialize_editor(lsp_client, editor, {"endpoint": tgi.url}, recorded=request.param)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(params=CLIENTS, config=CONFIG)
async def plain_client(lsp_client: LanguageClient, tgi: TGI, editor: Editor, request: pytest.FixtureRequest):
    """A client without window/showDocument."""
    await initialize_editor(lsp_client, editor, {"endpoint": tgi.url}, show_document=False, recorded=request.param)
    yield
    await lsp_client.shutdown_session()


def arguments(editor: Editor, action: str, rng: types.Range = IN_MEAN, **extra: Any) -> list[dict[str, Any]]:
    where = {
        "start": {"line": rng.start.line, "character": rng.start.character},
        "end": {"line": rng.end.line, "character": rng.end.character},
    }
    return [{"action": action, "uri": editor.uri("stats.py"), "range": where, **extra}]


async def run(client: LanguageClient, args: list[dict[str, Any]]) -> Any:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command=RUN, arguments=args))


# ---------------------------------------------------------------------------------------------- actions
async def test_ask_answers_the_question_in_markdown(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    tgi.script({"text": "It divides by zero when `values` is empty."})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    answer = await run(client, arguments(editor, "ask", instruction="What happens with an empty list?"))
    assert answer["kind"] == "markdown" and answer["text"] == "It divides by zero when `values` is empty."
    prompt = tgi.requests()[0]["inputs"]
    assert "What happens with an empty list?" in prompt and "    for v in values:" in prompt
    [shown] = client.shown_documents  # shown to the user, titled with the question
    markdown = Path(shown.uri.removeprefix("file://")).read_text()
    assert markdown.startswith("# Ask: What happens with an empty list?\n")
    assert "divides by zero" in markdown


async def test_ask_without_a_question_is_refused(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    open_doc(client, editor.uri("stats.py"), SOURCE)
    with pytest.raises(JsonRpcException, match="needs the question"):
        await run(client, arguments(editor, "ask"))
    with pytest.raises(JsonRpcException, match="unknown action 'complete'"):
        await run(client, arguments(editor, "complete"))
    assert tgi.requests() == []


async def test_explain_without_show_document_is_a_message(
    plain_client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    tgi.script({"text": "Averages the **values**."})
    open_doc(plain_client, editor.uri("stats.py"), SOURCE)
    answer = await run(plain_client, arguments(editor, "explain"))
    assert answer["kind"] == "markdown"
    assert plain_client.shown_documents == []
    [message] = [m for m in plain_client.messages if "Averages" in m.message]
    assert message.type == types.MessageType.Info
    assert message.message.startswith("# Explain\n\n*stats.py, lines 1–5*\n\nAverages the **values**.")


async def test_refactor_with_an_instruction_applies_a_versioned_edit(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    code = "def mean(values):\n    return math.fsum(values) / len(values)"
    tgi.script({"text": f"```python\n{code}\n```"})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    answer = await run(client, arguments(editor, "refactor", instruction="use math.fsum", apply=True))
    assert answer["applied"] is True and answer["parses"] is True and answer["kind"] == "code"
    change, edit = single_edit(editor.applied[0])
    assert change.text_document.uri == editor.uri("stats.py") and change.text_document.version == 1
    assert edit.range == MEAN and edit.new_text == code
    assert "Instruction: use math.fsum" in tgi.requests()[0]["inputs"]


async def test_docstring_without_apply_only_answers(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    code = 'def mean(values):\n    """The average."""\n    return sum(values) / len(values)'
    tgi.script({"text": f"```python\n{code}\n```"})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    answer = await run(client, arguments(editor, "docstring"))
    assert answer["text"] == code and answer["version"] == 1
    assert answer["range"] == {"start": {"line": 0, "character": 0}, "end": {"line": 4, "character": 30}}
    assert "applied" not in answer and editor.applied == []


async def test_fix_reads_the_diagnostics_it_is_given(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    tgi.script({"text": f"```python\n{SOURCE.split(chr(10) * 3)[0]}\n```"})
    open_doc(client, editor.uri("stats.py"), SOURCE.replace("total / len", "totl / len"))
    diagnostic = {"message": "undefined name 'totl'", "source": "pyflakes", "code": "F821"}
    answer = await run(client, arguments(editor, "fix", diagnostics=[diagnostic, "E501 line too long"], apply=True))
    assert answer["applied"] is True
    prompt = tgi.requests()[0]["inputs"]
    assert "- undefined name 'totl' (pyflakes F821)\n- E501 line too long\n" in prompt


async def test_write_tests_creates_the_test_file(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    tgi.script({"text": "```python\nfrom stats import mean\n\n\ndef test_mean():\n    assert mean([2]) == 2\n```"})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    answer = await run(client, arguments(editor, "tests", apply=True))
    assert answer["applied"] is True and answer["targetUri"] == editor.uri("test_stats.py")
    create, insert = editor.applied[0].document_changes or []
    assert isinstance(create, types.CreateFile) and create.uri == editor.uri("test_stats.py")
    assert create.options is not None and create.options.ignore_if_exists
    assert isinstance(insert, types.TextDocumentEdit) and insert.edits[0].new_text.startswith("from stats import")


# ---------------------------------------------------------------------------------------------- safety
async def test_a_result_for_an_older_version_is_not_applied(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    tgi.script({"text": "```python\ndef mean(values):\n    return sum(values) / len(values)\n```", "chunk_delay": SLOW})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    running = asyncio.ensure_future(run(client, arguments(editor, "refactor", apply=True)))
    await wait_for(lambda: tgi.streams()["opened"] == 1)
    edit_doc(client, uri, 2, (0, 0), (0, 0), "import math\n")
    answer = await running
    assert answer["applied"] is False and answer["stale"] is True and answer["version"] == 1
    assert editor.applied == []
    assert any("changed while the model was working" in m.message for m in client.messages)


async def test_code_that_does_not_parse_is_applied_only_when_the_user_says_so(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    broken = "def mean(values:\n    return sum(values) / len(values)"
    tgi.script({"text": f"```python\n{broken}\n```"}, {"text": f"```python\n{broken}\n```"})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    editor.answer = "Cancel"
    answer = await run(client, arguments(editor, "refactor", apply=True))
    assert answer["parses"] is False and answer["applied"] is False
    assert len(editor.questions) == 1 and "syntax errors" in editor.questions[0].message
    assert editor.applied == []

    editor.answer = "Apply anyway"
    answer = await run(client, arguments(editor, "refactor", apply=True))
    assert answer["applied"] is True
    _, edit = single_edit(editor.applied[0])
    assert edit.new_text == broken


# ---------------------------------------------------------------------------------------------- cancellation
async def test_cancelling_the_progress_stops_the_command_and_its_stream(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    tgi.script({"text": "word " * 200, "chunk_delay": SLOW})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    running = asyncio.ensure_future(run(client, arguments(editor, "refactor", apply=True)))
    await wait_for(lambda: any(len(r) >= 2 for r in client.progress_reports.values()))
    [token] = client.progress_reports
    begin = client.progress_reports[token][0]
    assert isinstance(begin, types.WorkDoneProgressBegin) and begin.title == "CodeLlama: Refactor"
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    with pytest.raises(JsonRpcException) as raised:  # the answer to a cancelled request
        await asyncio.wait_for(running, 5)
    assert raised.value.code == types.LSPErrorCodes.RequestCancelled
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)
    assert tgi.streams()["open"] == 0 and editor.applied == []


async def test_cancel_request_of_the_command_closes_the_stream(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    # pygls runs commands inside its own executeCommand handler: $/cancelRequest must still reach the model.
    tgi.script({"text": "word " * 200, "chunk_delay": SLOW})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    params = types.ExecuteCommandParams(command=RUN, arguments=arguments(editor, "explain"))
    running = asyncio.ensure_future(
        client.protocol.send_request_async(types.WORKSPACE_EXECUTE_COMMAND, params, msg_id="run-1")
    )
    await wait_for(lambda: tgi.streams()["opened"] == 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="run-1"))
    with pytest.raises(JsonRpcException) as raised:
        await asyncio.wait_for(running, 5)
    assert raised.value.code == types.LSPErrorCodes.RequestCancelled
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)
    assert tgi.streams()["open"] == 0
    assert client.shown_documents == []  # nothing half-done is shown
