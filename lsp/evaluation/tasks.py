"""Completion tasks cut from a repository's real files: the rest of a line, or a whole block's body, hidden
at seeded positions, as in llm-ls's testbed and CrossCodeEval.

A task is a document with a hole at the cursor: the model should write what the hole held. Positions are
drawn with a seeded generator, so the same repository and seed give the same tasks on every machine; they
are ordered by file and line, as an editor session goes through a file.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lsp.context.languages import language_for

KINDS = ("line", "body")
MAX_FILE_BYTES = 200_000  # larger files are generated or vendored more often than written
MIN_HIDDEN_CHARS = 4  # a hole smaller than this tests nothing
MAX_BODY_LINES = 12
SKIPPED_DIRS = frozenset({".git", "node_modules", "vendor", "target", "build", "dist", "__pycache__", ".venv"})


@dataclass(frozen=True)
class Task:
    path: Path  # the file
    language: str  # the language's name in the language table (python, go...)
    kind: str  # "line" or "body"
    line: int  # 0-based line of the cursor
    text: str  # the whole file, hole included
    offset: int  # the cursor: the hole is text[offset : offset + len(expected)]
    expected: str

    @property
    def document(self) -> str:
        """The file as the user has it: with the hole."""
        return self.text[: self.offset] + self.text[self.offset + len(self.expected) :]


def source_files(root: Path) -> list[Path]:
    """The files under ``root`` in a language the server parses, in a stable order."""
    found = []
    for path in sorted(root.rglob("*")):
        if any(part in SKIPPED_DIRS for part in path.relative_to(root).parts):
            continue
        if path.is_file() and path.stat().st_size <= MAX_FILE_BYTES and language_for(None, str(path)):
            found.append(path)
    return found


def make_tasks(root: Path, count: int, *, seed: int = 0, kinds: Sequence[str] = KINDS) -> list[Task]:
    """``count`` tasks drawn evenly from the files under ``root`` (a file or a folder)."""
    files = [root] if root.is_file() else source_files(root)
    rng = random.Random(seed)
    candidates: list[Task] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        language = language_for(None, str(path))
        assert language is not None
        for kind in kinds:
            candidates.extend(_candidates(path, language.name, kind, text, rng))
    if len(candidates) > count:
        # evenly over files: a big file should not take every sample
        by_file: dict[Path, list[Task]] = {}
        for task in candidates:
            by_file.setdefault(task.path, []).append(task)
        chosen: list[Task] = []
        pools = [rng.sample(tasks, len(tasks)) for tasks in by_file.values()]
        while len(chosen) < count:
            for pool in pools:
                if pool and len(chosen) < count:
                    chosen.append(pool.pop())
        candidates = chosen
    return sorted(candidates, key=lambda t: (str(t.path), t.line, t.kind))


def _candidates(path: Path, language: str, kind: str, text: str, rng: random.Random) -> Iterator[Task]:
    lines = text.split("\n")
    starts = _line_starts(lines)
    if kind == "line":
        for i, line in enumerate(lines):
            code = line.strip()
            if len(code) < 2 * MIN_HIDDEN_CHARS or code.startswith(("#", "//", "*", "/*", "--")):
                continue
            indent = len(line) - len(line.lstrip())
            # the cursor after at least one character of code, leaving at least MIN_HIDDEN_CHARS hidden
            column = rng.randint(indent + 1, len(line.rstrip()) - MIN_HIDDEN_CHARS)
            hidden = line.rstrip()[column:]
            yield Task(path, language, kind, i, text, starts[i] + column, hidden)
    else:
        for i, line in enumerate(lines[:-1]):
            if not line.rstrip().endswith((":", "{")):
                continue
            body = _block_body(lines, i)
            if body is None:
                continue
            first, last = body
            # the cursor at the start of the body's first line, after its indentation
            indent = len(lines[first]) - len(lines[first].lstrip())
            start = starts[first] + indent
            end = starts[last] + len(lines[last])
            hidden = text[start:end]
            if len(hidden.strip()) >= MIN_HIDDEN_CHARS:
                yield Task(path, language, kind, first, text, start, hidden)


def _line_starts(lines: Sequence[str]) -> list[int]:
    starts, at = [], 0
    for line in lines:
        starts.append(at)
        at += len(line) + 1
    return starts


def _block_body(lines: Sequence[str], opener: int) -> tuple[int, int] | None:
    """The first and last line of the block ``lines[opener]`` opens (by indentation), if it is short."""
    base = len(lines[opener]) - len(lines[opener].lstrip())
    first = opener + 1
    if first >= len(lines) or not lines[first].strip():
        return None
    depth = len(lines[first]) - len(lines[first].lstrip())
    if depth <= base:
        return None
    last = first
    for j in range(first + 1, min(len(lines), first + MAX_BODY_LINES + 1)):
        line = lines[j]
        if not line.strip():
            continue
        if len(line) - len(line.lstrip()) < depth:
            return (first, last) if last - first < MAX_BODY_LINES else None
        last = j
    return None
