"""Running the server: version, logs (structured, levels, file, the client's log), graceful shutdown; and
security: the API token never leaks, TLS is verified (custom CA bundles work), proxies are used, edits touch
only their target, nothing phones home."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from lsp import __version__
from tests.conftest import ROOT, TGI, clean_env, server_command, start_tgi
from tests.e2e import kit
from tests.e2e.helpers import CLIENTS, ENCODING_OF, NON_ASCII, column, command_of

# The async tests share the module's language server, so they run in the module's event loop.
shared_loop = pytest.mark.asyncio(loop_scope="module")

TOKEN = "hf_TestTokenThatMustNeverBeLogged_12345"
WRONG_TOKEN = "hf_WrongTokenAlsoSecret_67890"
REQUEST_ID = re.compile(r"request=[0-9a-f]{12}\b")
TYPED = "é漢😀x"  # keystrokes of each width in UTF-8 and UTF-16
HANG = 120  # seconds: a bound that only catches a hang, never a slow machine


# -- the command line --------------------------------------------------------------------------------


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lsp", "--version"], capture_output=True, text=True, cwd=ROOT, env=clean_env(),
        timeout=60, check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"codellama-lsp {__version__}"


def _framed(*messages: dict[str, object]) -> bytes:
    out = b""
    for message in messages:
        body = json.dumps(message).encode()
        out += b"Content-Length: %d\r\n\r\n" % len(body) + body
    return out


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"processId": None, "rootUri": None, "capabilities": {}}}
SHUTDOWN = {"jsonrpc": "2.0", "id": 2, "method": "shutdown"}
EXIT = {"jsonrpc": "2.0", "method": "exit"}


@pytest.mark.parametrize(("messages", "code"), [((INITIALIZE, SHUTDOWN, EXIT), 0), ((INITIALIZE, EXIT), 1)],
                         ids=["shutdown then exit", "exit without shutdown"])
def test_exit_code_says_whether_the_client_shut_down_first(
    tmp_path: Path, messages: tuple[dict[str, object], ...], code: int
) -> None:
    server = kit.RawServer(tmp_path / "stderr.log")
    try:
        server.send_bytes(_framed(*messages))
        assert server.process.wait(timeout=60) == code
    finally:
        server.close()


def test_serves_messages_from_a_regular_file(tmp_path: Path) -> None:
    """stdin need not be a pipe (a script, a recorded session): the same messages get the same answers."""
    session = tmp_path / "session.jsonrpc"
    session.write_bytes(_framed(INITIALIZE, SHUTDOWN, EXIT))
    with session.open("rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "lsp", "serve"], stdin=stdin, capture_output=True,
                              cwd=ROOT, env=clean_env(), timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert b'"id": 1' in done.stdout and b'"capabilities"' in done.stdout
    assert b'"id": 2' in done.stdout


# -- a shared server for the rest ----------------------------------------------------------------------


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(server_command(), client_factory=kit.make_client, server_env=clean_env()),
)
async def client(lsp_client: LanguageClient, tgi_server: TGI) -> AsyncIterator[None]:
    lsp_client.applied = []  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        lsp_client.applied.append(params.edit)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    await kit.initialize_plain(lsp_client, kit.settings(tgi_server.url))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(
    scope="module",
    params=CLIENTS,
    config=ClientServerConfig(server_command(), client_factory=kit.make_client, server_env=clean_env()),
)
async def editor(lsp_client: LanguageClient, tgi_server: TGI, request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """One server per real client's recorded capabilities (and so per position encoding and edit shape), for
    the tests where the client matters; the transport's tests (TLS, proxies) use `client`."""
    lsp_client.applied = []  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        lsp_client.applied.append(params.edit)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    await kit.initialize_plain(lsp_client, kit.settings(tgi_server.url), capabilities=request.param)
    lsp_client.kind = request.param  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def fresh(request: pytest.FixtureRequest, tgi_server: TGI) -> None:
    for name in ("client", "editor"):
        if name in request.fixturenames:
            server: LanguageClient = request.getfixturevalue(name)
            await kit.reset(server, tgi_server)
            server.applied.clear()  # type: ignore[attr-defined]


