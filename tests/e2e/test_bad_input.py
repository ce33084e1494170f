"""Bad input from the editor: positions, documents, versions, sizes, encodings, languages, settings and
JSON-RPC framing. The answer is a clear error (or a best effort), never a crash or a hang: after each,
the server still completes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import TGI, clean_env, server_command
from tests.e2e import kit
from tests.e2e.helpers import CLIENTS, ENCODING_OF

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANSWER = {"text": "```python\nanswer(value)\n```"}


@pytest_lsp.fixture(
    scope="module",
    params=CLIENTS,
    config=ClientServerConfig(server_command(), client_factory=kit.make_client, server_env=clean_env()),
)
async def client(lsp_client: LanguageClient, tgi_server: TGI, request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """One server per real client's recorded capabilities (and so per position encoding)."""
    await kit.initialize_plain(lsp_client, kit.settings(tgi_server.url), capabilities=request.param)
    lsp_client.encoding = ENCODING_OF[request.param]  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def fresh(client: LanguageClient, tgi_server: TGI) -> None:
    await kit.reset(client, tgi_server)


async def still_serves(client: LanguageClient, tgi: TGI) -> None:
    """The server is up and completes."""
    tgi.script({"text": "```python\nstill_here(value)\n```"})
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == ["still_here(value)"]


def completion_params(uri: str, line: int, character: int) -> types.CompletionParams:
    return types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(line, character))


# -- positions and ranges ----------------------------------------------------------------------------


# (not line 0: `answer(value)` after `def ...:` with the body below it is an indentation error in Python)
@pytest.mark.parametrize(("line", "character"), [(2, 500), (2, 12), (3, 2**31 - 1)])
async def test_a_character_past_the_end_of_its_line_means_the_line_end(
    client: LanguageClient, tgi: TGI, line: int, character: int
) -> None:
    """LSP: "If the character value is greater than the line length it defaults back to the line length"."""
    uri, _ = kit.unique_doc(client)  # three lines and a final line break: line 3 exists, and is empty
    tgi.script(ANSWER, ANSWER)
    assert await kit.complete(client, uri, types.Position(line, character)) == ["answer(value)"]
    assert "<CURSOR>\n" in tgi.requests()[-1]["inputs"]
    result = await client.text_document_completion_async(completion_params(uri, line, character))
    assert isinstance(result, types.CompletionList) and result.items
    assert result.items[0].text_edit.range.end.character < 40  # type: ignore[union-attr]
    assert not any("Traceback" in m.message or "invalid" in m.message for m in client.log_messages)


@pytest.mark.parametrize(("line", "character"), [(4, 0), (99, 0), (2**31 - 1, 2**31 - 1)])
async def test_a_line_past_the_end_is_a_clear_error(
    client: LanguageClient, tgi: TGI, line: int, character: int
) -> None:
    uri, _ = kit.unique_doc(client)
    with pytest.raises(Exception, match=rf"invalid position {line}:{character} in {uri}"):
        await client.text_document_completion_async(completion_params(uri, line, character))
    with pytest.raises(Exception, match="invalid position"):
        await kit.complete(client, uri, types.Position(line, character))
    assert tgi.requests() == []
    await still_serves(client, tgi)


async def test_positions_inside_surrogate_pairs_and_crlf(client: LanguageClient, tgi: TGI) -> None:
    uri = "file:///tmp/project/emoji.py"
    kit.open_doc(client, uri, 'def smile() -> str:\r\n    face = "😀😀"\r\n    return \r\n')
    tgi.script(ANSWER, ANSWER)
    # Column 13 is inside the first emoji in UTF-16 (columns 12-13) and UTF-8 (12-15): it means the start of
    # that character; in UTF-32 it is the second emoji.
    assert await kit.complete(client, uri, types.Position(1, 13)) == ["answer(value)"]
    before = "" if client.encoding == "utf-32" else "😀"  # type: ignore[attr-defined]
    after = "😀" if client.encoding == "utf-32" else ""  # type: ignore[attr-defined]
    assert f'    face = "{after}<CURSOR>{before}😀"\r\n' in tgi.requests()[-1]["inputs"]
    assert await kit.complete(client, uri, types.Position(2, 11)) == ["answer(value)"]
    assert "    return <CURSOR>\r\n" in tgi.requests()[-1]["inputs"]


