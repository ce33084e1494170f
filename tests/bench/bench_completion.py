"""Benchmark: completions while typing, through the real server process over stdio, against the TGI-protocol
test server (tests/tgi_server.py) with a realistic latency. A script, not a test (pytest does not collect it):

    python tests/bench/bench_completion.py [--bursts 8] [--delay 0.3] [--token-delay 0.02] [--server CMD]

Each burst types the start of a line in a function body, a keystroke every 40 ms (didChange, then an
automatic inlineCompletion request), pauses until the suggestion arrives, then types through the first
characters of the suggestion the same way. The bursts run twice: with a client that cancels the request a
keystroke made stale (as VS Code does) and with one that does not. A last phase cancels requests while the
model server is still thinking (before the first token) or streaming.

Reported, with the targets of issues #5 and #15:
- generation requests (POST /generate_stream) per burst: at most 2;
- streams left open after cancellation: 0, each closed within 50 ms of the $/cancelRequest;
- the latency the server adds on top of the model server's own: answers to typed-through keystrokes (no
  model call: all of it is the server's; p50 under 5 ms), and for generated answers the end-to-end latency
  minus the debounce minus the model server's own time (its handler's start to end, in its process): the
  server's own time on top of its debounce, p50 under 7 ms (#15; under 10 ms for all the latency it adds).
  End to end runs from when the request's bytes are written to when its answer is read: the test client's
  own Python work (building the message, resuming the waiting task) is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.tgi_server import State, create_app  # noqa: E402

KEYSTROKE = 0.040  # seconds between keystrokes
DEBOUNCE_MS = 60  # the server's default completion.debounceMs, set explicitly
TYPED = 12  # characters typed before the pause
THROUGH = 5  # characters of the suggestion typed through after it
URI = "file:///bench/pipeline.py"

HEADER = '''"""Data pipeline steps."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Config:
    factor: int = 2
    limit: int = 100
'''


def step(k: int) -> str:
    return f'''

def step_{k}(items: list[int], config: Config) -> int:
    """Step {k}: scale, filter and sum the items."""
    total = 0
    for item in items:
        total += item * config.factor
    {""}
    return min(total, config.limit)
