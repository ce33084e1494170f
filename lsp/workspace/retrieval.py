"""Definitions from the workspace for the code around a cursor: the names it uses, resolved through the
file's imports to the files they come from, then through the workspace symbol table; ranked by import
distance, folder proximity and how much the name is used near the cursor; rendered as signatures with the
first line of their documentation (small definitions whole).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from lsp.context.code_context import Snippet, relative_path_of
from lsp.context.documents import Document
from lsp.context.languages import spec_for
from lsp.context.snippets import import_texts
from lsp.context.symbols import CLASS_KINDS

from .imports import ImportRef, parse_imports
from .index import WorkspaceIndex
from .summary import Definition, FileSummary

__all__ = ["MAX_WORKSPACE_DEFINITIONS", "WorkspaceDefinitions", "related_definitions", "render_definition"]

MAX_WORKSPACE_DEFINITIONS = 24
MAX_AMBIGUITY = 4  # a name defined in more files than this, and not imported, tells nothing
IMPORTED = 1.0  # score factor of a name imported from the file that defines it
SAME_PACKAGE = 0.8  # Go: files of the same folder see each other's names
MODULE_MEMBER = 0.7  # a name used through an imported module (`utils.helper`)
SYMBOL_TABLE = 0.35  # a name found only in the workspace's symbol table
UNUSED_IMPORT = 0.05  # an imported name the nearby code does not use: the line being written may
_RE_EXPORT_DEPTH = 2
WORDS_REFRESH = 20  # document versions
_WORD = re.compile(r"[A-Za-z_$][\w$]*")


@dataclass
class _Found:
    score: float
    path: str
    definition: Definition


def _add(found: dict[tuple[str, str, int], _Found], score: float, path: str, definition: Definition) -> None:
    key = (path, definition.name, definition.line)
    entry = found.get(key)
    if entry is None:
        found[key] = _Found(score, path, definition)
    else:
        entry.score = max(entry.score, score) + 0.1 * min(entry.score, score)


def _defined(summary: FileSummary | None, name: str) -> list[Definition]:
    if summary is None:
        return []
    return summary.top_level.get(name, [])


def _lookup(index: WorkspaceIndex, language: str, files: list[str], name: str, depth: int = 0,
            ) -> list[tuple[str, Definition]]:
    """``name`` as defined in ``files``, following re-exports (``from .x import name`` in a package's
    ``__init__``, ``export * from './x'`` in an index file)."""
    results: list[tuple[str, Definition]] = []
    for path in files:
        summary = index.file(path)
        results.extend((path, d) for d in _defined(summary, name))
        if results or summary is None or depth >= _RE_EXPORT_DEPTH:
            continue
        for ref in summary.imports:
            remote = next((r for local, r in ref.names if local == name), None)
            if remote is None and not ref.star:
                continue
            targets = index.resolve(language, ref, path)
            results.extend(_lookup(index, language, targets, remote or name, depth + 1))
            if results:
                break
    return results


_RESOLVED: dict[tuple[int, str, str, tuple[str, ...]], tuple[int, list[tuple[ImportRef, list[str]]]]] = {}


def _resolved_imports(index: WorkspaceIndex, language: str, path: str, texts: tuple[str, ...],
                      source: str) -> list[tuple[ImportRef, list[str]]]:
    """The file's imports and the files each resolves to, kept until the imports or the index change."""
    key = (id(index), path, language, texts)
    cached = _RESOLVED.get(key)
    if cached is not None and cached[0] == index.generation:
        return cached[1]
    refs = parse_imports(language, texts, source)
    resolved = [(ref, index.resolve(language, ref, path)) for ref in refs]
    _RESOLVED[key] = (index.generation, resolved)
    while len(_RESOLVED) > 64:
        del _RESOLVED[next(iter(_RESOLVED))]
    return resolved


def _proximity(a: str, b: str) -> float:
    """1 for files of the same folder, less the more folders apart."""
    common = os.path.commonpath([os.path.dirname(a), os.path.dirname(b)])
    steps = os.path.dirname(a)[len(common) :].count(os.sep) + os.path.dirname(b)[len(common) :].count(os.sep)
    return 1.0 / (1.0 + 0.25 * steps)


