"""textDocument/completion and textDocument/inlineCompletion through the real server and real HTTP."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import TGI, start_tgi
from tests.e2e import kit
from tests.e2e.helpers import CLIENTS, edit_doc, editor_config, initialize, open_doc, wait_for

URI = "file:///tmp/project/shapes.py"
SOURCE = """import math


class Circle:
    def __init__(self, radius: float) -> None:
        self.radius = radius

    def area(self) -> float:
        return {SPACE}

    def describe(self) -> str:
        return f"circle of radius {self.radius}"
"""
SOURCE = SOURCE.replace("{SPACE}", "")
CURSOR = types.Position(line=8, character=15)  # after "return " in Circle.area


@pytest_lsp.fixture(params=CLIENTS, config=editor_config())
async def client(lsp_client: LanguageClient, tgi: TGI, request: pytest.FixtureRequest):
    """The server under each real client's recorded capabilities (and so each position encoding)."""
    await initialize(lsp_client, {"endpoint": tgi.url}, capabilities=request.param)
    lsp_client.capabilities = client_capabilities(request.param)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_inline_completion_comes_from_the_model_with_the_70b_prompt(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"text": "```python\nmath.pi * self.radius ** 2\n```"})
    open_doc(client, URI, SOURCE)
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(URI),
            position=CURSOR,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    assert [item.insert_text for item in result.items] == ["math.pi * self.radius ** 2"]
    assert result.items[0].range == types.Range(CURSOR, CURSOR)

    [body] = tgi.requests()
    inputs = body["inputs"]
    assert not inputs.startswith("<s>")
    assert inputs.startswith("Source: system\n\n ")
    assert inputs.endswith(" <step> Source: assistant\nDestination: user\n\n ")
    assert inputs.count("<step>") == 2
    assert "    def area(self) -> float:\n        return <CURSOR>" in inputs
    assert 'return f"circle of radius {self.radius}"' in inputs
    assert "class Circle" in inputs and "def area(self) -> float" in inputs  # the enclosing scopes are named
    assert body["parameters"]["return_full_text"] is False
    assert "<step>" in body["parameters"]["stop"]
    assert body["stream"] is True


async def test_classic_completion_has_a_text_edit_from_the_word_start(client: LanguageClient, tgi: TGI) -> None:
    source = "import os\n\n\ndef cwd() -> str:\n    return os.ge\n"
    tgi.script({"text": "```python\nos.getcwd()\n```"})
    open_doc(client, URI, source)
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(URI), position=types.Position(4, 16))
    )
    assert isinstance(result, types.CompletionList)
    [item] = result.items
    assert isinstance(item.text_edit, types.TextEdit)
    assert item.text_edit.range == types.Range(types.Position(4, 14), types.Position(4, 16))
    assert item.text_edit.new_text == "getcwd()"
    # Markdown only where the client lists it for completion items (LSP: only the formats it lists)
    completion = client.capabilities.text_document.completion  # type: ignore[attr-defined]
    formats = completion.completion_item.documentation_format if completion.completion_item else None
    if formats and types.MarkupKind.Markdown in formats:
        assert item.documentation == types.MarkupContent(types.MarkupKind.Markdown, "```\ngetcwd()\n```")
    else:
        assert item.documentation == "getcwd()"


async def test_cancelled_completion_closes_the_tgi_stream(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"text": "```python\n" + "x = 1\n" * 200 + "```", "chunk_delay": 0.05})
    open_doc(client, URI, SOURCE)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(URI),
        position=CURSOR,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    answer = asyncio.ensure_future(
        client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me")
    )
    await wait_for(lambda: tgi.streams()["opened"] == 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(Exception, match=r"(?i)cancel"):
        await answer  # the request still gets an answer: the cancelled error
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)
    assert tgi.streams()["open"] == 0


