"""textDocument/codeAction and codeAction/resolve through the real server: every action, the safety of the
edits (versions, the syntax check), progress and cancellation."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import TGI
from tests.e2e.helpers import command_of, edit_doc, editor_config, open_doc, wait_for
from tests.tgi_server import pieces

SOURCE = """def mean(values):
    total = 0
    for v in values:
        total = total + v
    return total / len(values)


def spread(values):
    return max(values) - min(values)


LABEL = "naïve 🚀 试验, café"  # non-ASCII text: its columns differ in UTF-8, UTF-16 and UTF-32
"""
MEAN = types.Range(types.Position(0, 0), types.Position(4, 30))  # the whole of mean()
IN_MEAN = types.Range(types.Position(2, 8), types.Position(2, 8))
SLOW = 0.05  # seconds between tokens when a test needs the model to be still running


@dataclass
class Editor:
    """The editor's side: its workspace folder, the edits the server asked it to apply, the questions the
    server asked (and the answer the user gives)."""

    root: Path
    applied: list[types.WorkspaceEdit] = field(default_factory=list)
    questions: list[types.ShowMessageRequestParams] = field(default_factory=list)
    answer: str | None = "Apply anyway"

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    root = tmp_path / "project"
    root.mkdir()
    return Editor(root)


async def initialize_editor(
    client: LanguageClient,
    editor: Editor,
    settings: dict[str, Any],
    *,
    show_document: bool = True,
    resolve: bool = True,
    recorded: str = "neovim",
) -> None:
    """A real client's recorded capabilities (`recorded`: "neovim", "visual-studio-code", "emacs"), with
    what our features use switched on where that client lacks it: progress, showDocument, resolve, versioned
    edits that may create files, workspace/applyEdit; and a user who answers questions."""

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        editor.applied.append(params.edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def ask(params: types.ShowMessageRequestParams) -> types.MessageActionItem | None:
        editor.questions.append(params)
        return types.MessageActionItem(editor.answer) if editor.answer else None

    capabilities = client_capabilities(recorded)
    shown = capabilities.window.show_message if capabilities.window else None
    capabilities.window = types.WindowClientCapabilities(
        work_done_progress=True,
        show_document=types.ShowDocumentClientCapabilities(support=show_document),
        show_message=shown,
    )
    workspace = capabilities.workspace or types.WorkspaceClientCapabilities()
    workspace.apply_edit = True
    workspace.workspace_edit = types.WorkspaceEditClientCapabilities(
        document_changes=True, resource_operations=[types.ResourceOperationKind.Create]
    )
    capabilities.workspace = workspace
    text_document = capabilities.text_document or types.TextDocumentClientCapabilities()
    recorded_actions = text_document.code_action
    text_document.code_action = types.CodeActionClientCapabilities(
        resolve_support=types.ClientCodeActionResolveOptions(properties=["edit", "command"]) if resolve else None,
        data_support=True,
        code_action_literal_support=recorded_actions.code_action_literal_support if recorded_actions else None,
    )
    capabilities.text_document = text_document
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            initialization_options={"codellama": settings},
            root_uri=editor.root.as_uri(),
        )
    )


CLIENTS = ["neovim", "visual-studio-code", "emacs"]


@pytest_lsp.fixture(
    params=CLIENTS, config=editor_config()
)
async def client(lsp_client: LanguageClient, tgi: TGI, editor: Editor, request: pytest.FixtureRequest):
    await initialize_editor(lsp_client, editor, {"endpoint": tgi.url}, recorded=request.param)
    yield
    await lsp_client.shutdown_session()


async def actions_at(
    client: LanguageClient,
    uri: str,
    rng: types.Range,
    diagnostics: list[types.Diagnostic] | None = None,
    only: list[str] | None = None,
) -> dict[str, types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=diagnostics or [], only=only),
        )
    )
    assert result is not None
    return {a.title: a for a in result if isinstance(a, types.CodeAction)}


def single_edit(edit: types.WorkspaceEdit | None) -> tuple[types.TextDocumentEdit, types.TextEdit]:
    assert edit is not None and edit.document_changes
    [change] = edit.document_changes
    assert isinstance(change, types.TextDocumentEdit)
    [text_edit] = change.edits
    assert isinstance(text_edit, types.TextEdit)
    return change, text_edit


# ---------------------------------------------------------------------------------------------- listing
async def test_listing_actions_does_not_call_the_model(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    open_doc(client, editor.uri("stats.py"), SOURCE)
    actions = await actions_at(client, editor.uri("stats.py"), IN_MEAN)
    assert set(actions) == {
        "CodeLlama: Explain",
        "CodeLlama: Refactor",
        "CodeLlama: Add docstring",
        "CodeLlama: Write tests",
    }
    assert actions["CodeLlama: Refactor"].kind == types.CodeActionKind.RefactorRewrite
    assert actions["CodeLlama: Add docstring"].kind == types.CodeActionKind.RefactorRewrite
    assert actions["CodeLlama: Write tests"].kind == types.CodeActionKind.Refactor
    assert actions["CodeLlama: Explain"].kind == types.CodeActionKind.Empty
    assert all(a.edit is None and a.command is None for a in actions.values())
    assert tgi.requests() == []


async def test_clients_filter_by_standard_kinds(client: LanguageClient, editor: Editor) -> None:
    open_doc(client, editor.uri("stats.py"), SOURCE)
    problem = types.Diagnostic(range=IN_MEAN, message="something", source="lint")
    refactors = await actions_at(client, editor.uri("stats.py"), IN_MEAN, [problem], only=["refactor"])
    assert set(refactors) == {"CodeLlama: Refactor", "CodeLlama: Add docstring", "CodeLlama: Write tests"}
    # A diagnostic for text that is no longer there (another server, an older version) is skipped.
    gone = types.Diagnostic(range=types.Range(types.Position(99, 0), types.Position(99, 4)), message="old")
    fixes = await actions_at(client, editor.uri("stats.py"), IN_MEAN, [problem, gone], only=["quickfix"])
    assert [(title, a.kind) for title, a in fixes.items()] == [("CodeLlama: Fix “something”", "quickfix")]


# ---------------------------------------------------------------------------------------------- each action
async def test_refactor_returns_a_versioned_edit_of_the_enclosing_function(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    tgi.script({"text": "Here you go:\n```python\ndef mean(values):\n    return sum(values) / len(values)\n```\n"})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, IN_MEAN)
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Refactor"])
    change, edit = single_edit(resolved.edit)
    assert change.text_document.uri == uri and change.text_document.version == 1
    assert edit.range == MEAN
    assert edit.new_text == "def mean(values):\n    return sum(values) / len(values)"

    [body] = tgi.requests()
    assert "Refactor the following Python code" in body["inputs"]
    assert "    for v in values:\n        total = total + v" in body["inputs"]
    assert "def spread" not in body["inputs"].split("Refactor the following")[1]


async def test_explain_delivers_markdown_the_user_can_read(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    tgi.script({"text": "`spread` returns the **range** of the values: the largest minus the smallest."})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, types.Range(types.Position(7, 0), types.Position(8, 36)))
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Explain"])
    assert resolved.edit is None and resolved.command is not None
    assert resolved.command.command == "codellama.showExplanation"
    [arg] = resolved.command.arguments or []
    assert "the **range** of the values" in arg["markdown"]
    assert arg["uri"] == uri and arg["range"]["start"] == {"line": 7, "character": 0}

    # Executing the command shows it in any client: here with window/showDocument of a markdown file.
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=resolved.command.command, arguments=resolved.command.arguments)
    )
    shown = client.shown_documents
    assert len(shown) == 1 and shown[0].uri.endswith(".md")
    markdown = Path(urlparse(shown[0].uri).path).read_text()
    assert markdown.startswith("# Explain\n\n*stats.py, lines 8–9*\n")
    assert "the **range** of the values" in markdown


async def test_docstring_rewrites_the_function_with_its_documentation(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    documented = (
        'def spread(values):\n    """The largest value minus the smallest."""\n    return max(values) - min(values)'
    )
    tgi.script({"text": f"```python\n{documented}\n```"})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, types.Range(types.Position(8, 8), types.Position(8, 8)))
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Add docstring"])
    change, edit = single_edit(resolved.edit)
    assert change.text_document.version == 1
    assert edit.range == types.Range(types.Position(7, 0), types.Position(8, 36))
    assert edit.new_text == documented
    assert "Add a documentation comment" in tgi.requests()[0]["inputs"]


async def test_fix_is_a_quickfix_for_any_diagnostic_and_the_model_reads_it(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    buggy = SOURCE.replace("return total / len", "return totl / len")
    fixed = SOURCE.split("\n\n\n")[0]  # the original mean()
    tgi.script({"text": f"```python\n{fixed}\n```"})
    uri = editor.uri("stats.py")
    open_doc(client, uri, buggy)
    problem = types.Diagnostic(
        range=types.Range(types.Position(4, 11), types.Position(4, 15)),
        message="undefined name 'totl'",
        severity=types.DiagnosticSeverity.Error,
        source="pyflakes",
        code="F821",
    )
    actions = await actions_at(client, uri, problem.range, [problem])
    fix = actions["CodeLlama: Fix “undefined name 'totl'”"]
    assert fix.kind == types.CodeActionKind.QuickFix and list(fix.diagnostics or []) == [problem]
    assert not fix.is_preferred  # a model's fix is never applied automatically
    assert tgi.requests() == []

    resolved = await client.code_action_resolve_async(fix)
    _, edit = single_edit(resolved.edit)
    assert edit.range == types.Range(types.Position(0, 0), types.Position(4, 29))  # mean(), not just `totl`
    assert edit.new_text == fixed
    prompt = tgi.requests()[0]["inputs"]
    assert "Fix the following Python code" in prompt
    assert "- error: undefined name 'totl' (pyflakes F821), at `totl` in `return totl / len(values)`" in prompt


async def test_write_tests_creates_the_test_file_in_the_tests_folder(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    (editor.root / "tests").mkdir()
    tests = "from stats import mean\n\n\ndef test_mean():\n    assert mean([1, 2, 3]) == 2"
    tgi.script({"text": f"```python\n{tests}\n```"})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    actions = await actions_at(client, editor.uri("stats.py"), IN_MEAN)
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Write tests"])
    assert resolved.edit is not None and resolved.edit.document_changes
    create, insert = resolved.edit.document_changes
    target = editor.uri("tests/test_stats.py")
    assert create == types.CreateFile(uri=target, options=types.CreateFileOptions(ignore_if_exists=True))
    assert isinstance(insert, types.TextDocumentEdit)
    assert insert.text_document == types.OptionalVersionedTextDocumentIdentifier(uri=target, version=None)
    start = types.Range(types.Position(0, 0), types.Position(0, 0))
    assert list(insert.edits) == [types.TextEdit(range=start, new_text=tests + "\n")]
    prompt = tgi.requests()[0]["inputs"]
    assert "Python code from `stats.py`, to be saved as `tests/test_stats.py`" in prompt
    assert "    for v in values:" in prompt  # the function at the cursor


async def test_write_tests_appends_to_an_existing_test_file_on_disk(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    existing = "import stats\n\n\ndef test_spread():\n    assert stats.spread([1, 3]) == 2\n"
    (editor.root / "test_stats.py").write_text(existing)
    tgi.script({"text": "```python\ndef test_mean():\n    assert stats.mean([2]) == 2\n```"})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    actions = await actions_at(client, editor.uri("stats.py"), IN_MEAN)
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Write tests"])
    change, edit = single_edit(resolved.edit)  # no CreateFile: the file is there
    assert change.text_document == types.OptionalVersionedTextDocumentIdentifier(
        uri=editor.uri("test_stats.py"), version=None
    )
    assert edit.range == types.Range(types.Position(5, 0), types.Position(5, 0))
    assert edit.new_text == "\n\ndef test_mean():\n    assert stats.mean([2]) == 2\n"
    assert "`test_stats.py` exists already" in tgi.requests()[0]["inputs"]


async def test_write_tests_appends_to_the_open_test_document_at_its_version(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    (editor.root / "tests").mkdir()
    unsaved = "import stats\n\n\ndef test_spread():\n    assert stats.spread([1, 3]) == 2"
    open_doc(client, editor.uri("tests/test_stats.py"), unsaved, version=7)
    tgi.script({"text": "```python\ndef test_mean():\n    assert stats.mean([2]) == 2\n```"})
    open_doc(client, editor.uri("stats.py"), SOURCE)
    actions = await actions_at(client, editor.uri("stats.py"), IN_MEAN)
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Write tests"])
    change, edit = single_edit(resolved.edit)
    assert change.text_document.uri == editor.uri("tests/test_stats.py") and change.text_document.version == 7
    assert edit.range == types.Range(types.Position(4, 36), types.Position(4, 36))
    assert edit.new_text == "\n\n\ndef test_mean():\n    assert stats.mean([2]) == 2\n"


async def test_rust_tests_go_into_the_same_file(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    source = "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"
    tgi.script({"text": "```rust\n#[test]\nfn adds() {\n    assert_eq!(add(1, 2), 3);\n}\n```"})
    uri = editor.uri("lib.rs")
    open_doc(client, uri, source, language="rust")
    actions = await actions_at(client, uri, types.Range(types.Position(1, 4), types.Position(1, 4)))
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Write tests"])
    change, edit = single_edit(resolved.edit)
    assert change.text_document.uri == uri and change.text_document.version == 1
    assert edit.range == types.Range(types.Position(3, 0), types.Position(3, 0))
    assert edit.new_text.startswith("\n#[cfg(test)]\nmod tests {\n    use super::*;\n")
    assert "    fn adds() {\n        assert_eq!(add(1, 2), 3);\n    }\n}\n" in edit.new_text
    assert "mod tests" in tgi.requests()[0]["inputs"]


# ---------------------------------------------------------------------------------------------- safety
async def test_an_action_listed_for_an_older_version_is_not_run(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, IN_MEAN)
    edit_doc(client, uri, 2, (0, 0), (0, 0), "# moved on\n")
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Refactor"])
    assert resolved.edit is None and resolved.disabled is not None
    assert tgi.requests() == []


async def test_a_document_changed_while_the_model_runs_gets_no_edit(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    reply = "```python\ndef mean(values):\n    return sum(values) / len(values)\n```"
    tgi.script({"text": reply, "chunk_delay": SLOW})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, IN_MEAN)
    resolving = asyncio.ensure_future(client.code_action_resolve_async(actions["CodeLlama: Refactor"]))
    await wait_for(lambda: tgi.streams()["opened"] == 1)
    edit_doc(client, uri, 2, (0, 0), (0, 0), "import math\n")  # every line moves down: old offsets are wrong
    resolved = await resolving
    assert tgi.streams()["finished"] == 1  # the model did answer
    assert resolved.edit is None and resolved.command is None
    assert resolved.disabled is not None and "changed while the model was working" in resolved.disabled.reason
    assert any("changed while the model was working" in m.message for m in client.messages)


async def test_code_that_would_not_parse_is_shown_for_review_not_applied(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    broken = "def mean(values:\n    return sum(values) / len(values)"
    tgi.script({"text": f"```python\n{broken}\n```"})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, IN_MEAN)
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Refactor"])
    assert resolved.edit is None and resolved.command is not None
    assert resolved.command.command == "codellama.reviewProposal"
    assert "does not parse" in resolved.command.title
    [proposal] = resolved.command.arguments or []
    assert proposal["text"] == broken and proposal["version"] == 1
    assert proposal["range"] == {"start": {"line": 0, "character": 0}, "end": {"line": 4, "character": 30}}
    assert "syntax errors" in proposal["reason"]

    # The user sees the proposal, declines: nothing lands.
    editor.answer = "Cancel"
    params = types.ExecuteCommandParams(command=resolved.command.command, arguments=resolved.command.arguments)
    assert await client.workspace_execute_command_async(params) is False
    shown = Path(urlparse(client.shown_documents[-1].uri).path).read_text()
    assert broken in shown and "syntax errors" in shown
    assert len(editor.questions) == 1 and editor.applied == []

    # Or accepts: a versioned edit of exactly the target range.
    editor.answer = "Apply anyway"
    assert await client.workspace_execute_command_async(params) is True
    change, edit = single_edit(editor.applied[0])
    assert change.text_document.version == 1 and edit.range == MEAN and edit.new_text == broken

    # Never on a newer version of the document.
    edit_doc(client, uri, 2, (0, 0), (0, 0), "# moved on\n")
    assert await client.workspace_execute_command_async(params) is False
    assert len(editor.applied) == 1


# ---------------------------------------------------------------------------------------------- progress
async def test_the_client_sees_progress_with_the_token_count(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    answer = "The mean of the values: their sum divided by how many there are. " * 3
    tgi.script({"text": answer, "chunk_delay": 0.01})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, IN_MEAN)
    await client.code_action_resolve_async(actions["CodeLlama: Explain"])
    [reports] = client.progress_reports.values()
    begin, *middle, end = reports
    assert isinstance(begin, types.WorkDoneProgressBegin)
    assert begin.title == "CodeLlama: Explain" and begin.cancellable
    assert middle and all(isinstance(r, types.WorkDoneProgressReport) for r in middle)
    counts = [int(re.fullmatch(r"(\d+) tokens", r.message or "").group(1)) for r in middle]  # type: ignore[union-attr]
    assert counts == sorted(counts) and counts[0] >= 1
    assert isinstance(end, types.WorkDoneProgressEnd) and end.message == f"done: {len(pieces(answer))} tokens"


async def test_cancelling_the_progress_closes_the_model_stream(
    client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    tgi.script({"text": "word " * 200, "chunk_delay": SLOW})  # ten seconds, unless cancelled
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, IN_MEAN)
    resolving = asyncio.ensure_future(client.code_action_resolve_async(actions["CodeLlama: Explain"]))
    await wait_for(lambda: any(len(r) >= 2 for r in client.progress_reports.values()))  # begin and a report
    [token] = client.progress_reports
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))
    resolved = await asyncio.wait_for(resolving, 5)
    assert resolved.command is None and resolved.edit is None  # nothing to show or apply
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)
    assert tgi.streams()["open"] == 0
    end = client.progress_reports[token][-1]
    assert isinstance(end, types.WorkDoneProgressEnd) and end.message == "cancelled"


async def test_cancel_request_closes_the_model_stream(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    tgi.script({"text": "word " * 200, "chunk_delay": SLOW})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    actions = await actions_at(client, uri, IN_MEAN)
    resolving = asyncio.ensure_future(
        client.protocol.send_request_async(types.CODE_ACTION_RESOLVE, actions["CodeLlama: Refactor"], msg_id="r-1")
    )
    await wait_for(lambda: tgi.streams()["opened"] == 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="r-1"))
    with pytest.raises(JsonRpcException) as raised:
        await asyncio.wait_for(resolving, 5)
    assert raised.value.code == types.LSPErrorCodes.RequestCancelled
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)
    assert tgi.streams()["open"] == 0


# ---------------------------------------------------------------------------------------------- no resolve
@pytest_lsp.fixture(
    params=CLIENTS, config=editor_config()
)
async def plain_client(lsp_client: LanguageClient, tgi: TGI, editor: Editor, request: pytest.FixtureRequest):
    await initialize_editor(lsp_client, editor, {"endpoint": tgi.url}, resolve=False, recorded=request.param)
    yield
    await lsp_client.shutdown_session()


async def test_a_client_without_resolve_gets_commands_that_run_the_action(
    plain_client: LanguageClient, tgi: TGI, editor: Editor
) -> None:
    uri = editor.uri("stats.py")
    open_doc(plain_client, uri, SOURCE)
    result = await plain_client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri),
            range=types.Range(types.Position(2, 8), types.Position(2, 8)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    [raw] = [a for a in result or [] if a.title == "CodeLlama: Refactor"]
    refactor = command_of(raw)
    assert refactor.command == "codellama.run"
    assert tgi.requests() == []  # listing stays free
    tgi.script({"text": "```python\ndef mean(values):\n    return sum(values) / len(values)\n```"})
    await plain_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=refactor.command, arguments=refactor.arguments)
    )
    [edit] = editor.applied
    _, text_edit = single_edit(edit)
    assert text_edit.new_text.startswith("def mean(values):\n    return sum(values)")
