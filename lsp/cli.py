"""The command line: `serve` for editors, and one-shot commands for scripts and for trying it out.

Results go to stdout, errors to stderr, and a failure exits non-zero. `complete` that keeps nothing (the
model suggested nothing that fits) prints nothing on stdout, says why on stderr, and exits 0: an empty
suggestion is an answer, not a failure. `check` exits 1 when a setting was refused and replaced by its
default, since the backend it then probes is not the one asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsp import __version__
from lsp.errors import CodellamaError
from lsp.locations import line_span, open_document, position_offset, split_location

log = logging.getLogger("lsp.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    from lsp.log import setup_logging

    setup_logging(args.log_level or ("info" if args.command == "serve" else "warning"), args.log_file)
    try:
        if args.command == "serve":
            return _serve(args)
        return asyncio.run(_COMMANDS[args.command](args))
    except CodellamaError as error:
        sys.stderr.write(f"codellama-lsp: {error}\n")
        return 1
    except (OSError, ValueError) as error:
        sys.stderr.write(f"codellama-lsp: {error}\n")
        return 1
    except KeyboardInterrupt:
        return 130


# -- argument parsing --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codellama-lsp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"codellama-lsp {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", choices=["auto", "tgi", "openai", "local"], help="model backend")
    common.add_argument("--endpoint", help="TGI or OpenAI-compatible server URL")
    common.add_argument("--model", help="model name (OpenAI-compatible servers)")
    common.add_argument("--local-model-path", help="GGUF file for the local backend")
    common.add_argument("--max-new-tokens", type=int)
    common.add_argument("--temperature", type=float)
    common.add_argument("--request-timeout", type=float, help="longest silence from the server, seconds")
    common.add_argument("--tokenizer", help="tokenizer.json (or folder) for exact token counts")
    common.add_argument(
        "--prompts", dest="prompts_path", help="folder of prompt templates overriding the built-in ones"
    )
    common.add_argument("--settings", help="JSON file with settings (the `codellama` section)")
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    common.add_argument("--log-file")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", parents=[common], help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    serve.add_argument("--stdio", action="store_true", help="stdio (the default)")

    complete = sub.add_parser(
        "complete", parents=[common], help="print the text to insert at FILE:LINE:COL (1-based)"
    )
    complete.add_argument("location")

    explain = sub.add_parser(
        "explain", parents=[common], help="print an explanation of FILE[:START[-END]] as markdown"
    )
    explain.add_argument("location")

    refactor = sub.add_parser(
        "refactor", parents=[common], help="print a unified diff refactoring FILE:START-END"
    )
    refactor.add_argument("location")
    refactor.add_argument("--instruction", default="")
    refactor.add_argument("--apply", action="store_true", help="write the result to the file")

    prompt = sub.add_parser("prompt", parents=[common], help="show the exact prompt text")
    prompt.add_argument("location", nargs="?", help="FILE:LINE:COL: the completion prompt for that position")
    prompt.add_argument("--messages", help="JSON file with a list of {role, content}")
    prompt.add_argument("--action", default="complete", help="action whose prompt to show for a location")
    prompt.add_argument("--json", action="store_true", help="print the whole TGI request body")
    prompt.add_argument("--root", help="workspace root to index (default: the nearest folder above the file with "
                        ".git, pyproject.toml, package.json, go.mod or Cargo.toml)")
    prompt.add_argument("--no-workspace", action="store_true", help="only the file itself, no workspace index")

    sub.add_parser("check", parents=[common], help="probe the backend and print what it found")
    _eval_parser(sub, common)
    return parser


def _eval_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    from lsp.evaluation import add_eval_arguments

    add_eval_arguments(
        sub.add_parser("eval", parents=[common], help="measure completions on a repository's code (a table, JSON)")
    )


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
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
    settings, problems = resolve(client, _cli_overrides(args))
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


# -- serve -------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from lsp.server import create_server

    server = create_server(_cli_overrides(args))
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        # pygls ends a TCP session by raising SystemExit (the exit notification) inside asyncio's connection
        # callback, which asyncio reports with a traceback: it is the clean way out, not an error.
        logging.getLogger("asyncio").addFilter(_not_an_exit)
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        # The protocol gets a private duplicate of fd 1; fd 1 and sys.stdout then point at stderr, so a
        # stray write by a native library (llama.cpp) or a print cannot corrupt the stream.
        protocol_out = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        server.start_io(sys.stdin.buffer, protocol_out)
    return server.exit_code


def _not_an_exit(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], SystemExit))


# -- one-shot commands -------------------------------------------------------------------------------


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


_COMMANDS = {
    "complete": _complete,
    "explain": _explain,
    "refactor": _refactor,
    "prompt": _prompt,
    "check": _check,
    "eval": _eval,
}
