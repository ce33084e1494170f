"""The context engine: documents with incrementally maintained syntax trees, position conversions, and the
code context (scopes, imports, related definitions, outline) for a cursor or a selection.

Pure code over text and trees: no server needed. See ``extract.context_at`` for the main entry point.
"""

from .documents import (
    DEFAULT_MAX_SIZE,
    DEFAULT_TREE_BUDGET,
    Change,
    Document,
    DocumentStore,
    Range,
    UnknownDocument,
)
from .extract import (
    CodeContext,
    Scope,
    Snippet,
    block_end,
    context_at,
    count_errors,
    parses_cleanly,
    relative_path,
    selection_context,
    target_range,
)
from .languages import LANGUAGES, Language, LanguageSpec, language_for
from .positions import InvalidPosition, LineIndex, utf16_len

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
