"""Several workspace folders: a document's definitions come from the index of the innermost folder holding
it; a file event goes to every index whose folder holds it, a deleted folder to those it concerns; forgetting
files leaves nothing of them in the module table."""

from __future__ import annotations

from pathlib import Path

from lsp.context.documents import Document
from lsp.workspace import WorkspaceIndex
from lsp.workspace.imports import ImportRef, ModuleMap
from lsp.workspace.roots import WorkspaceRoots
from lsp.workspace.summary import summarise
from lsp.workspace.walker import WalkLimits


def _index(root: Path, files: dict[str, str]) -> WorkspaceIndex:
    """An index filled directly (no process), as the reader thread fills it."""
    index = WorkspaceIndex(str(root), persist=False)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        summary = summarise(str(path), text, Document(path.as_uri(), "python", 1, text).language)  # type: ignore[arg-type]
        index.add(summary)
    return index


def test_each_document_reads_the_index_of_its_own_folder(tmp_path: Path) -> None:
    roots = WorkspaceRoots()
    outer = _index(tmp_path / "shop", {"billing/models.py": "def make_invoice(customer):\n    return customer\n"})
    inner = _index(tmp_path / "shop" / "vendor", {"tools.py": "def rounded_price(amount):\n    return amount\n"})
    roots.attach(outer)
    roots.attach(inner)
    text = "def f():\n    return make_invoice(1) + rounded_price(2)\n"

    def shown(path: Path) -> str:
        doc = Document(path.as_uri(), "python", 1, text)
        return " ".join(s.text for s in roots.definitions_for(doc, {"make_invoice": 1.0, "rounded_price": 1.0},
                                                              (), ()))

    assert "rounded_price" in shown(tmp_path / "shop" / "vendor" / "x.py")
    assert "make_invoice" not in shown(tmp_path / "shop" / "vendor" / "x.py")
    assert "make_invoice" in shown(tmp_path / "shop" / "x.py")
    assert "make_invoice" in shown(tmp_path / "elsewhere.py")  # outside every folder: the first folder's

    file = str(tmp_path / "shop" / "vendor" / "tools.py")
    assert roots.holding(file) == [outer, inner]
    assert roots.holding(str(tmp_path / "shop" / "x.py")) == [outer]
    assert roots.touching(str(tmp_path / "shop" / "vendor")) == [outer, inner]  # inner's whole folder
    assert roots.touching(str(tmp_path)) == [outer, inner]
    assert roots.touching(str(tmp_path / "other")) == []
    assert roots.detach(str(tmp_path / "shop" / "vendor")) is inner and roots.indexes() == [outer]


def test_a_deletion_is_passed_on_only_where_something_is_indexed(tmp_path: Path) -> None:
    index = _index(tmp_path / "w", {"pkg/sub/m.py": "def f():\n    pass\n", "top.py": "x = 1\n"})
    assert index.holds_under(str(tmp_path / "w" / "pkg"))
    assert index.holds_under(str(tmp_path / "w" / "pkg" / "sub"))
    assert index.holds_under(str(tmp_path / "w" / "top.py"))
    assert not index.holds_under(str(tmp_path / "w" / "pk"))  # a name prefix is not a folder
    assert not index.holds_under(str(tmp_path / "w" / "node_modules"))
    assert index.limits == WalkLimits()


def test_forgetting_files_leaves_no_module_entries(tmp_path: Path) -> None:
    paths = [str(tmp_path / f"pkg{i}" / "mod.py") for i in range(3)] + [str(tmp_path / "pkg0" / "__init__.py")]
    modules = ModuleMap(str(tmp_path), paths, lambda p: p in paths)
    assert modules.resolve("python", ImportRef("pkg1.mod"), str(tmp_path / "x.py")) == [paths[1]]
    for path in paths:
        modules.remove(path)
    assert modules.python == {} and not any(modules.folders.values())
