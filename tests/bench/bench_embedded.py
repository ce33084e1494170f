"""The embedded default's completions, measured by `codellama-lsp eval`: quality (exact match, edit
similarity, parse share, empty share) and latency (p50/p95 after the first request), per language.

    python tests/bench/bench_embedded.py [--samples 48] [--repository FOLDER ...]

Without --repository, tomli's sources from PyPI (cached under the user's cache folder). Numbers are reported,
not checked: they depend on the machine and on what else it runs (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.eval_repository import cached_repository  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repository", nargs="*", help="folders to measure on (default: tomli from PyPI)")
    args = parser.parse_args()
    repositories = args.repository or [str(cached_repository())]
    for repository in repositories:
        loads = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\n## embedded model on {repository} ({args.samples} completions, load average {loads})\n")
        sys.stdout.flush()
        command = [
            sys.executable,
            "-m",
            "lsp",
            "eval",
            repository,
            "--backend",
            "local",
            "--samples",
            str(args.samples),
            "--seed",
            str(args.seed),
        ]
        done = subprocess.run(command, check=False, stderr=subprocess.DEVNULL)
        if done.returncode:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
