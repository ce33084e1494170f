"""The fault matrix: every way the model server can fail, end to end (the real language server process,
real HTTP to tests/tgi_server.py or to nothing at all).

For each fault: the request still answers (an empty completion, or an error answer for an action), the
user reads one clear message however often they type (window/showMessage is rate limited), the editor
plugins see `codellama/status` go busy -> error (with the message) -> idle, the server stays up, and the
next request works once the model server is back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import TGI, clean_env, server_command
from tests.e2e import kit

pytestmark = pytest.mark.asyncio(loop_scope="module")

RECOVERED = {"text": "```python\nrecovered(value)\n```"}


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(server_command(), client_factory=kit.make_client, server_env=clean_env()),
)
async def client(lsp_client: LanguageClient, tgi_server: TGI) -> AsyncIterator[None]:
    await kit.initialize_plain(lsp_client, kit.settings(tgi_server.url))
    yield
    await lsp_client.shutdown_session()


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def fresh(client: LanguageClient, tgi_server: TGI) -> None:
    await kit.reset(client, tgi_server)


async def fails_then_recovers(
    client: LanguageClient,
    tgi: TGI,
    expected: str,
    *,
    attempts: int = 2,
    recover: Any = None,
) -> str:
    """Ask `attempts` times while the fault lasts (each answers, empty); one error message, status error;
    then recover (by default the script simply runs out of faults) and ask again: the model's answer."""
    uri, cursor = kit.unique_doc(client)
    for _ in range(attempts):
        assert await kit.complete(client, uri, cursor) == []
    shown = kit.errors_shown(client)
    assert len(shown) == 1, shown
    assert expected in shown[0], shown[0]
    states = [s["state"] for s in kit.statuses(client)]
    assert states[:2] == ["busy", "error"] and states[-1] == "error", states
    assert expected in kit.statuses(client)[-1]["message"]

    if recover is not None:
        await recover()
    tgi.script(RECOVERED)
    # Edit the document so that the answer cannot come from anywhere but the model.
    kit.edit_doc(client, uri, 2, (1, 0), (1, 0), "    # again\n")
    again = types.Position(cursor.line + 1, cursor.character)
    assert await kit.complete(client, uri, again) == ["recovered(value)"]
    # (idle follows the answer)
    await kit.eventually(lambda: kit.statuses(client)[-1]["state"] == "idle", what="the idle status")
    assert len(kit.errors_shown(client)) == 1  # recovering says nothing
    return shown[0]


# -- the network -------------------------------------------------------------------------------------


async def test_connection_refused_then_the_server_comes_back(client: LanguageClient, tgi: TGI) -> None:
    gate = kit.Gate(tgi.url)
    await gate.up()
    kit.configure(client, kit.settings(gate.url))
    await kit.complete(client, *kit.unique_doc(client))  # connected once: the backend knows /info
    client.messages.clear()
    kit.statuses(client).clear()
    await gate.down()
    try:
        message = await fails_then_recovers(client, tgi, "Cannot reach the model server", attempts=3, recover=gate.up)
        assert gate.url in message and "codellama.endpoint" in message
    finally:
        await gate.down()


async def test_server_never_reachable_from_the_start(client: LanguageClient, tgi: TGI) -> None:
    url = kit.unused_url()
    kit.configure(client, kit.settings(url))

    async def back() -> None:
        kit.configure(client, kit.settings(tgi.url))

    message = await fails_then_recovers(client, tgi, "Cannot reach the model server", recover=back)
    assert url in message


async def test_dns_failure(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, kit.settings("http://nonexistent.invalid:80"))

    async def back() -> None:
        kit.configure(client, kit.settings(tgi.url))

    message = await fails_then_recovers(client, tgi, "Cannot resolve the host", recover=back)
    assert "nonexistent.invalid" in message


async def test_tls_to_a_plain_http_server(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, kit.settings(tgi.url.replace("http://", "https://")))

    async def back() -> None:
        kit.configure(client, kit.settings(tgi.url))

    message = await fails_then_recovers(client, tgi, "TLS failure", recover=back)
    assert "https" in message


# -- silence -----------------------------------------------------------------------------------------


async def test_slow_first_byte_times_out(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, kit.settings(tgi.url, requestTimeout=0.5))
    tgi.script({"delay": 5}, {"delay": 5})
    await fails_then_recovers(client, tgi, "stopped answering")
    assert len(tgi.requests()) == 3  # a timeout is not retried: the user already waited for it


async def test_stall_mid_stream_times_out_and_closes_the_stream(client: LanguageClient, tgi: TGI) -> None:
    kit.configure(client, kit.settings(tgi.url, requestTimeout=0.5))
    stall = {"text": "```python\n" + "x = 1\n" * 20 + "```", "stall_after": 3, "stall": 30}
    tgi.script(stall, stall)
    await fails_then_recovers(client, tgi, "stopped answering")
    await kit.eventually(lambda: tgi.streams()["closed_early"] == 2, what="TGI saw both streams closed")


