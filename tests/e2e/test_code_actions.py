"""textDocument/codeAction and codeAction/resolve: Explain and Refactor through the real server."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import TGI, clean_env, server_command
from tests.e2e.helpers import initialize, open_doc

URI = "file:///tmp/project/stats.py"
SOURCE = """def mean(values):
    total = 0
    for v in values:
        total = total + v
    return total / len(values)


def spread(values):
    return max(values) - min(values)
"""


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(), server_env=clean_env()))
async def client(lsp_client: LanguageClient, tgi: TGI):
    await initialize(lsp_client, {"endpoint": tgi.url})
    yield
    await lsp_client.shutdown_session()


async def _actions(client: LanguageClient, rng: types.Range) -> dict[str, types.CodeAction]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(URI),
            range=rng,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert result is not None
    return {a.title: a for a in result if isinstance(a, types.CodeAction)}


async def test_listing_actions_does_not_call_the_model(client: LanguageClient, tgi: TGI) -> None:
    open_doc(client, URI, SOURCE)
    actions = await _actions(client, types.Range(types.Position(1, 4), types.Position(1, 4)))
    assert {"CodeLlama: Explain", "CodeLlama: Refactor"} <= set(actions)
    assert actions["CodeLlama: Refactor"].kind == types.CodeActionKind.RefactorRewrite
    assert tgi.requests() == []


async def test_refactor_returns_a_versioned_edit_of_the_enclosing_function(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"text": "Here you go:\n```python\ndef mean(values):\n    return sum(values) / len(values)\n```\n"})
    open_doc(client, URI, SOURCE)
    actions = await _actions(client, types.Range(types.Position(2, 8), types.Position(2, 8)))
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Refactor"])
    assert resolved.edit is not None and resolved.edit.document_changes
    [change] = resolved.edit.document_changes
    assert isinstance(change, types.TextDocumentEdit)
    assert change.text_document.uri == URI and change.text_document.version == 1
    [edit] = change.edits
    assert edit.range == types.Range(types.Position(0, 0), types.Position(4, 30))
    assert edit.new_text == "def mean(values):\n    return sum(values) / len(values)"

    [body] = tgi.requests()
    assert "Refactor the following Python code" in body["inputs"]
    assert "    for v in values:\n        total = total + v" in body["inputs"]
    assert "def spread" not in body["inputs"].split("Refactor the following")[1]


async def test_explain_delivers_markdown_the_user_can_read(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"text": "`spread` returns the **range** of the values: the largest minus the smallest."})
    open_doc(client, URI, SOURCE)
    actions = await _actions(client, types.Range(types.Position(7, 0), types.Position(8, 36)))
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Explain"])
    assert resolved.command is not None
    [arg] = resolved.command.arguments or []
    assert "the **range** of the values" in arg["markdown"]

    # Executing the command shows it in any client: here with window/showDocument of a markdown file.
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=resolved.command.command, arguments=resolved.command.arguments)
    )
    shown = client.shown_documents
    assert len(shown) == 1 and shown[0].uri.endswith(".md")
    from pathlib import Path
    from urllib.parse import urlparse

    assert "the **range** of the values" in Path(urlparse(shown[0].uri).path).read_text()
