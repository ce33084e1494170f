"""The request flow, one sentence per feature: context, budget, prompt, model, clean-up.

Everything here is plain Python over documents and a backend; the LSP features and the command line
both call it, and neither pygls nor lsprotocol is imported.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from lsp.backends.base import AFTER_ANSWER, Backend, GenerationRequest
from lsp.chat_format import Message, render_codellama70b, render_messages
from lsp.config import Settings
from lsp.context.documents import Document
from lsp.context.extract import (
    CodeContext,
    DefinitionSource,
    block_end,
    context_at,
    parses_cleanly,
    selection_context,
    target_range,
)
from lsp.errors import BackendRejected
from lsp.log import fields
from lsp.postprocess import (
    clean_completion,
    completion_decided,
    extract_code,
    prepare_cleanup,
    reindent_block,
)
from lsp.prompting import Budget, BuiltPrompt, build_prompt
from lsp.templates import Action, PromptStore
from lsp.tokens import CalibratedCounter, TokenCounter

log = logging.getLogger(__name__)

# Limits used when neither the server nor the settings say: TheBloke's TGI settings for the 70B model.
DEFAULT_MAX_INPUT_TOKENS = 3696
DEFAULT_MAX_TOTAL_TOKENS = 4096
LENGTH_RETRY_SHRINK = 0.75

Progress = Callable[[int, str], None]


@dataclass(frozen=True)
class ActionResult:
    action: Action
    start: int  # target range in the document, str offsets
    end: int
    text: str  # code (replacement or test file) or markdown
    reply: str  # what the model said, unedited
    parses: bool | None  # for code replacements: does the document still parse without new errors
    version: int
    prompt_tokens: int


class Assistant:
    def __init__(self, settings: Settings, backend: Backend, store: PromptStore, counter: TokenCounter,
                 workspace: DefinitionSource | None = None) -> None:
        self.settings = settings
        self.workspace = workspace  # definitions from files that are not open
        self.backend = backend
        self.store = store
        self.counter = counter
        self._prompts_seen = 0
        self._background: set[asyncio.Task[None]] = set()

    # -- completion ---------------------------------------------------------------------------------

    def completion_context(
        self, doc: Document, offset: int, *, others: Iterable[Document] = (), root: str | None = None
    ) -> CodeContext:
        """A snapshot of what the model needs: taken at once, so later edits cannot shift it."""
        return context_at(doc, offset, others=others, root=root, workspace=self.workspace)

    async def complete(
        self, doc: Document, offset: int, *, others: Iterable[Document] = (), root: str | None = None
    ) -> str:
        context = self.completion_context(doc, offset, others=others, root=root)
        return await self.complete_context(context, doc=doc, offset=offset)

    async def complete_context(
        self,
        context: CodeContext,
        *,
        doc: Document | None = None,
        offset: int | None = None,
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """The text to insert at the cursor of `context`. With `doc` (as it was when `context` was taken:
        a snapshot, if the document may change meanwhile) and the cursor's `offset` in it, the stream is
        closed when the block ends and the suggestion is cut back to what adds no syntax error. `ready` is
        awaited between building the prompt and calling the model (a caller still debouncing builds the
        prompt while it waits)."""
        settings = self.settings.completion
        spec = self.store.spec("complete")
        max_new = min(settings.max_new_tokens, spec.max_new_tokens)
        stopper = _CompletionStopper(context, max_lines=settings.max_lines, doc=doc, offset=offset)
        stopper.prepare()  # now, while the caller debounces, rather than when the answer is awaited

        async def ask(budget: Budget) -> str:
            prompt = self._prompt("complete", context, budget)
            return await self._generate(prompt, settings.temperature, stop_when=stopper.done, ready=ready)

        reply = await self._with_length_retry(ask, max_new)
        return stopper.clean(reply)

    # -- code actions -------------------------------------------------------------------------------

    async def run(
        self,
        action: Action,
        doc: Document,
        start: int,
        end: int,
        *,
        instruction: str = "",
        diagnostics: Iterable[str] = (),
        test_path: str = "",
        others: Iterable[Document] = (),
        root: str | None = None,
        progress: Progress | None = None,
    ) -> ActionResult:
        # The result belongs to the version the request saw: if the document changes while the model
        # runs, callers compare versions and know that the offsets and the proposal are stale.
        version = doc.version
        start, end = target_range(doc, start, end)
        selection = doc.text[start:end]
        context = selection_context(doc, start, end, others=others, root=root, workspace=self.workspace)
        spec = self.store.spec(action)
        max_new = min(self.settings.max_new_tokens, spec.max_new_tokens)
        prompt_tokens = 0

        async def ask(budget: Budget) -> str:
            nonlocal prompt_tokens
            prompt = self._prompt(
                action,
                context,
                budget,
                selection=selection,
                instruction=instruction,
                diagnostics=list(diagnostics),
                test_path=test_path,
            )
            prompt_tokens = prompt.tokens
            return await self._generate(prompt, self.settings.temperature, progress=progress)

        reply = await self._with_length_retry(ask, max_new)
        if spec.reply == "markdown":
            return ActionResult(action, start, end, reply.strip(), reply, None, version, prompt_tokens)
        code = extract_code(reply)
        parses: bool | None = None
        if action != "tests":
            code = reindent_block(code, selection)
            if selection.endswith("\n") and not code.endswith("\n"):
                code += "\n"
            if doc.version == version:  # else the offsets no longer fit the text: the result is stale
                parses = parses_cleanly(doc, start, end, code)
        return ActionResult(action, start, end, code, reply, parses, version, prompt_tokens)

    # -- the shared steps ---------------------------------------------------------------------------

    async def budget(self, max_new_tokens: int) -> Budget:
        info = await self.backend.info()
        return Budget.compute(
            max_new_tokens,
            self.settings.max_input_tokens or info.max_input_tokens or DEFAULT_MAX_INPUT_TOKENS,
            self.settings.max_total_tokens or info.max_total_tokens or DEFAULT_MAX_TOTAL_TOKENS,
        )

    def _prompt(self, action: Action, context: CodeContext, budget: Budget, **extra: object) -> BuiltPrompt:
        render = render_codellama70b if self.backend.prompt_format == "codellama-70b" else _messages_text
        return build_prompt(
            self.store,
            action,
            context,
            counter=self.counter,
            budget=budget,
            render=render,
            **extra,  # type: ignore[arg-type]
        )

    async def _with_length_retry(self, ask: Callable[[Budget], Awaitable[str]], max_new: int) -> str:
        budget = await self.budget(max_new)
        try:
            return await ask(budget)
        except BackendRejected as error:
            if not error.too_long:
                raise
            if isinstance(self.counter, CalibratedCounter):
                self.counter.reset()
            # The server counted more tokens than we did (an estimate or a different tokenizer): shrink once.
            log.info("prompt rejected as too long (%s); retrying with a smaller budget", error)
            smaller = Budget(
                int(budget.prompt_tokens * LENGTH_RETRY_SHRINK),
                budget.max_new_tokens,
                budget.max_input_tokens,
                budget.max_total_tokens,
            )
            return await ask(smaller)

    async def _generate(
        self,
        prompt: BuiltPrompt,
        temperature: float,
        *,
        stop_when: Callable[[str], bool] | None = None,
        progress: Progress | None = None,
        ready: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """The model's reply to `prompt`; `ready` is awaited once the request is prepared, before it is sent."""
        request = GenerationRequest(
            messages=prompt.messages,
            max_new_tokens=prompt.budget.max_new_tokens,
            temperature=temperature,
            top_p=self.settings.top_p,
            stop=tuple(dict.fromkeys((*prompt.spec.stop, *self.settings.stop)))[:3],
            request_id=uuid.uuid4().hex[:12],
        )
        parts: list[str] = []
        chunks = 0
        started = time.perf_counter()

        async def sent_when_ready() -> None:
            nonlocal started
            assert ready is not None
            await ready()
            started = time.perf_counter()  # the model call's time starts when the request leaves

        # `ready` is the backend's to await: it connects and makes the request's bytes meanwhile
        stream: AsyncIterator[str] = self.backend.stream(request, ready=sent_when_ready if ready else None)
        # One record per model call, whatever its outcome: request id, action, sizes and timing.
        call = {"request": request.request_id, "backend": self.backend.name, "action": prompt.action}
        try:
            async with aclosing(stream):  # type: ignore[type-var]
                async for chunk in stream:
                    parts.append(chunk)
                    chunks += 1
                    if progress is not None:
                        progress(chunks, "".join(parts))
                    if stop_when is not None and stop_when("".join(parts)):
                        break
        except BaseException as error:
            outcome = "cancelled" if isinstance(error, asyncio.CancelledError) else type(error).__name__
            ms = round((time.perf_counter() - started) * 1000)
            log.info(
                "model call %s", fields(**call, outcome=outcome, prompt_tokens=prompt.tokens, chunks=chunks, ms=ms)
            )
            raise
        reply = "".join(parts)
        self._calibrate(prompt)
        if log.isEnabledFor(logging.INFO):  # (formatting the record is work on the answer's path)
            ms = round((time.perf_counter() - started) * 1000)
            log.info("model call %s", fields(**call, outcome="ok", prompt_tokens=prompt.tokens, chunks=chunks, ms=ms))
        return reply

    def _calibrate(self, prompt: BuiltPrompt) -> None:
        """Now and then, ask the server how many tokens a prompt really had, to tighten the estimate."""
        counter = self.counter
        if not isinstance(counter, CalibratedCounter):
            return
        self._prompts_seen += 1
        if self._prompts_seen > 3 and self._prompts_seen % 25:
            return

        async def measure() -> None:
            try:
                tokens = await self.backend.count_tokens(prompt.text)
            except Exception as error:  # calibration is best effort
                log.debug("token count failed: %s", error)
                return
            if tokens is not None:
                counter.observe(prompt.text, tokens)

        def start() -> None:
            task = asyncio.ensure_future(measure())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        # after the answer: its request would otherwise be built and sent first
        asyncio.get_running_loop().call_later(AFTER_ANSWER, start)


