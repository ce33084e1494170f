"""Answers that stream: `codellama/partial` through the real server, under real clients' capabilities.

A client that puts `"streaming": true` in its initialization options gets the model's text while it is
generated, for the action's work-done token; one that does not gets exactly what it got before.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.conftest import TGI, clean_env, server_command
from tests.e2e.helpers import editor_client, open_doc, wait_for

PARTIAL = "codellama/partial"
RUN = "codellama.run"
URI = "file:///tmp/project/greet.py"
SOURCE = "def grüße(名前: str) -> str:\n    # café ☕ 🎉\n    return f'héllo {名前}'\n"
WHOLE = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 10}}
ANSWER = "Grüße returns a greeting ☕ for 名前, word by word. " * 3
def make_client() -> LanguageClient:
    """A test client that records every `codellama/partial` it receives (as `client.partials`)."""
    client = editor_client()
    client.partials = []  # type: ignore[attr-defined]

    @client.feature(PARTIAL)
    def partial(ls: LanguageClient, params: Any) -> None:
        partials(ls).append(params._asdict() if hasattr(params, "_asdict") else dict(params))

    return client


def partials(client: LanguageClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.partials  # type: ignore[attr-defined]
    return found


CONFIG = ClientServerConfig(server_command=server_command(), server_env=clean_env(), client_factory=make_client)


async def start(client: LanguageClient, tgi: TGI, editor: str, options: dict[str, Any]) -> None:
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(editor),
            initialization_options={"codellama": {"endpoint": tgi.url}, **options},
            root_uri="file:///tmp/project",
        )
    )
    open_doc(client, URI, SOURCE)


async def run(client: LanguageClient, action: str, **extra: Any) -> Any:
    arguments = [{"action": action, "uri": URI, "range": WHOLE, "show": False, **extra}]
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command=RUN, arguments=arguments))


@pytest_lsp.fixture(config=CONFIG, params=["neovim", "visual-studio-code"])
async def streaming(request: pytest.FixtureRequest, lsp_client: LanguageClient, tgi: TGI):
    await start(lsp_client, tgi, request.param, {"streaming": True})
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def plain(lsp_client: LanguageClient, tgi: TGI):
    await start(lsp_client, tgi, "neovim", {})
    yield
    await lsp_client.shutdown_session()


async def test_an_explanation_streams_before_the_answer_is_complete(
    streaming: LanguageClient, tgi: TGI
) -> None:
    client, seen = streaming, partials(streaming)
    # 300 ms before the first token, then 20 tokens/s: the whole answer takes seconds, the first words not
    tgi.script({"text": ANSWER, "delay": 0.3, "chunk_delay": 0.05})
    running = asyncio.ensure_future(run(client, "explain"))
    await wait_for(lambda: any(p["text"] for p in seen))
    first = next(p for p in seen if p["text"])
    assert not running.done(), "the first words came only with the whole answer"
    assert ANSWER.startswith(first["text"]) and len(first["text"]) < len(ANSWER)
    assert first["action"] == "explain" and first["uri"] == URI and first["done"] is False
    assert first["title"] == "CodeLlama: Explain"
    answer = await asyncio.wait_for(running, 30)
    assert answer["text"] == ANSWER.strip()
    [last] = [p for p in seen if p["done"]]
    assert last is seen[-1] and last["outcome"] == "done" and last["text"] == ANSWER
    texts = [p["text"] for p in seen]
    assert all(a == b[: len(a)] for a, b in itertools.pairwise(texts)), "each partial extends the one before"
    assert {p["token"] for p in seen} == {first["token"]} and first["token"] in client.progress_reports


async def test_a_refactoring_streams_a_preview_then_answers_as_before(
    streaming: LanguageClient, tgi: TGI
) -> None:
    client, seen = streaming, partials(streaming)
    code = "def grüße(名前: str) -> str:\n    # café ☕ 🎉\n    return 'héllo ' + 名前\n"
    tgi.script({"text": f"```python\n{code}```", "chunk_delay": 0.01})
    answer = await run(client, "refactor", instruction="no f-string")
    assert answer["kind"] == "code" and answer["text"].rstrip("\n") == code.rstrip("\n")
    assert seen and seen[0]["action"] == "refactor" and seen[-1]["done"] is True
    assert "'héllo ' + 名前" in seen[-1]["text"]


async def test_cancelling_ends_the_stream_and_the_partials(
    streaming: LanguageClient, tgi: TGI
) -> None:
    client, seen = streaming, partials(streaming)
    tgi.script({"text": "word " * 400, "chunk_delay": 0.05})
    running = asyncio.ensure_future(run(client, "explain"))
    await wait_for(lambda: any(p["text"] for p in seen))
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=seen[0]["token"]))
    with pytest.raises(JsonRpcException):
        await asyncio.wait_for(running, 10)
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)
    await wait_for(lambda: bool(seen) and seen[-1]["done"])
    assert seen[-1]["outcome"] == "cancelled" and [p for p in seen if p["done"]] == [seen[-1]]


async def test_a_client_that_did_not_ask_gets_no_partials(
    plain: LanguageClient, tgi: TGI
) -> None:
    client, seen = plain, partials(plain)
    tgi.script({"text": ANSWER, "chunk_delay": 0.01})
    answer = await run(client, "explain")
    assert answer["text"] == ANSWER.strip()
    assert client.progress_reports, "the progress bar is still there"
    assert seen == []
