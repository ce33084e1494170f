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

from lsp.backends.base import Backend, GenerationRequest
from lsp.chat_format import Message, render_codellama70b, render_messages
from lsp.config import Settings
from lsp.context.documents import Document
from lsp.context.extract import CodeContext, context_at, parses_cleanly, selection_context, target_range
from lsp.errors import BackendRejected
from lsp.postprocess import clean_completion, extract_code, reindent_block
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
    def __init__(self, settings: Settings, backend: Backend, store: PromptStore, counter: TokenCounter) -> None:
        self.settings = settings
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
        return context_at(doc, offset, others=others, root=root)

    async def complete(
        self, doc: Document, offset: int, *, others: Iterable[Document] = (), root: str | None = None
    ) -> str:
        return await self.complete_context(self.completion_context(doc, offset, others=others, root=root))

    async def complete_context(self, context: CodeContext) -> str:
        settings = self.settings.completion
        spec = self.store.spec("complete")
        max_new = min(settings.max_new_tokens, spec.max_new_tokens)
        stopper = _CompletionStopper(single_line=context.single_line, max_lines=settings.max_lines)

        async def ask(budget: Budget) -> str:
            prompt = self._prompt("complete", context, budget)
            return await self._generate(prompt, settings.temperature, stop_when=stopper.done)

        reply = await self._with_length_retry(ask, max_new)
        return clean_completion(
            reply, context.prefix, context.suffix, single_line=context.single_line, max_lines=settings.max_lines
        )

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
        start, end = target_range(doc, start, end)
        selection = doc.text[start:end]
        context = selection_context(doc, start, end, others=others, root=root)
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
            return ActionResult(action, start, end, reply.strip(), reply, None, doc.version, prompt_tokens)
        code = extract_code(reply)
        parses: bool | None = None
        if action != "tests":
            code = reindent_block(code, selection)
            if selection.endswith("\n") and not code.endswith("\n"):
                code += "\n"
            parses = parses_cleanly(doc, start, end, code)
        return ActionResult(action, start, end, code, reply, parses, doc.version, prompt_tokens)

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
    ) -> str:
        request = GenerationRequest(
            messages=prompt.messages,
            max_new_tokens=prompt.budget.max_new_tokens,
            temperature=temperature,
            top_p=self.settings.top_p,
            stop=tuple(dict.fromkeys((*prompt.spec.stop, *self.settings.stop)))[:3],
            request_id=uuid.uuid4().hex[:12],
        )
        started = time.perf_counter()
        parts: list[str] = []
        chunks = 0
        stream: AsyncIterator[str] = self.backend.stream(request)
        async with aclosing(stream):  # type: ignore[type-var]
            async for chunk in stream:
                parts.append(chunk)
                chunks += 1
                if progress is not None:
                    progress(chunks, "".join(parts))
                if stop_when is not None and stop_when("".join(parts)):
                    break
        reply = "".join(parts)
        self._calibrate(prompt)
        log.info(
            "request %s: %s, prompt %d tokens, %d chunks in %.0f ms",
            request.request_id,
            prompt.action,
            prompt.tokens,
            chunks,
            (time.perf_counter() - started) * 1000,
        )
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

        task = asyncio.ensure_future(measure())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class _CompletionStopper:
    """Decide from the partial reply that the completion is complete, so the stream can be closed."""

    def __init__(self, *, single_line: bool, max_lines: int) -> None:
        self.single_line = single_line
        self.max_lines = max_lines

    def done(self, reply: str) -> bool:
        opened = reply.find("```")
        if opened < 0:
            return False
        body_start = reply.find("\n", opened)
        if body_start < 0:
            return False
        body = reply[body_start + 1 :]
        if "```" in body:
            return True
        lines = body.split("\n")
        complete_lines = [line for line in lines[:-1] if line.strip()]
        if self.single_line and complete_lines:
            return True
        return len(complete_lines) >= self.max_lines


def _messages_text(messages: Sequence[Message]) -> str:
    """What a chat-template backend is sent, as text to count: contents plus per-turn overhead."""
    return "\n".join(f"<|{m['role']}|>\n{m['content']}\n" for m in render_messages(messages))