async def test_cancelled_completion_closes_the_connection_before_the_first_byte(
    client: LanguageClient, tgi: TGI
) -> None:
    """A model server may send nothing, not even headers, until its first token: a cancelled request must not
    wait for it (the server would go on working for nobody), and the next request is served at once."""
    tgi.script({"text": "```python\nlate()\n```", "delay": 30})
    open_doc(client, URI, SOURCE)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(URI),
        position=CURSOR,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )
    answer = asyncio.ensure_future(
        client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-early")
    )
    await wait_for(lambda: tgi.streams()["waiting"] == 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-early"))
    with pytest.raises(Exception, match=r"(?i)cancel"):
        await answer
    await wait_for(lambda: tgi.streams()["gone_while_waiting"] == 1)  # (never, had it waited out the delay)
    assert tgi.streams()["waiting"] == 0

    tgi.script({"text": "```python\nmath.pi\n```"})
    result = await client.text_document_inline_completion_async(params)
    assert isinstance(result, types.InlineCompletionList)
    assert [item.insert_text for item in result.items] == ["math.pi"]


async def test_tgi_down_gives_one_clear_message_and_the_server_keeps_serving(client: LanguageClient, tgi: TGI) -> None:
    down = start_tgi()
    url = down.url
    down.close()  # nothing listens there now
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": {"endpoint": url}})
    )
    open_doc(client, URI, SOURCE)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(URI),
        position=CURSOR,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    for _ in range(3):
        result = await client.text_document_inline_completion_async(params)
        assert result is not None and not result.items
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1
    assert "Cannot reach the model server" in errors[0].message and url in errors[0].message

    # The model server comes back (here: the configured one); the next request works.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": {"endpoint": tgi.url}})
    )
    tgi.script({"text": "```python\n3.14\n```"})
    result = await client.text_document_inline_completion_async(params)
    assert result is not None and [i.insert_text for i in result.items] == ["3.14"]


@pytest.mark.parametrize("position", [types.Position(99, 0), types.Position(13, 0)])
async def test_a_line_past_the_end_is_a_clear_error(client: LanguageClient, tgi: TGI, position: types.Position) -> None:
    open_doc(client, URI, SOURCE)
    with pytest.raises(Exception, match="invalid position"):
        await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(URI), position=position)
        )
    assert tgi.requests() == []


# -- flow control, early stop and settings ------------------------------------------------------------------

MEAN = """import statistics


def mean(values: list[float]) -> float:
    {SPACE}


def median(values: list[float]) -> float:
    return statistics.median(values)
""".replace("{SPACE}", "")
BODY = types.Position(line=4, character=4)  # the empty body of mean(): a multi-line context
AREA = "math.pi * self.radius ** 2"


def inline_params(uri: str, position: types.Position, *, invoked: bool = False) -> types.InlineCompletionParams:
    kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri),
        position=position,
        context=types.InlineCompletionContext(trigger_kind=kind),
    )


async def inline_texts(client: LanguageClient, uri: str, position: types.Position, **kw: bool) -> list[str]:
    result = await client.text_document_inline_completion_async(inline_params(uri, position, **kw))
    assert isinstance(result, types.InlineCompletionList)
    return [item.insert_text for item in result.items if isinstance(item.insert_text, str)]


def configure(client: LanguageClient, tgi: TGI, **completion: object) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": {"endpoint": tgi.url, "completion": completion}})
    )


async def test_a_request_elsewhere_supersedes_the_running_generation(client: LanguageClient, tgi: TGI) -> None:
    # One endless line: nothing in it decides the completion, so only supersession can end the stream.
    tgi.script(
        {"text": "```python\nx = " + "1 + " * 400, "chunk_delay": 0.05},
        {"text": "```python\n    unit = 3.14\n```"},
    )
    open_doc(client, URI, SOURCE)
    first = asyncio.ensure_future(inline_texts(client, URI, CURSOR, invoked=True))
    await wait_for(lambda: tgi.streams()["opened"] == 1)
    elsewhere = types.Position(line=9, character=0)  # the blank line between the methods
    assert await inline_texts(client, URI, elsewhere, invoked=True) == ["    unit = 3.14"]
    assert await first == []  # superseded: answered, not left hanging
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)
    assert tgi.streams()["open"] == 0
    assert len(tgi.requests()) == 2


async def test_a_burst_of_keystrokes_is_debounced_into_one_generation(client: LanguageClient, tgi: TGI) -> None:
    # A debounce far above the 50 ms between keystrokes, so that a busy machine's late keystroke is still
    # within it: one generation on any machine.
    configure(client, tgi, debounceMs=1500)
    tgi.script(default={"text": "```python\nmath.pi\n```"})
    open_doc(client, URI, SOURCE.replace("return \n", "return m\n"))
    typed = "m"
    answers = []
    started = asyncio.get_running_loop().time()
    for version, char in enumerate("ath", start=2):
        answers.append(asyncio.ensure_future(inline_texts(client, URI, types.Position(8, 15 + len(typed)))))
        edit_doc(client, URI, version, (8, 15 + len(typed)), (8, 15 + len(typed)), char)
        typed += char
        await asyncio.sleep(0.05)
    answers.append(asyncio.ensure_future(inline_texts(client, URI, types.Position(8, 15 + len(typed)))))
    results = await asyncio.gather(*answers)
    assert results == [[], [], [], [".pi"]]  # every request answered; the model restated "math"
    assert len(tgi.requests()) == 1
    assert asyncio.get_running_loop().time() - started >= 1.5 + 0.15  # the last one waited for the debounce


