"""didOpen / didChange through the real server: documents stay current under fast typing."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import TGI, clean_env, server_command
from tests.e2e.helpers import edit_doc, initialize, open_doc
from tests.e2e.kit import complete

URI = "file:///tmp/project/records.js"


def records(count: int) -> str:
    """A long JavaScript module: typing an open bracket in it makes tree-sitter re-parse the rest of the file
    with error recovery."""
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


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(), server_env=clean_env()))
async def client(lsp_client: LanguageClient, tgi: TGI):
    await initialize(lsp_client, {"endpoint": tgi.url, "completion": {"debounceMs": 0}})
    yield
    await lsp_client.shutdown_session()


async def test_context_is_right_after_fast_typing_with_an_open_bracket(client: LanguageClient, tgi: TGI) -> None:
    text = records(250)
    open_doc(client, URI, text, language="javascript")
    lines = text.split("\n")
    row = next(i for i, line in enumerate(lines) if line.startswith("export function helper200(")) + 1
    typed = "  const value = compute(this.items["
    version = 1
    for column, char in enumerate(typed):  # no waiting between keystrokes, as a fast typist's editor sends them
        version += 1
        edit_doc(client, URI, version, (row, column), (row, column), char)
    version += 1
    edit_doc(client, URI, version, (row, len(typed)), (row, len(typed)), "\n")

    tgi.script({"text": "```javascript\nindex]);\n```"})
    assert await complete(client, URI, types.Position(row, len(typed))) == ["index]);"]
    [body] = tgi.requests()
    inputs = body["inputs"]
    assert "const value = compute(this.items[<CURSOR>" in inputs
    assert "function helper200(value, scale = 1)" in inputs  # the enclosing function, from the current tree
    assert 'import path from "path";' in inputs

    # the user accepts the suggestion: the bracket closes and the next context is right again
    version += 1
    edit_doc(client, URI, version, (row, len(typed)), (row, len(typed)), "index]);")
    tgi.reset()
    tgi.script({"text": "```javascript\nreturn value;\n```"})
    assert await complete(client, URI, types.Position(row + 1, 0)) == ["return value;"]
    [body] = tgi.requests()
    assert "compute(this.items[index]);\n<CURSOR>" in body["inputs"]
    assert "function helper200(value, scale = 1)" in body["inputs"]
