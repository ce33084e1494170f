"""The language table: LSP languageIds and file extensions -> grammar wheel, query file and node-type data.

Adding a language means adding a :class:`LanguageSpec` row to :data:`LANGUAGES` and a query file
``queries/<name>.scm``; no code is written per language. Grammars are imported lazily on first use and cached.

Query files use these captures (see ``queries/python.scm`` for a commented example):

``@scope.<kind>``       a definition that encloses code (function, method, class, module...); an enclosing
                        chain is made of these. ``<kind>`` is reported as :attr:`Scope.kind`.
``@definition.<kind>``  a definition that does not enclose code (variable, constant, type, field...).
``@name``               the name of the scope or definition of the same pattern.
``@body``               the body of a scope: the signature is the text before it.
``@import``             an import statement (its text is reported).
``@reference``          an identifier that may refer to a definition (used to find related definitions).

A query file may start with ``; inherits: <name>`` lines to include another language's query file first.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Language as TSLanguage
from tree_sitter import Parser, Query

from .language_queries import LanguageQueries

__all__ = ["LANGUAGES", "Language", "LanguageSpec", "language_by_name", "language_for", "parser_for"]

log = logging.getLogger(__name__)

QUERY_DIR = Path(__file__).with_name("queries")

_COMMENTS = frozenset({"comment", "line_comment", "block_comment", "doc_comment"})


@dataclass(frozen=True)
class LanguageSpec:
    """One row of the language table (pure data)."""

    name: str  # our name, also the query file name: queries/<name>.scm
    display_name: str
    module: str  # grammar wheel module
    function: str  # function of the module returning the TSLanguage pointer
    language_ids: tuple[str, ...]  # LSP languageIds
    extensions: tuple[str, ...]  # file name suffixes, lower case, with the dot
    filenames: tuple[str, ...] = ()  # exact file names (e.g. "Rakefile")
    query: str = ""  # query file name without .scm; defaults to `name`
    # parents that wrap a definition and belong to it, not to its signature (decorators)
    wrappers: frozenset[str] = frozenset()
    # parents that wrap a definition and begin its signature (export, template<...>, Go's `type`), when
    # they hold only that definition
    prefixes: frozenset[str] = frozenset()
    # preceding siblings that belong to the definition that follows them (doc comments, attributes)
    attached: frozenset[str] = _COMMENTS
    # node types that are comments, and that are strings (for single-line heuristics)
    comments: frozenset[str] = _COMMENTS
    strings: frozenset[str] = frozenset({"string", "string_literal", "raw_string_literal", "template_string"})
    line_comment: str = "//"


LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        name="python",
        display_name="Python",
        module="tree_sitter_python",
        function="language",
        language_ids=("python",),
        extensions=(".py", ".pyi", ".pyw"),
        wrappers=frozenset({"decorated_definition"}),
        strings=frozenset({"string", "concatenated_string"}),
        line_comment="#",
    ),
    LanguageSpec(
        name="javascript",
        display_name="JavaScript",
        module="tree_sitter_javascript",
        function="language",
        language_ids=("javascript", "javascriptreact", "js", "jsx"),
        extensions=(".js", ".jsx", ".mjs", ".cjs"),
        prefixes=frozenset({"export_statement"}),
        attached=frozenset({"comment", "decorator"}),
        strings=frozenset({"string", "template_string"}),
    ),
    LanguageSpec(
        name="typescript",
        display_name="TypeScript",
        module="tree_sitter_typescript",
        function="language_typescript",
        language_ids=("typescript", "ts"),
        extensions=(".ts", ".mts", ".cts"),
        prefixes=frozenset({"export_statement", "ambient_declaration"}),
        attached=frozenset({"comment", "decorator"}),
        strings=frozenset({"string", "template_string"}),
    ),
    LanguageSpec(
        name="tsx",
        display_name="TypeScript (TSX)",
        module="tree_sitter_typescript",
        function="language_tsx",
        language_ids=("typescriptreact", "tsx"),
        extensions=(".tsx",),
        query="typescript",
        prefixes=frozenset({"export_statement", "ambient_declaration"}),
        attached=frozenset({"comment", "decorator"}),
        strings=frozenset({"string", "template_string"}),
    ),
    LanguageSpec(
        name="go",
        display_name="Go",
        module="tree_sitter_go",
        function="language",
        language_ids=("go",),
        extensions=(".go",),
        prefixes=frozenset({"type_declaration", "const_declaration", "var_declaration"}),
        strings=frozenset({"interpreted_string_literal", "raw_string_literal"}),
    ),
    LanguageSpec(
        name="rust",
        display_name="Rust",
        module="tree_sitter_rust",
        function="language",
        language_ids=("rust",),
        extensions=(".rs",),
        attached=frozenset({"line_comment", "block_comment", "attribute_item"}),
        strings=frozenset({"string_literal", "raw_string_literal"}),
    ),
    LanguageSpec(
        name="java",
        display_name="Java",
        module="tree_sitter_java",
        function="language",
        language_ids=("java",),
        extensions=(".java",),
        strings=frozenset({"string_literal", "text_block"}),
    ),
    LanguageSpec(
        name="c",
        display_name="C",
        module="tree_sitter_c",
        function="language",
        language_ids=("c",),
        extensions=(".c", ".h"),
        strings=frozenset({"string_literal", "char_literal"}),
    ),
    LanguageSpec(
        name="cpp",
        display_name="C++",
        module="tree_sitter_cpp",
        function="language",
        language_ids=("cpp", "c++", "cuda-cpp"),
        extensions=(".cpp", ".cc", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".tpp", ".cu"),
        prefixes=frozenset({"template_declaration"}),
        strings=frozenset({"string_literal", "raw_string_literal", "char_literal"}),
    ),
    LanguageSpec(
        name="lua",
        display_name="Lua",
        module="tree_sitter_lua",
        function="language",
        language_ids=("lua",),
        extensions=(".lua",),
        prefixes=frozenset({"variable_declaration"}),
        strings=frozenset({"string"}),
        line_comment="--",
    ),
    LanguageSpec(
        name="bash",
        display_name="Bash",
        module="tree_sitter_bash",
        function="language",
        language_ids=("shellscript", "sh", "bash", "zsh", "shell"),
        extensions=(".sh", ".bash", ".zsh", ".ksh", ".bashrc", ".bash_profile"),
        filenames=(".bashrc", ".bash_profile", ".profile", ".zshrc"),
        strings=frozenset({"string", "raw_string", "ansi_c_string", "heredoc_body"}),
        line_comment="#",
    ),
    LanguageSpec(
        name="ruby",
        display_name="Ruby",
        module="tree_sitter_ruby",
        function="language",
        language_ids=("ruby",),
        extensions=(".rb", ".rake", ".gemspec", ".ru"),
        filenames=("Rakefile", "Gemfile", "Guardfile", "Vagrantfile"),
        strings=frozenset({"string", "heredoc_body"}),
        line_comment="#",
    ),
)


@dataclass(eq=False)
class Language:
    """A loaded language: its table row, the tree-sitter language and its queries (compiled when first
    needed, see :mod:`.language_queries`)."""

    spec: LanguageSpec
    ts_language: TSLanguage
    queries: LanguageQueries = field(repr=False)

    @property
    def index_query(self) -> Query:
        """Scopes, definitions and imports."""
        return self.queries.index

    @property
    def reference_query(self) -> Query:
        """Identifiers that may refer to a definition."""
        return self.queries.reference

    @property
    def scope_query(self) -> Query:
        """Definitions that enclose code."""
        return self.queries.scope

    @property
    def kinds(self) -> dict[str, str]:
        """``"scope.function" -> "function"``, ..."""
        return self.queries.kinds

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def display_name(self) -> str:
        return self.spec.display_name

    def new_parser(self) -> Parser:
        return Parser(self.ts_language)


_BY_ID: dict[str, LanguageSpec] = {lid: spec for spec in LANGUAGES for lid in spec.language_ids}
_BY_NAME: dict[str, LanguageSpec] = {spec.name: spec for spec in LANGUAGES}
_BY_EXT: dict[str, LanguageSpec] = {ext: spec for spec in LANGUAGES for ext in spec.extensions}
_BY_FILENAME: dict[str, LanguageSpec] = {fn: spec for spec in LANGUAGES for fn in spec.filenames}

_loaded: dict[str, Language | None] = {}
_load_lock = threading.Lock()
_parsers = threading.local()


def read_query(name: str, _seen: frozenset[str] = frozenset()) -> str:
    """The text of ``queries/<name>.scm`` with its ``; inherits:`` files prepended."""
    source = (QUERY_DIR / f"{name}.scm").read_text(encoding="utf-8")
    parts: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped.startswith(";"):
            if stripped:
                break
            continue
        directive = stripped.lstrip(";").strip()
        if directive.startswith("inherits:"):
            for parent in directive.removeprefix("inherits:").split(","):
                parent = parent.strip()
                if parent and parent not in _seen and parent != name:
                    parts.append(read_query(parent, _seen | {name}))
    parts.append(source)
    return "\n".join(parts)


def _load(spec: LanguageSpec) -> Language | None:
    try:
        module = importlib.import_module(spec.module)
        ts_language = TSLanguage(getattr(module, spec.function)())
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        log.warning("grammar %s.%s unavailable (%s): %s is plain text", spec.module, spec.function, exc,
                    spec.name)
        return None
    try:
        source = read_query(spec.query or spec.name)
    except OSError as exc:
        log.error("the query file for %s is missing: %s", spec.name, exc)
        return None
    return Language(spec=spec, ts_language=ts_language, queries=LanguageQueries(spec.name, ts_language, source))


def language_by_name(name: str) -> Language | None:
    """The loaded language named ``name`` (our table's name), cached; None if unknown or unavailable."""
    spec = _BY_NAME.get(name)
    if spec is None:
        return None
    cached = _loaded.get(name, False)
    if cached is not False:
        return cached  # type: ignore[return-value]
    with _load_lock:
        if name not in _loaded:
            _loaded[name] = _load(spec)
        return _loaded[name]


def spec_for(language_id: str | None, path: str | None = None) -> LanguageSpec | None:
    """The table row for an LSP languageId, else for the file name or extension of ``path``."""
    if language_id:
        spec = _BY_ID.get(language_id.lower()) or _BY_NAME.get(language_id.lower())
        if spec is not None:
            return spec
    if path:
        base = os.path.basename(path.rstrip("/"))
        spec = _BY_FILENAME.get(base)
        if spec is not None:
            return spec
        _, ext = os.path.splitext(base)
        if not ext and base.startswith("."):
            ext = base
        return _BY_EXT.get(ext.lower())
    return None


def language_for(language_id: str | None, path: str | None = None) -> Language | None:
    """The language for an LSP languageId, falling back to the extension of ``path``.

    ``None`` means unknown (or the grammar is not installed): callers treat the document as plain text.
    """
    spec = spec_for(language_id, path)
    return language_by_name(spec.name) if spec is not None else None


def parser_for(language: Language) -> Parser:
    """A parser for ``language``, one per thread and language (parsers are not thread safe)."""
    cache: dict[str, Parser] | None = getattr(_parsers, "cache", None)
    if cache is None:
        cache = {}
        _parsers.cache = cache
    parser = cache.get(language.name)
    if parser is None:
        parser = cache[language.name] = language.new_parser()
    return parser
