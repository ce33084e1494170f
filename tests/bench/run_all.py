"""Run every benchmark, one after the other, each printing its own table.

    python tests/bench/run_all.py [--quick]

--quick uses smaller sizes (a minute or two in all) for a sanity check; without it the numbers are the ones
the README reports. Each benchmark is a separate process so that one's memory and threads don't skew the next.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

BENCHES: list[tuple[str, list[str], list[str]]] = [
    # (script, full arguments, quick arguments)
    ("bench_context.py", [], ["--documents", "40", "--runs", "3", "--languages", "python"]),
    ("bench_prompt.py", [], []),
    ("bench_completion.py", [], ["--bursts", "3", "--cancellations", "3"]),
    ("bench_backends.py", ["--openai"], ["--runs", "1", "--no-cli"]),
    ("soak.py", [], ["--requests", "400", "--editors", "4"]),
    ("bench_embedded.py", [], ["--samples", "8"]),
    ("bench_workspace.py", [], ["--quick"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", help="script names to run (default: all)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    failed = []
    load = os.getloadavg()
    loads = " ".join(f"{x:.1f}" for x in load)
    print(f"machine: {os.cpu_count()} CPUs, load average {loads}, Python {sys.version.split()[0]}")
    for script, full, quick in BENCHES:
        if args.only and script not in args.only:
            continue
        print(f"\n=== {script} {' '.join(quick if args.quick else full)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(
            [sys.executable, str(HERE / script), *(quick if args.quick else full)], env=env, cwd=ROOT
        )
        print(f"--- {script}: exit {code} in {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