@shared_loop
async def test_warnings_and_errors_reach_the_clients_log(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"status": 500, "body": '{"error":"boom"}'}, {"text": "```python\nfine()\n```"})
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == []
    warnings = [m for m in client.log_messages if "completion failed" in m.message]
    assert len(warnings) == 1 and warnings[0].type == types.MessageType.Warning
    assert "HTTP 500" in warnings[0].message
    kit.edit_doc(client, uri, 2, (1, 0), (1, 0), "    # more\n")
    assert await kit.complete(client, uri, types.Position(3, 11)) == ["fine()"]
    # info records (one per model call) stay in stderr and the log file
    assert not [m for m in client.log_messages if "model call" in m.message]


@shared_loop
async def test_typing_leaves_nothing_behind(editor: LanguageClient, tgi: TGI) -> None:
    """Every keystroke is a notification: none may leave anything in the server (pygls kept a future per
    notification until lsp/rpc.py). The user types accented letters, CJK and emoji, at positions in the
    client's encoding."""
    encoding = ENCODING_OF[editor.kind]  # type: ignore[attr-defined]
    uri, cursor = kit.unique_doc(editor)
    await kit.complete(editor, uri, cursor)
    before = await kit.stats(editor)
    line = "    return "
    for version in range(2, 302):
        char = TYPED[version % len(TYPED)]
        at = column(line, encoding)
        kit.edit_doc(editor, uri, version, (2, at), (2, at), char)
        line += char
    tgi.script({"text": "```python\ndone\n```"})
    assert await kit.complete(editor, uri, types.Position(2, column(line, encoding))) == ["done"]
    after = await kit.settled_stats(editor, before["tasks"])
    assert after["pending"] <= before["pending"], (before, after)
    assert after["tasks"] <= before["tasks"], (before, after)
    assert line[len("    return ") :] in tgi.requests()[-1]["inputs"]  # every keystroke landed where typed


# -- TLS and proxies ---------------------------------------------------------------------------------

class TLSServer:
    def __init__(self, tgi: TGI, ca_path: Path) -> None:
        self.tgi, self.ca_path = tgi, ca_path

    @property
    def url(self) -> str:
        return self.tgi.url


@pytest.fixture(scope="module")
def tls_tgi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    trustme = pytest.importorskip("trustme")  # a dev dependency: a CA and certificates made on the spot
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pem, ca_pem = folder / "server.pem", folder / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    server = start_tgi("--certfile", str(pem), "--keyfile", str(pem))
    server.url = server.url.replace("http://", "https://")
    server.http.close()
    server.http = httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=str(ca_pem)), timeout=10)
    yield TLSServer(server, ca_pem)
    server.close()


@shared_loop
async def test_tls_is_verified_by_default(client: LanguageClient, tls_tgi: TLSServer) -> None:
    kit.configure(client, kit.settings(tls_tgi.url))
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == []
    [shown] = kit.errors_shown(client)
    assert "TLS failure" in shown and "certificate verify failed" in shown and "codellama.caBundle" in shown


@shared_loop
async def test_a_custom_ca_bundle(client: LanguageClient, tls_tgi: TLSServer) -> None:
    kit.configure(client, kit.settings(tls_tgi.url, caBundle=str(tls_tgi.ca_path)))
    tls_tgi.tgi.script({"text": "```python\nover_tls()\n```"})
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == ["over_tls()"]
    assert kit.errors_shown(client) == []


@shared_loop
async def test_verification_can_be_turned_off(client: LanguageClient, tls_tgi: TLSServer) -> None:
    kit.configure(client, kit.settings(tls_tgi.url, verifyTls=False))
    tls_tgi.tgi.script({"text": "```python\nunverified()\n```"})
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == ["unverified()"]


@shared_loop
async def test_a_ca_bundle_that_does_not_exist(client: LanguageClient, tls_tgi: TLSServer) -> None:
    kit.configure(client, kit.settings(tls_tgi.url, caBundle="/nonexistent/ca.pem"))
    uri, cursor = kit.unique_doc(client)
    for _ in range(2):
        assert await kit.complete(client, uri, cursor) == []
    [shown] = kit.errors_shown(client)
    assert "codellama.caBundle '/nonexistent/ca.pem' cannot be used" in shown
    assert kit.statuses(client)[-1]["state"] == "error"


