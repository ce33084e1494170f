"""The language server: its state (settings, documents, backend, prompts) and the features it registers.

No feature logic lives here; `features/` holds one module per LSP feature and `assistant.py` the flow.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import sys
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.io_ import StdoutWriter, run_async
from pygls.lsp.server import LanguageServer
from pygls.protocol import default_converter

from lsp import __version__
from lsp.assistant import Assistant
from lsp.backends.base import Backend
from lsp.backends.select import chosen_backend, create_backend, warm_up
from lsp.compat import Protocol, ResyncingReader
from lsp.completion.flow import CompletionFlow
from lsp.config import Settings, resolve
from lsp.context.code_context import DefinitionSource, Snippet
from lsp.context.documents import Document
from lsp.context.store import DocumentStore
from lsp.errors import CodellamaError
from lsp.log import register_secret, set_client_sink, setup_logging
from lsp.notices import Notices
from lsp.prompt.templates import PromptStore
from lsp.prompt.tokens import TokenCounter, load_counter
from lsp.scratch import ScratchFolder
from lsp.uris import uri_to_path

log = logging.getLogger(__name__)

BackendFactory = Callable[[Settings], Backend]
STATUS_METHOD = "codellama/status"
TURNS_BETWEEN_SLICES = 3
# what an editor sends first and while the user types, and what the server sends it then
RECEIVED_FIRST = (
    types.INITIALIZE, types.INITIALIZED, types.TEXT_DOCUMENT_DID_OPEN, types.TEXT_DOCUMENT_DID_CHANGE,
    types.TEXT_DOCUMENT_DID_CLOSE, types.TEXT_DOCUMENT_DID_SAVE, types.TEXT_DOCUMENT_INLINE_COMPLETION,
    types.TEXT_DOCUMENT_COMPLETION, types.TEXT_DOCUMENT_CODE_ACTION, types.WORKSPACE_EXECUTE_COMMAND,
    types.CANCEL_REQUEST,
)
SENT_FIRST = (types.WINDOW_WORK_DONE_PROGRESS_CREATE, types.PROGRESS, types.WINDOW_LOG_MESSAGE)
# what their union-typed fields hold (a hook for each is written when first met)
VALUES_SENT = (
    types.InitializeResult, types.InlineCompletionList, types.CompletionList, types.CodeAction,
    types.WorkDoneProgressBegin, types.WorkDoneProgressReport, types.WorkDoneProgressEnd,
)


class CodellamaServer(LanguageServer):
    def __init__(
        self,
        cli_overrides: Mapping[str, Any] | None = None,
        backend_factory: BackendFactory = create_backend,
    ) -> None:
        converter = default_converter()  # type: ignore[no-untyped-call]  # (pygls leaves it untyped)
        super().__init__(
            "codellama-lsp",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=Protocol,
            converter_factory=lambda: converter,
        )
        self.converter = converter  # what reads and writes the messages (pygls keeps it private)
        self.cli_overrides = dict(cli_overrides or {})
        self.backend_factory = backend_factory
        self.documents = DocumentStore()
        self.notices = Notices()
        self.scratch = ScratchFolder()  # files shown to the user (explanations)
        self.completion_flow = CompletionFlow()
        self.root: str | None = None
        # filled by features/workspace.py once the client names a workspace; off when the setting is
        self.workspace_definitions = WorkspaceSlot(lambda: self.settings.workspace.enable)
        self.settings, problems = resolve(None, self.cli_overrides)
        self.prompt_store = PromptStore(self.settings.prompts_path)
        self.counter: TokenCounter = load_counter(self.settings.tokenizer)
        self._backend: Backend | None = None
        self._assistant: Assistant | None = None
        self._completions_enabled = True
        self.tasks: set[asyncio.Task[Any]] = set()
        self._catch_up: asyncio.Task[None] | None = None
        self.pending_problems = problems
        self.exit_code = 0
        set_client_sink(self._log_to_client)

    # -- transport ----------------------------------------------------------------------------------

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve over stdio until ``exit`` or the end of input; :attr:`exit_code` is 1 when the client
        exited without ``shutdown`` (as LSP says; pygls swallows it)."""
        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        self.prepare_messages(RECEIVED_FIRST, SENT_FIRST, VALUES_SENT)
        if self.settings.workspace.enable:
            # the index's modules (15 ms), needed from initialize on unless the client's settings turn it off
            importlib.import_module("lsp.workspace.roots")
        try:
            asyncio.run(self._serve_io(stdin or sys.stdin.buffer))
        except BrokenPipeError:
            log.error("the connection to the client is lost; shutting down")
        except SystemExit as exiting:  # the exit notification
            self.exit_code = exiting.code if isinstance(exiting.code, int) else 1
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]

    async def _serve_io(self, stdin: BinaryIO) -> None:
        assert self._stop_event is not None
        reader = ResyncingReader(stdin)
        await run_async(
            stop_event=self._stop_event,
            reader=reader,
            protocol=self.protocol,
            logger=log,
            error_handler=self.report_server_error,
        )

    # -- settings -----------------------------------------------------------------------------------

    def apply_settings(self, raw: Mapping[str, Any] | None) -> list[str]:
        """Take new client settings; returns the problems found (bad values fall back to defaults)."""
        settings, problems = resolve(raw, self.cli_overrides)
        register_secret(settings.token())
        old = self.settings
        self.settings = settings
        setup_logging(settings.log_level, settings.log_file)
        if settings.prompts_path != old.prompts_path:
            try:
                self.prompt_store = PromptStore(settings.prompts_path)
            except CodellamaError as error:
                problems.append(f"{error}; using the built-in prompts")
                self.prompt_store = PromptStore(None)
        if settings.tokenizer != old.tokenizer:
            self.counter = load_counter(settings.tokenizer)
        if _backend_key(settings) != _backend_key(old) and self._backend is not None:
            backend, self._backend = self._backend, None
            self._spawn(backend.aclose())
        self._assistant = None
        self.notices.reset()  # new settings: the next failure is news
        return problems

    def show_problems(self, problems: list[str]) -> None:
        for problem in problems:
            log.warning("%s", problem)
        if problems:
            self.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Warning, message="codellama: " + "; ".join(problems)
                )
            )

    # -- documents ----------------------------------------------------------------------------------

    def catch_up_later(self) -> None:
        """Do the upkeep edits leave (a long re-parse, the definitions index) between messages: one short
        slice at a time, each after what arrived during the last one, so that a message waits for one slice
        at most."""
        if self._catch_up is None and self.documents.behind:
            self._catch_up = asyncio.get_running_loop().create_task(self._catch_up_in_slices())

    async def _catch_up_in_slices(self) -> None:
        try:
            while True:
                # A message takes three turns of the loop to reach its handler (the stdin thread's hand-over,
                # the reader, the handler's task); a slice queued for the next turn would run before each.
                for _ in range(TURNS_BETWEEN_SLICES):
                    await asyncio.sleep(0)
                if self._catch_up_slice():
                    return
        finally:
            self._catch_up = None

    def _catch_up_slice(self) -> bool:
        """One slice of upkeep; whether all is done."""
        if young_pass_due():
            # Upkeep after a large edit makes thousands of objects, and the collector's pass over its two
            # young generations walks them all (5 to 8 ms): due now, it runs in a slice of its own rather
            # than on top of a slice of work.
            gc.collect(1)
            return False
        try:
            return self.documents.catch_up()
        except Exception:  # upkeep must never take the server down; the next read of the tree retries
            log.exception("background document upkeep failed")
            return True

    def prepare_messages(self, received: Collection[str], sent: Collection[str], values: Collection[type]) -> None:
        """Have the converter write its code for the messages of these methods, received and sent, and for
        their answers, now, before the first message is read: cattrs writes it the first time it meets a type
        (milliseconds each; 40 ms for ``initialize`` and its answer), which would otherwise hold the event
        loop in the handling of a message: the first keystroke's, the first completion's."""
        protocol = self.protocol
        read = [protocol.get_message_type(m) for m in received] + [protocol.get_result_type(m) for m in sent]
        written = [protocol.get_result_type(m) for m in received] + [protocol.get_message_type(m) for m in sent]
        for kind in read:
            if kind is not None:
                self.converter.get_structure_hook(kind)
        for kind in [*written, *values]:
            if kind is not None:
                self.converter.get_unstructure_hook(kind)

    # -- backend ------------------------------------------------------------------------------------

    def warm_up_backend(self) -> None:
        """Load the configured backend's modules in the background (see :func:`select.warm_up`)."""
        threading.Thread(target=warm_up, args=(self.settings,), name="warm-up", daemon=True).start()

    def assistant(self) -> Assistant:
        """The assistant over the configured backend; raises a CodellamaError the user can act on."""
        if self._backend is None:
            self._backend = self.backend_factory(self.settings)
        if self._assistant is None:
            self._assistant = Assistant(self.settings, self._backend, self.prompt_store, self.counter,
                                        self.workspace_definitions)
        return self._assistant

    @property
    def completions_enabled(self) -> bool:
        return self._completions_enabled and self.settings.completion.enable

    def toggle_completions(self, enabled: bool | None = None) -> bool:
        self._completions_enabled = (not self._completions_enabled) if enabled is None else enabled
        return self._completions_enabled

    async def close_backend(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self._backend is not None:
            backend, self._backend = self._backend, None
            self._assistant = None
            await backend.aclose()

    # -- telling the user ---------------------------------------------------------------------------

    def report(self, error: BaseException, what: str) -> None:
        """One clear, rate-limited message per kind of failure; every failure is logged."""
        log.warning("%s failed: %s", what, error)
        self.status("error", str(error))
        if self.notices.should_show(error):
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=f"codellama: {error}")
            )

    def _log_to_client(self, level: int, message: str) -> None:
        """Warnings and errors also go to the client's log (window/logMessage), once it is connected."""
        if self.protocol.writer is not None:
            kind = types.MessageType.Error if level >= logging.ERROR else types.MessageType.Warning
            self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def succeeded(self) -> None:
        self.notices.recovered()
        self.status("idle")

    def status(self, state: str, message: str = "") -> None:
        """Tell the client what the server is doing (codellama/status)."""
        model: str | None = None
        if self._backend is not None:
            model = getattr(self._backend, "model_name", None) or self._backend.name
        else:  # before the first request: the backend that will be used, without starting it
            try:
                model = chosen_backend(self.settings)
            except CodellamaError:
                model = None
        self.protocol.notify(STATUS_METHOD, {"state": state, "message": message, "backend": model})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- paths --------------------------------------------------------------------------------------

    def set_root(self, params: types.InitializeParams) -> None:
        folders = params.workspace_folders or []
        uri = folders[0].uri if folders else params.root_uri
        self.root = uri_to_path(uri) if uri else None


