"""initialize, configuration changes, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
from typing import Any

from lsprotocol import types

from lsp.compat import requests_in_flight
from lsp.config import Settings
from lsp.features import streaming
from lsp.features import workspace as workspace_feature
from lsp.features.common import negotiated_encoding
from lsp.server import CodellamaServer

log = logging.getLogger(__name__)

STATS_METHOD = "codellama/stats"


def register(server: CodellamaServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: CodellamaServer, params: types.InitializeParams) -> None:
        ls.set_root(params)
        # pygls chose the client's first supported encoding; every position is read and written in it
        ls.documents.encoding = negotiated_encoding(ls.workspace.position_encoding)
        ls.pending_problems += ls.apply_settings(_as_dict(params.initialization_options))
        streaming.negotiate(ls, params.initialization_options)
        workspace_feature.prepare(ls)

    @server.feature(types.INITIALIZED)
    def initialized(ls: CodellamaServer, params: types.InitializedParams) -> None:
        problems, ls.pending_problems = ls.pending_problems, []
        ls.show_problems(problems)
        ls.status("idle")
        workspace_feature.sync_in_background(ls)  # the indexes walk in the background; watchers are asked for
        # What is loaded by now (the libraries, the settings) lives as long as the server: kept out of the
        # collector's full passes, which otherwise walk all of it and hold the event loop 100 ms or more.
        gc.freeze()
        ls.warm_up_backend()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: CodellamaServer, params: types.DidChangeConfigurationParams) -> None:
        settings = _as_dict(params.settings)
        if not _names_our_settings(settings):
            # Clients in the pull model send nothing useful (eglot sends `{}` right after connecting): ask for
            # the section where the client can answer; never reset what initialize set to defaults.
            settings = await _pull(ls)
            if not _names_our_settings(settings):
                return
        ls.show_problems(ls.apply_settings(settings))
        log.info("settings changed: %s", ls.settings.to_wire())
        workspace_feature.sync_in_background(ls)  # workspace.enable, caps and exclusions take effect

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: CodellamaServer, params: Any) -> None:
        await workspace_feature.close(ls)  # before the tasks are cancelled: a starting index is closed too
        await ls.close_backend()

    @server.feature(STATS_METHOD)
    def stats(ls: CodellamaServer, params: Any) -> dict[str, Any]:
        """For soak tests and bug reports: what the process holds (tasks, documents, completion flow)."""
        return {
            "pid": os.getpid(),
            "tasks": len(asyncio.all_tasks()),
            "pending": requests_in_flight(ls.protocol),  # pygls's table of handlers in flight
            "documents": len(ls.documents),
            "completionFlow": dataclasses.asdict(ls.completion_flow.stats),
            "workspace": ls.workspace_definitions.stats(),
        }


async def _pull(ls: CodellamaServer) -> dict[str, Any] | None:
    workspace = ls.client_capabilities.workspace
    if not (workspace and workspace.configuration):
        return None
    try:
        [section] = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="codellama")])
        )
    except Exception as error:  # a client that cannot answer keeps the settings it gave at initialize
        log.debug("workspace/configuration failed: %s", error)
        return None
    return {"codellama": section} if isinstance(section, dict) else None


def _names_our_settings(settings: dict[str, Any] | None) -> bool:
    if not settings:
        return False
    if isinstance(settings.get("codellama"), dict):
        return bool(settings["codellama"]) or len(settings) == 1
    return bool(set(settings) & WIRE_KEYS)


WIRE_KEYS = {field.alias or name for name, field in Settings.model_fields.items()}


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
