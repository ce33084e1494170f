"""A rewrite that no longer defines what it replaced (a small model's unrelated answer) is shown for review
through the real server, never applied as an edit; a faithful rewrite still is an edit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from lsp.cleanup.rewrites import lost_names, rewrite_warning
from tests.conftest import TGI, clean_env
from tests.e2e.helpers import editor_config, open_doc
from tests.e2e.test_code_actions import IN_MEAN, SOURCE, Editor, actions_at, initialize_editor

pytestmark = pytest.mark.slow


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    root = tmp_path / "project"
    root.mkdir()
    return Editor(root)


@pytest_lsp.fixture(config=editor_config())
async def client(lsp_client: LanguageClient, tgi: TGI, editor: Editor):
    await initialize_editor(lsp_client, editor, {"endpoint": tgi.url})
    yield
    await lsp_client.shutdown_session()


async def refactor(client: LanguageClient, tgi: TGI, editor: Editor, reply: str) -> types.CodeAction:
    """The Refactor action resolved inside `mean`, the model answering ``reply``."""
    tgi.script({"text": f"```python\n{reply}\n```"})
    uri = editor.uri("stats.py")
    open_doc(client, uri, SOURCE)
    return await client.code_action_resolve_async((await actions_at(client, uri, IN_MEAN))["CodeLlama: Refactor"])


async def test_an_unrelated_rewrite_is_shown_for_review(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    resolved = await refactor(client, tgi, editor, "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1)")
    assert resolved.edit is None and resolved.command is not None
    assert resolved.command.command == "codellama.reviewProposal"
    [proposal] = resolved.command.arguments or []
    assert "no longer defines `mean`" in proposal["reason"] and "`fibonacci`" in proposal["reason"]


async def test_a_faithful_rewrite_is_an_edit(client: LanguageClient, tgi: TGI, editor: Editor) -> None:
    resolved = await refactor(client, tgi, editor, "def mean(values):\n    return sum(values) / len(values)")
    assert resolved.edit is not None and resolved.command is None


@pytest.mark.parametrize(
    ("language", "original", "rewrite", "lost"),
    [
        ("python", "def is_prime(n):\n    return n > 1\n", "def fibonacci(n):\n    return n\n", ["is_prime"]),
        ("python", "def is_prime(n):\n    return n > 1\n", "def is_prime(n: int) -> bool:\n    return n >= 2\n", []),
        ("python", "    x = 1\n    return x\n", "    return 1\n", []),  # a variable inlined is no loss
        ("go", "func Sum(xs []int) int {\n\treturn 0\n}\n", "func Total(xs []int) int {\n\treturn 0\n}\n", ["Sum"]),
        ("java", "class A {\n  int f() { return 1; }\n}\n", "class A {\n  int g() { return 1; }\n}\n", ["f"]),
        ("plaintext", "some words\n", "other words\n", []),
    ],
)
def test_lost_names(language: str, original: str, rewrite: str, lost: list[str]) -> None:
    assert lost_names(original, rewrite, language) == lost
    assert (rewrite_warning(original, rewrite, language) is None) == (not lost)


def test_refactor_apply_does_not_write_an_unrelated_rewrite(tgi: TGI, tmp_path: Path) -> None:
    source = tmp_path / "stats.py"
    source.write_text(SOURCE)
    tgi.script({"text": "```python\ndef fibonacci(n):\n    return n\n```"})
    command = [sys.executable, "-m", "lsp", "refactor", f"{source}:1-5", "--endpoint", tgi.url, "--apply"]
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), timeout=120, check=False)
    assert done.returncode == 1
    assert "no longer defines `mean`" in done.stderr and "not applied" in done.stderr
    assert source.read_text() == SOURCE