async def test_code_action_ranges(client: LanguageClient, tgi: TGI) -> None:
    uri, _ = kit.unique_doc(client)

    def actions(start: tuple[int, int], end: tuple[int, int]) -> Any:
        return client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri),
                range=types.Range(types.Position(*start), types.Position(*end)),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )

    assert await actions((2, 4), (0, 0))  # backwards: taken as (0, 0)-(2, 4)
    with pytest.raises(Exception, match="invalid position"):
        await actions((0, 0), (40, 0))
    assert tgi.requests() == []


# -- documents and versions --------------------------------------------------------------------------


async def test_unknown_documents(client: LanguageClient, tgi: TGI) -> None:
    ghost = "file:///tmp/project/never_opened.py"
    with pytest.raises(Exception, match="is not open"):
        await kit.complete(client, ghost, types.Position(0, 0))
    with pytest.raises(Exception, match="is not open"):
        await client.text_document_code_action_async(
            types.CodeActionParams(
                types.TextDocumentIdentifier(ghost),
                types.Range(types.Position(0, 0), types.Position(0, 0)),
                types.CodeActionContext(diagnostics=[]),
            )
        )
    kit.edit_doc(client, ghost, 2, (0, 0), (0, 0), "x")  # a change for it is ignored
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(ghost)))
    run = {"action": "explain", "uri": ghost, "show": False}
    with pytest.raises(Exception, match="is not open"):
        await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.run", [run]))
    with pytest.raises(Exception, match="unknown action"):
        await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.run", [{"action": 5}]))
    with pytest.raises(Exception, match="unknown action"):
        await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.run", ["garbage", 1]))
    assert tgi.requests() == []
    await still_serves(client, tgi)


async def test_changes_whose_version_does_not_increase_are_applied_and_logged(
    client: LanguageClient, tgi: TGI
) -> None:
    """Dropping what the editor changed would leave the server's copy different from the editor's for good."""
    uri = "file:///tmp/project/versions.py"
    kit.open_doc(client, uri, "def f(a):\n    return a\n", version=5)
    kit.edit_doc(client, uri, 3, (1, 12), (1, 12), " + b")  # older than 5: applied, logged
    kit.edit_doc(client, uri, 3, (1, 16), (1, 16), " + c")  # not newer: applied, logged
    kit.edit_doc(client, uri, 6, (1, 20), (1, 20), " + ")  # newer
    kit.edit_doc(client, uri, 7, (90, 0), (95, 3), "\n# tail")  # beyond the end: clamped to the end
    tgi.script(ANSWER)
    assert await kit.complete(client, uri, types.Position(1, 23)) == ["answer(value)"]
    inputs = tgi.requests()[-1]["inputs"]
    assert "return a + b + c + <CURSOR>\n\n# tail" in inputs
    warnings = [m.message for m in client.log_messages if "applied" in m.message]
    assert len(warnings) == 2


# -- size and content --------------------------------------------------------------------------------


async def test_a_file_of_tens_of_megabytes(client: LanguageClient, tgi: TGI) -> None:
    unit = "def helper_{n}(x: int) -> int:\n    return x * {n}\n\n\n"
    text = "".join(unit.format(n=n) for n in range(420_000)) + "def last(value):\n    return \n"
    assert len(text) > 20_000_000
    uri = "file:///tmp/project/huge.py"
    kit.open_doc(client, uri, text)
    tgi.script(ANSWER, ANSWER)
    last = text.count("\n") - 1
    assert await kit.complete(client, uri, types.Position(last, 11)) == ["answer(value)"]
    body = tgi.requests()[-1]
    assert "def last(value):\n    return <CURSOR>" in body["inputs"]
    assert len(json.dumps(body)) < 64_000  # the prompt fits the model, whatever the file
    kit.edit_doc(client, uri, 2, (last, 11), (last, 11), "value")
    assert await kit.complete(client, uri, types.Position(last, 16)) == ["answer(value)"]
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))
    await still_serves(client, tgi)