def young_pass_due() -> bool:
    """Whether one of the garbage collector's next two automatic passes (a pass every few hundred
    allocations: a slice of upkeep may cause two) would take its second generation too: it does once its
    count of first-generation passes exceeds its threshold."""
    return gc.get_count()[1] >= gc.get_threshold()[1]


class WorkspaceSlot:
    """Where the workspace index's definitions plug in once ``features/workspace.py`` starts an index; off
    while the setting is."""

    def __init__(self, enabled: Callable[[], bool]) -> None:
        self.source: Any = None  # a lsp.workspace.roots.WorkspaceRoots (one index per folder)
        self.enabled = enabled

    def definitions_for(
        self, doc: Document, names: Mapping[str, float], skip_paths: Collection[str], local_names: Collection[str]
    ) -> list[Snippet]:
        source: DefinitionSource | None = self.source
        if source is None or not self.enabled():
            return []
        return source.definitions_for(doc, names, skip_paths, local_names)

    def stats(self) -> dict[str, Any]:
        if self.source is None:
            return {"files": 0, "scanned": False, "updates": 0, "generation": 0}
        return dict(self.source.stats())


def _backend_key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.backend,
        settings.endpoint,
        settings.token(),
        settings.model,
        settings.local_model_path,
        settings.request_timeout,
        settings.connect_timeout,
        settings.verify_tls,
        settings.ca_bundle,
        settings.proxy,
        settings.max_retries,
    )


def create_server(
    cli_overrides: Mapping[str, Any] | None = None, backend_factory: BackendFactory = create_backend
) -> CodellamaServer:
    from lsp.features import code_actions, commands, completion, documents, lifecycle, workspace

    server = CodellamaServer(cli_overrides, backend_factory)
    for feature in (lifecycle, documents, completion, code_actions, commands, workspace):
        feature.register(server)
    return server
