"""The workspace index end to end below the server: the background process, the persisted index (a restart
reads only what changed), updates and removals, summaries and how definitions are rendered."""

from __future__ import annotations

import os
from pathlib import Path

from lsp.context.documents import Document
from lsp.context.extract import context_at
from lsp.context.languages import language_for
from lsp.workspace import WorkspaceDefinitions, WorkspaceIndex
from lsp.workspace.retrieval import render_definition
from lsp.workspace.summary import summarise

MODELS = '''class Invoice:
    """A bill sent to a customer."""

    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.lines: list[float] = []
        self.paid = False
        self.notes = ""

    def total(self, rate: float = 0.2) -> float:
        """The amount due, tax included."""
        subtotal = sum(self.lines)
        taxes = subtotal * rate
        rounded = round(subtotal + taxes, 2)
        return rounded
'''

GO = """package billing

// Rate is the tax rate of a country.
func Rate(country string) float64 {
\tswitch country {
\tcase "FR":
\t\treturn 0.2
\tdefault:
\t\treturn 0.0
\t}
\treturn 0.0
}
"""


def _write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _index(root: Path, cache: Path) -> WorkspaceIndex:
    index = WorkspaceIndex(str(root), cache=cache)
    index.start()
    assert index.wait_scanned(60)
    return index


def test_restart_reads_only_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "w"
    for i in range(20):
        _write(root, f"pkg/m{i}.py", f"def f{i}(x):\n    return x + {i}\n")
    cache = tmp_path / "cache"
    first = _index(root, cache)
    assert len(first) == 20 and first.stats.parsed == 20
    first.close()
    changed = _write(root, "pkg/m3.py", "def renamed(x, y):\n    return x * y\n")
    os.utime(changed, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    (root / "pkg" / "m4.py").unlink()
    second = _index(root, cache)
    try:
        assert (second.stats.parsed, second.stats.reused, len(second)) == (1, 18, 19)
        assert [d.name for _, d in second.named("renamed")] == ["renamed"]
        assert second.named("f3") == [] and second.named("f4") == []
    finally:
        second.close()


def test_updates_and_removals(tmp_path: Path) -> None:
    root = tmp_path / "w"
    _write(root, "a.py", "def one():\n    pass\n")
    index = _index(root, tmp_path / "cache")
    try:
        _write(root, "sub/b.py", "def two():\n    pass\n")
        index.update([str(root / "sub" / "b.py"), str(root / "node_modules" / "x.py"), str(root / "readme.md")])
        assert index.wait_updates(1, 30)
        assert [p for p, _ in index.named("two")] == [str(root / "sub" / "b.py")]
        generation = index.generation
        index.remove([str(root / "sub")])  # a folder: everything in it
        index.update([])  # the answer to an update comes after the removal: wait on it
        assert index.wait_updates(2, 30)
        assert index.named("two") == [] and index.generation > generation
    finally:
        index.close()


def test_an_unusable_cache_leaves_the_index_in_memory(tmp_path: Path) -> None:
    root = tmp_path / "w"
    _write(root, "a.py", "def one():\n    pass\n")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    index = _index(root, blocked)
    try:
        assert [d.name for _, d in index.named("one")] == ["one"]
    finally:
        index.close()


def test_summaries_and_rendering(tmp_path: Path) -> None:
    language = language_for(None, "models.py")
    assert language is not None
    summary = summarise(str(tmp_path / "models.py"), MODELS, language)
    [invoice] = [d for d in summary.definitions if d.name == "Invoice"]
    assert invoice.doc == "A bill sent to a customer." and invoice.line == 0
    title, text = render_definition(invoice, summary)
    assert title == "class Invoice"
    assert text.split("\n") == [
        "class Invoice:", '    """A bill sent to a customer."""', "    def __init__(self, customer: str) -> None: ...",
        "    def total(self, rate: float = 0.2) -> float: ...",
    ]
    [total] = [d for d in summary.definitions if d.name == "total"]
    assert render_definition(total, summary)[0] == "def total(self, rate: float = 0.2) -> float (in Invoice)"
    go = language_for(None, "rate.go")
    assert go is not None
    go_summary = summarise(str(tmp_path / "rate.go"), GO, go)
    [rate] = go_summary.definitions
    assert go_summary.indent == "\t" and rate.doc == "Rate is the tax rate of a country."
    assert render_definition(rate, go_summary)[1] == (
        "// Rate is the tax rate of a country.\nfunc Rate(country string) float64 { ... }"
    )


def test_context_takes_definitions_from_unopened_files(tmp_path: Path) -> None:
    root = tmp_path / "w"
    _write(root, "shop/__init__.py", "")
    _write(root, "shop/models.py", MODELS)
    app = _write(root, "shop/app.py",
                 "from .models import Invoice\n\n\ndef bill(name):\n    invoice = Invoice(name)\n    return ")
    index = _index(root, tmp_path / "cache")
    try:
        text = app.read_text()
        doc = Document(app.as_uri(), "python", 1, text)
        source = WorkspaceDefinitions(index, str(root))
        ctx = context_at(doc, len(text), root=str(root), workspace=source)
        [invoice] = [d for d in ctx.definitions if d.title == "class Invoice"]
        assert invoice.path == "shop/models.py"
        assert "def total(self, rate: float = 0.2) -> float: ..." in invoice.text
        assert ctx.imports == ["from .models import Invoice"]
        # an open document's own text wins over the index's copy of it
        models = Document((root / "shop" / "models.py").as_uri(), "python", 2, "class Invoice:\n    pass\n")
        ctx = context_at(doc, len(text), root=str(root), workspace=source, others=[models])
        [invoice] = [d for d in ctx.definitions if d.title == "class Invoice"]
        assert invoice.text == "class Invoice:\n    pass"
        # off by the setting: nothing from the index
        off = WorkspaceDefinitions(index, str(root), enabled=lambda: False)
        assert context_at(doc, len(text), root=str(root), workspace=off).definitions == []
    finally:
        index.close()


def test_a_workspace_shadowing_the_servers_own_packages(tmp_path: Path) -> None:
    """The indexing process must not import the workspace's packages in place of its own (a checkout of
    attrs, lsprotocol or tree_sitter itself)."""
    root = tmp_path / "w"
    for package in ("attrs", "lsprotocol", "tree_sitter", "json"):
        _write(root, f"{package}/__init__.py", "raise ImportError('the workspace copy was imported')\n")
    _write(root, "lib.py", "def helper():\n    pass\n")
    index = _index(root, tmp_path / "cache")
    try:
        assert [d.name for _, d in index.named("helper")] == ["helper"]
    finally:
        index.close()
