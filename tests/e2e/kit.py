"""What the fault, bad-input and operations suites share: a client that records `codellama/status`, a
fresh-per-test reset of one server per module, and loopback helpers (a relay that can go down, a recording
HTTP proxy, a raw JSON-RPC connection).

One language server per test module keeps the suites fast (a server takes ~2 s to start); each test
starts from known settings, an empty TGI script and cleared notices, and uses text of its own so that
the completion cache never answers for the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import ROOT, TGI, clean_env
from tests.e2e.helpers import edit_doc, editor_client, open_doc

__all__ = ["edit_doc", "open_doc"]

STATUS = "codellama/status"
STATS = "codellama/stats"
_counter = itertools.count(1)


# -- a client that records status notifications -------------------------------------------------------


def statuses(client: LanguageClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.statuses  # type: ignore[attr-defined]
    return found


def make_client() -> LanguageClient:
    client = editor_client()
    client.statuses = []  # type: ignore[attr-defined]

    @client.feature(STATUS)
    def status(ls: LanguageClient, params: Any) -> None:
        # pygls hands over custom params as a namedtuple-like object
        value = params._asdict() if hasattr(params, "_asdict") else dict(params)
        statuses(ls).append(value)

    return client


def settings(url: str, **extra: Any) -> dict[str, Any]:
    """Small timeouts: every fault resolves in well under a second or two."""
    base: dict[str, Any] = {
        "endpoint": url,
        "requestTimeout": 2.0,
        "connectTimeout": 1.0,
        "maxRetries": 2,
        "completion": {"debounceMs": 0},
    }
    completion = extra.pop("completion", {})
    base.update(extra)
    base["completion"] = {**base["completion"], **completion}
    return base


def configure(client: LanguageClient, values: dict[str, Any]) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"codellama": values}))


# -- documents and completions ------------------------------------------------------------------------


def unique_doc(client: LanguageClient, language: str = "python") -> tuple[str, types.Position]:
    """Open a small document no other test uses; returns its URI and a cursor after `return `."""
    n = next(_counter)
    uri = f"file:///tmp/project/case_{n}.py"
    text = f"def case_{n}(value: int) -> int:\n    total = value * {n}\n    return \n"
    open_doc(client, uri, text, language)
    return uri, types.Position(2, 11)


async def complete(client: LanguageClient, uri: str, position: types.Position) -> list[str]:
    """An invoked inline completion; the texts offered (empty when the model failed)."""
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(result, types.InlineCompletionList), result
    return [item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value for item in result.items]


def errors_shown(client: LanguageClient) -> list[str]:
    return [m.message for m in client.messages if m.type == types.MessageType.Error]


async def eventually(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until `predicate()` holds; fail after `timeout` seconds (a bound that only catches a hang)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.02)


def hits(tgi: TGI) -> list[str]:
    """Every request the TGI test server received since the last reset ("METHOD /path")."""
    return list(tgi.http.get("/_control/hits").json())


async def stats(client: LanguageClient) -> dict[str, Any]:
    result = await client.protocol.send_request_async(STATS, {})
    return result._asdict() if hasattr(result, "_asdict") else dict(result)


async def settled_stats(client: LanguageClient, tasks: int, timeout: float = 5.0) -> dict[str, Any]:
    """The server's stats once its asyncio tasks are back to at most `tasks` (background work such as a
    token count or a connection being closed ends by itself); the last stats after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        current = await stats(client)
        if current["tasks"] <= tasks or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.05)


async def reset(client: LanguageClient, tgi: TGI, **extra: Any) -> None:
    """Known settings, and one good completion: it clears the notices' memory of earlier failures."""
    tgi.reset()
    configure(client, settings(tgi.url, **extra))
    uri, cursor = unique_doc(client)
    tgi.script({"text": "```python\nwarm_up()\n```"})
    assert await complete(client, uri, cursor) == ["warm_up()"]
    # the idle status follows the answer: wait for it, so that it is not news in the next test
    await eventually(lambda: bool(statuses(client)) and statuses(client)[-1]["state"] == "idle", what="idle status")
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))
    tgi.reset()
    client.messages.clear()
    client.log_messages.clear()
    statuses(client).clear()


async def initialize_plain(
    client: LanguageClient, values: dict[str, Any], capabilities: str = "visual-studio-code"
) -> None:
    """Initialize with a real client's recorded capabilities (see tests/e2e/helpers.py CLIENTS): VS Code's
    by default; without progress bars or showDocument either way."""
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(capabilities),
            initialization_options={"codellama": values},
            root_uri="file:///tmp/project",
        )
    )


