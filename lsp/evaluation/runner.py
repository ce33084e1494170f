"""Run completion tasks through the pipeline the editors use, and measure each answer.

Each task's document is opened as the server opens one (parsed by tree-sitter), and completed with
:meth:`Assistant.complete`: context, budget, prompt, the backend, the clean-up with its syntax checks.
Only the measuring is added: a wrapper around the backend counts the tokens it streams (one streamed
chunk is one token in TGI's stream; the embedded backend, which streams whole lines, reports its count).
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, TextIO

from lsp.assistant import Assistant
from lsp.backends.base import GenerationRequest
from lsp.cleanup.python_indentation import indentation_errors
from lsp.context.documents import Document
from lsp.context.syntax import parses_cleanly
from lsp.errors import CodellamaError
from lsp.evaluation.metrics import Outcome
from lsp.evaluation.tasks import Task


class Meter:
    """A backend that counts the chunks the backend it wraps streams; everything else goes through."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.tokens = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        stream = self.backend.stream(request)
        try:
            async for chunk in stream:
                self.tokens += 1
                yield chunk
        finally:
            await stream.aclose()


class Progress:
    """A progress bar on stderr (one line, redrawn)."""

    def __init__(self, total: int, out: TextIO | None = None, width: int = 30) -> None:
        self.total, self.out, self.width = total, out or sys.stderr, width

    def show(self, done: int, note: str = "") -> None:
        filled = self.width * done // max(1, self.total)
        bar = "#" * filled + "." * (self.width - filled)
        self.out.write(f"\r[{bar}] {done}/{self.total} {note[:60]:<60}")
        if done >= self.total:
            self.out.write("\n")
        self.out.flush()


async def run_tasks(assistant: Assistant, tasks: Sequence[Task], progress: Progress | None = None) -> list[Outcome]:
    meter = Meter(assistant.backend)
    measured = Assistant(assistant.settings, meter, assistant.store, assistant.counter)  # type: ignore[arg-type]
    outcomes: list[Outcome] = []
    for n, task in enumerate(tasks):
        if progress is not None:
            progress.show(n, f"{task.path.name}:{task.line + 1}")
        outcomes.append(await _run_one(measured, meter, task))
    if progress is not None:
        progress.show(len(tasks))
    return outcomes


async def _run_one(assistant: Assistant, meter: Meter, task: Task) -> Outcome:
    text = task.document
    doc = Document(task.path.resolve().as_uri(), task.language, 1, text)
    meter.tokens = 0
    started = time.perf_counter()
    error = ""
    inserted = ""
    try:
        inserted = await assistant.complete(doc, task.offset)
    except CodellamaError as failure:
        error = str(failure) or type(failure).__name__
    seconds = time.perf_counter() - started
    # The embedded backend streams whole lines: it counts its tokens itself.
    stats = getattr(meter.backend, "last_request", None)
    tokens = stats.generated if stats is not None and not error else meter.tokens
    parses = True
    if inserted:
        parses = parses_cleanly(doc, task.offset, task.offset, inserted)
        if parses and task.language == "python":
            edited = text[: task.offset] + inserted + text[task.offset :]
            parses = indentation_errors(edited) <= indentation_errors(text)
    return Outcome(
        language=task.language,
        kind=task.kind,
        path=str(task.path),
        line=task.line + 1,
        expected=task.expected,
        inserted=inserted,
        parses=parses,
        seconds=seconds,
        tokens=tokens,
        error=error,
    )
