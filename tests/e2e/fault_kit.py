"""What the fault suites share: one language server per module under a real client's recorded
capabilities, reset before each test, and the shape every fault must have for the user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.conftest import TGI, clean_env, server_command
from tests.e2e import kit

RECOVERED = {"text": "```python\nrecovered(value)\n```"}


def client_fixture(client_name: str) -> Callable[..., Any]:
    """A module's language server, initialized as `client_name` (pytest-lsp's recorded capabilities)."""

    @pytest_lsp.fixture(
        scope="module",
        config=ClientServerConfig(server_command(), client_factory=kit.make_client, server_env=clean_env()),
    )
    async def client(lsp_client: LanguageClient, tgi_server: TGI) -> AsyncIterator[None]:
        await lsp_client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(client_name),
                initialization_options={"codellama": kit.settings(tgi_server.url)},
                root_uri="file:///tmp/project",
            )
        )
        yield
        await lsp_client.shutdown_session()

    return client


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def fresh(client: LanguageClient, tgi_server: TGI) -> AsyncIterator[None]:
    await kit.reset(client, tgi_server)
    yield
    # every body the backend sent, and every reply the test server gave, is TGI's protocol
    assert tgi_server.http.get("/_control/invalid").json() == []


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
    states = _since_first_busy([s["state"] for s in kit.statuses(client)])
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




def _since_first_busy(states: list[str]) -> list[str]:
    """The states the fault's requests caused: they start at its first request's "busy". An "idle" before it
    is the previous request's, which a busy machine can deliver after the test cleared the statuses."""
    assert "busy" in states, states
    before = states[: states.index("busy")]
    assert set(before) <= {"idle"}, states
    return states[len(before) :]
