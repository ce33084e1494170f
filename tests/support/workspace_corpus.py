"""Real third-party code for the workspace benchmarks: packages installed at test time from PyPI (a wheel
unpacked) and npm (`npm pack`, unpacked), cached under ``~/.cache/codellama-lsp-bench`` (never committed;
``$CODELLAMA_LSP_BENCH_CACHE`` overrides). Pinned versions, so that numbers compare across runs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

PYPI = {"packaging": "24.1", "click": "8.1.7", "httpx": "0.27.2", "attrs": "24.2.0"}
NPM = {"axios": "1.7.7", "rxjs": "7.8.1"}


class Unavailable(RuntimeError):
    """The registry could not be reached (tests skip with this reason)."""


def cache_dir() -> Path:
    path = Path(os.environ.get("CODELLAMA_LSP_BENCH_CACHE") or Path.home() / ".cache" / "codellama-lsp-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pypi_package(name: str, version: str | None = None) -> Path:
    """The unpacked wheel of ``name`` (its import package folder's parent)."""
    version = version or PYPI[name]
    target = cache_dir() / "pypi" / f"{name}-{version}"
    if (target / ".done").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent):
        if (target / ".done").exists():
            return target
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", tmp,
                 f"{name}=={version}"],
                capture_output=True, text=True, timeout=300,
            )
            wheels = list(Path(tmp).glob("*.whl"))
            if result.returncode != 0 or not wheels:
                raise Unavailable(f"pip download {name}=={version} failed: {result.stderr.strip()[-300:]}")
            shutil.rmtree(target, ignore_errors=True)
            with zipfile.ZipFile(wheels[0]) as wheel:
                wheel.extractall(target)
        (target / ".git").mkdir(exist_ok=True)  # a root marker, as a checkout would have
        (target / ".done").write_text("")
    return target


def npm_package(name: str, version: str | None = None) -> Path:
    """The unpacked ``npm pack`` tarball of ``name``."""
    version = version or NPM[name]
    target = cache_dir() / "npm" / f"{name}-{version}"
    if (target / ".done").exists():
        return target / "package"
    target.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("npm") is None:
        raise Unavailable("npm is not installed")
    with _locked(target.parent):
        if (target / ".done").exists():
            return target / "package"
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            result = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=tmp, capture_output=True,
                                    text=True, timeout=300)
            tarballs = list(Path(tmp).glob("*.tgz"))
            if result.returncode != 0 or not tarballs:
                raise Unavailable(f"npm pack {name}@{version} failed: {result.stderr.strip()[-300:]}")
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            with tarfile.open(tarballs[0]) as tar:
                tar.extractall(target, filter="data")
        (target / ".done").write_text("")
    return target / "package"