@pytest.mark.parametrize(
    ("first_line", "language"),
    [
        ("const DATA = 'data:image/png;base64," + "iVBORw0KGgo" * 200_000 + "';", "javascript"),  # 2.2 MB
        ("var a=" + "[1,2,3]," * 12_500 + "0;", "javascript"),  # 100 kB of minified code
        ("# " + "x" * 2_000_000, "python"),
    ],
    ids=["2MB-string", "100kB-minified", "2MB-comment"],
)
async def test_a_very_long_line(client: LanguageClient, tgi: TGI, first_line: str, language: str) -> None:
    uri = f"file:///tmp/project/long_{len(first_line)}.{'js' if language == 'javascript' else 'py'}"
    body = "\nfunction f(x) {\n  return \n}\n" if language == "javascript" else "\ndef f(x):\n  return \n"
    kit.open_doc(client, uri, first_line + body, language=language)
    tgi.script(ANSWER, ANSWER)
    assert await kit.complete(client, uri, types.Position(2, 9)) == ["answer(value)"]
    await kit.complete(client, uri, types.Position(0, len(first_line) // 2))
    for request in tgi.requests():
        assert len(request["inputs"]) < 64_000


@pytest.mark.parametrize(
    "text",
    [
        "def f(x):\n    data = '\x00\x01\x02\x7f'\n    return \n",
        "\x00" * 1000 + "\n\x00\x00\n    return \n",
        "def f(x):\n    s = '\ud800 lone \udfff'\n    return \n",
        "\ufeffdef f(x):\n    s = '\u202e\u200b'\n    return \n",
    ],
    ids=["nul-bytes", "binary", "lone-surrogates", "bom-and-bidi"],
)
async def test_binary_content(client: LanguageClient, tgi: TGI, text: str) -> None:
    uri = f"file:///tmp/project/binary_{abs(hash(text))}.py"
    kit.open_doc(client, uri, text)
    tgi.script(ANSWER)
    assert await kit.complete(client, uri, types.Position(2, 11)) == ["answer(value)"]
    inputs = tgi.requests()[-1]["inputs"]
    assert "<CURSOR>" in inputs
    assert "\ud800" not in inputs  # a lone surrogate cannot travel as UTF-8: it became U+FFFD
    run = {"action": "explain", "uri": uri, "show": False}
    tgi.script({"text": "It is binary."})
    answer = await client.workspace_execute_command_async(types.ExecuteCommandParams("codellama.run", [run]))
    assert "binary" in str(answer)


@pytest.mark.parametrize("language", ["cobol-2099", "", "plaintext", "python3"])
async def test_unknown_languages(client: LanguageClient, tgi: TGI, language: str) -> None:
    uri = f"file:///tmp/project/strange_{language or 'none'}.weird"
    kit.open_doc(client, uri, "PROCEDURE DIVISION.\n    DISPLAY 'HI'.\n    \n", language=language)
    tgi.script(ANSWER)
    assert await kit.complete(client, uri, types.Position(2, 4)) == ["answer(value)"]
    assert "DISPLAY 'HI'." in tgi.requests()[-1]["inputs"]


# -- settings ----------------------------------------------------------------------------------------


async def test_malformed_settings_are_reported_once_and_replaced_by_defaults(client: LanguageClient, tgi: TGI) -> None:
    bad = kit.settings(
        tgi.url,
        requestTimeout="soon",
        maxRetries=-3,
        stop="not a list",
        logLevel="loud",
        backend=42,
        completion={"debounceMs": "x", "maxLines": 0},
    )
    kit.configure(client, bad)
    await kit.eventually(lambda: bool(client.messages), what="a warning about the settings")
    [warning] = client.messages
    assert warning.type == types.MessageType.Warning
    for name in ("requestTimeout", "maxRetries", "stop", "logLevel", "backend", "completion.debounceMs"):
        assert f"codellama.{name}" in warning.message, name
    await still_serves(client, tgi)


@pytest.mark.parametrize("raw", [None, "a string", 7, [], {"codellama": "x"}, {"codellama": {"completion": 5}}])
async def test_settings_of_the_wrong_shape(client: LanguageClient, tgi: TGI, raw: Any) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=raw))
    kit.configure(client, kit.settings(tgi.url))  # the editor corrects itself
    await still_serves(client, tgi)


async def test_unusable_log_file_and_proxy(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, kit.settings(tgi.url, logFile="/nonexistent/dir/codellama.log"))
    await kit.eventually(
        lambda: any("cannot write the log file" in m.message for m in client.log_messages), what="log file warning"
    )
    await still_serves(client, tgi)
    kit.configure(client, kit.settings(tgi.url, proxy="ftp://127.0.0.1:1"))
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == []
    [shown] = kit.errors_shown(client)
    assert "codellama.proxy 'ftp://127.0.0.1:1' cannot be used" in shown
    kit.configure(client, kit.settings(tgi.url))
    await still_serves(client, tgi)