def related_definitions(
    index: WorkspaceIndex,
    path: str,
    language: str,
    import_texts: Iterable[str],
    source: str,
    names: Mapping[str, float],
    *,
    skip_paths: Collection[str] = (),
    local_names: Collection[str] = (),
    file_words: Mapping[str, int] | None = None,
    limit: int = MAX_WORKSPACE_DEFINITIONS,
) -> list[tuple[float, str, Definition]]:
    """Definitions from other workspace files for the names used around a cursor in ``path``, best first:
    (score, path, definition). ``names`` weighs each name used nearby; ``skip_paths`` are files the
    caller shows otherwise (open documents); ``local_names`` are defined in the file itself;
    ``file_words`` counts the words of the whole file."""
    file_words = file_words or {}
    path = os.path.abspath(path)
    skip = set(skip_paths) | {path}
    found: dict[tuple[str, str, int], _Found] = {}
    resolved_names: set[str] = set()

    def prior(name: str) -> float:
        """A name the line being written may use although the nearby code does not: used elsewhere in the
        file, the more the likelier."""
        count = file_words.get(name, 0)
        return UNUSED_IMPORT * (1.0 + min(count, 8) / 4) if count else 0.0

    def members(files: list[str], factor: float, wanted: bool) -> None:
        """The definitions of a module bound to a name (``import x``, ``import * as x``, a default export
        object): those used nearby, and when the module is, those used elsewhere in the file."""
        for module_file in files:
            summary = index.file(module_file)
            if summary is None:
                continue
            for definition in summary.definitions:
                if definition.parent:
                    continue
                weight = names.get(definition.name, 0.0)
                score = weight * factor if weight else (prior(definition.name) * factor if wanted else 0.0)
                if score > 0:
                    _add(found, score, module_file, definition)
                    resolved_names.add(definition.name)

    for ref, files in _resolved_imports(index, language, path, tuple(import_texts), source):
        for local, remote in ref.names:
            weight = names.get(local, 0.0)
            hits = _lookup(index, language, files, local if remote == "default" else remote)
            if not hits:  # `from pkg import module`, a default export object: names used through it
                module_files = files if remote == "default" else index.submodule(language, ref, remote, path)
                members(module_files, MODULE_MEMBER, weight > 0 or local in file_words)
                continue
            resolved_names.add(local)
            for hit in hits[:2]:
                _add(found, IMPORTED * weight + UNUSED_IMPORT + prior(local), *hit)
        if ref.binding or ref.star:
            members(files, MODULE_MEMBER if ref.binding else IMPORTED,
                    ref.star or names.get(ref.binding, 0.0) > 0 or ref.binding in file_words)
    if language == "go":
        for other in index.folder(path):
            if other == path or other.endswith("_test.go"):
                continue
            summary = index.file(other)
            for used, used_weight in names.items():
                for definition in _defined(summary, used):
                    _add(found, used_weight * SAME_PACKAGE, other, definition)
                    resolved_names.add(used)
    for used, used_weight in names.items():
        if used in resolved_names or used in local_names:
            continue
        owners = set(index.owners(used)) - skip
        if not owners or len(owners) > MAX_AMBIGUITY:
            continue
        entries = [(p, d) for p, d in index.named(used) if p in owners]
        for other, definition in entries[:3]:
            same = spec_for(None, other)
            if same is None or (same.name != language and {same.name, language} - {"typescript", "tsx", "javascript"}):
                continue
            _add(found, used_weight * SYMBOL_TABLE * _proximity(path, other) / len(owners), other, definition)
    ranked = sorted((f for f in found.values() if f.path not in skip), key=lambda f: (-f.score, f.path,
                                                                                        f.definition.line))
    return [(f.score, f.path, f.definition) for f in ranked[:limit]]


def _comment(language: str) -> str:
    spec = spec_for(language)
    return spec.line_comment if spec is not None else "#"


def _title(signature: str) -> str:
    title = " ".join(signature.split())
    while title and title[-1] in "{:=":
        title = title[:-1].rstrip()
    return title[:400]


def render_definition(definition: Definition, summary: FileSummary | None) -> tuple[str, str]:
    language = summary.language if summary is not None else ""
    indent = summary.indent if summary is not None else "    "
    return _render(definition, language, indent)


