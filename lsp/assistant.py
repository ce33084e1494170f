"""What completions and code actions share: the budget, the prompt, one generation (with the retry when the
server finds the prompt too long), and the code actions' flow. Completions: :mod:`lsp.completion.pipeline`.

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

from lsp.backends.base import Backend, GenerationRequest, ModelInfo
from lsp.config import Settings
from lsp.context.code_context import CodeContext, DefinitionSource
from lsp.context.documents import Document
from lsp.errors import BackendRejected
from lsp.log import fields
from lsp.prompt.budget import Budget, BuiltPrompt, build_prompt
from lsp.prompt.chat_format import MAX_EXTRA_STOPS, Message, render_codellama70b, render_messages
from lsp.prompt.templates import Action, PromptStore
from lsp.prompt.tokens import CalibratedCounter, TokenCounter

log = logging.getLogger(__name__)

# Limits used when neither the server nor the settings say: TheBloke's TGI settings for the 70B model.
DEFAULT_MAX_INPUT_TOKENS = 3696
DEFAULT_MAX_TOTAL_TOKENS = 4096
LENGTH_RETRY_SHRINK = 0.75



class Assistant:
    def __init__(self, settings: Settings, backend: Backend, store: PromptStore, counter: TokenCounter,
                 workspace: DefinitionSource | None = None) -> None:
        self.settings = settings
        self.backend = backend
        self.store = store
        self.counter = counter
        self.workspace = workspace  # definitions from files that are not open
        self._info: ModelInfo | None = None  # the limits the last budget was computed from

    # -- completion (lsp/completion/pipeline.py) ----------------------------------------------------

    async def complete(
        self, doc: Document, offset: int, *, others: Iterable[Document] = (), root: str | None = None
    ) -> str:
        from lsp.completion.pipeline import complete  # (the pipeline builds on this module)

        return await complete(self, doc, offset, others=others, root=root)

    # -- the shared steps ---------------------------------------------------------------------------

    async def budget(self, max_new_tokens: int) -> Budget:
        self._info = await self.backend.info()
        return self._budget(max_new_tokens, self._info)

    def known_budget(self, max_new_tokens: int) -> Budget | None:
        """The budget from the limits the backend last reported, without asking it (None before it was
        first asked): what a prompt can be prepared with before the model is asked; the model's call
        itself reads the limits again (see :meth:`with_length_retry`)."""
        return None if self._info is None else self._budget(max_new_tokens, self._info)

    def _budget(self, max_new_tokens: int, info: ModelInfo) -> Budget:
        return Budget.compute(
            max_new_tokens,
            self.settings.max_input_tokens or info.max_input_tokens or DEFAULT_MAX_INPUT_TOKENS,
            self.settings.max_total_tokens or info.max_total_tokens or DEFAULT_MAX_TOTAL_TOKENS,
        )

    def prompt(self, action: Action, context: CodeContext, budget: Budget, **extra: object) -> BuiltPrompt:
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

    async def with_length_retry(self, ask: Callable[[Budget], Awaitable[str]], max_new: int) -> str:
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

    async def generate(
        self,
        prompt: BuiltPrompt,
        temperature: float,
        *,
        stop_when: Callable[[str], bool] | None = None,
        progress: Callable[[int, str], None] | None = None,
    ) -> str:
        """The model's reply to ``prompt``, read until the stream ends or ``stop_when`` says it is decided."""
        request = GenerationRequest(
            messages=prompt.messages,
            prompt="" if prompt.messages else prompt.text,  # a continuation prompt has no messages
            max_new_tokens=prompt.budget.max_new_tokens,
            temperature=temperature,
            top_p=self.settings.top_p,
            stop=tuple(dict.fromkeys((*prompt.spec.stop, *self.settings.stop)))[:MAX_EXTRA_STOPS],
            request_id=uuid.uuid4().hex[:12],
        )
        parts: list[str] = []
        chunks = 0
        started = time.perf_counter()
        stream: AsyncIterator[str] = self.backend.stream(request)
        # One record per model call, whatever its outcome: request id, action, sizes and timing.
        call = {"request": request.request_id, "backend": self.backend.name, "action": prompt.action}
        outcome = "ok"
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
            raise
        finally:
            ms = round((time.perf_counter() - started) * 1000)
            record = fields(**call, outcome=outcome, prompt_tokens=prompt.tokens, chunks=chunks, ms=ms)
            log.info("model call %s", record)
        self._calibrate(prompt, request)
        return "".join(parts)

    def _calibrate(self, prompt: BuiltPrompt, request: GenerationRequest) -> None:
        """Tighten the token estimate from what the server counted for this prompt, when its answer said
        (no request of its own: the model server's time is the user's)."""
        usage = getattr(request, "usage", None)  # filled by a backend that reads the server's count
        tokens = getattr(usage, "input_tokens", None)
        if isinstance(self.counter, CalibratedCounter) and isinstance(tokens, int):
            self.counter.observe(prompt.text, tokens)


def _messages_text(messages: Sequence[Message]) -> str:
    """What a chat-template backend is sent, as text to count: contents plus per-turn overhead."""
    return "\n".join(f"<|{m['role']}|>\n{m['content']}\n" for m in render_messages(messages))
