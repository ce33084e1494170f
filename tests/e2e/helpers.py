"""Helpers for end-to-end tests: an initialized pytest-lsp client talking to the real server process.

Suites that run under real clients' recorded capabilities parametrize over :data:`CLIENTS` (pytest-lsp
ships them) and pass the name to :func:`initialize`; :func:`column` gives a position's character in the
encoding that client negotiates (Neovim 0.11 offers utf-8 first, Emacs 29 utf-32, VS Code 1.65 none: utf-16).
"""

from __future__ import annotations

import ast
import asyncio
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities, make_test_lsp_client

from tests.conftest import clean_env, server_command

# client name (as pytest-lsp knows it) -> the position encoding the server agrees on with it
ENCODING_OF = {"neovim": "utf-8", "visual-studio-code": "utf-16", "emacs": "utf-32"}
CLIENTS = [pytest.param(name, id=f"{name}-{encoding}") for name, encoding in ENCODING_OF.items()]
# Non-ASCII text of each width: accents (2 UTF-8 bytes), CJK (3 bytes), emoji (4 bytes, 2 UTF-16 units)
NON_ASCII = "s = 'héllo' + '漢字' + '😀'"


def answer_registrations(client: LanguageClient) -> None:
    """Answer ``client/registerCapability`` and ``unregisterCapability`` as an editor does (the recorded
    capabilities offer dynamic registration, e.g. of file watchers); what was registered is kept as
    ``client.registrations``."""
    client.registrations = {}  # type: ignore[attr-defined]

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(ls: LanguageClient, params: types.RegistrationParams) -> None:
        for registration in params.registrations:
            ls.registrations[registration.id] = registration  # type: ignore[attr-defined]

    @client.feature(types.CLIENT_UNREGISTER_CAPABILITY)
    def unregister(ls: LanguageClient, params: types.UnregistrationParams) -> None:
        for gone in params.unregisterations:
            ls.registrations.pop(gone.id, None)  # type: ignore[attr-defined]


def editor_client() -> LanguageClient:
    """pytest-lsp's test client, answering dynamic registrations like the editors whose capabilities it sends."""
    client = make_test_lsp_client()
    answer_registrations(client)
    return client


def editor_config() -> ClientServerConfig:
    """The real server process, driven by :func:`editor_client`."""
    return ClientServerConfig(server_command=server_command(), server_env=clean_env(), client_factory=editor_client)


def column(text: str, encoding: str) -> int:
    """The length of ``text`` (the part of a line before a position) in code units of ``encoding``."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    return len(text)


async def initialize(
    client: LanguageClient,
    settings: dict[str, Any],
    *,
    progress: bool = True,
    show_document: bool = True,
    capabilities: str | None = None,
) -> types.InitializeResult:
    """Initialize with the capabilities of the real client named ``capabilities`` (see :data:`CLIENTS`), or
    with a minimal set of capabilities (with or without progress and showDocument)."""
    if capabilities is not None:
        return await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(capabilities),
                initialization_options={"codellama": settings},
                root_uri="file:///tmp/project",
            )
        )
    return await client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(
                    work_done_progress=progress,
                    show_document=types.ShowDocumentClientCapabilities(support=show_document),
                ),
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities(),
                    code_action=types.CodeActionClientCapabilities(
                        resolve_support=types.ClientCodeActionResolveOptions(properties=["edit", "command"]),
                        data_support=True,
                    ),
                ),
            ),
            initialization_options={"codellama": settings},
            root_uri="file:///tmp/project",
        )
    )


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python", version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)
        )
    )


def edit_doc(
    client: LanguageClient, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str
) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(*start), types.Position(*end)), text=text
                )
            ],
        )
    )


async def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    """Poll until `predicate()` holds. The bound only turns a hang into a failure: on a busy machine events
    come late, so it is far above any wait the tests expect."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def records(count: int) -> str:
    """A long JavaScript module: typing an open bracket in it makes tree-sitter re-parse the rest of the file
    for longer than one parse slice, so the re-parse goes on between messages."""
    parts = ['import path from "path";\n']
    for i in range(count):
        parts.append(
            f"\nexport class Record{i} {{\n  constructor(name, count = 0) {{\n    this.name = name;\n"
            "    this.count = count;\n  }\n\n  describe(prefix = '') {\n"
            "    return [prefix, this.name, String(this.count)].filter(Boolean).join(' ');\n  }\n\n"
            f"  bump(amount = 1) {{\n    this.count += amount * helper{i}(amount);\n    return this.count;\n  }}\n}}\n"
            f"\nexport function helper{i}(value, scale = 1) {{\n  let total = 0;\n"
            "  for (let step = 0; step < 3; step++) {\n    total += value * scale;\n  }\n  return total;\n}\n"
        )
    return "".join(parts)


def command_of(action: types.CodeAction | types.Command) -> types.Command:
    """The command a client without codeAction/resolve runs for ``action``. lsprotocol reads a CodeAction
    that carries a command as a Command whose `command` is the action's command object as text (its union is
    ambiguous); recover it as a client reading the JSON would."""
    inner: Any = action.command
    if isinstance(inner, str):
        inner = ast.literal_eval(inner)
    return inner if isinstance(inner, types.Command) else types.Command(**inner)
