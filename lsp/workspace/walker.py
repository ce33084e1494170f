"""Which files of a workspace to index: a walk that respects ``.gitignore`` files, skips what is never
source (``.git``, virtualenvs, ``node_modules``, build output, binary and huge files) and stops at caps.

A bad tree (unreadable folders, symlink loops, names that are not UTF-8) is walked around, never into:
symlinked folders are not followed and every problem is logged once per walk.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from lsp.context.languages import spec_for

__all__ = ["ROOT_MARKERS", "SKIPPED_DIRS", "FileEntry", "GitIgnore", "WalkLimits", "find_root", "walk"]

log = logging.getLogger(__name__)

SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".nox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", "build", "dist", "target", "out", ".next", ".cache", "site-packages",
    "bower_components", ".gradle", ".idea", ".vscode", "coverage", ".eggs",
})
ROOT_MARKERS = (".git", "pyproject.toml", "package.json", "go.mod", "Cargo.toml")


@dataclass(frozen=True)
class WalkLimits:
    """Caps of one walk (settings ``workspace.*``)."""

    max_files: int = 5000
    max_file_size: int = 512 * 1024  # bytes: bigger files are generated or data, not code to learn from
    max_total_size: int = 64 * 1024 * 1024
    exclude: tuple[str, ...] = ()  # extra gitignore-style patterns


@dataclass(frozen=True)
class FileEntry:
    path: str  # absolute
    size: int
    mtime_ns: int


@dataclass
class GitIgnore:
    """The rules of one ``.gitignore`` (a useful subset of git's syntax: ``*``, ``**``, ``?``, ``[...]``,
    a leading or inner ``/`` anchoring to the file's folder, a trailing ``/`` for folders, ``!`` to
    re-include), relative to ``base``."""

    base: str
    rules: list[tuple[re.Pattern[str], bool, bool]] = field(default_factory=list)  # (regex, negated, dirs only)

    @classmethod
    def parse(cls, base: str, lines: list[str]) -> GitIgnore:
        ignore = cls(base)
        for raw in lines:
            line = raw.rstrip("\n\r")
            if not line or line.startswith("#"):
                continue
            line = line.rstrip(" ")
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            dirs_only = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line  # a slash anywhere but at the end anchors to this folder
            line = line.lstrip("/")
            if not line:
                continue
            ignore.rules.append((_compile(line, anchored), negated, dirs_only))
        return ignore

    def decide(self, path: str, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included, None: these rules do not say."""
        rel = os.path.relpath(path, self.base).replace(os.sep, "/")
        verdict: bool | None = None
        for regex, negated, dirs_only in self.rules:
            if dirs_only and not is_dir:
                continue
            if regex.match(rel):
                verdict = not negated
        return verdict


def _compile(pattern: str, anchored: bool) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            parts.append("/.*")
            i += 3
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                parts.append(re.escape("["))
                i += 1
            else:
                parts.append(fnmatch.translate(pattern[i : end + 1])[4:-3])
                i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    body = "".join(parts)
    return re.compile(("" if anchored else "(?:.*/)?") + body + "$")


def find_root(path: str) -> str:
    """The workspace root of a file: the nearest folder above it with a ``.git``, ``pyproject.toml``,
    ``package.json``, ``go.mod`` or ``Cargo.toml``; the file's folder when there is none."""
    start = os.path.dirname(os.path.abspath(path)) if not os.path.isdir(path) else os.path.abspath(path)
    folder = start
    while True:
        if any(os.path.exists(os.path.join(folder, marker)) for marker in ROOT_MARKERS):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return start
        folder = parent


def _read_ignore(folder: str) -> GitIgnore | None:
    path = os.path.join(folder, ".gitignore")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return GitIgnore.parse(folder, handle.read(256 * 1024).splitlines())
    except FileNotFoundError:
        return None
    except OSError as error:
        log.info("workspace: cannot read %s: %s", path, error)
        return None


def _ignored(ignores: list[GitIgnore], path: str, is_dir: bool) -> bool:
    for ignore in reversed(ignores):  # the nearest .gitignore decides first
        verdict = ignore.decide(path, is_dir)
        if verdict is not None:
            return verdict
    return False


def is_source(path: str) -> bool:
    """A file the index reads: one of the languages the context engine parses."""
    return spec_for(None, path) is not None


def walk(root: str, limits: WalkLimits | None = None) -> Iterator[FileEntry]:
    """The source files under ``root``, folders breadth first (what is near the root matters most when the
    caps cut), within the limits. Lazy: the caller may stop any time."""
    limits = limits or WalkLimits()
    extra = GitIgnore.parse(root, list(limits.exclude)) if limits.exclude else None
    queue: list[tuple[str, list[GitIgnore]]] = [(root, [extra] if extra else [])]
    files = 0
    total = 0
    warned_total = False
    while queue:
        folder, ignores = queue.pop(0)
        own = _read_ignore(folder)
        if own is not None:
            ignores = [*ignores, own]
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as error:
            log.info("workspace: skipped unreadable folder %s: %s", folder, error)
            continue
        for entry in entries:
            name = entry.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                log.info("workspace: skipped a name that is not UTF-8 in %s", folder)
                continue
            try:
                if entry.is_symlink():
                    if entry.is_dir():
                        continue  # never followed: a link may loop or leave the workspace
                    info = entry.stat()
                elif entry.is_dir(follow_symlinks=False):
                    if name in SKIPPED_DIRS or name.endswith(".egg-info"):
                        continue
                    if _ignored(ignores, entry.path, True):
                        continue
                    if os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                        continue  # a virtualenv with another name
                    queue.append((entry.path, ignores))
                    continue
                else:
                    info = entry.stat(follow_symlinks=False)
            except OSError as error:
                log.info("workspace: skipped %s: %s", entry.path, error)
                continue
            if not is_source(name) or _ignored(ignores, entry.path, False):
                continue
            if info.st_size > limits.max_file_size:
                log.info("workspace: skipped %s (%d bytes, over the %d cap)", entry.path, info.st_size,
                         limits.max_file_size)
                continue
            if total + info.st_size > limits.max_total_size:
                if not warned_total:
                    log.warning("workspace: the total size cap (%d bytes) is reached; indexing the first files",
                                limits.max_total_size)
                    warned_total = True
                continue
            if files >= limits.max_files:
                log.warning("workspace: %s has more than %d source files; indexing the first ones", root,
                            limits.max_files)
                return
            files += 1
            total += info.st_size
            yield FileEntry(entry.path, info.st_size, info.st_mtime_ns)
