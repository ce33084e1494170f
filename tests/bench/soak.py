"""Soak: thousands of completion requests through the real server process (stdio) against the TGI-protocol
test server (tests/tgi_server.py, its own process), with typing, cancellations and injected faults. A
script, not a test (pytest does not collect it):

    python tests/bench/soak.py [--requests 4000] [--editors 8] [--fault-rate 0.15] [--cancel-rate 0.2]

Several simulated editors type into their own documents (didChange), ask for a completion after each
keystroke (automatic trigger, so debounce and supersession are exercised) or explicitly, and cancel some of
the requests after a random moment ($/cancelRequest, as VS Code does). The model server's replies are drawn
at random: normal, slow, HTTP 429/500/503, an error event mid-stream, a dropped connection, a truncated
event, a stall longer than requestTimeout.

Reported: for the language server process, at the start (after a warm-up), at checkpoints and at the end
(after the requests settle): asyncio tasks and pygls's handler futures (from `codellama/stats`), open file
descriptors and sockets
(/proc/<pid>/fd), RSS (/proc/<pid>/status); the streams still open at the model server; the answers by
kind; the messages shown to the user. Exits non-zero when something leaked: tasks or sockets above the
start, a stream left open, RSS still growing over the second half of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.conftest import TGI, clean_env, start_tgi  # noqa: E402

STATUS = "codellama/status"
STATS = "codellama/stats"
SLOW_TEXT = "```python\n" + "value = value + 1\n" * 12 + "```"

# (weight, reply) for the model server: mostly good answers, the rest one fault each.
GOOD: list[tuple[float, dict[str, Any]]] = [
    (0.5, {"text": "```python\nvalue * 2 + 1\n```"}),
    (0.25, {}),  # the test server's default: a fenced echo of the last line
    (0.25, {"text": SLOW_TEXT, "chunk_delay": 0.01}),
]
FAULTS: list[tuple[float, dict[str, Any]]] = [
    (0.2, {"status": 429, "body": '{"error":"Model is overloaded","error_type":"overloaded"}'}),
    (0.15, {"status": 500, "body": '{"error":"boom"}'}),
    (0.1, {"status": 503, "body": ""}),
    (0.15, {"text": SLOW_TEXT, "error_after": 3}),
    (0.15, {"text": SLOW_TEXT, "drop_after": 3}),
    (0.15, {"text": SLOW_TEXT, "garbage_after": 3}),
    (0.1, {"text": SLOW_TEXT, "stall_after": 2, "stall": 30}),
]


@dataclass
class Sample:
    label: str
    requests: int
    tasks: int
    pending: int  # pygls's table of handlers in flight (grew by one per keystroke before lsp/rpc.py)
    fds: int
    sockets: int
    rss_kb: int
    tgi_open: int


@dataclass
class Tally:
    answered: int = 0
    with_items: int = 0
    empty: int = 0
    cancelled: int = 0
    errors: int = 0
    by_error: dict[str, int] = field(default_factory=dict)


def draw(rng: random.Random, table: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    weights = [w for w, _ in table]
    return dict(rng.choices([r for _, r in table], weights)[0])


def process_sample(pid: int) -> tuple[int, int, int]:
    """(open fds, of which sockets, RSS in kB) of a process."""
    fds = sockets = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        fds += 1
        try:
            if fd.readlink().as_posix().startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return fds, sockets, rss


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.tgi: TGI = start_tgi()
        self.client = LanguageClient("soak", "1")
        self.tally = Tally()
        self.statuses: dict[str, int] = {}
        self.shown: list[str] = []
        self.sent = 0
        self.samples: list[Sample] = []
        self._ids = 0

        @self.client.feature(STATUS)
        def status(params: Any) -> None:
            state = getattr(params, "state", "?")
            self.statuses[state] = self.statuses.get(state, 0) + 1

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def show(params: types.ShowMessageParams) -> None:
            self.shown.append(params.message)

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def log(params: types.LogMessageParams) -> None:
            pass

    @property
    def pid(self) -> int:
        assert self.client._server is not None
        return self.client._server.pid

    async def start(self) -> None:
        await self.client.start_io(sys.executable, "-m", "lsp", "serve", "--log-level", "error", env=clean_env(),
                                   cwd=str(ROOT))
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                process_id=None,
                root_uri="file:///tmp/soak",
                initialization_options={
                    "codellama": {
                        "endpoint": self.tgi.url,
                        "requestTimeout": self.args.request_timeout,
                        "connectTimeout": 1,
                        "maxRetries": 1,
                        "completion": {"debounceMs": 20},
                    }
                },
            )
        )
        self.client.initialized(types.InitializedParams())

    async def sample(self, label: str) -> Sample:
        stats = await self.client.protocol.send_request_async(STATS, {})
        tasks = stats.tasks if hasattr(stats, "tasks") else stats["tasks"]
        pending = stats.pending if hasattr(stats, "pending") else stats["pending"]
        fds, sockets, rss = process_sample(self.pid)
        sample = Sample(label, self.sent, int(tasks), int(pending), fds, sockets, rss, int(self.tgi.streams()["open"]))
        self.samples.append(sample)
        return sample

    def script(self, n: int) -> None:
        replies = [
            draw(self.rng, FAULTS) if self.rng.random() < self.args.fault_rate else draw(self.rng, GOOD)
            for _ in range(n)
        ]
        self.tgi.script(*replies)

    async def editor(self, index: int, quota: int) -> None:
        """Types into its own document and asks for completions; cancels some of them."""
        uri = f"file:///tmp/soak/editor_{index}.py"
        lines = [f"def work_{index}(value: int) -> int:", "    total = value", "    return "]
        version = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=version, text="\n".join(lines) + "\n")
            )
        )
        rng = random.Random(self.args.seed * 1000 + index)
        for _ in range(quota):
            # a keystroke at the end of the last line
            line, column = len(lines) - 1, len(lines[-1])
            char = rng.choice("abcdefxyz_ +(")
            lines[-1] += char
            version += 1
            self.client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(version=version, uri=uri),
                    content_changes=[types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(line, column), types.Position(line, column)), text=char)],
                )
            )
            if len(lines[-1]) > 60:  # start a new line now and then
                lines.append("    ")
                version += 1
                self.client.text_document_did_change(
                    types.DidChangeTextDocumentParams(
                        text_document=types.VersionedTextDocumentIdentifier(version=version, uri=uri),
                        content_changes=[types.TextDocumentContentChangePartial(
                            range=types.Range(types.Position(line, column + 1), types.Position(line, column + 1)),
                            text="\n    ")],
                    )
                )
            await self.request(uri, types.Position(len(lines) - 1, len(lines[-1])), rng)
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    async def request(self, uri: str, position: types.Position, rng: random.Random) -> None:
        self._ids += 1
        msg_id = f"soak-{self._ids}"
        trigger = (types.InlineCompletionTriggerKind.Invoked if rng.random() < 0.3
                   else types.InlineCompletionTriggerKind.Automatic)
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(trigger_kind=trigger),
        )
        self.sent += 1
        answer = asyncio.ensure_future(
            self.client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
        )
        if rng.random() < self.args.cancel_rate:
            await asyncio.sleep(rng.uniform(0, 0.05))
            self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        try:
            result = await asyncio.wait_for(answer, 30)
        except JsonRpcException as error:
            name = type(error).__name__
            if "cancel" in name.lower() or "cancel" in str(error).lower():
                self.tally.cancelled += 1
            else:
                self.tally.errors += 1
                self.tally.by_error[name] = self.tally.by_error.get(name, 0) + 1
            return
        except asyncio.TimeoutError:
            self.tally.errors += 1
            self.tally.by_error["no answer in 30 s"] = self.tally.by_error.get("no answer in 30 s", 0) + 1
            return
        self.tally.answered += 1
        if result is not None and getattr(result, "items", None):
            self.tally.with_items += 1
        else:
            self.tally.empty += 1

    async def run(self) -> int:
        try:
            return await self._run()
        finally:
            if self.client._server is not None and self.client._server.returncode is None:
                self.client._server.kill()
            self.tgi.close()

    async def _run(self) -> int:
        args = self.args
        await self.start()
        started = time.monotonic()
        # warm-up: the first requests import and build what later ones reuse
        self.script(50)
        await asyncio.gather(*(self.editor(100 + i, 5) for i in range(args.editors)))
        await self.settle()
        await self.sample("start")
        rounds = self.args.checkpoints
        per_round = max(1, args.requests // rounds)
        for n in range(rounds):
            self.tgi.reset()
            self.script(per_round + 200)
            quota = max(1, per_round // args.editors)
            await asyncio.gather(*(self.editor(n * args.editors + i, quota) for i in range(args.editors)))
            await self.settle()
            await self.sample(f"after {self.sent - self.samples[0].requests} requests")
        elapsed = time.monotonic() - started
        await self.client.shutdown_async(None)
        self.client.exit(None)
        assert self.client._server is not None
        code = await asyncio.wait_for(self.client._server.wait(), 10)
        await self.client.stop()
        return self.report(elapsed, code)

    async def settle(self) -> None:
        """Wait until the model server has no stream open (requests ended, cancelled streams closed)."""
        deadline = time.monotonic() + 10
        while self.tgi.streams()["open"] and time.monotonic() < deadline:  # noqa: ASYNC110 - another process
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let the server finish its bookkeeping

    def report(self, elapsed: float, exit_code: int) -> int:
        t = self.tally
        print(f"\nsoak: {self.sent} completion requests by {self.args.editors} editors in {elapsed:.1f} s "
              f"(fault rate {self.args.fault_rate:.0%}, cancel rate {self.args.cancel_rate:.0%}, "
              f"requestTimeout {self.args.request_timeout} s)")
        print(f"answers: {t.answered} ({t.with_items} with a suggestion, {t.empty} empty), {t.cancelled} cancelled, "
              f"{t.errors} errors {t.by_error or ''}")
        print(f"status notifications: {self.statuses}; messages shown to the user: {len(self.shown)}")
        print(f"server exit code after shutdown/exit: {exit_code}\n")
        header = (f"{'checkpoint':<24}{'requests':>9}{'tasks':>7}{'pending':>9}{'fds':>6}{'sockets':>9}{'RSS MB':>9}"
                  f"{'TGI open':>10}")
        print(header)
        print("-" * len(header))
        for s in self.samples:
            print(f"{s.label:<24}{s.requests:>9}{s.tasks:>7}{s.pending:>9}{s.fds:>6}{s.sockets:>9}"
                  f"{s.rss_kb / 1024:>9.1f}{s.tgi_open:>10}")
        first, end = self.samples[0], self.samples[-1]
        middle = self.samples[len(self.samples) // 2]
        growth_second_half = (end.rss_kb - middle.rss_kb) / 1024
        problems = []
        if end.tasks > first.tasks:
            problems.append(f"{end.tasks - first.tasks} asyncio tasks more than at the start")
        if end.pending > first.pending:
            problems.append(f"{end.pending - first.pending} handler futures more than at the start")
        # The HTTP pool keeps up to 8 idle connections (one per editor here) for reuse: bounded, not a leak.
        pool = 8
        if end.sockets > first.sockets + pool:
            problems.append(f"{end.sockets - first.sockets} sockets more than at the start")
        if end.fds - end.sockets > first.fds - first.sockets:
            problems.append(f"{(end.fds - end.sockets) - (first.fds - first.sockets)} more files open")
        if end.tgi_open:
            problems.append(f"{end.tgi_open} streams still open at the model server")
        if growth_second_half > self.args.rss_slack_mb:
            problems.append(f"RSS grew {growth_second_half:.1f} MB over the second half")
        if t.by_error:
            problems.append(f"unexpected error answers: {t.by_error}")
        if exit_code != 0:
            problems.append(f"exit code {exit_code}")
        print(f"\nRSS: {first.rss_kb / 1024:.1f} MB at the start, {middle.rss_kb / 1024:.1f} MB half way, "
              f"{end.rss_kb / 1024:.1f} MB at the end ({growth_second_half:+.1f} MB over the second half)")
        print("verdict: " + ("no leak" if not problems else "; ".join(problems)))
        return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument("--fault-rate", type=float, default=0.15)
    parser.add_argument("--cancel-rate", type=float, default=0.2)
    parser.add_argument("--request-timeout", type=float, default=0.5)
    parser.add_argument("--rss-slack-mb", type=float, default=8.0, help="RSS growth allowed over the second half")
    parser.add_argument("--checkpoints", type=int, default=4, help="samples taken during the run")
    parser.add_argument("--seed", type=int, default=7)
    return asyncio.run(Soak(parser.parse_args()).run())


if __name__ == "__main__":
    raise SystemExit(main())
