"""initialize, configuration changes, shutdown."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types

from lsp.server import CodellamaServer

log = logging.getLogger(__name__)


def register(server: CodellamaServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: CodellamaServer, params: types.InitializeParams) -> None:
        ls.set_root(params)
        ls.pending_problems += ls.apply_settings(_as_dict(params.initialization_options))

    @server.feature(types.INITIALIZED)
    def initialized(ls: CodellamaServer, params: types.InitializedParams) -> None:
        problems, ls.pending_problems = ls.pending_problems, []
        ls.show_problems(problems)
        ls.status("idle")

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: CodellamaServer, params: types.DidChangeConfigurationParams) -> None:
        settings = _as_dict(params.settings)
        if settings is None:
            return
        ls.show_problems(ls.apply_settings(settings))
        log.info("settings changed: %s", ls.settings.to_wire())

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: CodellamaServer, params: Any) -> None:
        await ls.close_backend()


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
