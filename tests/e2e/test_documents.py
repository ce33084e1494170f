"""didOpen / didChange through the real server: documents stay current while their re-parse runs in slices."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp.features.lifecycle import STATS_METHOD
from tests.conftest import TGI, clean_env, server_command
from tests.e2e.helpers import edit_doc, initialize, open_doc
from tests.e2e.kit import complete

URI = "file:///tmp/project/records.js"


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


def open_records(client: LanguageClient, helper: int) -> int:
    """Open a 6,000-line module; the row of the first line in the body of function ``helper{helper}``."""
    text = records(250)
    open_doc(client, URI, text, language="javascript")
    lines = text.split("\n")
    return next(i for i, line in enumerate(lines) if line.startswith(f"export function helper{helper}(")) + 1


@pytest_lsp.fixture(config=ClientServerConfig(server_command=server_command(), server_env=clean_env()))
async def client(lsp_client: LanguageClient, tgi: TGI):
    await initialize(lsp_client, {"endpoint": tgi.url, "completion": {"debounceMs": 0}})
    yield
    await lsp_client.shutdown_session()


async def test_context_is_right_while_keystrokes_outrun_the_reparse(client: LanguageClient, tgi: TGI) -> None:
    row = open_records(client, helper=200)
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
    assert 'import path from "path";' not in inputs  # an import the nearby code does not use is left out (#16)

    # the user accepts the suggestion: the bracket closes and the next context is right again
    version += 1
    edit_doc(client, URI, version, (row, len(typed)), (row, len(typed)), "index]);")
    tgi.reset()
    tgi.script({"text": "```javascript\nreturn value;\n```"})
    assert await complete(client, URI, types.Position(row + 1, 0)) == ["return value;"]
    [body] = tgi.requests()
    assert "compute(this.items[index]);\n<CURSOR>" in body["inputs"]
    assert "function helper200(value, scale = 1)" in body["inputs"]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
async def test_typing_lines_into_a_long_file_keeps_the_server_memory_flat(client: LanguageClient) -> None:
    """Each keystroke with a bracket open re-parses the rest of the file in slices: those must not keep
    what they read (py-tree-sitter leaks the chunks a parse reads through a callback unless given back)."""
    assert client._server is not None
    pid = client._server.pid
    row = open_records(client, helper=20)
    typed = "  const value = compute(this.items[index], [\n"
    version = 1
    sizes = []
    for line in range(8):
        for column, char in enumerate(typed):
            version += 1
            edit_doc(client, URI, version, (row + line, column), (row + line, column), char)
            await asyncio.sleep(0.005)  # the slices of the re-parse run between keystrokes
        await client.protocol.send_request_async(STATS_METHOD, {})  # the server has handled every keystroke
        sizes.append(_rss_kb(pid))
    growth_mb = (sizes[-1] - sizes[1]) / 1024
    assert growth_mb < 8, f"server memory grew {growth_mb:.1f} MB over 6 lines: {sizes}"
