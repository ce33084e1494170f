"""The recall target, in the suite: on a real package installed from PyPI at test time (cached), with only
the edited file open, at least 80% of the names a hidden line uses from other files reach the prompt."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp.prompt.tokens import load_counter
from tests.support.llama_vocab import tokenizer_json_path
from tests.support.workspace_corpus import Unavailable, pypi_package
from tests.support.workspace_recall import measure, source_files

TARGET = 0.8


@pytest.mark.slow
@pytest.mark.parametrize("package", ["packaging", "attrs"])
def test_cross_file_recall_on_a_real_package(package: str, tmp_path: Path) -> None:
    try:
        root = pypi_package(package)
    except Unavailable as error:
        pytest.skip(f"the package registry is unreachable: {error}")
    folder = "attr" if package == "attrs" else package
    files = source_files(root, folder, (".py",), 20)
    counter = load_counter(str(tokenizer_json_path()))
    recall = measure(root, files, counter, per_file=10, cache=tmp_path / "cache")
    assert recall.cross_total >= 10, "too few cross-file names to measure"
    assert recall.cross >= TARGET, (f"{recall.cross:.0%} of {recall.cross_total}", recall.missed)
    assert recall.cross > recall.baseline  # the index, not the open file, brings them
