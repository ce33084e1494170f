"""The `eval` command: arguments, the run, the JSON file and the markdown table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from lsp.assistant import Assistant
from lsp.errors import CodellamaError
from lsp.evaluation.metrics import markdown_table, summaries
from lsp.evaluation.runner import Progress, run_tasks
from lsp.evaluation.tasks import KINDS, make_tasks


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repository", help="a folder (or a file) of source code to complete")
    parser.add_argument("--samples", type=int, default=40, help="how many completions (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the positions drawn (default 0)")
    parser.add_argument(
        "--kind", choices=[*KINDS, "both"], default="both", help="hide the rest of a line, a block's body, or both"
    )
    parser.add_argument("--output", help="JSON file for every task's result and the summary")


async def evaluate(
    args: argparse.Namespace, assistant: Assistant, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    root = Path(args.repository)
    if not root.exists():
        raise CodellamaError(f"{root} does not exist")
    kinds = KINDS if args.kind == "both" else (args.kind,)
    tasks = make_tasks(root, max(1, args.samples), seed=args.seed, kinds=kinds)
    if not tasks:
        raise CodellamaError(f"no source file under {root} in a language the server parses")
    info = await assistant.backend.info()
    err.write(f"eval: {len(tasks)} completions from {root} with {info.backend} ({info.model_id})\n")
    outcomes = await run_tasks(assistant, tasks, Progress(len(tasks), err))
    rows = summaries(outcomes)
    out.write(markdown_table(rows))
    if args.output:
        report = {
            "repository": str(root),
            "backend": info.backend,
            "model": info.model_id,
            "seed": args.seed,
            "summary": [row.to_json() for row in rows],
            "tasks": [outcome.to_json() for outcome in outcomes],
        }
        Path(args.output).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        err.write(f"eval: results in {args.output}\n")
    return 0