async def test_an_edit_during_the_debounce_leaves_the_model_the_text_as_asked(client: LanguageClient, tgi: TGI) -> None:
    """Context and prompt are prepared while the request waits for its debounce; an edit that comes after
    that (without a request of its own) drops them: the model sees the text as asked, and the suggestion is
    cleaned up for it."""
    configure(client, tgi, debounceMs=400)
    tgi.script({"text": f"```python\n{AREA}\n```"})
    open_doc(client, URI, SOURCE)
    answer = asyncio.ensure_future(inline_texts(client, URI, CURSOR))
    await asyncio.sleep(0.35)  # after the preparation, within the debounce
    edit_doc(client, URI, 2, (1, 0), (1, 0), "EDITED = 1\n")
    assert await answer == [AREA]
    [body] = tgi.requests()
    assert "EDITED" not in body["inputs"]
    assert "    def area(self) -> float:\n        return <CURSOR>" in body["inputs"]


async def test_typing_through_a_suggestion_is_served_from_the_cache(client: LanguageClient, tgi: TGI) -> None:
    # A long file: the cache window (the last 3000 characters before the cursor) shifts as the user types.
    helpers = "".join(f"def helper_{i}(x: float) -> float:\n    return x + {i}\n\n\n" for i in range(120))
    source = helpers + SOURCE
    line = helpers.count("\n") + CURSOR.line
    tgi.script({"text": f"```python\n{AREA}\n```"})
    open_doc(client, URI, source)
    assert await inline_texts(client, URI, types.Position(line, 15)) == [AREA]
    for i, char in enumerate("math.p"):
        edit_doc(client, URI, i + 2, (line, 15 + i), (line, 15 + i), char)
        assert await inline_texts(client, URI, types.Position(line, 16 + i)) == [AREA[i + 1 :]]
    assert len(tgi.requests()) == 1

    # Typing something else than the suggestion asks the model again.
    tgi.script({"text": "```python\n2\n```"})
    edit_doc(client, URI, 20, (line, 21), (line, 21), "!")
    assert await inline_texts(client, URI, types.Position(line, 22)) == ["2"]
    assert len(tgi.requests()) == 2


async def test_a_request_that_types_ahead_joins_the_running_generation(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"text": f"```python\n{AREA}\n```", "delay": 0.4})
    open_doc(client, URI, SOURCE)
    first = asyncio.ensure_future(inline_texts(client, URI, CURSOR, invoked=True))
    await wait_for(lambda: len(tgi.requests()) == 1)
    edit_doc(client, URI, 2, (8, 15), (8, 15), "ma")
    assert await inline_texts(client, URI, types.Position(8, 17)) == [AREA[2:]]
    assert await first == [AREA]
    assert len(tgi.requests()) == 1


async def test_a_single_line_completion_closes_the_stream_at_the_end_of_the_line(
    client: LanguageClient, tgi: TGI
) -> None:
    rest = "".join(f"\n        x{i} = {i}" for i in range(100))
    tgi.script({"text": f"```python\n{AREA}{rest}\n```", "chunk_delay": 0.01})
    open_doc(client, URI, SOURCE)
    assert await inline_texts(client, URI, CURSOR, invoked=True) == [AREA]
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)


async def test_a_multi_line_completion_stops_at_the_end_of_the_block(client: LanguageClient, tgi: TGI) -> None:
    body = "    if not values:\n        return 0.0\n    return sum(values) / len(values)"
    more = "".join(f"\n\n\ndef extra_{i}(values):\n    return {i}" for i in range(50))
    tgi.script({"text": f"```python\n{body}{more}\n```", "chunk_delay": 0.01})
    open_doc(client, URI, MEAN)
    assert await inline_texts(client, URI, BODY, invoked=True) == [body[4:]]
    await wait_for(lambda: tgi.streams()["closed_early"] == 1)


async def test_a_crlf_document_gets_crlf_insertions_at_the_right_place(client: LanguageClient, tgi: TGI) -> None:
    tgi.script({"text": "```python\nif not values:\n    return 0.0\nreturn sum(values) / len(values)\n```"})
    open_doc(client, URI, MEAN.replace("\n", "\r\n"))
    result = await client.text_document_inline_completion_async(inline_params(URI, BODY, invoked=True))
    assert isinstance(result, types.InlineCompletionList)
    [item] = result.items
    assert item.insert_text == "if not values:\r\n        return 0.0\r\n    return sum(values) / len(values)"
    assert item.range == types.Range(BODY, BODY)


