"""What context extraction hands the prompt engine: the enclosing scopes, the definitions shown, and the
file's path as the prompt names it."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from lsp.uris import uri_to_path

from .documents import Document


@dataclass(frozen=True)
class Scope:
    """One enclosing definition: ``kind`` ("function", "method", "class"...), its name, its signature
    (the header up to the body) and its LSP line span."""

    kind: str
    name: str
    signature: str
    start_line: int
    end_line: int


@dataclass(frozen=True)
class Snippet:
    """A definition shown to the model: a title (e.g. ``def helper(x)`` or ``util.py: class Foo``), its text,
    its file (None for the current one) and its relevance score (higher is better)."""

    title: str
    text: str
    path: str | None
    score: float
    start_line: int = -1  # LSP lines of the definition in its file (so a prompt can skip what it shows)
    end_line: int = -1
    scope: str = ""  # the class it belongs to when shown without it (a member of another file's class)


@dataclass(frozen=True)
class CodeContext:
    """Everything the prompt engine may use for a position or a selection."""

    language: str  # display name, "text" if unknown
    path: str  # relative to the workspace root if given, else the URI's path
    prefix: str  # full text before the cursor/selection
    suffix: str  # full text after the cursor/selection
    scopes: list[Scope]  # enclosing chain, outermost first
    imports: list[str]  # import statements of the file, as text
    definitions: list[Snippet]  # definitions the nearby code refers to, best first
    outline: list[str]  # one line per top-level/class-level definition
    single_line: bool  # the cursor context suggests a single-line completion


class DefinitionSource(Protocol):
    """Definitions from beyond the open documents (the workspace index)."""

    def definitions_for(
        self, doc: Document, names: Mapping[str, float], skip_paths: Collection[str], local_names: Collection[str]
    ) -> list[Snippet]:
        """Snippets for the ``names`` used near the cursor in ``doc`` (weighted by closeness), from files
        other than ``skip_paths`` (shown otherwise), ``local_names`` being defined in ``doc`` itself."""
        ...


def relative_path(doc: Document, root: str | None) -> str:
    """The document's path relative to the workspace ``root`` (a path or a ``file:`` URI) when inside it."""
    return relative_path_of(doc.path, root)


def relative_path_of(path: str, root: str | None) -> str:
    """``path`` relative to the workspace ``root`` (a path or a ``file:`` URI) when inside it."""
    if root:
        base = uri_to_path(root) if "://" in root else root
        base = base.rstrip("/\\") or "/"
        try:
            if os.path.commonpath([os.path.abspath(path), os.path.abspath(base)]) == os.path.abspath(base):
                return os.path.relpath(path, base).replace(os.sep, "/")
        except ValueError:  # different drives
            pass
    return path