@functools.lru_cache(maxsize=4096)
def _render(definition: Definition, language: str, indent: str) -> tuple[str, str]:
    """(title, text) of a workspace definition: whole when small, else its signature, the first line of
    its documentation and, for a class, its members' signatures; written the way the language writes
    them (Go's brace on the signature's line, the file's own indentation)."""
    title = _title(definition.signature)
    if definition.parent:
        title = f"{title} (in {definition.parent})"
    if definition.text:
        return title, definition.text
    python = language == "python"
    lines: list[str] = []
    signature = definition.signature.rstrip()
    if python:
        lines.append(signature if signature.endswith(":") else signature + ":")
        if definition.doc:
            lines.append(f'{indent}"""{definition.doc}"""')
        for member in definition.members:
            lines.append(f"{indent}{member} ..." if member.endswith(":") else f"{indent}{member}")
        if not definition.members:
            lines.append(f"{indent}...")
        return title, "\n".join(lines)
    if definition.doc:
        lines.append(f"{_comment(language)} {definition.doc}")
    head = signature[:-1].rstrip() if signature.endswith("{") else signature
    if definition.members:
        lines.append(head + " {")
        lines.extend(f"{indent}{m[:-1].rstrip() if m.endswith('{') else m}" for m in definition.members)
        lines.append("}" if language != "ruby" else "end")
    elif definition.kind in CLASS_KINDS or definition.kind in ("function", "method", "impl", "trait", "module"):
        lines.append(head + (" ... end" if language == "ruby" else " { ... }"))
    else:
        lines.append(signature + (" ..." if signature.endswith(("{", "(", "[", "=")) else ""))
    return title, "\n".join(lines)


def snippets(index: WorkspaceIndex, found: list[tuple[float, str, Definition]], root: str | None) -> list[Snippet]:
    """Snippets (title without the path: the prompt prints the path once) for ranked definitions."""
    result: list[Snippet] = []
    for score, path, definition in found:
        title, text = render_definition(definition, index.file(path))
        base = (root or index.root).rstrip("/") + "/"
        shown = path[len(base) :] if path.startswith(base) else relative_path_of(path, root or index.root)
        result.append(Snippet(title=title, text=text, path=shown, score=round(score, 4),
                              start_line=definition.line, end_line=definition.end_line, scope=definition.parent))
    return result


class WorkspaceDefinitions:
    """The workspace index as a source of definitions for the context engine (``DefinitionSource``)."""

    def __init__(self, index: WorkspaceIndex | None, root: str | None = None, *,
                 limit: int = MAX_WORKSPACE_DEFINITIONS, enabled: Callable[[], bool] = lambda: True) -> None:
        self.index = index  # None until a workspace is known (the server sets it then)
        self.root = root
        self.limit = limit
        self.enabled = enabled
        self._words: tuple[str, int, dict[str, int]] | None = None  # (uri, version, counts)

    def _file_words(self, doc: Document) -> dict[str, int]:
        """How often each word occurs in the document. Counted again only every few versions: a count a
        few keystrokes old ranks as well, and counting a large file takes milliseconds."""
        cached = self._words
        if cached is not None and cached[0] == doc.uri and 0 <= doc.version - cached[1] < WORDS_REFRESH:
            return cached[2]
        counts: dict[str, int] = {}
        get = counts.get
        for word in _WORD.findall(doc.text):
            counts[word] = get(word, 0) + 1
        self._words = (doc.uri, doc.version, counts)
        return counts

    def stats(self) -> dict[str, object]:
        """For the server's stats and tests: how far the index is."""
        index = self.index
        if index is None:
            return {"files": 0, "scanned": False, "updates": 0}
        return {"files": len(index), "scanned": index.scanned, "updates": index.updates_answered,
                "generation": index.generation}

    def definitions_for(
        self, doc: Document, names: Mapping[str, float], skip_paths: Collection[str], local_names: Collection[str]
    ) -> list[Snippet]:
        index = self.index
        language = doc.language
        if index is None or language is None or not len(index) or not self.enabled():
            return []
        file_index = doc.index
        if file_index is None:
            return []
        found = related_definitions(
            index, doc.path, language.name, import_texts(doc, file_index), doc.text, names,
            skip_paths=skip_paths, local_names=local_names, file_words=self._file_words(doc), limit=self.limit,
        )
        return snippets(index, found, self.root)
