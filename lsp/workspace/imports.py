"""Imports per language: what a file's import statements bind, and which workspace files they come from.

Python: ``import a.b as c``, ``from .x import y as z`` (relative and package imports). JavaScript and
TypeScript: ``import``/``require``/``export ... from`` with relative paths, ``index`` files and ``tsconfig``
``paths``. Go: packages are folders (the module path from ``go.mod``). Rust: ``use crate::/super::/self::``
and ``mod x;``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["ImportRef", "ModuleMap", "parse_imports"]


@dataclass(frozen=True)
class ImportRef:
    module: str  # as written: "a.b", ".x", "./util", "example.com/m/pkg", "crate::a::b"
    names: tuple[tuple[str, str], ...] = ()  # (local name, name in the module); "*" for everything
    binding: str = ""  # the local name bound to the module itself ("" if none)
    star: bool = False


# ---------------------------------------------------------------------------------------------- parsing
_PY_FROM = re.compile(r"^\s*from\s+([.\w]+)\s+import\s+\(?([^)]*)\)?", re.S)
_PY_IMPORT = re.compile(r"^\s*import\s+(.+)$", re.S)
_JS_FROM = re.compile(r"""^\s*(?:import|export)\s+(?:type\s+)?(.*?)\s*from\s*['"]([^'"]+)['"]""", re.S)
_JS_SIDE = re.compile(r"""^\s*import\s*['"]([^'"]+)['"]""")
_JS_REQUIRE = re.compile(r"""^\s*(?:const|let|var)\s+(.+?)\s*=\s*require\(\s*['"]([^'"]+)['"]\s*\)""", re.S)
_JS_REEXPORT = re.compile(r"""^\s*export\s+(?:type\s+)?(\*(?:\s+as\s+\w+)?|\{[^}]*\})\s*from\s*['"]([^'"]+)['"]""",
                          re.M)
_GO_SPEC = re.compile(r"""(?:^|\n|\()\s*([\w.]+\s+)?"([^"]+)\"""")
_RS_USE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+(.+?);?\s*$", re.S)


def _py(texts: Iterable[str]) -> list[ImportRef]:
    refs: list[ImportRef] = []
    for text in texts:
        text = re.sub(r"#.*", "", text).replace("\\\n", " ")
        match = _PY_FROM.match(text)
        if match:
            module, names = match.group(1), match.group(2)
            pairs: list[tuple[str, str]] = []
            star = False
            for part in names.replace("\n", " ").split(","):
                words = part.split()
                if not words:
                    continue
                if words[0] == "*":
                    star = True
                elif len(words) == 3 and words[1] == "as":
                    pairs.append((words[2], words[0]))
                else:
                    pairs.append((words[0], words[0]))
            refs.append(ImportRef(module, tuple(pairs), "", star))
            continue
        match = _PY_IMPORT.match(text)
        if match:
            for part in match.group(1).split(","):
                words = part.split()
                if not words:
                    continue
                binding = words[2] if len(words) == 3 and words[1] == "as" else words[0].split(".")[0]
                refs.append(ImportRef(words[0], (), binding))
    return refs


def _js_clause(clause: str, module: str) -> ImportRef:
    pairs: list[tuple[str, str]] = []
    binding = ""
    star = False
    clause = clause.strip()
    braces = re.search(r"\{([^}]*)\}", clause, re.S)
    if braces:
        for part in braces.group(1).split(","):
            words = part.replace("type ", "").split()
            if len(words) == 3 and words[1] == "as":
                pairs.append((words[2], words[0]))
            elif words:
                pairs.append((words[0], words[0]))
        clause = clause[: braces.start()] + clause[braces.end() :]
    for part in clause.split(","):
        part = part.strip()
        if part.startswith("*"):
            words = part.split()
            if len(words) == 3:
                binding = words[2]
            else:
                star = True
        elif re.fullmatch(r"[\w$]+", part):
            pairs.append((part, "default"))
    return ImportRef(module, tuple(pairs), binding, star)


def _js(texts: Iterable[str], source: str) -> list[ImportRef]:
    refs: list[ImportRef] = []
    for text in texts:
        match = _JS_FROM.match(text)
        if match:
            refs.append(_js_clause(match.group(1), match.group(2)))
            continue
        match = _JS_REQUIRE.match(text)
        if match:
            target = match.group(1)
            if target.startswith("{"):
                refs.append(_js_clause(target, match.group(2)))
            else:
                refs.append(ImportRef(match.group(2), (), target.strip()))
            continue
        match = _JS_SIDE.match(text)
        if match:
            refs.append(ImportRef(match.group(1)))
    # re-exports are not definitions: an index file's `export * from './x'` says where names live
    for match in _JS_REEXPORT.finditer(source):
        clause, module = match.group(1), match.group(2)
        refs.append(_js_clause(clause if clause.startswith("{") else "*", module))
    return refs


def _go(texts: Iterable[str]) -> list[ImportRef]:
    refs: list[ImportRef] = []
    for text in texts:
        for match in _GO_SPEC.finditer(text):
            alias = (match.group(1) or "").strip()
            path = match.group(2)
            binding = alias if alias and alias not in ("_", ".") else path.rsplit("/", 1)[-1]
            refs.append(ImportRef(path, (), binding, alias == "."))
    return refs


def _rust_expand(path: str) -> list[str]:
    path = re.sub(r"\s+as\s+", "\x00", path)
    path = "".join(path.split()).replace("\x00", " as ")
    match = re.search(r"\{(.*)\}$", path)
    if not match:
        return [path]
    head = path[: match.start()]
    inner, depth, parts, current = match.group(1), 0, [], ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (ch == "{") - (ch == "}")
        current += ch
    parts.append(current)
    return [full for part in parts if part for full in _rust_expand(head + part)]


def _rust(texts: Iterable[str]) -> list[ImportRef]:
    refs: list[ImportRef] = []
    for text in texts:
        match = _RS_USE.match(text)
        if not match:
            continue
        for path in _rust_expand(match.group(1)):
            local = ""
            if " as " in path:
                path, local = path.split(" as ", 1)
            if path.endswith("*"):
                refs.append(ImportRef(path[:-3] if path.endswith("::*") else path, (), "", True))
                continue
            module, _, name = path.rpartition("::")
            if name == "self":
                refs.append(ImportRef(module, (), module.rsplit("::", 1)[-1]))
                continue
            local = local or name
            refs.append(ImportRef(module, ((local, name),), local))
    return refs


def parse_imports(language: str, texts: Iterable[str], source: str) -> list[ImportRef]:
    """The imports of a file, from its import statements' texts (and its source, for re-exports)."""
    if language == "python":
        return _py(texts)
    if language in ("javascript", "typescript", "tsx"):
        return _js(texts, source)
    if language == "go":
        return _go(texts)
    if language == "rust":
        return _rust(texts)
    return []