async def test_keepalives_without_tokens_time_out(client: LanguageClient, tgi: TGI) -> None:
    """Keep-alive comments reset httpx's read timeout; the token silence is bounded by requestTimeout too."""
    kit.configure(client, kit.settings(tgi.url, requestTimeout=0.5))
    stall = {"text": "```python\n" + "x = 1\n" * 20 + "```", "stall_after": 2, "stall": 30, "keepalive_every": 0.05}
    tgi.script(stall, stall)
    message = await fails_then_recovers(client, tgi, "stopped answering: no token for 0.5 s")
    assert "codellama.requestTimeout" in message
    await kit.eventually(lambda: tgi.streams()["closed_early"] == 2, what="TGI saw both streams closed")


async def test_slow_tokens_with_keepalives_are_not_a_timeout(client: LanguageClient, tgi: TGI) -> None:
    """The limit is on silence, not on the length of the answer: ~1.5 s of tokens under a 0.8 s timeout."""
    kit.configure(client, kit.settings(tgi.url, requestTimeout=0.8))
    tgi.script({"text": "```\nsteady()\n```", "chunk_delay": 0.3, "keepalive": True})
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == ["steady()"]
    assert kit.errors_shown(client) == []


# -- HTTP errors -------------------------------------------------------------------------------------


async def test_401_with_an_empty_body(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"status": 401, "body": ""}, {"status": 401, "body": ""})
    message = await fails_then_recovers(client, tgi, "refused the credentials (HTTP 401)")
    assert "codellama.apiToken" in message
    assert len(tgi.requests()) == 3  # not retried


async def test_422_json(client: LanguageClient, tgi: TGI) -> None:
    body = '{"error":"Input validation error: `top_p` must be > 0.0 and < 1.0","error_type":"validation"}'
    tgi.script(*[{"status": 422, "body": body}] * 2)
    await fails_then_recovers(client, tgi, "rejected the request: Input validation error: `top_p` must be")


async def test_422_plain_text(client: LanguageClient, tgi: TGI) -> None:
    text = "Failed to deserialize the JSON body into the target type: missing field `inputs`"
    tgi.script(*[{"status": 422, "body": text, "content_type": "text/plain"}] * 2)
    await fails_then_recovers(client, tgi, f"rejected the request: {text}")


async def test_422_prompt_too_long_is_retried_once_with_a_smaller_prompt(client: LanguageClient, tgi: TGI) -> None:
    body = (
        '{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 '
        '`inputs` tokens and 160 `max_new_tokens`","error_type":"validation"}'
    )
    tgi.script({"status": 422, "body": body}, {"text": "```python\nshorter(value)\n```"})
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == ["shorter(value)"]
    assert kit.errors_shown(client) == []
    assert len(tgi.requests()) == 2


async def test_424_generation_error(client: LanguageClient, tgi: TGI) -> None:
    body = '{"error":"Request failed during generation: Server error: CUDA out of memory","error_type":"generation"}'
    tgi.script(*[{"status": 424, "body": body}] * 2)
    await fails_then_recovers(client, tgi, "failed (HTTP 424): Request failed during generation")
    assert len(tgi.requests()) == 3  # TGI's verdict on this request: not retried


@pytest.mark.parametrize(("status", "retried"), [(500, False), (503, True)])
async def test_500_and_503(client: LanguageClient, tgi: TGI, status: int, retried: bool) -> None:
    tgi.script(default={"status": status, "body": '{"error":"upstream trouble"}'})

    async def back() -> None:
        tgi.script(default={})

    await fails_then_recovers(client, tgi, f"failed (HTTP {status}): upstream trouble", recover=back)
    assert len(tgi.requests()) == (2 * 3 if retried else 2) + 1