async def test_completion_settings_reach_the_model_and_the_result(client: LanguageClient, tgi: TGI) -> None:
    configure(client, tgi, temperature=0.7, maxNewTokens=40, maxLines=2)
    tgi.script({"text": "```python\nif not values:\n    return 0.0\ntotal = sum(values)\nreturn total\n```"})
    open_doc(client, URI, MEAN)
    assert await inline_texts(client, URI, BODY, invoked=True) == ["if not values:\n        return 0.0"]
    [body] = tgi.requests()
    assert body["parameters"]["temperature"] == 0.7 and body["parameters"]["do_sample"] is True
    assert body["parameters"]["max_new_tokens"] == 40

    configure(client, tgi, temperature=0.0)
    tgi.script({"text": "```python\nreturn 0.0\n```"})
    assert await inline_texts(client, URI, BODY, invoked=True) == ["return 0.0"]  # not the cached answer
    assert tgi.requests()[-1]["parameters"]["do_sample"] is False


async def test_completions_can_be_disabled_per_language_and_globally(client: LanguageClient, tgi: TGI) -> None:
    configure(client, tgi, disabledLanguages=["python"])
    tgi.script(default={"text": "```\n42\n```"})
    open_doc(client, URI, SOURCE)
    js_uri = "file:///tmp/project/answer.js"
    open_doc(client, js_uri, "function answer() {\n  return \n}\n", language="javascript")
    assert await inline_texts(client, URI, CURSOR, invoked=True) == []
    classic = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(URI), position=CURSOR)
    )
    assert isinstance(classic, types.CompletionList) and not classic.items
    assert tgi.requests() == []
    assert await inline_texts(client, js_uri, types.Position(1, 9), invoked=True) == ["42"]
    assert len(tgi.requests()) == 1

    configure(client, tgi, enable=False)
    assert await inline_texts(client, js_uri, types.Position(1, 9), invoked=True) == []
    assert len(tgi.requests()) == 1


async def test_no_request_reaches_the_model_server_that_the_user_did_not_cause(
    client: LanguageClient, tgi: TGI
) -> None:
    """A shared TGI pays for every request: a typing burst costs its generations, nothing else (no warm-up
    `GET /info`, no `/tokenize` to calibrate the token count)."""
    open_doc(client, URI, SOURCE)
    tgi.script({"text": "```python\nmath.pi * self.radius ** 2\n```"}, {"text": "```python\n2 * math.pi\n```"})
    assert await inline_texts(client, URI, CURSOR, invoked=True) == [AREA]
    first = kit.hits(tgi)
    for version, char in enumerate("2 *", start=2):  # typing elsewhere: a new generation
        edit_doc(client, URI, version, (8, 15 + version - 2), (8, 15 + version - 2), char)
    await inline_texts(client, URI, types.Position(8, 18))
    await asyncio.sleep(0.5)  # anything sent after the answers would have arrived
    later = kit.hits(tgi)[len(first):]
    assert first.count("GET /info") <= 1 and all("/tokenize" not in hit for hit in first + later), first + later
    assert set(later) <= {"POST /generate_stream"}, later


async def test_the_cache_answers_only_for_the_same_document_language_and_text(
    client: LanguageClient, tgi: TGI
) -> None:
    """An empty Python file's answer is not an empty Go file's; a same-length edit thousands of characters
    above the cursor is a new question."""
    tgi.script({"text": "```python\nimport os\n```"}, {"text": "```go\npackage main\n```"},
               {"text": "```python\nsecond()\n```"}, {"text": "```python\nthird()\n```"})
    open_doc(client, "file:///tmp/project/empty.py", "", "python")
    open_doc(client, "file:///tmp/project/empty.go", "", "go")
    start = types.Position(0, 0)
    assert await inline_texts(client, "file:///tmp/project/empty.py", start, invoked=True) == ["import os"]
    assert await inline_texts(client, "file:///tmp/project/empty.go", start, invoked=True) == ["package main"]
    head = "# " + "x" * 4000 + "\n"
    uri = "file:///tmp/project/long_head.py"
    open_doc(client, uri, head + "value = \n")
    assert await inline_texts(client, uri, types.Position(1, 8), invoked=True) == ["second()"]
    edit_doc(client, uri, 2, (0, 2), (0, 3), "y")  # same length, 4,000 characters above the cursor
    assert await inline_texts(client, uri, types.Position(1, 8), invoked=True) == ["third()"]
    assert len(tgi.requests()) == 4