# ---------------------------------------------------------------------------------------------- resolution
_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")


class ModuleMap:
    """Finds the workspace files an import names. ``exists`` answers for indexed files (absolute paths)."""

    def __init__(self, root: str, paths: Iterable[str], exists: Callable[[str], bool]) -> None:
        self.root = root
        self.exists = exists
        self.python: dict[str, list[str]] = {}  # dotted module suffix -> files
        self.folders: dict[str, list[str]] = {}  # folder -> files (Go packages)
        for path in paths:
            self.add(path)
        self.go_module = _go_module(root)
        self.ts_paths, self.ts_base = _ts_paths(root)

    def add(self, path: str) -> None:
        self.folders.setdefault(os.path.dirname(path), []).append(path)
        for key in self._python_keys(path):
            self.python.setdefault(key, []).append(path)

    def remove(self, path: str) -> None:
        files = self.folders.get(os.path.dirname(path))
        if files and path in files:
            files.remove(path)
        for key in self._python_keys(path):  # only the entries add() made: a folder's deletion stays linear
            entries = self.python.get(key)
            if entries and path in entries:
                entries.remove(path)
                if not entries:
                    del self.python[key]

    def _python_keys(self, path: str) -> list[str]:
        """The dotted module suffixes a Python file answers to (``pkg.mod``, ``mod``)."""
        if not path.endswith((".py", ".pyi")):
            return []
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        parts = rel.rsplit(".", 1)[0].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        return [key for key in (".".join(parts[i:]) for i in range(len(parts))) if key]

    def resolve(self, language: str, ref: ImportRef, source: str) -> list[str]:
        """The files ``ref`` (imported by the file ``source``) may come from, best first."""
        if language == "python":
            return self._python(ref.module, source)
        if language in ("javascript", "typescript", "tsx"):
            return self._js(ref.module, source)
        if language == "go":
            return self._go(ref.module)
        if language == "rust":
            return self._rust(ref.module, source)
        return []

    def submodule(self, language: str, ref: ImportRef, name: str, source: str) -> list[str]:
        """Python's ``from pkg import name`` where ``name`` is a module of its own."""
        if language != "python":
            return []
        module = ref.module + ("" if ref.module.endswith(".") else ".") + name
        return self._python(module, source)

    def _python(self, module: str, source: str) -> list[str]:
        if module.startswith("."):
            dots = len(module) - len(module.lstrip("."))
            folder = os.path.dirname(source)
            for _ in range(dots - 1):
                folder = os.path.dirname(folder)
            rest = module[dots:].replace(".", "/")
            base = os.path.join(folder, rest) if rest else folder
            candidates = [base + ".py", base + ".pyi", os.path.join(base, "__init__.py")]
            return [c for c in candidates if self.exists(c)]
        found = self.python.get(module, [])
        if len(found) > 1:  # the copy nearest the importing file
            found = sorted(found, key=lambda p: -len(os.path.commonpath([p, source])))
        return found[:2]

    def _js_file(self, base: str) -> list[str]:
        if self.exists(base) and not base.endswith(".json"):
            return [base]
        stem = base[:-3] if base.endswith((".js", ".jsx")) else base
        for ext in _JS_EXTENSIONS:
            if self.exists(stem + ext):
                return [stem + ext]
        for ext in _JS_EXTENSIONS:
            index = os.path.join(base, "index" + ext)
            if self.exists(index):
                return [index]
        return []

    def _js(self, module: str, source: str) -> list[str]:
        if module.startswith("."):
            return self._js_file(os.path.normpath(os.path.join(os.path.dirname(source), module)))
        for pattern, targets in self.ts_paths:
            prefix, star, suffix = pattern.partition("*")
            if not module.startswith(prefix) or (not star and module != pattern):
                continue
            if star and not module.endswith(suffix):
                continue
            middle = module[len(prefix) : len(module) - len(suffix)] if star else ""
            for target in targets:
                found = self._js_file(os.path.normpath(os.path.join(self.ts_base, target.replace("*", middle))))
                if found:
                    return found
        if self.ts_base != self.root or self.ts_paths:
            return self._js_file(os.path.normpath(os.path.join(self.ts_base, module)))
        return []

    def _go(self, module: str) -> list[str]:
        if self.go_module and (module == self.go_module or module.startswith(self.go_module + "/")):
            folder = os.path.join(self.root, module[len(self.go_module) :].lstrip("/"))
            return [p for p in self.folders.get(os.path.normpath(folder), []) if not p.endswith("_test.go")]
        return []

    def _rust(self, module: str, source: str) -> list[str]:
        parts = [p for p in module.split("::") if p]
        if not parts:
            return []
        folder = os.path.dirname(source)
        if parts[0] == "crate":
            folder = _rust_src(source)
            parts = parts[1:]
        elif parts[0] in ("self", "super"):
            while parts and parts[0] in ("self", "super"):
                if parts[0] == "super":
                    folder = os.path.dirname(folder)
                parts = parts[1:]
        else:
            return []
        found: list[str] = []
        for cut in range(len(parts), 0, -1):  # `a::b::Item`: the module is the longest path that is a file
            base = os.path.join(folder, *parts[:cut])
            for candidate in (base + ".rs", os.path.join(base, "mod.rs")):
                if self.exists(candidate):
                    found.append(candidate)
            if found:
                return found
        for candidate in ("lib.rs", "main.rs", "mod.rs"):
            if not parts and self.exists(os.path.join(folder, candidate)):
                return [os.path.join(folder, candidate)]
        return found


