"""The prompt engine seen from outside: length rejections retried invisibly, calibration from /tokenize,
and the `codellama-lsp prompt` view for tuning and bug reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import ROOT, TGI, clean_env
from tests.e2e.helpers import editor_config, open_doc

URI = "file:///tmp/project/long.py"
# Non-ASCII on every line but the cursor's (the cursor's column is then the same in every encoding).
SOURCE = (
    "".join(f"def f{i}(x):  # café ☕ 平均\n    return x + {i}  # 🎯\n\n" for i in range(300))
    + "def g(y):\n    return \n"
)
CURSOR = types.Position(line=901, character=11)
TOO_LONG = {
    "status": 422,
    "body": json.dumps(
        {
            "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
            "Given: 4000 `inputs` tokens and 160 `max_new_tokens`",
            "error_type": "validation",
        }
    ),
}


@pytest_lsp.fixture(
    params=["neovim", "visual-studio-code", "emacs"],
    config=editor_config(),
)
async def client(lsp_client: LanguageClient, tgi: TGI, request: pytest.FixtureRequest):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            initialization_options={"codellama": {"endpoint": tgi.url}},
            root_uri="file:///tmp/project",
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_a_length_rejection_is_retried_once_with_a_smaller_prompt(client: LanguageClient, tgi: TGI) -> None:
    tgi.script(TOO_LONG, {"text": "```python\ny * 2\n```"})
    open_doc(client, URI, SOURCE)
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(URI),
            position=CURSOR,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert result is not None and [i.insert_text for i in result.items] == ["y * 2"]
    first, second = tgi.requests()
    assert len(second["inputs"]) < len(first["inputs"])
    assert "    return <CURSOR>" in second["inputs"]
    assert [m for m in client.messages if m.type == types.MessageType.Error] == []


async def test_a_second_length_rejection_is_reported(client: LanguageClient, tgi: TGI) -> None:
    tgi.script(TOO_LONG, TOO_LONG)
    open_doc(client, URI, SOURCE)
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(URI),
            position=CURSOR,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert result is not None and not result.items
    assert len(tgi.requests()) == 2
    [error] = [m for m in client.messages if m.type == types.MessageType.Error]
    assert "must be <= 4096" in error.message


def test_prompt_view_shows_the_prompt_and_the_cost_of_each_part(tmp_path: Path) -> None:
    path = tmp_path / "long.py"
    path.write_text(SOURCE)
    result = subprocess.run(
        [sys.executable, "-m", "lsp", "prompt", f"{path}:902:12"],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Source: system\n\n ")
    assert "def g(y):\n    return <CURSOR>" in result.stdout
    assert "prompt tokens" in result.stderr
    for part in ("template", "prefix", "suffix"):
        assert part in result.stderr
