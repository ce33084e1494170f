"""Benchmark of the context engine on 5,000-line files.

Run: ``python tests/bench/bench_context.py`` (``--help`` for options). Prints a table of:

* full parse of a 5,000-line file;
* incremental re-parse for one-character edits (``Document.apply_change``: tree edit, incremental parse,
  line index and definitions index upkeep), for three workloads: typing a line of code character by
  character, one-character edits inside identifiers, and random characters at random places (worst case).
  Each is measured as the server runs it: the edit with a re-parse budget of one slice (``PARSE_SLICE``), which
  is the time a didChange holds up the messages after it; and the whole re-parse, slices included, until the
  tree is current (the work a longer re-parse goes on doing between messages);
* context extraction (``context_at``) at random positions, with the definitions index warm, after an edit
  (with the index upkeep a server does between messages timed apart, and without it), and with 30 other
  open documents;
* resident memory with 200 such documents open in a ``DocumentStore``.

Targets (issue #4): incremental re-parse p99 < 10 ms, context extraction p50 < 1 ms, 200 documents < 400 MB.
Not a pytest module (no test_ prefix).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lsp.context import Document, DocumentStore, LineIndex, context_at
from lsp.context.documents import PARSE_SLICE
from lsp.context.languages import language_for, parser_for

LINES = 5000
clock = time.perf_counter  # --clock cpu: time.thread_time, steadier on a busy machine


# ---------------------------------------------------------------------------------------------- sources
def python_source(lines: int = LINES, seed: int = 0) -> str:
    rng = random.Random(seed)
    out = [
        '"""A generated module of realistic shape."""',
        "",
        "from __future__ import annotations",
        "",
        "import json",
        "import logging",
        "import os",
        "from dataclasses import dataclass, field",
        "from pathlib import Path",
        "from typing import Any",
        "",
        "log = logging.getLogger(__name__)",
        "",
    ]
    i = 0
    while len(out) < lines:
        i += 1
        kind = rng.random()
        if kind < 0.35:
            out += [
                "",
                f"def helper_{i}(value: int, scale: float = 1.0) -> float:",
                f'    """Scale a value ({i})."""',
                "    total = 0.0",
                f"    for step in range({rng.randint(2, 9)}):",
                "        if step % 2 == 0:",
                f"            total += value * scale + helper_{max(1, i - 1)}(step)",
                "        else:",
                '            log.debug("odd step %d", step)',
                "    return total",
                "",
            ]
        elif kind < 0.85:
            out += [
                "",
                "@dataclass",
                f"class Record{i}:",
                f'    """A record ({i})."""',
                "",
                "    name: str",
                "    count: int = 0",
                "    tags: list[str] = field(default_factory=list)",
                "",
                "    def describe(self, prefix: str = '') -> str:",
                '        parts = [prefix, self.name, str(self.count)]',
                '        return " ".join(p for p in parts if p)',
                "",
                "    def bump(self, amount: int = 1) -> int:",
                f"        self.count += amount * helper_{max(1, i - 1)}(amount)",
                "        if self.count > 100:",
                '            raise ValueError(f"too many: {self.count}")',
                "        return self.count",
                "",
                "    def save(self, path: Path) -> None:",
                '        data = {"name": self.name, "count": self.count, "tags": self.tags}',
                "        path.write_text(json.dumps(data))",
                "",
            ]
        else:
            out += [
                "",
                f"LIMIT_{i} = {rng.randint(1, 1000)}",
                f'PATH_{i} = Path(os.environ.get("DATA_{i}", "/tmp/data"))',
                "",
            ]
    return "\n".join(out[:lines]) + "\n"


def javascript_source(lines: int = LINES, seed: int = 0) -> str:
    rng = random.Random(seed)
    out = ['import { readFile } from "fs/promises";', 'import path from "path";', ""]
    i = 0
    while len(out) < lines:
        i += 1
        if rng.random() < 0.4:
            out += [
                "",
                "/**",
                f" * Scale a value ({i}).",
                " */",
                f"export function helper{i}(value, scale = 1) {{",
                "  let total = 0;",
                f"  for (let step = 0; step < {rng.randint(2, 9)}; step++) {{",
                "    if (step % 2 === 0) {",
                f"      total += value * scale + helper{max(1, i - 1)}(step);",
                "    }",
                "  }",
                "  return total;",
                "}",
            ]
        else:
            out += [
                "",
                f"export class Record{i} {{",
                "  constructor(name, count = 0) {",
                "    this.name = name;",
                "    this.count = count;",
                "  }",
                "",
                "  describe(prefix = '') {",
                "    return [prefix, this.name, String(this.count)].filter(Boolean).join(' ');",
                "  }",
                "",
                "  bump(amount = 1) {",
                f"    this.count += amount * helper{max(1, i - 1)}(amount);",
                "    return this.count;",
                "  }",
                "}",
            ]
    return "\n".join(out[:lines]) + "\n"


def go_source(lines: int = LINES, seed: int = 0) -> str:
    rng = random.Random(seed)
    out = ["package records", "", "import (", '\t"encoding/json"', '\t"fmt"', ")", ""]
    i = 0
    while len(out) < lines:
        i += 1
        out += [
            "",
            f"// Record{i} is a record.",
            f"type Record{i} struct {{",
            "\tName  string",
            "\tCount int",
            "}",
            "",
            f"// Bump adds to the count of a Record{i}.",
            f"func (r *Record{i}) Bump(amount int) (int, error) {{",
            f"\tr.Count += amount * {rng.randint(1, 9)}",
            "\tif r.Count > 100 {",
            '\t\treturn 0, fmt.Errorf("too many: %d", r.Count)',
            "\t}",
            "\treturn r.Count, nil",
            "}",
            "",
            f"// Save{i} encodes a record.",
            f"func Save{i}(r *Record{i}) ([]byte, error) {{",
            "\treturn json.Marshal(r)",
            "}",
        ]
    return "\n".join(out[:lines]) + "\n"


SOURCES: dict[str, tuple[str, Callable[..., str]]] = {
    "python": ("py", python_source),
    "javascript": ("js", javascript_source),
    "go": ("go", go_source),
}


# ---------------------------------------------------------------------------------------------- helpers
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(self, what: str, samples: list[float], target: str = "", unit: str = "ms") -> None:
        scale = 1000.0 if unit == "ms" else 1.0
        p50 = percentile(samples, 50) * scale
        p99 = percentile(samples, 99) * scale
        self.rows.append((what, f"{p50:.3f}", f"{p99:.3f}", f"{len(samples)}", target))

    def add_value(self, what: str, value: str, target: str = "") -> None:
        self.rows.append((what, value, "", "", target))

    def print(self) -> None:
        header = ("measure", "p50 (ms)", "p99 (ms)", "n", "target")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(5)]
        line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
        print(line)
        print("-" * len(line))
        for row in self.rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def lsp_range(index: LineIndex, start: int, end: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return index.position_at(start), index.position_at(end)


# ---------------------------------------------------------------------------------------------- measures
def bench_parse(table: Table, name: str, text: str, runs: int) -> None:
    language = language_for(name)
    assert language is not None
    data = text.encode()
    parser = parser_for(language)
    samples = []
    for _ in range(runs):
        start = clock()
        parser.parse(data)
        samples.append(clock() - start)
    table.add(f"{name}: full parse (tree-sitter)", samples)
    samples = []
    for _ in range(runs):
        start = clock()
        doc = Document(f"file:///bench/a.{name}", name, 1, text)
        doc.index  # noqa: B018
        samples.append(clock() - start)
    table.add(f"{name}: open document (parse + index)", samples)


def _edit(doc: Document, start: int, end: int, text: str) -> float:
    rng = lsp_range(doc.lines, start, end)
    begin = clock()
    doc.apply_change(text, rng, doc.version + 1)
    return clock() - begin


def _sliced_edit(doc: Document, start: int, end: int, text: str) -> tuple[float, float]:
    """An edit as the server makes it: (time until the edit returns, time until the tree is current)."""
    rng = lsp_range(doc.lines, start, end)
    begin = clock()
    doc.apply_change(text, rng, doc.version + 1, budget=PARSE_SLICE)
    blocking = clock() - begin
    while not doc.parse_step(PARSE_SLICE):  # what the server's event loop does between messages
        pass
    return blocking, clock() - begin


def _add_sliced(table: Table, what: str, samples: list[tuple[float, float]], target: str) -> None:
    table.add(f"{what}: edit (holds up messages)", [s[0] for s in samples], target)
    table.add(f"{what}: until the tree is current", [s[1] for s in samples])


def bench_typing(table: Table, name: str, text: str, seed: int) -> None:
    """Type a line of code character by character at 10 places (each keystroke is one didChange)."""
    typed = {
        "python": "\n        value = compute(self.items[index], key=lambda item: item.name)",
        "javascript": "\n    const value = compute(this.items[index], (item) => item.name);",
        "go": "\n\tvalue := compute(r.Name, func(s string) int { return len(s) })",
    }[name]
    rng = random.Random(seed)
    samples: list[tuple[float, float]] = []
    doc = Document(f"file:///bench/a.{name}", name, 1, text)
    doc.index  # noqa: B018 - the index is kept up to date while typing, as in a server
    anchors = [i for i in range(len(text)) if text.startswith("\n", i) and text[i - 1] in ")};:"]
    for _ in range(10):
        position = rng.choice(anchors)
        for char in typed:
            samples.append(_sliced_edit(doc, position, position, char))
            position += 1
        doc.index  # noqa: B018
        # undo the line so that the next place starts from a clean file
        _edit(doc, position - len(typed), position, "")
    _add_sliced(table, f"{name}: one-char edit, typing a line", samples, "p99 < 10")


def bench_identifier_edits(table: Table, name: str, text: str, seed: int) -> None:
    """A letter inserted inside an identifier (renaming as one types)."""
    rng = random.Random(seed)
    doc = Document(f"file:///bench/a.{name}", name, 1, text)
    doc.index  # noqa: B018
    samples: list[tuple[float, float]] = []
    while len(samples) < 300:
        tree = doc.tree
        assert tree is not None
        byte = rng.randrange(len(doc.data))
        node = tree.root_node.descendant_for_byte_range(byte, byte)
        if node is None or node.type not in ("identifier", "property_identifier", "field_identifier"):
            continue
        if node.end_byte - node.start_byte < 2:
            continue
        position = doc.lines.offset_of_byte(rng.randrange(node.start_byte + 1, node.end_byte))
        samples.append(_sliced_edit(doc, position, position, rng.choice("abcxyz")))
    _add_sliced(table, f"{name}: one-char edit inside an identifier", samples, "p99 < 10")


def bench_random_edits(table: Table, name: str, text: str, seed: int) -> None:
    """Adversarial: a random character at a random place of the clean file (then undone, not measured)."""
    rng = random.Random(seed)
    doc = Document(f"file:///bench/a.{name}", name, 1, text)
    doc.index  # noqa: B018
    samples: list[tuple[float, float]] = []
    for _ in range(200):
        position = rng.randrange(len(text))
        samples.append(_sliced_edit(doc, position, position, rng.choice('x (:"\n.')))
        _edit(doc, position, position + 1, "")
    _add_sliced(table, f"{name}: one-char edit, random char and place", samples, "(worst case)")


def bench_context(table: Table, name: str, text: str, seed: int) -> None:
    rng = random.Random(seed)
    ext = SOURCES[name][0]
    doc = Document(f"file:///bench/src/main.{ext}", name, 1, text)
    others = [
        Document(f"file:///bench/src/other{i}.{ext}", name, 1, SOURCES[name][1](400, seed=i + 1))
        for i in range(30)
    ]
    for other in others:
        other.index  # noqa: B018 - open documents are indexed once
    positions = [rng.randrange(len(text)) for _ in range(300)]
    context_at(doc, positions[0])  # index built once
    warm, cold, with_others = [], [], []
    for position in positions:
        start = clock()
        context_at(doc, position, root="file:///bench")
        warm.append(clock() - start)
    for position in positions:
        start = clock()
        context_at(doc, position, others=others, root="file:///bench")
        with_others.append(clock() - start)
    upkeep, stale = [], []
    for position in positions:
        # After typing a character a server brings the index up to date between messages (DocumentStore
        # .catch_up, timed apart); the context call then finds it current. Without that pause the context
        # call does the upkeep itself (timed too).
        _edit(doc, position, position, " ")
        start = clock()
        doc.index  # noqa: B018 - what the store's catch-up does
        upkeep.append(clock() - start)
        start = clock()
        context_at(doc, position + 1, root="file:///bench")
        cold.append(clock() - start)
        _edit(doc, position, position + 1, "")
        start = clock()
        context_at(doc, position, root="file:///bench")
        stale.append(clock() - start)
    table.add(f"{name}: context_at, index warm", warm, "p50 < 1")
    table.add(f"{name}: context_at, after an edit and the index upkeep", cold, "p50 < 1")
    table.add(f"{name}: index upkeep after an edit (between messages)", upkeep)
    table.add(f"{name}: context_at, right after an edit, upkeep included", stale)
    table.add(f"{name}: context_at, 30 other open documents", with_others, "p50 < 1")


def bench_memory(table: Table, text: str, count: int) -> None:
    gc.collect()
    before = rss_mb()
    store = DocumentStore()
    start = clock()
    for i in range(count):
        # each document differs a little, as real files would; opened as the server opens them (a parse in
        # slices, the upkeep between messages)
        store.open(f"file:///bench/m{i}.py", "python", 1, text.replace("helper_", f"h{i}_"), budget=PARSE_SLICE)
        while not store.catch_up():
            pass
    elapsed = clock() - start
    gc.collect()
    after = rss_mb()
    trees = sum(1 for doc in store if doc.has_tree)
    table.add_value(f"python: RSS with {count} documents open (process)", f"{after:.0f} MB", "< 400 MB")
    table.add_value(f"python: RSS added by the {count} documents", f"{after - before:.0f} MB")
    table.add_value("python: trees kept in memory / opened in", f"{trees} / {elapsed:.1f} s")
    # the documents stay usable: a tree dropped for memory is parsed again on demand
    doc = store.get("file:///bench/m0.py")
    begin = clock()
    context_at(doc, len(doc.text) // 2, others=store)
    elapsed_ms = (clock() - begin) * 1000
    table.add_value("python: context_at on a document whose tree was dropped", f"{elapsed_ms:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", default="python,javascript,go")
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time, or this thread's CPU time (ignores other processes on a busy machine)")
    args = parser.parse_args()
    global clock
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    table = Table()
    for name in args.languages.split(","):
        text = SOURCES[name][1](LINES)
        assert text.count("\n") == LINES
        bench_parse(table, name, text, args.runs)
        bench_typing(table, name, text, args.seed)
        bench_identifier_edits(table, name, text, args.seed)
        bench_random_edits(table, name, text, args.seed)
        bench_context(table, name, text, args.seed)
    if not args.no_memory:
        bench_memory(table, python_source(LINES), args.documents)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"context engine benchmark: {LINES}-line files, Python {sys.version.split()[0]}, {args.clock} clock, "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    table.print()


if __name__ == "__main__":
    main()