# -- JSON-RPC framing --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw(tgi_server: TGI, tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = kit.RawServer(tmp_path_factory.mktemp("raw") / "stderr.log")
    server.initialize(kit.settings(tgi_server.url))
    uri = "file:///tmp/project/raw.py"
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                            "text": "def f(x):\n    return \n"}})
    yield server
    server.close()


def works(raw: kit.RawServer, tgi: TGI) -> None:
    tgi.script({"text": f"```python\nx + {time.monotonic_ns()}\n```"})
    answer = raw.call("textDocument/inlineCompletion", kit.inline_params("file:///tmp/project/raw.py", 1, 11))
    assert answer["result"]["items"], answer


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


FRAMING_FAULTS = {
    "non-numeric length": b"Content-Length: abc\r\n\r\n",
    "negative length": b"Content-Length: -5\r\n\r\n",
    "a header line of 300 kB": b"X-Junk: " + b"x" * 300_000 + b"\r\n\r\n",
    "no length": b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}\r\n",
    "length too short": b'Content-Length: 5\r\n\r\n{"jsonrpc":"2.0","id":77,"method":"x"}\r\n',
    "length too short, the next header glued on": b'Content-Length: 5\r\n\r\n{"jsonrpc":"2.0","id":76,"method":"x"}',
    "length too long": b'Content-Length: 900\r\n\r\n{"jsonrpc":"2.0","id":75,"method":"codellama/stats"}',
    "invalid json": frame(b'{"jsonrpc": "2.0", "id": 78, "method": '),
    "invalid utf-8": frame(b'{"jsonrpc":"2.0","id":79,"method":"codellama/stats","params":"\xff\xfe"}'),
    "not an object": frame(b"[]"),
    "a string": frame(b'"abc"'),
    "not json-rpc": frame(b'{"foo": 1}'),
    "no method": frame(b'{"jsonrpc":"2.0","id":80}'),
    "wrong version": frame(b'{"jsonrpc":"1.0","id":81,"method":"codellama/stats"}'),
    "response to nothing": frame(b'{"jsonrpc":"2.0","id":12345,"result":1}'),
    "notification with bad params": frame(b'{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"x":1}}'),
}


@pytest.mark.parametrize("data", list(FRAMING_FAULTS.values()), ids=list(FRAMING_FAULTS))
async def test_malformed_json_rpc_then_a_valid_request_works(raw: kit.RawServer, tgi: TGI, data: bytes) -> None:
    raw.send_bytes(data)
    works(raw, tgi)
    assert raw.process.poll() is None


@pytest.mark.parametrize(
    "position", [{"line": -1, "character": 0}, {"line": 0, "character": "x"}, {"line": 0}, [0, 0], None]
)
async def test_malformed_positions_are_invalid_params(raw: kit.RawServer, tgi: TGI, position: Any) -> None:
    params = {"textDocument": {"uri": "file:///tmp/project/raw.py"}, "position": position,
              "context": {"triggerKind": 1}}
    answer = raw.call("textDocument/inlineCompletion", params)
    assert answer["error"]["code"] == -32602, answer
    assert "cannot read the params of 'textDocument/inlineCompletion'" in answer["error"]["message"]
    works(raw, tgi)


async def test_requests_before_initialize_and_after_shutdown_get_the_errors(tgi: TGI, tmp_path: Any) -> None:
    server = kit.RawServer(tmp_path / "stderr.log")
    try:
        early = server.call("textDocument/completion", {"textDocument": {"uri": "file:///x.py"},
                                                        "position": {"line": 0, "character": 0}})
        assert early["error"]["code"] == -32002, early
        server.initialize(kit.settings(tgi.url))
        assert "error" not in server.call("codellama/stats", {})
        assert "error" not in server.call("shutdown", None)
        late = server.call("codellama/stats", {})
        assert late["error"]["code"] == -32600, late
        server.notify("exit", None)
        assert server.process.wait(timeout=10) == 0
    finally:
        server.close()


async def test_requests_the_server_cannot_read_get_an_error_answer(raw: kit.RawServer, tgi: TGI) -> None:
    unknown = raw.call("codellama/noSuchMethod", {})
    assert unknown["error"]["code"] == -32601  # method not found
    bad = raw.call("textDocument/inlineCompletion", {"textDocument": 5})
    assert bad["error"]["code"] == -32602 and "cannot read the params" in bad["error"]["message"]
    bad = raw.call("textDocument/completion", "not an object")
    assert "error" in bad
    bad = raw.call("workspace/executeCommand", {"command": "codellama.run", "arguments": {"not": "a list"}})
    assert "error" in bad
    works(raw, tgi)
