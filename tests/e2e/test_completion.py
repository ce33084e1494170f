"""textDocument/completion and textDocument/inlineCompletion through the real server and real HTTP."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import TGI, clean_env, server_command, start_tgi
from tests.e2e.helpers import initialize, open_doc, wait_for

URI = "file:///tmp/project/shapes.py"
SOURCE = """import math


class Circle:
    def __init__(self, radius: float) -> None:
        self.radius = radius

    def area(self) -> float:
        return {SPACE}

    def describe(self) -> str:
        return f"circle of radius {self.radius}"
"""
SOURCE = SOURCE.replace("{SPACE}", "")
CURSOR = types.Position(line=8, character=15)  # after "return " in Circle.area


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(), server_env=clean_env()))
async def client(lsp_client: LanguageClient, tgi: TGI):
    await initialize(lsp_client, {"endpoint": tgi.url})
    yield
    await lsp_client.shutdown_session()


async def test_inline_completion_comes_from_the_model_with_the_70b_prompt(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"text": "```python\nmath.pi * self.radius ** 2\n```"})
    open_doc(client, URI, SOURCE)
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(URI),
            position=CURSOR,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    assert [item.insert_text for item in result.items] == ["math.pi * self.radius ** 2"]
    assert result.items[0].range == types.Range(CURSOR, CURSOR)

    [body] = tgi.requests()
    inputs = body["inputs"]
    assert not inputs.startswith("<s>")
    assert inputs.startswith("Source: system\n\n ")
    assert inputs.endswith(" <step> Source: assistant\nDestination: user\n\n ")
    assert inputs.count("<step>") == 2
    assert "    def area(self) -> float:\n        return <CURSOR>" in inputs
    assert 'return f"circle of radius {self.radius}"' in inputs
    assert "class Circle" in inputs and "def area(self) -> float" in inputs  # the enclosing scopes are named
    assert body["parameters"]["return_full_text"] is False
    assert "<step>" in body["parameters"]["stop"]
    assert body["stream"] is True


async def test_classic_completion_has_a_text_edit_from_the_word_start(client: LanguageClient, tgi: TGI) -> None:
    source = "import os\n\n\ndef cwd() -> str:\n    return os.ge\n"
    tgi.script({"text": "```python\nos.getcwd()\n```"})
    open_doc(client, URI, source)
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(URI), position=types.Position(4, 16))
    )
    assert isinstance(result, types.CompletionList)
    [item] = result.items
    assert isinstance(item.text_edit, types.TextEdit)
    assert item.text_edit.range == types.Range(types.Position(4, 14), types.Position(4, 16))
    assert item.text_edit.new_text == "getcwd()"


async def test_cancelled_completion_closes_the_tgi_stream(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"text": "```python\n" + "x = 1\n" * 200 + "```", "chunk_delay": 0.05})
    open_doc(client, URI, SOURCE)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(URI),
        position=CURSOR,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    answer = asyncio.ensure_future(
        client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me")
    )
    await wait_for(lambda: tgi.streams()["opened"] == 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(Exception, match=r"(?i)cancel"):
        await answer  # the request still gets an answer: the cancelled error
    await wait_for(lambda: tgi.streams()["closed_early"] == 1, timeout=3)
    assert tgi.streams()["open"] == 0


async def test_tgi_down_gives_one_clear_message_and_the_server_keeps_serving(client: LanguageClient, tgi: TGI) -> None:
    down = start_tgi()
    url = down.url
    down.close()  # nothing listens there now
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": {"endpoint": url}})
    )
    open_doc(client, URI, SOURCE)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(URI),
        position=CURSOR,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    for _ in range(3):
        result = await client.text_document_inline_completion_async(params)
        assert result is not None and not result.items
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1
    assert "Cannot reach the model server" in errors[0].message and url in errors[0].message

    # The model server comes back (here: the configured one); the next request works.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": {"endpoint": tgi.url}})
    )
    tgi.script({"text": "```python\n3.14\n```"})
    result = await client.text_document_inline_completion_async(params)
    assert result is not None and [i.insert_text for i in result.items] == ["3.14"]


@pytest.mark.parametrize("position", [types.Position(99, 0), types.Position(0, 500)])
async def test_invalid_position_is_a_clear_error(client: LanguageClient, tgi: TGI, position: types.Position) -> None:
    open_doc(client, URI, SOURCE)
    with pytest.raises(Exception, match="invalid position"):
        await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(URI), position=position)
        )
    assert tgi.requests() == []