@shared_loop
async def test_an_http_proxy(client: LanguageClient, tgi: TGI) -> None:
    proxy = kit.RecordingProxy()
    await proxy.start()
    try:
        kit.configure(client, kit.settings(tgi.url, proxy=proxy.url))
        tgi.script({"text": "```python\nproxied()\n```"})
        uri, cursor = kit.unique_doc(client)
        assert await kit.complete(client, uri, cursor) == ["proxied()"]
        assert f"GET {tgi.url}/info" in proxy.seen
        assert f"POST {tgi.url}/generate_stream" in proxy.seen
    finally:
        await proxy.stop()


@shared_loop
async def test_an_https_proxy_tunnel(client: LanguageClient, tls_tgi: TLSServer) -> None:
    proxy = kit.RecordingProxy()
    await proxy.start()
    try:
        kit.configure(client, kit.settings(tls_tgi.url, proxy=proxy.url, caBundle=str(tls_tgi.ca_path)))
        tls_tgi.tgi.script({"text": "```python\ntunnelled()\n```"})
        uri, cursor = kit.unique_doc(client)
        assert await kit.complete(client, uri, cursor) == ["tunnelled()"]
        assert f"CONNECT {tls_tgi.url.removeprefix('https://')}" in proxy.seen
    finally:
        await proxy.stop()


@shared_loop
async def test_a_proxy_that_is_down(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, kit.settings(tgi.url, proxy=kit.unused_url()))
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == []
    [shown] = kit.errors_shown(client)
    assert "Cannot reach" in shown or "proxy" in shown


# -- edits touch only their target ---------------------------------------------------------------------

SOURCE = f"""import os


def first(values):
    {NON_ASCII}
    total = 0
    for v in values:
        total = total + v
    return total  # 'héllo' 漢字 😀


def second(values):
    return len(values)
"""
NEW_FIRST = f"def first(values):\n    {NON_ASCII}\n    return sum(values)  # 漢字 😀"


def _offset(text: str, position: types.Position, encoding: str) -> int:
    """The index in ``text`` of ``position`` given in ``encoding``'s code units (never inside a character)."""
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[: position.line])
    line = lines[position.line] if position.line < len(lines) else ""
    index = units = 0
    while units < position.character:
        units += column(line[index], encoding)
        index += 1
    assert units == position.character, (position, line)
    return start + index


def _target_edits(edit: types.WorkspaceEdit, uri: str) -> list[types.TextEdit]:
    """The text edits of ``edit``, which must all be for ``uri`` (at version 1 when versioned)."""
    if edit.document_changes:
        assert not edit.changes
        assert len(edit.document_changes) == 1, edit
        [change] = edit.document_changes
        assert isinstance(change, types.TextDocumentEdit)
        assert change.text_document.uri == uri and change.text_document.version == 1
        return [e for e in change.edits if isinstance(e, types.TextEdit)]
    assert edit.changes is not None and list(edit.changes) == [uri], edit
    return list(edit.changes[uri])


@shared_loop
async def test_edits_touch_only_the_target_document_and_range(editor: LanguageClient, tgi: TGI) -> None:
    encoding = ENCODING_OF[editor.kind]  # type: ignore[attr-defined]
    uri = "file:///tmp/project/target.py"
    other = "file:///tmp/project/other.py"
    kit.open_doc(editor, uri, SOURCE)
    kit.open_doc(editor, other, "def first(values):\n    return 0\n")
    # A reply that names other files and holds several blocks: only the first block, only the target.
    reply = (
        "Here is the refactor (other.py needs no change):\n"
        f"```python\n{NEW_FIRST}\n```\n"
        "And in other.py:\n```python\nimport shutil\nshutil.rmtree('/')\n```\n"
    )
    tgi.script({"text": reply})
    last_line = SOURCE.split("\n")[8]
    cursor = types.Position(8, column(last_line[: last_line.index("漢")], encoding))  # after the accent
    listed = await editor.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            types.Range(cursor, cursor),
            types.CodeActionContext(diagnostics=[], only=[types.CodeActionKind.RefactorRewrite]),
        )
    )
    [refactor] = [a for a in listed or [] if "Refactor" in a.title]
    recorded = client_capabilities(editor.kind).text_document  # type: ignore[attr-defined]
    if recorded and recorded.code_action and recorded.code_action.resolve_support:
        assert isinstance(refactor, types.CodeAction)
        resolved = await editor.code_action_resolve_async(refactor)
        assert resolved.edit is not None, resolved
        edit = resolved.edit
        assert editor.applied == []  # type: ignore[attr-defined]  # nothing applied behind the user's back
    else:  # a client without resolve runs the action's command: the edit comes as workspace/applyEdit
        command = command_of(refactor)
        await editor.workspace_execute_command_async(types.ExecuteCommandParams(command.command, command.arguments))
        [edit] = editor.applied  # type: ignore[attr-defined]
    [text_edit] = _target_edits(edit, uri)
    start, end = (_offset(SOURCE, p, encoding) for p in (text_edit.range.start, text_edit.range.end))
    after = SOURCE[:start] + text_edit.new_text + SOURCE[end:]
    # the function `first` is replaced, nothing before or after it
    assert after.startswith("import os\n\n\n" + NEW_FIRST), after
    assert after.endswith("\n\n\ndef second(values):\n    return len(values)\n"), after
    assert "rmtree" not in after and "shutil" not in after and "return total" not in after