'''


def target(k: int) -> str:
    """The line the user types in step_k, and that the model suggests."""
    return f"total = math.floor(total / {k + 2}) + sum(items[: {k + 1}])"


def document(steps: int) -> tuple[str, dict[int, int]]:
    """The file, and for each step the line where its body has an empty, indented line."""
    text = HEADER + "".join(step(k) for k in range(steps))
    lines = text.split("\n")
    blanks: dict[int, int] = {}
    k = -1
    for number, line in enumerate(lines):
        if line.startswith("def step_"):
            k = int(line[len("def step_") : line.index("(")])
        elif line == "    " and k >= 0:
            blanks[k] = number
    return text, blanks


# ---------------------------------------------------------------------------------------------- model server
@dataclass
class Call:
    """One POST /generate_stream as the model server saw it (time.monotonic(): one clock for all processes)."""

    start: float
    end: float | None = None
    outcome: str = "running"


async def serve_upstream(delay: float, token_delay: float) -> None:
    """The model server process: tests/tgi_server.py answering each prompt with the line its cursor is in
    (as a good model would), timing every generation, and telling the bench at GET /_bench/calls."""
    state = State(None, 3696, 4096)
    timing = {"delay": delay, "chunk_delay": token_delay}
    calls: list[Call] = []

    @web.middleware
    async def timed(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path != "/generate_stream":
            return await handler(request)
        call = Call(time.monotonic())  # the model server's time starts when it gets the request
        calls.append(call)
        body = await request.json()  # read (and cached for the handler)
        # The handler takes the first scripted reply without awaiting anything before: no other request
        # can take this one.
        state.script.insert(0, {**timing, "text": reply_for(body["inputs"])})
        try:
            response = await handler(request)
        except (asyncio.CancelledError, ConnectionResetError):
            call.outcome = "closed by the client"
            raise
        else:
            call.outcome = "finished"
            return response
        finally:
            call.end = time.monotonic()

    async def report(request: web.Request) -> web.Response:
        return web.json_response([vars(c) for c in calls])

    app = create_app(state)
    app.middlewares.append(timed)
    app.router.add_get("/_bench/calls", report)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


class Upstream:
    """The model server, in a process of its own (in this one, its work would hold the GIL while the
    editor side waits for answers, and the numbers would measure that)."""

    def __init__(self, delay: float, token_delay: float) -> None:
        self.args = ["--upstream", "--delay", str(delay), "--token-delay", str(token_delay)]
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.calls: list[Call] = []

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, *self.args], stdout=subprocess.PIPE, text=True, cwd=str(ROOT)
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the TGI test server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    async def refresh(self) -> list[Call]:
        """The generations so far (a request to the model server's control route)."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.get("/_bench/calls")
        self.calls = [Call(**c) for c in response.json()]
        return self.calls

    async def open_streams(self) -> int:
        return sum(1 for call in await self.refresh() if call.end is None)


def reply_for(inputs: str) -> str:
    """What CodeLlama-70B-Instruct tends to say: the current line restated, completed, in a fence."""
    # The prompt names the marker in its sentences too ("the cursor is at <CURSOR>"): the cursor is the one
    # in the code.
    marks = [m.start() for m in re.finditer("<CURSOR>", inputs) if not inputs[: m.start()].endswith("at ")]
    before = inputs[: marks[-1]] if marks else inputs
    found = re.findall(r"def step_(\d+)\(", before)
    line = target(int(found[-1])) if found else "pass"
    return f"```python\n    {line}\n```"


# ---------------------------------------------------------------------------------------------- the editor
@dataclass
class Sample:
    """One inlineCompletion request as the editor saw it."""

    kind: str  # "burst", "pause" (the last of a burst, answered after the pause), "through", "cancel"
    sent: float
    answered: float | None = None
    outcome: str = ""  # "suggestion", "empty", "cancelled", "error: ..."
    text: str = ""
    task: asyncio.Task[None] | None = None
    msg_id: str = ""
    read_at: float = 0.0

    async def done(self) -> None:
        assert self.task is not None
        await self.task

    @property
    def latency_ms(self) -> float:
        assert self.answered is not None
        return (self.answered - self.sent) * 1000


@dataclass
class Burst:
    start: float
    end: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    right: bool = False


class Editor:
    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.version = 1
        self.ids = itertools.count(1)

    def type(self, line: int, column: int, char: str) -> None:
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=self.version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(line, column), types.Position(line, column)), text=char
                    )
                ],
            )
        )

    def request(self, kind: str, line: int, column: int, *, invoked: bool = False) -> Sample:
        trigger = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(URI),
            position=types.Position(line, column),
            context=types.InlineCompletionContext(trigger_kind=trigger),
        )
        sample = Sample(kind, 0.0, msg_id=f"bench-{next(self.ids)}")
        answer = self.client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=sample.msg_id
        )
        # The clock runs from when the request's bytes are written to when its answer is read: the Python
        # test client's own work (building the message, resuming the waiting task) is no server's latency.
        sample.sent = time.monotonic()
        answer.add_done_callback(lambda _: setattr(sample, "read_at", time.monotonic()))

        async def wait() -> None:
            try:
                result = await answer
            except Exception as error:  # the cancelled error is an answer too
                sample.outcome = "cancelled" if "cancel" in str(error).lower() else f"error: {error}"
            else:
                items = result.items if result is not None else []
                sample.text = items[0].insert_text if items else ""
                sample.outcome = "suggestion" if sample.text else "empty"
            sample.answered = sample.read_at

        sample.task = asyncio.ensure_future(wait())
        return sample

    def cancel(self, sample: Sample) -> None:
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=sample.msg_id))


async def start_server(command: list[str], upstream: Upstream, text: str) -> tuple[LanguageClient, asyncio.Task[None]]:
    """The language server process, initialized, with the document open."""
    client = LanguageClient("bench", "1")

    def status(params: Any) -> None:
        """The server's status notifications: not measured."""

    client.feature("codellama/status")(status)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CODELLAMA_LSP_") and k != "HF_TOKEN"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    await client.start_io(command[0], *command[1:], env=env, cwd=str(ROOT))
    server = client._server
    assert server is not None and server.stderr is not None
    stderr = server.stderr

    async def drain() -> None:  # an unread stderr pipe would block the server once full
        while await stderr.readline():
            pass

    drainer = asyncio.ensure_future(drain())
    settings = {"endpoint": upstream.url, "logLevel": "warning", "completion": {"debounceMs": DEBOUNCE_MS}}
    initialize = client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities()
                )
            ),
            initialization_options={"codellama": settings},
            root_uri="file:///bench",
        )
    )
    await asyncio.wait_for(initialize, 60)
    client.initialized(types.InitializedParams())
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=URI, language_id="python", version=1, text=text))
    )
    return client, drainer


async def stop_server(client: LanguageClient, drainer: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(client.shutdown_async(None), 10)
        client.exit(None)
        await asyncio.wait_for(client.stop(), 10)  # type: ignore[no-untyped-call]
    finally:
        drainer.cancel()
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()


# ---------------------------------------------------------------------------------------------- the phases
async def burst(editor: Editor, line: int, k: int, *, cancel_stale: bool, pause: float) -> Burst:
    """Type the start of the target line, pause for the suggestion, type through the start of it."""
    want = target(k)
    record = Burst(time.monotonic())
    column = 4
    pending: Sample | None = None
    for i, char in enumerate(want[: TYPED + THROUGH]):
        if cancel_stale and pending is not None and pending.answered is None:
            editor.cancel(pending)
        editor.type(line, column, char)
        column += 1
        kind = "burst" if i < TYPED - 1 else "pause" if i == TYPED - 1 else "through"
        pending = editor.request(kind, line, column)
        record.samples.append(pending)
        if kind == "pause":
            await asyncio.wait_for(pending.done(), 30)
            record.right = pending.text == want[TYPED:]
            await asyncio.sleep(pause)
        else:
            await asyncio.sleep(KEYSTROKE)
    await asyncio.wait_for(asyncio.gather(*(s.done() for s in record.samples)), 30)
    record.right = record.right and record.samples[-1].text == want[TYPED + THROUGH :]
    record.end = time.monotonic()
    return record


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


async def cancellation(editor: Editor, upstream: Upstream, line: int, after: float) -> tuple[Sample, float | None]:
    """Ask, let the model server work for `after` seconds, cancel: how long until its stream was closed
    (None: not within 2 s)."""
    before = len(await upstream.refresh())
    sample = editor.request("cancel", line, 4, invoked=True)

    async def started() -> bool:
        return len(await upstream.refresh()) > before

    if not await until(started):
        raise RuntimeError("the language server did not call the model server")
    started_at = upstream.calls[before].start
    await asyncio.sleep(max(0.0, started_at + after - time.monotonic()))
    cancelled_at = time.monotonic()
    editor.cancel(sample)
    await asyncio.wait_for(sample.done(), 10)

    async def closed() -> bool:
        return (await upstream.refresh())[before].end is not None

    if not await until(closed, 2.0):
        return sample, None
    end = upstream.calls[before].end
    assert end is not None
    return sample, end - cancelled_at


@dataclass
class Results:
    bursts: dict[str, list[Burst]]
    cancels: dict[str, list[tuple[Sample, float | None]]]
    calls: list[Call]
    open_after_bursts: int
    open_at_end: int


async def measure(args: argparse.Namespace, upstream: Upstream) -> Results:
    steps = 2 * args.bursts + 2 * args.cancellations + 1
    text, blanks = document(steps)
    print(
        f"document: {text.count(chr(10))} lines of Python; model server: {args.delay * 1000:.0f} ms to the first "
        f"token, {args.token_delay * 1000:.0f} ms per token; keystroke every {KEYSTROKE * 1000:.0f} ms, "
        f"debounce {DEBOUNCE_MS} ms; {TYPED} characters typed, then {THROUGH} typed through the suggestion"
    )
    client, drainer = await start_server(args.server.split(), upstream, text)
    try:
        editor = Editor(client)
        # Warm up: the first request connects, reads /info, builds the index.
        await asyncio.wait_for(editor.request("warm-up", blanks[steps - 1], 4, invoked=True).done(), 60)
        step_of = iter(range(steps - 1))
        bursts: dict[str, list[Burst]] = {}
        for mode, cancel_stale in (("client cancels stale requests (VS Code)", True), ("client never cancels", False)):
            bursts[mode] = []
            for _ in range(args.bursts):
                k = next(step_of)
                bursts[mode].append(await burst(editor, blanks[k], k, cancel_stale=cancel_stale, pause=args.pause))
            await asyncio.sleep(0.1)
        open_after_bursts = await upstream.open_streams()
        cancels: dict[str, list[tuple[Sample, float | None]]] = {}
        for phase, after in (("before the first token", args.delay / 2), ("while streaming", args.delay + 0.1)):
            cancels[phase] = []
            for _ in range(args.cancellations):
                k = next(step_of)
                cancels[phase].append(await cancellation(editor, upstream, blanks[k], after))
        await asyncio.sleep(0.1)
        open_at_end = await upstream.open_streams()
        return Results(bursts, cancels, list(upstream.calls), open_after_bursts, open_at_end)
    finally:
        await stop_server(client, drainer)


# ---------------------------------------------------------------------------------------------- reporting
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[Any]) -> str:
        padded = [str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded)

    print(f"\n{title}")
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):.1f}" if values else "-"


def report(results: Results) -> bool:
    calls = results.calls
    # -- generations per burst, answers
    rows = []
    gens_all: list[int] = []
    for mode, bursts in results.bursts.items():
        gens = [sum(1 for c in calls if b.start <= c.start <= b.end) for b in bursts]
        gens_all += gens
        samples = [s for b in bursts for s in b.samples]
        count = {o: sum(1 for s in samples if s.outcome == o) for o in ("suggestion", "empty", "cancelled")}
        rows.append(
            [
                mode,
                len(bursts),
                len(samples),
                sum(1 for s in samples if s.answered is not None),
                count["suggestion"],
                count["empty"],
                count["cancelled"],
                len(samples) - sum(count.values()),
                max(gens),
                f"{statistics.mean(gens):.2f}",
                f"{sum(b.right for b in bursts)}/{len(bursts)}",
            ]
        )
    table(
        "Typing bursts (target: at most 2 generations per burst; every request answered)",
        [
            "client",
            "bursts",
            "requests",
            "answered",
            "suggestion",
            "empty",
            "cancelled",
            "errors",
            "gens/burst max",
            "mean",
            "right",
        ],
        rows,
    )

    # -- latency the server adds
    every = [b for bursts in results.bursts.values() for b in bursts]
    through = [s.latency_ms for b in every for s in b.samples if s.kind == "through"]
    added, end_to_end, model = [], [], []
    for b in every:
        last = next(s for s in b.samples if s.kind == "pause")
        assert last.answered is not None
        during = [c for c in calls if last.sent <= c.start <= last.answered and c.end is not None]
        if len(during) == 1 and during[0].end is not None:
            own = (during[0].end - during[0].start) * 1000
            model.append(own)
            end_to_end.append(last.latency_ms)
            added.append(last.latency_ms - DEBOUNCE_MS - own)
    table(
        "Latency the server adds, ms (targets: p50 under 5 ms typed through, under 7 ms generated)",
        ["answers", "n", "p50", "p95", "max", "target"],
        [
            [
                "typed through (no model call: all of it is the server's)",
                len(through),
                ms(through, 0.5),
                ms(through, 0.95),
                ms(through, 1),
                verdict(percentile(through, 0.5) < 5),
            ],
            [
                "generated: end-to-end - debounce - model server",
                len(added),
                ms(added, 0.5),
                ms(added, 0.95),
                ms(added, 1),
                verdict(bool(added) and percentile(added, 0.5) < 7),
            ],
            [
                "  generated: end-to-end",
                len(end_to_end),
                ms(end_to_end, 0.5),
                ms(end_to_end, 0.95),
                ms(end_to_end, 1),
                "",
            ],
            ["  generated: the model server's own time", len(model), ms(model, 0.5), ms(model, 0.95), ms(model, 1), ""],
        ],
    )

    # -- cancellation
    rows = []
    closed_all: list[float] = []
    for phase, items in results.cancels.items():
        closed = [d * 1000 for _, d in items if d is not None]
        closed_all += closed
        rows.append(
            [
                phase,
                len(items),
                sum(1 for s, _ in items if s.outcome == "cancelled"),
                len(closed),
                len(items) - len(closed),
                ms(closed, 0.5),
                ms(closed, 1),
                verdict(len(closed) == len(items) and all(d <= 50 for d in closed)),
            ]
        )
    table(
        "Cancellation: $/cancelRequest while the model works (target: stream closed within 50 ms, none left open)",
        ["cancelled", "n", "answered 'cancelled'", "closed", "left open", "closed after, p50 ms", "max ms", "target"],
        rows,
    )
    early = sum(1 for c in calls if c.outcome == "closed by the client")
    print(
        f"\nmodel server: {len(calls)} generations, {early} of them closed by the language server before their end "
        f"(superseded, decided or cancelled); streams open after the bursts: {results.open_after_bursts}, "
        f"at the end: {results.open_at_end} (target 0)"
    )
    ok = (
        max(gens_all) <= 2
        and results.open_after_bursts == 0
        and results.open_at_end == 0
        and len(closed_all) == sum(len(items) for items in results.cancels.values())
        and all(d <= 50 for d in closed_all)
        and percentile(through, 0.5) < 5
        and bool(added)
        and percentile(added, 0.5) < 7
    )
    print("all targets met" if ok else "some targets missed")
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", type=int, default=8, help="bursts per kind of client")
    parser.add_argument("--cancellations", type=int, default=6, help="cancellations per phase")
    parser.add_argument("--delay", type=float, default=0.3, help="model server: seconds to the first token")
    parser.add_argument("--token-delay", type=float, default=0.02, help="model server: seconds per token")
    parser.add_argument("--pause", type=float, default=0.3, help="seconds the user pauses after a suggestion")
    parser.add_argument("--server", default=f"{sys.executable} -m lsp serve", help="the language server command")
    parser.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)  # the model server process
    args = parser.parse_args()
    if args.upstream:
        await serve_upstream(args.delay, args.token_delay)
        return 0
    upstream = Upstream(args.delay, args.token_delay)
    upstream.start()
    try:
        results = await measure(args, upstream)
    finally:
        upstream.stop()
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
