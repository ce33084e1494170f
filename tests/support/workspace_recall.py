"""Cross-file recall of the completion prompt, measured on real code.

At seeded positions inside functions, the rest of a statement line is hidden (the cursor is put at a random
column of the line's code and the text after it on that line removed), only that file is open, and the
completion prompt is built as the server builds it (real 70B tokenizer, TGI's default limits). Of the names
the hidden text uses that are defined in other files of the workspace (and not in the file itself), the
cross-file recall counts those that reach the prompt's definitions section. The same-file recall counts the
names defined in the file itself whose definition is outside the code shown around the cursor.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from lsp.assistant import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOTAL_TOKENS
from lsp.context.documents import Document
from lsp.context.extract import context_at
from lsp.context.languages import language_for
from lsp.prompt.budget import Budget, build_prompt
from lsp.prompt.templates import PromptStore
from lsp.prompt.tokens import TokenCounter
from lsp.workspace import WorkspaceDefinitions, WorkspaceIndex

_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_SECTION_END = ("Outline of the file:", "The code is inside:", "File `")
COMPLETION_MAX_NEW = 160


@dataclass
class Recall:
    positions: int = 0
    cross_total: int = 0
    cross_hit: int = 0
    same_total: int = 0
    same_hit: int = 0
    baseline_hit: int = 0  # cross-file names reached without the workspace index
    missed: list[str] = field(default_factory=list)

    @property
    def cross(self) -> float:
        return self.cross_hit / self.cross_total if self.cross_total else 1.0

    @property
    def same(self) -> float:
        return self.same_hit / self.same_total if self.same_total else 1.0

    @property
    def baseline(self) -> float:
        return self.baseline_hit / self.cross_total if self.cross_total else 1.0

    def add(self, other: Recall) -> None:
        self.positions += other.positions
        self.cross_total += other.cross_total
        self.cross_hit += other.cross_hit
        self.same_total += other.same_total
        self.same_hit += other.same_hit
        self.baseline_hit += other.baseline_hit
        self.missed += other.missed


def _definitions_section(prompt: str) -> str:
    start = prompt.find("Definitions used nearby:")
    if start < 0:
        return ""
    ends = [i for i in (prompt.find(marker, start) for marker in _SECTION_END) if i >= 0]
    return prompt[start : min(ends) if ends else len(prompt)]


def _code_block(prompt: str) -> str:
    cursor = prompt.find("<CURSOR>")
    start = prompt.rfind("File `", 0, cursor)
    return prompt[start : prompt.find("Write the code", cursor)]


def _is_code(doc: Document, row: int, line: str) -> bool:
    """The line's code is a statement, not the inside of a string or comment (a docstring's lines)."""
    tree, language = doc.tree, doc.language
    if tree is None or language is None:
        return False
    column = len(line) - len(line.lstrip())
    byte = doc.lines.byte_at(doc.lines.line_start(row) + column)
    node = tree.root_node.descendant_for_byte_range(byte, byte + 1)
    while node is not None:
        if node.type in language.spec.strings or node.type in language.spec.comments:
            return False
        node = node.parent
    return True


def _positions(doc: Document, rng: random.Random, count: int) -> list[tuple[int, int]]:
    """(line, column) pairs inside function bodies, on lines with code, the column inside the code."""
    index = doc.index
    if index is None:
        return []
    lines = doc.text.split("\n")
    functions = [s for s in index.definitions() if s.kind in ("function", "method") and s.sig_end > 0]
    candidates: list[int] = []
    for symbol in functions:
        first = doc.lines.line_of(doc.lines.offset_of_byte(symbol.sig_end)) + 1
        last = doc.lines.line_of(doc.lines.offset_of_byte(symbol.end))
        for row in range(first, last):
            code = lines[row].strip()
            if len(code) > 3 and not code.startswith(("#", "//", "*", "/*", '"', "'")) and _WORD.search(code):
                candidates.append(row)
    candidates = sorted(row for row in set(candidates) if _is_code(doc, row, lines[row]))
    picked = rng.sample(candidates, min(count, len(candidates)))
    result = []
    for row in sorted(picked):
        line = lines[row]
        indent = len(line) - len(line.lstrip())
        result.append((row, rng.randint(indent, max(indent, len(line.rstrip()) - 1))))
    return result


def measure_file(index: WorkspaceIndex, root: Path, path: Path, counter: TokenCounter, rng: random.Random,
                 count: int, store: PromptStore) -> Recall:
    recall = Recall()
    language = language_for(None, str(path))
    if language is None:
        return recall
    text = path.read_text(encoding="utf-8", errors="replace")
    original = Document(path.as_uri(), language.name, 1, text)
    definitions_here = original.index.by_name if original.index is not None else {}
    source = WorkspaceDefinitions(index, str(root))
    budget = Budget.compute(COMPLETION_MAX_NEW, DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOTAL_TOKENS)
    lines = text.split("\n")
    for row, column in _positions(original, rng, count):
        hidden = lines[row][column:]
        names = {w for w in _WORD.findall(hidden) if len(w) > 1 and not w.startswith("__")}
        cross = {n for n in names if n not in definitions_here
                 and any(p != str(path) for p, _ in index.named(n))}
        edited = "\n".join([*lines[:row], lines[row][:column], *lines[row + 1 :]])
        doc = Document(path.as_uri(), language.name, 1, edited)
        offset = sum(len(line) + 1 for line in lines[:row]) + column
        prompt = build_prompt(store, "complete", context_at(doc, offset, root=str(root), workspace=source),
                              counter=counter, budget=budget).text
        section = _definitions_section(prompt)
        code = _code_block(prompt)
        same = set()
        for name in names & definitions_here.keys():
            symbols = [s for s in definitions_here[name] if s.outline_level]
            first_lines = [doc.text[s.start : s.start + 1] for s in symbols]  # presence only
            if not symbols or not first_lines:
                continue
            signature = original.text.split("\n")[original.lines.line_of(original.lines.offset_of_byte(
                symbols[0].start))].strip()
            if signature and signature not in code:
                same.add(name)
        recall.positions += 1
        for name in cross:
            recall.cross_total += 1
            if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", section):
                recall.cross_hit += 1
            else:
                recall.missed.append(f"{path.name}:{row + 1}: {name}")
        for name in same:
            recall.same_total += 1
            if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", section):
                recall.same_hit += 1
        if cross:
            plain = build_prompt(store, "complete", context_at(doc, offset, root=str(root)), counter=counter,
                                 budget=budget).text
            plain_section = _definitions_section(plain)
            recall.baseline_hit += sum(
                1 for n in cross if re.search(rf"(?<![\w$]){re.escape(n)}(?![\w$])", plain_section)
            )
    return recall


def measure(root: Path, files: list[Path], counter: TokenCounter, *, seed: int = 16, per_file: int = 6,
            cache: Path | None = None) -> Recall:
    """Recall over ``files`` of the workspace ``root`` (indexed first, in the background process)."""
    index = WorkspaceIndex(str(root), cache=cache, persist=cache is not None)
    index.start()
    try:
        if not index.wait_scanned(300):
            raise RuntimeError("the workspace index did not finish its walk")
        store = PromptStore(None)
        total = Recall()
        rng = random.Random(seed)
        for path in files:
            total.add(measure_file(index, root, path, counter, rng, per_file, store))
        return total
    finally:
        index.close()


def source_files(root: Path, folder: str, suffixes: tuple[str, ...], limit: int, seed: int = 16) -> list[Path]:
    """A seeded sample of the source files under ``root/folder`` (tests and type stubs left out)."""
    files = sorted(
        p for p in (root / folder).rglob("*")
        if p.suffix in suffixes and not p.name.endswith(".d.ts") and "test" not in p.name.lower()
    )
    rng = random.Random(seed)
    return sorted(rng.sample(files, min(limit, len(files))))