def _rust_src(source: str) -> str:
    folder = os.path.dirname(source)
    while True:
        if os.path.basename(folder) == "src" or os.path.exists(os.path.join(os.path.dirname(folder), "Cargo.toml")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return os.path.dirname(source)
        folder = parent


def _go_module(root: str) -> str:
    try:
        with open(os.path.join(root, "go.mod"), encoding="utf-8", errors="replace") as handle:
            for line in handle.read(64 * 1024).splitlines():
                if line.startswith("module "):
                    return line.split()[1].strip('"')
    except OSError:
        pass
    return ""


def _ts_paths(root: str) -> tuple[list[tuple[str, list[str]]], str]:
    """``compilerOptions.paths`` and ``baseUrl`` of the root's tsconfig.json (or jsconfig.json)."""
    for name in ("tsconfig.json", "jsconfig.json"):
        try:
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as handle:
                raw = handle.read(256 * 1024)
        except OSError:
            continue
        raw = re.sub(r"/\*.*?\*/", "", re.sub(r"(?m)^\s*//.*$", "", raw), flags=re.S)
        raw = re.sub(r",(\s*[}\]])", r"\1", raw)
        try:
            options = json.loads(raw).get("compilerOptions", {})
        except (ValueError, AttributeError):
            return [], root
        base = os.path.normpath(os.path.join(root, options.get("baseUrl", ".")))
        paths = options.get("paths") or {}
        if not isinstance(paths, dict):
            return [], base
        return [(k, [t for t in v if isinstance(t, str)]) for k, v in paths.items() if isinstance(v, list)], base
    return [], root
