"""A small real repository for `codellama-lsp eval`: tomli's sources, from its sdist on PyPI, downloaded once
into the user's cache folder (never into the project). `python -m tests.support.eval_repository` prints
its path."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPOSITORY = ("tomli", "2.0.1")  # four Python modules, about 800 lines


def cached_repository() -> Path:
    name, version = REPOSITORY
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "codellama-lsp" / "eval"
    source = cache / f"{name}-{version}" / "src"
    if source.is_dir():
        return source
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            str(cache),
        ],
        check=True,
        timeout=300,
        stdout=sys.stderr,
    )
    with tarfile.open(cache / f"{name}-{version}.tar.gz") as archive:
        archive.extractall(cache, filter="data")
    return source


if __name__ == "__main__":
    print(cached_repository())
