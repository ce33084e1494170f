"""Settings through the protocol: initializationOptions, didChangeConfiguration, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import TGI
from tests.e2e.helpers import editor_config, initialize, open_doc

URI = "file:///tmp/project/a.py"


@pytest_lsp.fixture(config=editor_config())
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


# -- a token that cannot be a header ------------------------------------------------------------------

SECRET = "hf_E2eSecretToken42"
CLIENTS = ["neovim", "visual-studio-code", "emacs"]


@pytest_lsp.fixture(
    config=editor_config(), params=CLIENTS
)
async def secret_client(lsp_client: LanguageClient, request: pytest.FixtureRequest, tgi: TGI, tmp_path: Path):
    """Real clients' capabilities; the token as `cat token.txt` gives it, with its trailing newline."""
    log = tmp_path / "server.log"
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            initialization_options={
                "codellama": {"endpoint": tgi.url, "apiToken": SECRET + "\n", "logLevel": "debug", "logFile": str(log)}
            },
            root_uri="file:///tmp/project",
        )
    )
    lsp_client.log_file = log  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_token_with_a_line_break_is_refused_and_never_shown(secret_client: LanguageClient, tgi: TGI) -> None:
    client = secret_client
    await client.wait_for_notification(types.WINDOW_SHOW_MESSAGE)
    [warning] = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert "codellama.apiToken" in warning and "line break" in warning
    tgi.script({"text": "```python\nnaïve = '🙂 中'\n```"})
    open_doc(client, URI, "x = \n")
    assert await _complete(client) == ["naïve = '🙂 中'"]  # the server keeps working, without the token
    assert "Authorization" not in str(tgi.requests())  # (the test server records bodies, not headers)
    shown = [m.message for m in client.messages] + [m.message for m in client.log_messages]
    logged = client.log_file.read_text(encoding="utf-8")  # type: ignore[attr-defined]
    assert "model call" in logged  # the log is written (debug level)
    for text in [*shown, logged]:
        assert "E2eSecretToken" not in text