# -- logs, secrets, telemetry: one server process watched from outside ---------------------------------


@pytest.fixture(scope="module")
def secured_tgi() -> Iterator[TGI]:
    server = start_tgi("--api-key", TOKEN)
    yield server
    server.close()


def _connections(pid: int) -> list[tuple[str, int]]:
    """Remote (host, port) of the process's TCP sockets, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    remotes = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                host, port = fields[2].split(":")
                remotes.append((host, int(port, 16)))
    return remotes


def test_the_token_never_appears_in_logs_messages_or_prompts(secured_tgi: TGI, tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    server = kit.RawServer(tmp_path / "stderr.log")
    try:
        values = kit.settings(secured_tgi.url, apiToken=TOKEN, logLevel="debug", logFile=str(log_file))
        server.initialize(values)
        uri = "file:///tmp/project/secret.py"
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": "def f(x):\n    return \n"}})
        # works with the right token (TGI refuses without it)
        secured_tgi.script({"text": "```python\nx * 2\n```"})
        answer = server.call("textDocument/inlineCompletion", kit.inline_params(uri, 1, 11))
        assert answer["result"]["items"][0]["insertText"] == "x * 2"
        # an action, a 500, a dropped stream
        secured_tgi.script({"text": "It doubles."}, {"status": 500, "body": "{}"}, {"text": "```\nz\n```",
                                                                                  "drop_after": 1})
        server.call("workspace/executeCommand",
                    {"command": "codellama.run", "arguments": [{"action": "explain", "uri": uri, "show": False}]})
        for column in (10, 9):
            server.call("textDocument/inlineCompletion", kit.inline_params(uri, 1, column))
        # the wrong token: 401
        server.notify("workspace/didChangeConfiguration",
                      {"settings": {"codellama": {**values, "apiToken": WRONG_TOKEN}}})
        failed = server.call("textDocument/inlineCompletion", kit.inline_params(uri, 1, 8))
        assert failed["result"]["items"] == []
        # nothing else than the model server was contacted, and no telemetry was sent
        port = int(secured_tgi.url.rsplit(":", 1)[1])
        assert {remote for remote in _connections(server.process.pid)} <= {("0100007F", port)}
        shutdown = server.call("shutdown", None)
        assert "error" not in shutdown
        server.notify("exit", None)
        assert server.process.wait(timeout=10) == 0
    finally:
        server.close()

    shown = server.messages()
    assert any("refused the credentials" in m["message"] for m in shown)
    assert not [n for n in server.notifications if n["method"] == "telemetry/event"]
    everything = {
        "stderr": server.stderr(),
        "log file": log_file.read_text(encoding="utf-8"),
        "notifications": json.dumps(server.notifications),
        "prompts": json.dumps(secured_tgi.requests()),
    }
    assert "model call" in everything["log file"] and "DEBUG" in everything["log file"]
    for where, text in everything.items():
        assert TOKEN not in text, where
        assert WRONG_TOKEN not in text, where
        assert "TestTokenThatMust" not in text and "WrongTokenAlso" not in text, where


def test_structured_logs_and_log_levels(tgi_server: TGI, tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    server = kit.RawServer(tmp_path / "stderr.log")
    try:
        values = kit.settings(tgi_server.url, logFile=str(log_file), maxRetries=1)
        server.initialize(values)
        uri = "file:///tmp/project/logs.py"
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": "def f(x):\n    return \n"}})
        unavailable = {"status": 503, "body": "{}"}
        tgi_server.script({"text": "```python\nx + 1\n```"}, unavailable, unavailable)
        server.call("textDocument/inlineCompletion", kit.inline_params(uri, 1, 11))
        server.call("textDocument/inlineCompletion", kit.inline_params(uri, 1, 10))
        text = log_file.read_text(encoding="utf-8")
        ok = [line for line in text.splitlines() if "model call" in line and "outcome=ok" in line]
        assert len(ok) == 1 and REQUEST_ID.search(ok[0])
        assert re.search(r"backend=tgi action=complete outcome=ok prompt_tokens=\d+ chunks=\d+ ms=\d+", ok[0])
        failed = [line for line in text.splitlines() if "model call" in line and "outcome=GenerationFailed" in line]
        assert len(failed) == 1
        failed_id = REQUEST_ID.search(failed[0])
        assert failed_id is not None
        # the retry of that same call names it
        retry = [line for line in text.splitlines() if "retry 1/1" in line]
        assert retry and failed_id.group(0) in retry[0]

        # at level warning, the info records stop and the warnings stay
        quieter = {**values, "logLevel": "warning"}
        server.notify("workspace/didChangeConfiguration", {"settings": {"codellama": quieter}})
        before = len(log_file.read_text(encoding="utf-8").splitlines())
        tgi_server.script({"text": "```python\nx + 3\n```"}, {"status": 401, "body": ""})
        server.call("textDocument/inlineCompletion", kit.inline_params(uri, 1, 9))
        server.call("textDocument/inlineCompletion", kit.inline_params(uri, 1, 8))
        later = log_file.read_text(encoding="utf-8").splitlines()[before:]
        assert not [line for line in later if " INFO " in line or " DEBUG " in line], later
        assert [line for line in later if " WARNING " in line and "HTTP 401" in line]
    finally:
        server.close()
    assert "model call" in server.stderr()  # stderr gets the same records (the editor shows it as the log)


# -- shutdown ----------------------------------------------------------------------------------------


def test_shutdown_closes_streams_in_flight_and_exits_zero(tgi_server: TGI, tmp_path: Path) -> None:
    server = kit.RawServer(tmp_path / "stderr.log")
    try:
        server.initialize(kit.settings(tgi_server.url, requestTimeout=30))
        uri = "file:///tmp/project/long.py"
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": "def f(x):\n    \n"}})
        tgi_server.reset()
        slow = {"text": "```python\n" + "x = 1\n" * 400 + "```", "chunk_delay": 0.05}
        tgi_server.script(slow, slow)
        server.request("textDocument/inlineCompletion", kit.inline_params(uri, 1, 4))
        server.request("workspace/executeCommand",
                       {"command": "codellama.run", "arguments": [{"action": "explain", "uri": uri, "show": False}]})
        deadline = time.monotonic() + HANG
        while tgi_server.streams()["open"] < 2:
            assert time.monotonic() < deadline, tgi_server.streams()
            time.sleep(0.02)
        answer = server.call("shutdown", None)
        assert "error" not in answer
        server.notify("exit", None)
        # Each stream has 400 lines to go at 50 ms a token: closed early (not run to their end) is what shows
        # that shutdown did not wait for them, on a machine of any speed; the bound only turns a hang into a
        # failure.
        assert server.process.wait(timeout=HANG) == 0
        streams = tgi_server.streams()
        assert streams["open"] == 0 and streams["closed_early"] == 2, streams
    finally:
        server.close()


def test_end_of_input_ends_the_process(tgi_server: TGI, tmp_path: Path) -> None:
    """The editor went away without a word (it crashed): the server must not linger."""
    server = kit.RawServer(tmp_path / "stderr.log")
    try:
        server.initialize(kit.settings(tgi_server.url))
        assert server.process.stdin is not None
        server.process.stdin.close()
        assert server.process.wait(timeout=10) is not None
    finally:
        server.close()