LOCAL_PARSE_CHARS = 4000  # documents at least this long are checked on a window around the cursor


# Syntax checks re-parse the code around the cursor for every streamed line. Where that code is huge (a
# minified one-line file has a single top-level statement), a parse takes seconds on the event loop: there
# the clean-up goes without syntax checks rather than stall the server.
MAX_CHECKED_LINE = 4000
MAX_CHECKED_DOCUMENT = 2_000_000


def _checkable(doc: Document, offset: int) -> bool:
    text = doc.text
    if len(text) > MAX_CHECKED_DOCUMENT:
        return False
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return (len(text) if end < 0 else end) - start <= MAX_CHECKED_LINE


class _CompletionStopper:
    """Decide from the partial reply that the completion is complete, so the stream can be closed; and
    answer the clean-up's syntax questions (postprocess.Syntax) over the document, when there is one."""

    def __init__(self, context: CodeContext, *, max_lines: int, doc: Document | None, offset: int | None) -> None:
        self.context = context
        self.max_lines = max_lines
        self.doc = doc
        self.offset = len(context.prefix) if offset is None else offset
        self.syntax = self if doc is not None and doc.language is not None and _checkable(doc, self.offset) else None
        self._newlines = 0
        self._window: tuple[Document, int] | None = None
        # the stream's decisions and the clean-up ask about the same texts: each answer costs a parse
        self._parses: dict[str, bool] = {}
        self._block_ends: dict[str, int | None] = {}

    def done(self, reply: str) -> bool:
        # Nothing is decided in the middle of a line: look again only when a line ends.
        newlines = reply.count("\n")
        if newlines == self._newlines:
            return False
        self._newlines = newlines
        context = self.context
        decided = completion_decided(
            reply,
            context.prefix,
            context.suffix,
            single_line=context.single_line,
            max_lines=self.max_lines,
            syntax=self.syntax,
        )
        if not decided and self.syntax is not None:
            # The clean-up of the answer asks syntax questions (a parse each) about the code: asked now,
            # between tokens, about the code so far, they are answered from memory after the last token,
            # which usually only closes the code block.
            self.clean(reply)
        return decided

    def clean(self, reply: str) -> str:
        """What to insert, from the model's (whole) reply."""
        context = self.context
        return clean_completion(
            reply,
            context.prefix,
            context.suffix,
            single_line=context.single_line,
            max_lines=self.max_lines,
            syntax=self.syntax,
        )

    def prepare(self) -> None:
        """Do now the work every decision and the clean-up need: the parse of the code around the cursor,
        the lines and the indentation style around it."""
        prepare_cleanup(self.context.prefix, self.context.suffix)
        if self.syntax is not None:
            self._local()

    def parses(self, inserted: str) -> bool:
        if inserted not in self._parses:
            doc, offset = self._local()
            self._parses[inserted] = parses_cleanly(doc, offset, offset, inserted)
        return self._parses[inserted]

    def block_end(self, inserted: str) -> int | None:
        if inserted not in self._block_ends:
            doc, offset = self._local()
            self._block_ends[inserted] = block_end(doc, offset, inserted)
        return self._block_ends[inserted]

    def _local(self) -> tuple[Document, int]:
        """The document, or for a large one the top-level statements around the cursor (the one it is in or
        before, and its neighbours) as a document of their own: each question costs a parse, and parsing
        a window instead of the whole file keeps the answer fast."""
        if self._window is not None:
            return self._window
        doc = self.doc
        assert doc is not None
        tree = doc.tree
        self._window = (doc, self.offset)
        if tree is None or len(doc.text) < LOCAL_PARSE_CHARS:
            return self._window
        lines = doc.lines
        byte = lines.byte_at(self.offset)
        nodes = tree.root_node.children
        at = next((i for i, node in enumerate(nodes) if node.end_byte >= byte), len(nodes))
        first = nodes[at - 1].start_byte if at > 0 else 0
        last = nodes[at + 1].end_byte if at + 1 < len(nodes) else len(doc.data)
        start, end = lines.offset_of_byte(first), lines.offset_of_byte(last)
        start = lines.line_start(lines.line_of(start))  # whole lines: indentation is syntax in some languages
        window = Document(doc.uri, doc.language_id, doc.version, doc.text[start:end], language=doc.language)
        self._window = (window, self.offset - start)
        return self._window


def _messages_text(messages: Sequence[Message]) -> str:
    """What a chat-template backend is sent, as text to count: contents plus per-turn overhead."""
    return "\n".join(f"<|{m['role']}|>\n{m['content']}\n" for m in render_messages(messages))
