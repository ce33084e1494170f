"""Imports per language: what they bind and which workspace files they resolve to."""

from __future__ import annotations

import os
from pathlib import Path

from lsp.workspace.imports import ImportRef, ModuleMap, parse_imports


def _map(root: Path, files: dict[str, str]) -> ModuleMap:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    paths = [str(root / name) for name in files]
    return ModuleMap(str(root), paths, lambda p: os.path.normpath(p) in {os.path.normpath(x) for x in paths})


def test_python_bindings() -> None:
    refs = parse_imports("python", [
        "import os.path as osp", "import json, re", "from .models import Invoice, make as make_invoice",
        "from . import utils", "from ..core import (\n    A,\n    B,  # comment\n)", "from x import *",
    ], "")
    assert refs[0] == ImportRef("os.path", (), "osp")
    assert [r.binding for r in refs[1:3]] == ["json", "re"]
    assert refs[3].names == (("Invoice", "Invoice"), ("make_invoice", "make"))
    assert refs[4] == ImportRef(".", (("utils", "utils"),))
    assert refs[5].names == (("A", "A"), ("B", "B"))
    assert refs[6].star


def test_python_resolution(tmp_path: Path) -> None:
    modules = _map(tmp_path, {"src/shop/__init__.py": "", "src/shop/models.py": "", "src/shop/sub/app.py": "",
                              "src/shop/sub/__init__.py": ""})
    app = str(tmp_path / "src/shop/sub/app.py")
    assert modules.resolve("python", ImportRef("..models"), app) == [str(tmp_path / "src/shop/models.py")]
    assert modules.resolve("python", ImportRef("shop.models"), app) == [str(tmp_path / "src/shop/models.py")]
    assert modules.resolve("python", ImportRef("shop"), app) == [str(tmp_path / "src/shop/__init__.py")]
    ref = ImportRef("..", (("models", "models"),))
    assert modules.submodule("python", ref, "models", app) == [str(tmp_path / "src/shop/models.py")]
    assert modules.resolve("python", ImportRef("requests"), app) == []


def test_javascript_and_typescript(tmp_path: Path) -> None:
    (tmp_path / "tsconfig.json").write_text(
        '{\n  // comments are allowed\n  "compilerOptions": {"baseUrl": "src", "paths": {"@lib/*": ["lib/*"],},},\n}'
    )
    modules = _map(tmp_path, {"src/app/main.ts": "", "src/app/util.ts": "", "src/lib/format/index.ts": "",
                              "src/lib/dates.js": ""})
    main = str(tmp_path / "src/app/main.ts")
    refs = parse_imports("typescript", [
        'import { a, b as c } from "./util";', 'import Default, * as ns from "@lib/format";',
        'import type { T } from "../lib/dates.js";',
    ], 'export * from "./util";\nexport { x as y } from "@lib/dates";\n')
    assert refs[0].names == (("a", "a"), ("c", "b"))
    assert refs[1].binding == "ns" and ("Default", "default") in refs[1].names
    assert modules.resolve("typescript", refs[0], main) == [str(tmp_path / "src/app/util.ts")]
    assert modules.resolve("typescript", refs[1], main) == [str(tmp_path / "src/lib/format/index.ts")]
    assert modules.resolve("typescript", refs[2], main) == [str(tmp_path / "src/lib/dates.js")]
    assert refs[3].star and refs[3].module == "./util"  # re-exports
    assert refs[4].names == (("y", "x"),)
    required = parse_imports("javascript", ['const { join } = require("./util");', "const fs = require('fs');"], "")
    assert required[0].names == (("join", "join"),) and required[1].binding == "fs"


def test_go_packages_are_folders(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/shop\n\ngo 1.22\n")
    modules = _map(tmp_path, {"cmd/main.go": "", "billing/invoice.go": "", "billing/tax.go": "",
                              "billing/tax_test.go": ""})
    [ref] = parse_imports("go", ['import (\n\t"fmt"\n\tbill "example.com/shop/billing"\n)'], "")[1:]
    assert ref.binding == "bill"
    found = modules.resolve("go", ref, str(tmp_path / "cmd/main.go"))
    assert sorted(found) == [str(tmp_path / "billing/invoice.go"), str(tmp_path / "billing/tax.go")]


def test_rust_use_and_mod(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text("[package]\nname = 'shop'\n")
    modules = _map(tmp_path, {"src/main.rs": "", "src/billing/mod.rs": "", "src/billing/tax.rs": ""})
    refs = parse_imports("rust", ["use crate::billing::{tax::rate, Invoice as Bill};"], "")
    assert [(r.module, r.names) for r in refs] == [
        ("crate::billing::tax", (("rate", "rate"),)), ("crate::billing", (("Bill", "Invoice"),)),
    ]
    main = str(tmp_path / "src/main.rs")
    assert modules.resolve("rust", refs[0], main) == [str(tmp_path / "src/billing/tax.rs")]
    assert modules.resolve("rust", refs[1], main) == [str(tmp_path / "src/billing/mod.rs")]
