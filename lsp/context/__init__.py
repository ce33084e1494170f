"""The context engine: documents with incrementally maintained syntax trees, position conversions, and the
code context (scopes, imports, related definitions, outline) for a cursor or a selection.

Pure code over text and trees: no server needed. See ``extract.context_at`` for the main entry point.
"""

from .code_context import CodeContext, Scope, Snippet, relative_path
from .documents import (
    DEFAULT_MAX_SIZE,
    DEFAULT_TREE_BUDGET,
    Change,
    Document,
    Range,
    UnknownDocument,
)
from .extract import context_at, selection_context
from .languages import LANGUAGES, Language, LanguageSpec, language_for
from .positions import InvalidPosition, LineIndex, utf16_len
from .store import DocumentStore
from .syntax import block_end, count_errors, parses_cleanly, target_range

__all__ = [
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TREE_BUDGET",
    "LANGUAGES",
    "Change",
    "CodeContext",
    "Document",
    "DocumentStore",
    "InvalidPosition",
    "Language",
    "LanguageSpec",
    "LineIndex",
    "Range",
    "Scope",
    "Snippet",
    "UnknownDocument",
    "block_end",
    "context_at",
    "count_errors",
    "language_for",
    "parses_cleanly",
    "relative_path",
    "selection_context",
    "target_range",
    "utf16_len",
]
