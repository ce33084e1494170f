"""A model server is not trusted blindly, end to end (the real language server process, real HTTP to
tests/tgi_server.py): special end-of-turn tokens, a server that ignores max_new_tokens, a response head
trickled a byte at a time; and the OpenAI-compatible backend (against TGI's Messages API) gets the same
guards as TGI's: silence limit, bounded lines, trickled head, max_tokens, lone surrogates, cancellation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.conftest import TGI
from tests.e2e import fault_kit, kit
from tests.e2e.fault_kit import fails_then_recovers, fresh  # noqa: F401  (fresh: autouse)

pytestmark = pytest.mark.asyncio(loop_scope="module")

client = fault_kit.client_fixture("neovim")  # Neovim 0.11: utf-8 positions first


# -- what a server sends is not trusted blindly -------------------------------------------------------

UNTRUSTED_SERVER = {"ignore_max_new_tokens": True, "ignore_stop": True}


async def explain(client: LanguageClient) -> str:
    """The text of an explanation of a fresh document (`codellama.run`, not shown)."""
    uri, _ = kit.unique_doc(client)
    run = {"action": "explain", "uri": uri, "show": False, "range": {"start": {"line": 0, "character": 0},
                                                                       "end": {"line": 2, "character": 0}}}
    answer = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codellama.run", arguments=[run])
    )
    return str(answer.text if hasattr(answer, "text") else answer["text"])


@pytest.mark.parametrize("special", ["</s>", "<step>"])
async def test_a_special_end_of_turn_token_ends_the_answer(client: LanguageClient, tgi: TGI, special: str) -> None:
    """Text after a special `</s>` or `<step>` never reaches the document, nor does the token itself."""
    tokens = [{"text": "```python\nfirst(value)"}, {"text": special, "special": True}, {"text": " + leaked()\n```"}]
    tgi.script({"tokens": tokens, **UNTRUSTED_SERVER})
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == ["first(value)"]
    assert kit.errors_shown(client) == []


async def test_a_server_that_ignores_max_new_tokens_is_cut_off(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, kit.settings(tgi.url, maxNewTokens=24))
    tgi.script({"text": "Sums. " * 2000, **UNTRUSTED_SERVER})
    text = await explain(client)
    [body] = tgi.requests()
    asked = body["parameters"]["max_new_tokens"]
    assert 0 < text.count("Sums.") <= asked  # (the test server's tokens are words here)
    await kit.eventually(lambda: tgi.streams()["closed_early"] == 1, what="TGI saw the stream closed")


async def test_a_response_head_trickled_a_byte_at_a_time_times_out(client: LanguageClient, tgi: TGI) -> None:
    """httpx's read timeout is per read: the head as a whole is bounded by requestTimeout."""
    kit.configure(client, kit.settings(tgi.url, requestTimeout=0.5))
    tgi.script({"trickle_head": 0.02}, {"trickle_head": 0.02})
    await fails_then_recovers(client, tgi, "no complete response head within 0.5 s")


# -- the OpenAI-compatible backend gets the same guards (TGI's Messages API) ----------------------------


def openai(tgi: TGI, **extra: Any) -> dict[str, Any]:
    return kit.settings(tgi.url, backend="openai", **extra)


async def test_openai_keepalives_without_tokens_time_out(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, openai(tgi, requestTimeout=0.5))
    stall = {"text": "```python\n" + "x = 1\n" * 20 + "```", "stall_after": 2, "stall": 30, "keepalive_every": 0.05}
    tgi.script(stall, stall)
    await fails_then_recovers(client, tgi, "stopped answering: no token for 0.5 s")
    await kit.eventually(lambda: tgi.streams()["closed_early"] == 2, what="the server saw both streams closed")


async def test_openai_huge_event(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, openai(tgi))
    huge = {"text": "```python\nbig = 1\n```", "huge_event": 3 * 1024 * 1024}
    tgi.script(huge, huge)
    await fails_then_recovers(client, tgi, "oversized stream event")


async def test_openai_trickled_head_times_out(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, openai(tgi, requestTimeout=0.5))
    tgi.script({"trickle_head": 0.02}, {"trickle_head": 0.02})
    await fails_then_recovers(client, tgi, "no complete response head within 0.5 s")


async def test_openai_server_that_ignores_max_tokens_is_cut_off(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, openai(tgi, maxNewTokens=24))
    tgi.script({"text": "Sums. " * 2000, **UNTRUSTED_SERVER})
    text = await explain(client)
    [body] = tgi.requests()
    assert 0 < text.count("Sums.") <= body["max_tokens"]
    await kit.eventually(lambda: tgi.streams()["closed_early"] == 1, what="the server saw the stream closed")


async def test_openai_lone_surrogates_reach_the_server_sanitised(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, openai(tgi))
    tgi.script({"text": "```python\n'é 🙂 中'\n```"})
    uri = "file:///tmp/project/surrogates.py"
    # A JSON string may spell a lone surrogate; UTF-8 cannot carry it.
    kit.open_doc(client, uri, "s = 'naïve 🙂 中 \ud800'\nt = \n")
    assert await kit.complete(client, uri, types.Position(1, 4)) == ["'é 🙂 中'"]
    [body] = tgi.requests()
    sent = json.dumps(body, ensure_ascii=False)
    assert "naïve 🙂 中 \ufffd" in sent


async def test_openai_cancelled_completions_leave_nothing_open(client: LanguageClient, tgi: TGI) -> None:
    """Cancelled before the server's first byte and mid-stream: the server sees each stream go away, and
    the language server keeps no task behind."""
    kit.configure(client, openai(tgi))
    slow = {"text": "```python\n" + "value = value + 1\n" * 12 + "```", "chunk_delay": 0.05}
    before = await kit.stats(client)
    for n, reply in enumerate([{**slow, "delay": 30}, slow, {**slow, "delay": 30}, slow]):
        tgi.reset()
        tgi.script(reply)
        uri, cursor = kit.unique_doc(client)
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=cursor,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
        answer = asyncio.ensure_future(
            client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=f"oa-{n}")
        )
        started = "waiting" if "delay" in reply else "opened"
        await kit.eventually(lambda key=started: tgi.streams()[key] == 1, what=f"the request {started}")  # type: ignore[misc]
        client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=f"oa-{n}"))
        with pytest.raises(Exception, match=r"(?i)cancel"):
            await answer
        gone = "gone_while_waiting" if "delay" in reply else "closed_early"
        await kit.eventually(lambda key=gone: tgi.streams()[key] == 1, what=f"the server saw it {gone}")  # type: ignore[misc]
    after = await kit.settled_stats(client, before["tasks"])
    assert after["tasks"] <= before["tasks"], (before, after)


