"""Settings through the protocol: initializationOptions, didChangeConfiguration, bad values."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import TGI, clean_env, server_command
from tests.e2e.helpers import initialize, open_doc

URI = "file:///tmp/project/a.py"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(), server_env=clean_env()))
async def client(lsp_client: LanguageClient, tgi: TGI):
    await initialize(
        lsp_client, {"endpoint": tgi.url, "backend": "tgi", "temperature": 9, "completion": {"maxLines": 0}}
    )
    yield
    await lsp_client.shutdown_session()


async def _complete(client: LanguageClient) -> list[str]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(URI),
            position=types.Position(0, 4),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    return [i.insert_text for i in result.items] if result else []


async def test_bad_values_are_reported_once_and_replaced_by_defaults(client: LanguageClient, tgi: TGI) -> None:
    await client.wait_for_notification(types.WINDOW_SHOW_MESSAGE)
    [warning] = [m for m in client.messages if m.type == types.MessageType.Warning]
    assert "codellama.temperature" in warning.message and "completion.maxLines" in warning.message
    tgi.script({"text": "```python\n1\n```"})
    open_doc(client, URI, "x = \n")
    assert await _complete(client) == ["1"]
    assert tgi.requests()[0]["parameters"]["temperature"] == 0.1  # the completion default


async def test_an_empty_configuration_change_keeps_the_settings(client: LanguageClient, tgi: TGI) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={}))
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"python": {"x": 1}}))
    tgi.script({"text": "```python\n2\n```"})
    open_doc(client, URI, "x = \n")
    assert await _complete(client) == ["2"]
    assert len(tgi.requests()) == 1


async def test_a_configuration_change_applies(client: LanguageClient, tgi: TGI) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"codellama": {"endpoint": tgi.url, "completion": {"enable": False}}}
        )
    )
    open_doc(client, URI, "x = \n")
    assert await _complete(client) == []
    assert tgi.requests() == []
