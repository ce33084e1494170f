"""Whether a rewrite still is the code it replaces: a refactoring or a docstring keeps the names the
original defined. A model too small for the task (the embedded 135M one) may answer with other code
altogether (a second `fibonacci` in place of `is_prime`); that is shown for review, never applied.
"""

from __future__ import annotations

from lsp.context.documents import Document


def defined_names(code: str, language_id: str, path: str = "rewrite") -> list[str]:
    """The names of the functions, classes, methods... ``code`` defines, in order; [] for plain text.
    (Variables are left out: a refactoring may well inline one.)"""
    index = Document(f"file:///{path}", language_id, 0, code).index
    if index is None:
        return []
    return list(dict.fromkeys(symbol.name for symbol in index.definitions() if symbol.scope))


def lost_names(original: str, rewrite: str, language_id: str) -> list[str]:
    """The names ``original`` defined that ``rewrite`` no longer defines."""
    kept = set(defined_names(rewrite, language_id))
    return [name for name in defined_names(original, language_id) if name not in kept]


def rewrite_warning(original: str, rewrite: str, language_id: str) -> str | None:
    """Why ``rewrite`` should be reviewed before it replaces ``original`` (None when it keeps its names)."""
    lost = lost_names(original, rewrite, language_id)
    if not lost:
        return None
    names = ", ".join(f"`{name}`" for name in lost[:5])
    before = set(defined_names(original, language_id))
    instead = [name for name in defined_names(rewrite, language_id) if name not in before]
    also = f" (it defines {', '.join(f'`{n}`' for n in instead[:5])} instead)" if instead else ""
    return f"the rewrite no longer defines {names}{also}: it may not be what was asked; review it"
