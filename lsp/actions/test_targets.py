"""Where the tests for a source file go, by the conventions of its language.

Pure: the file system is only asked through the two predicates a caller passes (the server passes
``os.path.isfile`` and ``os.path.isdir``; tests pass sets). Paths are POSIX-style, as
``uri_to_path`` gives them (``c:/x/y.py`` on Windows), so ``posixpath`` handles them everywhere.

The rule everywhere: a test file that already exists at a conventional place wins (tests are added to
it); else the project's layout decides (a ``tests/`` folder, ``src/main/java``, ``__tests__``...); else
the test file goes beside the source. A source that is itself a test file gets the tests appended.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tree_sitter import Node

from lsp.context.documents import Document
from lsp.context.languages import spec_for

__all__ = ["Placement", "appended", "has_tests_module", "language_of", "place_tests", "rust_insertion"]

Exists = Callable[[str], bool]

# Languages with test conventions here but no grammar in lsp/context/languages.py (which has the others).
_WITHOUT_GRAMMAR = {".kt": "kotlin", ".kts": "kotlin"}
# Test sources of headers are compiled: a header's tests get the implementation extension.
_HEADER_TO_SOURCE = {".h": ".c", ".hpp": ".cpp", ".hh": ".cc", ".hxx": ".cxx"}
_TEST_DIRS = ("tests", "test")


@dataclass(frozen=True)
class Placement:
    """Where tests go: ``path`` (absolute), ``in_source`` when that is the source file itself (Rust's
    ``#[cfg(test)] mod tests``, or a source that is already a test file), ``exists`` when the file is
    there already (tests are appended to it)."""

    path: str
    in_source: bool
    exists: bool


def language_of(path: str, language: str | None = None) -> str | None:
    """Our language name for a file: the given one (from the document), else from the extension."""
    if language:
        return language
    spec = spec_for(None, path)
    ext = posixpath.splitext(path)[1].lower()
    return spec.name if spec is not None else _WITHOUT_GRAMMAR.get(ext)


def place_tests(
    source: str, language: str | None, root: str | None, *, is_file: Exists, is_dir: Exists
) -> Placement:
    """Where the tests for ``source`` (an absolute path) go; ``root`` is the workspace folder, if any."""
    source = posixpath.normpath(source)
    lang = language_of(source, language)
    folder, name = posixpath.split(source)
    stem, ext = posixpath.splitext(name)
    base = _project_root(source, root)
    rules: dict[str, Callable[[], list[str] | None]] = {
        "python": lambda: _python(folder, stem, ext, base, is_dir),
        "javascript": lambda: _javascript(folder, stem, ext, is_dir),
        "typescript": lambda: _javascript(folder, stem, ext, is_dir),
        "tsx": lambda: _javascript(folder, stem, ext, is_dir),
        "go": lambda: None if stem.endswith("_test") else [posixpath.join(folder, f"{stem}_test{ext}")],
        "rust": lambda: None,
        "java": lambda: _jvm(source, folder, stem, ext),
        "kotlin": lambda: _jvm(source, folder, stem, ext),
        "c": lambda: _c_family(folder, stem, ext, base, is_dir),
        "cpp": lambda: _c_family(folder, stem, ext, base, is_dir),
        "ruby": lambda: _ruby(folder, stem, ext, base, is_dir),
        "lua": lambda: _spec_style(folder, stem, ext, base, is_dir, "spec", f"{stem}_spec{ext}"),
        "bash": lambda: _spec_style(folder, stem, ext, base, is_dir, "test", f"{stem}.bats"),
    }
    rule = rules.get(lang or "")
    candidates = rule() if rule is not None else _other(folder, stem, ext)
    if candidates is None or _is_test_name(lang, stem, ext):
        return Placement(source, True, True)
    # The first candidate that exists; else the first (the layout's choice, computed by the rule).
    chosen = next((c for c in candidates if is_file(c)), candidates[0])
    return Placement(posixpath.normpath(chosen), False, is_file(chosen))


# ---------------------------------------------------------------------------------------------- helpers
def _project_root(source: str, root: str | None) -> str | None:
    """The workspace root when the source is inside it (a file outside is tested beside itself)."""
    if not root:
        return None
    root = posixpath.normpath(root)
    inside = source.startswith(root.rstrip("/") + "/")
    return root if inside else None


def _is_test_name(lang: str | None, stem: str, ext: str) -> bool:
    low = stem.lower()
    if lang == "python":
        return low.startswith("test_") or low.endswith("_test") or low == "conftest"
    if lang in ("javascript", "typescript", "tsx"):
        return low.endswith((".test", ".spec"))
    if lang in ("java", "kotlin"):
        return stem.endswith(("Test", "Tests", "IT"))
    if lang in ("ruby", "lua"):
        return low.endswith(("_spec", "_test"))
    if lang in ("c", "cpp"):
        return low.startswith("test_") or low.endswith("_test")
    if lang == "bash":
        return ext == ".bats"
    return False


def _relative_parts(folder: str, base: str | None) -> list[str]:
    if base is None:
        return []
    rel = posixpath.relpath(folder, base)
    return [] if rel == "." else rel.split("/")


def _first_dir(base: str | None, names: Iterable[str], is_dir: Exists) -> str | None:
    if base is None:
        return None
    return next((posixpath.join(base, n) for n in names if is_dir(posixpath.join(base, n))), None)


def _python(folder: str, stem: str, ext: str, base: str | None, is_dir: Exists) -> list[str]:
    module = posixpath.basename(folder) if stem == "__init__" else stem
    test_name = f"test_{module}{ext if ext != '.pyi' else '.py'}"
    beside = [posixpath.join(folder, test_name), posixpath.join(folder, f"{module}_test.py")]
    tests = _first_dir(base, _TEST_DIRS, is_dir)
    if tests is None:
        return beside
    # tests/ mirroring the package (without its top folder or src/), then tests/ itself.
    parts = _relative_parts(folder, base)
    if stem == "__init__" and parts:
        parts = parts[:-1]
    if parts and parts[0] == "src":
        parts = parts[1:]
    mirrors = [parts[1:], parts] if parts else []
    dirs = [posixpath.join(tests, *m) for m in mirrors if m]
    in_tests = [posixpath.join(d, test_name) for d in dirs if is_dir(d)]
    # (place_tests takes the first that exists, else the first: a mirrored folder, else tests/ itself.)
    return [*in_tests, posixpath.join(tests, test_name), *beside]


def _javascript(folder: str, stem: str, ext: str, is_dir: Exists) -> list[str]:
    beside = posixpath.join(folder, f"{stem}.test{ext}")
    spec = posixpath.join(folder, f"{stem}.spec{ext}")
    jest_dir = posixpath.join(folder, "__tests__")
    in_jest = [posixpath.join(jest_dir, f"{stem}.test{ext}"), posixpath.join(jest_dir, f"{stem}.spec{ext}")]
    if is_dir(jest_dir):
        return [*in_jest, beside, spec]
    return [beside, spec, *in_jest]


def _jvm(source: str, folder: str, stem: str, ext: str) -> list[str]:
    name = f"{stem}Test{ext}"
    for lang_dir in ("java", "kotlin"):
        marker = f"/src/main/{lang_dir}/"
        if marker in source + "/":
            head, _, tail = folder.partition(marker.rstrip("/"))
            mirrored = posixpath.join(f"{head}/src/test/{lang_dir}{tail}", name)
            return [mirrored, posixpath.join(folder, name)]
    return [posixpath.join(folder, name)]


def _c_family(folder: str, stem: str, ext: str, base: str | None, is_dir: Exists) -> list[str]:
    ext = _HEADER_TO_SOURCE.get(ext.lower(), ext)
    beside = posixpath.join(folder, f"{stem}_test{ext}")
    dirs = [posixpath.join(base, d) for d in _TEST_DIRS] if base else []
    in_dirs = [posixpath.join(d, f"test_{stem}{ext}") for d in dirs]
    existing_dir = [posixpath.join(d, f"test_{stem}{ext}") for d in dirs if is_dir(d)]
    # The default is a tests/ folder when the project has one, else beside the source.
    return [*existing_dir, beside, *in_dirs] if existing_dir else [beside, *in_dirs]


def _ruby(folder: str, stem: str, ext: str, base: str | None, is_dir: Exists) -> list[str]:
    parts = _relative_parts(folder, base)
    if parts and parts[0] in ("lib", "app"):
        parts = parts[1:]
    spec, test = _first_dir(base, ("spec",), is_dir), _first_dir(base, ("test",), is_dir)
    out = []
    if spec is not None:
        out.append(posixpath.join(spec, *parts, f"{stem}_spec{ext}"))
    if test is not None:
        out.append(posixpath.join(test, *parts, f"{stem}_test{ext}"))
    out.append(posixpath.join(folder, f"{stem}_test{ext}"))
    return out


def _spec_style(
    folder: str, stem: str, ext: str, base: str | None, is_dir: Exists, dir_name: str, file_name: str
) -> list[str]:
    names = (dir_name, *(d for d in ("spec", *_TEST_DIRS) if d != dir_name))
    found = _first_dir(base, names, is_dir)
    beside = posixpath.join(folder, file_name)
    return [posixpath.join(found, file_name), beside] if found else [beside]


def _other(folder: str, stem: str, ext: str) -> list[str]:
    return [posixpath.join(folder, f"test_{stem}{ext}")]


# ---------------------------------------------------------------------------------------------- the text
def appended(existing: str, code: str, language: str | None) -> str:
    """What to insert at the end of ``existing`` so that ``code`` follows it as the language's style wants
    (two blank lines before top-level Python code, one elsewhere), with the file's line breaks."""
    body = code.strip("\n") + "\n"
    crlf = "\r\n" in existing
    if crlf:
        body = body.replace("\r\n", "\n").replace("\n", "\r\n")
    if not existing.strip():
        return body
    newline = "\r\n" if crlf else "\n"
    wanted = 3 if language == "python" else 2  # line breaks between the last code and the new code
    have = len(existing) - len(existing.rstrip("\r\n"))
    have = have // 2 if crlf else have
    return newline * max(0, wanted - have) + body


_RUST_TESTS_MODULE = re.compile(r"^\s*mod\s+tests\s*\{", re.MULTILINE)
_USE_SUPER = re.compile(r"^\s*use\s+super::\*\s*;\s*$")


def rust_insertion(doc: Document, code: str) -> tuple[int, str]:
    """Where (a str offset into ``doc.text``) and what to insert so that Rust tests live in the file's
    ``mod tests``: inside the existing one (the reply's own ``mod tests`` wrapper is taken off), else as a
    new ``#[cfg(test)] mod tests`` at the end (the reply's bare test functions are wrapped in one)."""
    module = _tests_module(doc)
    if module is None:
        block = code if _RUST_TESTS_MODULE.search(code) else _wrap_module(code)
        return len(doc.text), appended(doc.text, block, "rust")
    body = _module_body(code)
    lines = [line for line in body.split("\n") if not _USE_SUPER.match(line)]  # the module has its imports
    inner = _indent("\n".join(lines).strip("\n"), "    ")
    lines_index = doc.lines
    close = lines_index.offset_of_byte(module.end_byte - 1)  # the closing brace
    line_start = lines_index.line_start(lines_index.line_of(close))
    if doc.text[line_start:close].strip():  # `mod tests { ... }` closing on a line with code
        return close, f"\n{inner}\n"
    before = doc.text[:line_start].rstrip(" \t")
    blank = "" if before.endswith(("\n\n", "{\n")) else "\n"
    return line_start, f"{blank}{inner}\n"


def has_tests_module(doc: Document) -> bool:
    """Whether a Rust document has a top-level ``mod tests { ... }`` (new tests join it)."""
    return _tests_module(doc) is not None


def _tests_module(doc: Document) -> Node | None:
    """The body (declaration_list) of the top-level ``mod tests { ... }`` of a Rust document."""
    tree = doc.tree
    if tree is None:
        return None
    for child in tree.root_node.children:
        if child.type != "mod_item":
            continue
        name, body = child.child_by_field_name("name"), child.child_by_field_name("body")
        if name is not None and name.text == b"tests" and body is not None:
            return body
    return None


def _module_body(code: str) -> str:
    """The inside of a reply's ``mod tests { ... }`` (dedented), or the reply itself when it has none."""
    reply = Document("untitled:reply.rs", "rust", 0, code)
    module = _tests_module(reply)
    if module is None:
        return code
    lines = reply.lines
    inside = code[lines.offset_of_byte(module.start_byte + 1) : lines.offset_of_byte(module.end_byte - 1)]
    return _dedent(inside)


def _wrap_module(code: str) -> str:
    body = _indent(code.strip("\n"), "    ")
    uses = "" if _USE_SUPER.search(code) or "use super::" in code else "    use super::*;\n\n"
    return f"#[cfg(test)]\nmod tests {{\n{uses}{body}\n}}\n"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.split("\n"))


def _dedent(text: str) -> str:
    lines = text.split("\n")
    widths = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()]
    cut = min(widths, default=0)
    return "\n".join(line[cut:] if line.strip() else "" for line in lines).strip("\n")
