"""The command line: `serve` for editors, and one-shot commands for scripts and for trying it out (in
:mod:`lsp.oneshot`).

Results go to stdout, errors to stderr, and a failure exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from lsp import __version__
from lsp.errors import CodellamaError
from lsp.oneshot import COMMANDS, cli_overrides

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
        return asyncio.run(COMMANDS[args.command](args))
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


# -- serve -------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from lsp.server import create_server

    server = create_server(cli_overrides(args))
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