async def test_429_is_retried_honouring_retry_after(client: LanguageClient, tgi: TGI) -> None:
    busy = {
        "status": 429,
        "body": '{"error":"Model is overloaded","error_type":"overloaded"}',
        "headers": {"Retry-After": "1"},
    }
    tgi.script(busy, RECOVERED)
    uri, cursor = kit.unique_doc(client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await kit.complete(client, uri, cursor) == ["recovered(value)"]
    assert loop.time() - started >= 1.0  # waited as told, then answered
    assert len(tgi.requests()) == 2
    assert kit.errors_shown(client) == []


async def test_429_retries_are_bounded(client: LanguageClient, tgi: TGI) -> None:
    busy = {"status": 429, "body": '{"error":"Model is overloaded","error_type":"overloaded"}'}

    async def back() -> None:
        tgi.script(default={})

    tgi.script(default=busy)
    await fails_then_recovers(client, tgi, "overloaded: Model is overloaded", recover=back)
    assert len(tgi.requests()) == 2 * 3 + 1  # maxRetries 2: three tries per request


async def test_429_asking_for_a_long_wait_is_reported_at_once(client: LanguageClient, tgi: TGI) -> None:
    busy = {"status": 429, "body": '{"error":"Model is overloaded"}', "headers": {"Retry-After": "3600"}}
    tgi.script(busy, busy)
    await fails_then_recovers(client, tgi, "overloaded")
    assert len(tgi.requests()) == 3


# -- broken streams ----------------------------------------------------------------------------------


async def test_error_event_mid_stream(client: LanguageClient, tgi: TGI) -> None:
    broken = {"text": "```python\n" + "y = 2\n" * 10 + "```", "error_after": 3, "error": "CUDA out of memory"}
    tgi.script(broken, broken)
    await fails_then_recovers(client, tgi, "failed during generation: CUDA out of memory")


async def test_connection_dropped_mid_stream(client: LanguageClient, tgi: TGI) -> None:
    broken = {"text": "```python\n" + "y = 2\n" * 10 + "```", "drop_after": 3}
    tgi.script(broken, broken)
    await fails_then_recovers(client, tgi, "The connection to")
    assert len(tgi.requests()) == 3  # tokens had come: not retried


async def test_connection_dropped_before_the_answer_is_retried(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"drop_before": True}, RECOVERED)
    uri, cursor = kit.unique_doc(client)
    assert await kit.complete(client, uri, cursor) == ["recovered(value)"]
    assert kit.errors_shown(client) == []


@pytest.mark.parametrize("framing", ["data:", "data: "])
async def test_truncated_json_event(client: LanguageClient, tgi: TGI, framing: str) -> None:
    broken = {"text": "```python\n" + "y = 2\n" * 10 + "```", "garbage_after": 2, "framing": framing}
    tgi.script(broken, broken)
    await fails_then_recovers(client, tgi, "invalid stream event")


async def test_huge_event(client: LanguageClient, tgi: TGI) -> None:
    huge = {"text": "```python\nbig = 1\n```", "huge_event": 3 * 1024 * 1024}
    tgi.script(huge, huge)
    await fails_then_recovers(client, tgi, "oversized stream event")


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


# -- actions, rate limits, leaks -----------------------------------------------------------------------


async def test_a_failed_action_answers_with_the_message(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"status": 500, "body": '{"error":"boom"}'}, {"text": "It adds things up."})
    uri, _ = kit.unique_doc(client)
    run = {"action": "explain", "uri": uri, "range": {"start": {"line": 0, "character": 0},
                                                       "end": {"line": 2, "character": 0}}, "show": False}
    with pytest.raises(Exception, match=r"failed \(HTTP 500\): boom"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codellama.run", arguments=[run])
        )
    assert len(kit.errors_shown(client)) == 1
    answer = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codellama.run", arguments=[run])
    )
    assert "adds things up" in answer.text if hasattr(answer, "text") else "adds things up" in answer["text"]


async def test_different_failures_each_get_one_message(client: LanguageClient, tgi: TGI) -> None:
    tgi.script(
        {"status": 401, "body": ""},
        {"status": 401, "body": ""},
        {"status": 500, "body": "{}"},
        {"status": 500, "body": "{}"},
        {"status": 401, "body": ""},
    )
    uri, cursor = kit.unique_doc(client)
    for _ in range(5):
        assert await kit.complete(client, uri, cursor) == []
    shown = kit.errors_shown(client)
    assert len(shown) == 2 and "HTTP 401" in shown[0] and "HTTP 500" in shown[1], shown
    # Every failure is in the client's log though.
    logged = [m for m in client.log_messages if "completion failed" in m.message]
    assert len(logged) == 5


async def test_no_tasks_or_streams_left_behind_after_faults(client: LanguageClient, tgi: TGI) -> None:
    before = await kit.stats(client)
    faults: list[dict[str, Any]] = [
        {"status": 500, "body": "{}"},
        {"text": "```\n" + "z\n" * 10 + "```", "drop_after": 2},
        {"text": "```\n" + "z\n" * 10 + "```", "garbage_after": 2},
        {"text": "```\n" + "z\n" * 10 + "```", "error_after": 2},
        {"status": 401, "body": ""},
    ]
    tgi.script(*faults)
    uri, cursor = kit.unique_doc(client)
    for _ in faults:
        await kit.complete(client, uri, cursor)
    await kit.eventually(lambda: tgi.streams()["open"] == 0, what="no stream open at TGI")
    after = await kit.settled_stats(client, before["tasks"])
    assert after["tasks"] <= before["tasks"], (before, after)
    assert after["pending"] <= before["pending"], (before, after)