def unused_url() -> str:
    """An http URL on loopback where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- a relay that can go down ------------------------------------------------------------------------


class Gate:
    """A TCP relay on loopback in front of a server. `down()` closes the listening socket and every relayed
    connection (new connections are refused, as when the model server is stopped); `up()` listens again on
    the same port."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        if self._server is None or writer not in self._writers:  # went down meanwhile
            writer.close()
            up_writer.close()
            return
        self._writers.add(up_writer)
        await _pipe_both(reader, writer, up_reader, up_writer)
        self._writers -= {writer, up_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _pipe_both(
    r1: asyncio.StreamReader, w1: asyncio.StreamWriter, r2: asyncio.StreamReader, w2: asyncio.StreamWriter
) -> None:
    tasks = [asyncio.ensure_future(_pipe(r1, w2)), asyncio.ensure_future(_pipe(r2, w1))]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    for w in (w1, w2):
        w.close()


# -- a recording forward proxy ------------------------------------------------------------------------


class RecordingProxy:
    """An HTTP forward proxy on loopback that records what it is asked: `"METHOD absolute-url"` for plain
    HTTP (forwarded with `Connection: close`, so each request shows), `"CONNECT host:port"` for tunnels."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _pipe_both(reader, writer, up_reader, up_writer)
            return
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        keep = [h for h in header_lines if h and not h.lower().startswith(("proxy-", "connection:"))]
        up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1"))
        up_writer.write("\r\n".join([*keep, "Connection: close", "", ""]).encode("latin-1"))
        await up_writer.drain()
        await _pipe_both(reader, writer, up_reader, up_writer)


# -- a raw JSON-RPC connection to a server process -----------------------------------------------------


class RawServer:
    """`python -m lsp serve` driven byte by byte: for malformed messages, exit codes and what the process
    writes to stderr (kept in a file)."""

    def __init__(
        self, stderr_path: Path, *args: str, env: dict[str, str] | None = None, command: list[str] | None = None
    ) -> None:
        """``command``: how to start the server (default: ``python -m lsp serve``), ``args`` appended."""
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "lsp", "serve"]), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env or clean_env(),
            cwd=ROOT,
        )
        self.notifications: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._buffer = b""
        os.set_blocking(self.process.stdout.fileno(), False)  # type: ignore[union-attr]

    # writing
    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(_frame(message))

    def send_together(self, *messages: dict[str, Any]) -> None:
        """Several messages in one write, read by the server together (as an editor's edit and the request
        that follows it)."""
        self.send_bytes(b"".join(_frame(message) for message in messages))

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any) -> int:
        msg_id = next(self._ids) + 1000
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    # reading
    def _read_message(self, deadline: float) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        while True:
            head, sep, rest = self._buffer.partition(b"\r\n\r\n")
            if sep:
                lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if b"length" in line.lower()]
                length = int(lengths[0])
                if len(rest) >= length:
                    self._buffer = rest[length:]
                    message: dict[str, Any] = json.loads(rest[:length])
                    return message
            if time.monotonic() > deadline:
                return None
            try:
                chunk = self.process.stdout.read(65536)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                return None  # the server closed stdout
            if chunk:
                self._buffer += chunk
            else:
                time.sleep(0.01)

    def response(self, msg_id: int, timeout: float = 10.0) -> dict[str, Any]:
        """The answer to request `msg_id`; notifications read on the way are kept, server requests answered
        with null."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message is None:
                raise AssertionError(f"no answer to request {msg_id} within {timeout} s")
            if "method" in message and "id" in message:  # a request from the server
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "method" in message:
                self.notifications.append(message)
            elif message.get("id") == msg_id:
                return message

    def call(self, method: str, params: Any, timeout: float = 10.0) -> dict[str, Any]:
        return self.response(self.request(method, params), timeout)

    def initialize(self, values: dict[str, Any]) -> dict[str, Any]:
        answer = self.call(
            "initialize",
            {"processId": os.getpid(), "rootUri": "file:///tmp/project", "capabilities": {},
             "initializationOptions": {"codellama": values}},
        )
        self.notify("initialized", {})
        return answer

    def messages(self, method: str = "window/showMessage") -> list[dict[str, Any]]:
        return [n["params"] for n in self.notifications if n["method"] == method]

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._stderr.close()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def inline_params(uri: str, line: int, character: int) -> dict[str, Any]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1},
    }
