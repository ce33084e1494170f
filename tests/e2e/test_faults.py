"""The fault matrix: every way the model server can fail, end to end (the real language server process,
real HTTP to tests/tgi_server.py or to nothing at all).

For each fault: the request still answers (an empty completion, or an error answer for an action), the
user reads one clear message however often they type (window/showMessage is rate limited), the editor
plugins see `codellama/status` go busy -> error (with the message) -> idle, the server stays up, and the
next request works once the model server is back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.conftest import TGI
from tests.e2e import fault_kit, kit
from tests.e2e.fault_kit import RECOVERED, fails_then_recovers, fresh  # noqa: F401  (fresh: autouse)

pytestmark = pytest.mark.asyncio(loop_scope="module")

client = fault_kit.client_fixture("visual-studio-code")


# -- no request the user did not cause ------------------------------------------------------------------


async def test_typing_sends_the_model_server_nothing_but_the_completions(client: LanguageClient, tgi: TGI) -> None:
    """No connection warmer, no `/info` per burst: only the generations, `/info` once per backend (here
    read by the reset's first completion), again after a settings change."""
    uri, cursor = kit.unique_doc(client)
    for n in range(4):
        kit.edit_doc(client, uri, 2 + n, (0, 0), (0, 0), f"# edit {n}\n")
        tgi.script({"text": f"```python\nanswer_{n}(value)\n```"})
        position = types.Position(cursor.line + n + 1, cursor.character)
        assert await kit.complete(client, uri, position) == [f"answer_{n}(value)"]
    generations = [hit for hit in kit.hits(tgi) if hit != "POST /tokenize"]  # (calibration: the core's)
    assert generations == ["POST /generate_stream"] * 4
    kit.configure(client, kit.settings(tgi.url, requestTimeout=3.0))
    tgi.script({"text": "```python\nafter_settings(value)\n```"})
    kit.edit_doc(client, uri, 10, (0, 0), (0, 0), "# again\n")
    assert await kit.complete(client, uri, types.Position(cursor.line + 5, cursor.character)) == [
        "after_settings(value)"
    ]
    assert [hit for hit in kit.hits(tgi) if hit != "POST /tokenize"][4:] == ["GET /info", "POST /generate_stream"]


# -- the network -------------------------------------------------------------------------------------


async def test_connection_refused_then_the_server_comes_back(client: LanguageClient, tgi: TGI) -> None:
    gate = kit.Gate(tgi.url)
    await gate.up()
    kit.configure(client, kit.settings(gate.url))
    await kit.complete(client, *kit.unique_doc(client))  # connected once: the backend knows /info
    # (the idle status follows the answer: wait for it, so that it does not land among the fault's)
    await kit.eventually(lambda: bool(kit.statuses(client)) and kit.statuses(client)[-1]["state"] == "idle")
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
