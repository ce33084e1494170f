"""The one-shot commands of the command line (`complete`, `explain`, `refactor`, `prompt`, `check`, `eval`),
and the settings every command reads from its flags.

Results go to stdout, errors to stderr, and a failure exits non-zero. `complete` that keeps nothing (the
model suggested nothing that fits) prints nothing on stdout, says why on stderr, and exits 0: an empty
suggestion is an answer, not a failure. `check` exits 1 when a setting was refused and replaced by its
default, since the backend it then probes is not the one asked for.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lsp.errors import CodellamaError
from lsp.locations import line_span, open_document, position_offset, split_location


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = {
        "backend": "backend",
        "endpoint": "endpoint",
        "model": "model",
        "local_model_path": "localModelPath",
        "max_new_tokens": "maxNewTokens",
        "temperature": "temperature",
        "request_timeout": "requestTimeout",
        "tokenizer": "tokenizer",
        "prompts_path": "promptsPath",
        "log_level": "logLevel",
        "log_file": "logFile",
    }
    return {wire: getattr(args, name) for name, wire in keys.items() if getattr(args, name, None) is not None}


def _settings(args: argparse.Namespace) -> Any:
    return _checked_settings(args)[0]


def _checked_settings(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """The settings, and the problems found in them (each also said on stderr)."""
    from lsp.config import resolve

    client = json.loads(Path(args.settings).read_text(encoding="utf-8")) if args.settings else None
    settings, problems = resolve(client, cli_overrides(args))
    for problem in problems:
        sys.stderr.write(f"codellama-lsp: {problem}\n")
    return settings, problems


def _counter(settings: Any) -> Any:
    """The token counter the settings ask for; a `--tokenizer` that cannot be loaded is an error here, where
    the user can fix it at once (the server falls back to the estimate instead)."""
    from lsp.prompt.tokens import load_counter, load_tokenizer

    if not settings.tokenizer:
        return load_counter(None)
    try:
        return load_tokenizer(settings.tokenizer)
    except ValueError as error:
        raise CodellamaError(str(error)) from None
    except Exception as error:  # the tokenizers library's own errors: an unreadable or invalid file
        raise CodellamaError(f"cannot load the tokenizer {settings.tokenizer}: {error}") from None


class _Session:
    """What a one-shot command needs: settings, a backend, the assistant and an opened document."""

    def __init__(self, args: argparse.Namespace) -> None:
        from lsp.assistant import Assistant
        from lsp.backends.select import create_backend
        from lsp.prompt.templates import PromptStore

        self.settings, self.problems = _checked_settings(args)
        self.store = PromptStore(self.settings.prompts_path)
        counter = _counter(self.settings)
        self.backend = create_backend(self.settings)
        self.assistant = Assistant(self.settings, self.backend, self.store, counter)

    async def __aenter__(self) -> _Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.backend.aclose()


async def _complete(args: argparse.Namespace) -> int:
    path, numbers = split_location(args.location)
    if len(numbers) != 2:
        raise CodellamaError("complete needs FILE:LINE:COL (1-based)")
    doc = open_document(path)
    line, col = int(numbers[0]), int(numbers[1])
    offset = position_offset(doc, line, col)
    async with _Session(args) as session:
        text = await session.assistant.complete(doc, offset)
    if not text:
        sys.stderr.write(
            f"codellama-lsp: no completion at {path}:{line}:{col}: the model suggested nothing that fits there "
            "(an empty answer, or only text that repeats the code after the cursor or does not parse)\n"
        )
        return 0
    sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    return 0


async def _explain(args: argparse.Namespace) -> int:
    path, numbers = split_location(args.location)
    doc = open_document(path)
    start, end = line_span(doc, numbers, required=False)
    from lsp.actions.request import run, snapshot

    async with _Session(args) as session:
        result = await run(session.assistant, snapshot("explain", doc, start, end))
    sys.stdout.write(result.text.rstrip() + "\n")
    return 0


async def _refactor(args: argparse.Namespace) -> int:
    path, numbers = split_location(args.location)
    doc = open_document(path)
    start, end = line_span(doc, numbers, required=True)
    from lsp.actions.request import run, snapshot

    async with _Session(args) as session:
        request = snapshot("refactor", doc, start, end, instruction=args.instruction)
        result = await run(session.assistant, request)
    new_text = doc.text[: request.start] + result.text + doc.text[request.end :]
    diff = difflib.unified_diff(
        doc.text.splitlines(keepends=True), new_text.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    sys.stdout.writelines(diff)
    if result.parses is False:
        sys.stderr.write("codellama-lsp: warning: the result does not parse; not applied\n")
        return 1 if args.apply else 0
    from lsp.cleanup.rewrites import rewrite_warning

    if warning := rewrite_warning(request.selection, result.text, doc.language_id):
        sys.stderr.write(f"codellama-lsp: warning: {warning}; not applied\n")
        return 1 if args.apply else 0
    if args.apply:
        Path(path).write_text(new_text, encoding="utf-8")
    return 0


async def _prompt(args: argparse.Namespace) -> int:
    from lsp.backends.base import GenerationRequest
    from lsp.backends.tgi import TGIBackend
    from lsp.prompt.chat_format import Message, render_codellama70b

    settings = _settings(args)
    if args.messages:
        raw = json.loads(Path(args.messages).read_text(encoding="utf-8"))
        if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
            raise CodellamaError("--messages must hold a JSON list of {role, content} objects")
        messages = [Message(m.get("role"), str(m.get("content", ""))) for m in raw]
        if args.json:
            request = GenerationRequest(
                messages, settings.max_new_tokens, settings.temperature, settings.top_p, tuple(settings.stop)
            )
            body = TGIBackend(settings.model_copy(update={"endpoint": "http://unused"})).body(
                request, stream=True
            )
            sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(render_codellama70b(messages))
        return 0
    if not args.location:
        raise CodellamaError("prompt needs --messages FILE.json or FILE:LINE:COL")
    return await _prompt_view(args, settings)


async def _prompt_view(args: argparse.Namespace, settings: Any) -> int:
    """The rendered prompt for a file and position, and what each context part cost."""
    from lsp.assistant import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOTAL_TOKENS
    from lsp.context.extract import context_at, selection_context
    from lsp.context.syntax import target_range
    from lsp.prompt.budget import Budget, build_prompt
    from lsp.prompt.templates import PromptStore

    path, numbers = split_location(args.location)
    doc = open_document(path)
    store = PromptStore(settings.prompts_path)
    if args.action not in store.actions:
        raise CodellamaError(f"unknown action {args.action!r}; one of {', '.join(store.actions)}")
    counter = _counter(settings)
    spec = store.spec(args.action)
    max_new = min(
        settings.completion.max_new_tokens if args.action == "complete" else settings.max_new_tokens,
        spec.max_new_tokens,
    )
    budget = Budget.compute(
        max_new,
        settings.max_input_tokens or DEFAULT_MAX_INPUT_TOKENS,
        settings.max_total_tokens or DEFAULT_MAX_TOTAL_TOKENS,
    )
    workspace, root, index = _workspace_for(args, path, settings)
    if args.action == "complete":
        if len(numbers) != 2:
            raise CodellamaError("a completion prompt needs FILE:LINE:COL")
        offset = position_offset(doc, int(numbers[0]), int(numbers[1]))
        context = context_at(doc, offset, root=root, workspace=workspace)
        built = build_prompt(store, "complete", context, counter=counter, budget=budget, verify=True)
    else:
        start, end = line_span(doc, numbers[:1], required=False)
        start, end = target_range(doc, start, end)
        context = selection_context(doc, start, end, root=root, workspace=workspace)
        built = build_prompt(
            store, args.action, context, counter=counter, budget=budget, selection=doc.text[start:end], verify=True
        )
    sys.stdout.write(built.text + "\n")
    sys.stderr.write(
        f"\n--- {built.tokens} of {budget.prompt_tokens} prompt tokens ({built.fill:.0%}), "
        f"counted by {counter.description}; maxNewTokens {max_new}\n"
    )
    for part, tokens in built.parts.items():
        sys.stderr.write(f"    {part:<12} {tokens:>6}\n")
    if index is not None:
        _workspace_report(index, root, context.definitions, built.text, counter, context.language)
        index.close()
    return 0


def _workspace_for(args: argparse.Namespace, path: str, settings: Any) -> tuple[Any, str | None, Any]:
    """The workspace index for the prompt view: (definition source, root, index), the root found from the
    file unless given; (None, None, None) with --no-workspace or when the setting is off."""
    from lsp.workspace import WalkLimits, WorkspaceDefinitions, WorkspaceIndex, find_root

    if args.no_workspace or not settings.workspace.enable:
        return None, None, None
    root = os.path.abspath(args.root) if args.root else find_root(path)
    ws = settings.workspace
    index = WorkspaceIndex(root, WalkLimits(ws.max_files, ws.max_file_size, ws.max_total_size, tuple(ws.exclude)))
    index.start()
    if not index.wait_scanned(120):
        sys.stderr.write("workspace: the index is not complete after 120 s; using what it has\n")
    return WorkspaceDefinitions(index, root), root, index


def _workspace_report(index: Any, root: str | None, definitions: Any, text: str, counter: Any, language: str) -> None:
    """What the workspace section cost: the definitions from other files that the prompt shows."""
    from lsp.prompt.budget import rendered_definition

    shown = [d for d in definitions if d.path and rendered_definition(d, language).strip() in text]
    tokens = sum(counter.count(rendered_definition(d, language)) for d in shown)
    sys.stderr.write(f"workspace: {root} ({len(index)} files indexed, {index.stats.parsed} read, "
                     f"{index.stats.reused} from the cache)\n")
    sys.stderr.write(f"    {len(shown)} definitions from other files shown, {tokens} tokens\n")
    for d in shown:
        sys.stderr.write(f"      {d.path}: {d.title}\n")


async def _check(args: argparse.Namespace) -> int:
    from lsp.backends.base import GenerationRequest
    from lsp.backends.select import chosen_backend
    from lsp.prompt.chat_format import Message

    settings, problems = _checked_settings(args)
    if problems:
        sys.stdout.write("status:    failed: the settings above were refused, so their defaults would be probed\n")
        return 1
    name = chosen_backend(settings)
    out = sys.stdout
    out.write(f"backend:   {name}\n")
    if settings.endpoint:
        out.write(f"endpoint:  {settings.endpoint}\n")
    async with _Session(args) as session:
        info = await session.backend.info()
        out.write(f"model:     {info.model_id}\n")
        out.write(
            f"limits:    max input tokens {info.max_input_tokens}, max total tokens {info.max_total_tokens}\n"
        )
        if info.version:
            out.write(f"version:   {info.version}\n")
        request = GenerationRequest(
            [Message("system", "Answer with one word."), Message("user", "Say hello.")],
            max_new_tokens=8,
            temperature=0,
        )
        started = time.perf_counter()
        text = await session.backend.generate(request)
        elapsed = (time.perf_counter() - started) * 1000
        out.write(f"generate:  {text.strip()!r} in {elapsed:.0f} ms\n")
        tokens = await session.backend.count_tokens("Source: system")
        if tokens is not None:
            out.write(f"tokenize:  available ({tokens} ids for a test string)\n")
    out.write("status:    ok\n")
    return 0


async def _eval(args: argparse.Namespace) -> int:
    from lsp.evaluation import evaluate

    async with _Session(args) as session:
        return await evaluate(args, session.assistant)


COMMANDS = {
    "complete": _complete,
    "explain": _explain,
    "refactor": _refactor,
    "prompt": _prompt,
    "check": _check,
    "eval": _eval,
}
