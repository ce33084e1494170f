"""The upstream behaviours lsp/compat.py works around, checked on the installed versions: each test fails
when upstream changes that behaviour, so that the workaround is looked at again (and dropped if fixed)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from typing import Any

import tree_sitter
from lsprotocol import types
from pygls.lsp.server import LanguageServer

from lsp import compat
from lsp.context.languages import language_for


class Writer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.sent.append(json.loads(data.split(b"\r\n\r\n", 1)[-1]))

    def close(self) -> None:
        pass


def _server(protocol_cls: type | None = None) -> tuple[LanguageServer, Writer]:
    server = LanguageServer("probe", "0", **({"protocol_cls": protocol_cls} if protocol_cls else {}))
    writer = Writer()
    server.protocol.set_writer(writer)
    return server, writer


def _feed(server: LanguageServer, message: dict[str, Any]) -> None:
    try:
        parsed = json.loads(json.dumps({"jsonrpc": "2.0", **message}), object_hook=server.protocol.structure_message)
    except Exception:  # what pygls's reader does: log, and go on with the next message
        return
    server.protocol.handle_message(parsed)


def test_the_installed_pygls_is_a_tested_version() -> None:
    tested = compat.TESTED_PYGLS
    assert compat.pygls_tested(), f"pygls {compat.minor('pygls')} is not in {tested}: re-check lsp/compat.py"


def test_pygls_leaves_an_unreadable_request_unanswered() -> None:
    plain, sent = _server()
    _feed(plain, {"id": 1, "method": "textDocument/completion", "params": {"textDocument": 5}})
    assert sent.sent == []
    ours, sent = _server(compat.Protocol)
    _feed(ours, {"id": 1, "method": "textDocument/completion", "params": {"textDocument": 5}})
    assert sent.sent[0]["error"]["code"] == -32602


def test_pygls_serves_requests_before_initialize_and_drops_them_after_shutdown() -> None:
    plain, sent = _server()
    plain.feature("codellama/probe")(lambda ls, params: "served")
    _feed(plain, {"id": 1, "method": "codellama/probe", "params": {}})
    assert sent.sent[-1].get("result") == "served"  # LSP: -32002
    plain.protocol.handle_message(types.ShutdownRequest(id=2))
    count = len(sent.sent)
    _feed(plain, {"id": 3, "method": "codellama/probe", "params": {}})
    assert len(sent.sent) == count  # LSP: -32600


def test_our_protocol_answers_as_lsp_says_before_initialize_and_after_shutdown() -> None:
    ours, sent = _server(compat.Protocol)
    ours.feature("codellama/probe")(lambda ls, params: "served")
    _feed(ours, {"id": 1, "method": "codellama/probe", "params": {}})
    assert sent.sent[-1]["error"]["code"] == -32002
    _feed(ours, {"id": 2, "method": "initialize", "params": {"capabilities": {}}})
    _feed(ours, {"id": 3, "method": "codellama/probe", "params": {}})
    assert sent.sent[-1].get("result") == "served"
    _feed(ours, {"id": 4, "method": "shutdown"})
    _feed(ours, {"id": 5, "method": "codellama/probe", "params": {}})
    assert sent.sent[-1]["id"] == 5 and sent.sent[-1]["error"]["code"] == -32600
    assert compat.shut_down(ours.protocol)


async def test_pygls_keeps_the_future_of_every_notification() -> None:
    async def note(ls: LanguageServer, params: Any) -> None:
        pass

    for protocol_cls, kept in ((None, 3), (compat.Protocol, 0)):
        server, _ = _server(protocol_cls)
        server.feature("codellama/note")(note)
        _feed(server, {"id": 1, "method": "initialize", "params": {"capabilities": {}}})
        for _ in range(3):
            _feed(server, {"method": "codellama/note", "params": {}})
        for _ in range(3):
            await asyncio.sleep(0)
        assert compat.requests_in_flight(server.protocol) == kept, protocol_cls


def test_py_tree_sitter_leaks_what_a_read_callback_returns_exactly_on_the_listed_versions() -> None:
    language = language_for("python")
    assert language is not None
    chunk = bytes(bytearray(b"\n"))  # a fresh object: nothing else refers to it
    returns = 0

    def read(byte: int, _point: tree_sitter.Point) -> bytes | None:
        nonlocal returns
        if byte:
            return None
        returns += 1
        return chunk

    before = sys.getrefcount(chunk)
    tree_sitter.Parser(language.ts_language).parse(read)
    leaked = sys.getrefcount(chunk) - before
    assert leaked == (returns if compat.chunks_leak() else 0), (tree_sitter.__name__, leaked, returns)


async def test_the_reader_finds_the_next_message_after_a_content_length_that_lies() -> None:
    valid = b'Content-Length: 2\r\n\r\n{}'
    stream = io.BytesIO(b'Content-Length: 90\r\n\r\n{"id": 1}' + valid + b'Content-Length: 3\r\n\r\n{"a' + valid)
    reader = compat.ResyncingReader(stream)
    assert await reader.readline() == b"Content-Length: 90\r\n"
    assert await reader.readline() == b"\r\n"
    assert await reader.readexactly(90) == b'{"id": 1}'  # cut where the next header starts
    for _ in range(2):
        assert await reader.readline() == b"Content-Length: 2\r\n"
        assert await reader.readline() == b"\r\n"
        assert await reader.readexactly(2) == b"{}"
        if _ == 0:
            assert await reader.readline() == b"Content-Length: 3\r\n"
            assert await reader.readline() == b"\r\n"
            assert await reader.readexactly(3) == b'{"a'
    assert await reader.readline() == b""


async def test_the_reader_lets_the_loop_turn_between_two_messages_that_arrive_together() -> None:
    # an edit and the completion request right after it: handled in one turn, they held the loop for both
    message = b'Content-Length: 2\r\n\r\n{}'
    reader = compat.ResyncingReader(io.BytesIO(message * 2))
    turns: list[str] = []
    for name in ("first", "second"):
        assert await reader.readline() == b"Content-Length: 2\r\n"
        assert await reader.readline() == b"\r\n"
        assert await reader.readexactly(2) == b"{}"
        turns.append(name)
        asyncio.get_running_loop().call_soon(turns.append, f"a callback queued after the {name}")
    assert turns[:3] == ["first", "a callback queued after the first", "second"]
