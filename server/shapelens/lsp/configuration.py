"""The settings in force and where they come from: `initializationOptions` (and the editor's word on
workspace trust, final for the process), then `workspace/configuration` answers or
`workspace/didChangeConfiguration` pushes overlaid key by key. What a change does is `reconfigure.py`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from shapelens.lsp.notify import Notifier
from shapelens.lsp.settings import SECTION, Settings, describe, parse_settings

log = logging.getLogger("shapelens.lsp")

CONFIG_TIMEOUT_S = 5.0  # a client that never answers workspace/configuration must not stall start-up


class Config:
    def __init__(self) -> None:
        self.settings = Settings()
        self.init_settings = Settings()  # from initializationOptions: what workspace/configuration overlays
        self.workspace_trusted = True  # False when the editor says the workspace is untrusted (final)
        # Traces wait for the first workspace/configuration answer: it may say the workspace is untrusted.
        self.ready = asyncio.Event()

    def within_trust(self, settings: Settings) -> Settings:
        if self.workspace_trusted or not settings.trusted:
            return settings
        return dataclasses.replace(settings, trusted=False)

    def initialization_options(self, raw: Any, notify: Notifier) -> None:
        if isinstance(raw, dict) and "workspaceTrusted" in raw:
            # The editor's own word on the workspace (VS Code's Restricted Mode): final for this process, no
            # setting can raise it (the client restarts the server when trust is granted). Only `true` trusts.
            self.workspace_trusted = raw["workspaceTrusted"] is True
        if isinstance(raw, dict) and isinstance(raw.get("settings"), dict):
            raw = raw["settings"]  # some clients nest them under "settings"
        settings, warnings = parse_settings(raw)
        for warning in warnings:
            notify.log_warning(warning)
        self.init_settings = self.settings = self.within_trust(settings)
        log.info("settings: %s", describe(self.settings))

    def pushed(self, raw: Any, notify: Notifier) -> Settings:
        """The settings a `workspace/didChangeConfiguration` push carries, over the current ones."""
        if isinstance(raw, dict) and SECTION in raw:
            raw = raw[SECTION]
        settings, warnings = parse_settings(raw, self.settings)
        for warning in warnings:
            notify.log_warning(warning)
        return settings

    async def pull(self, server: LanguageServer, notify: Notifier) -> Settings | None:
        """Ask the client (`workspace/configuration`); None when it cannot or does not answer."""
        caps = server.client_capabilities.workspace
        if caps is None or not caps.configuration:
            return None
        params = types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
        try:
            result = await asyncio.wait_for(server.workspace_configuration_async(params), CONFIG_TIMEOUT_S)
        except Exception as err:
            log.warning("workspace/configuration failed: %s", err)
            return None
        raw = result[0] if result else None
        settings, warnings = parse_settings(raw, self.init_settings)
        for warning in warnings:
            notify.log_warning(warning)
        return settings


async def register_for_changes(server: LanguageServer) -> None:
    """Ask for `workspace/didChangeConfiguration` where the client wants it registered dynamically."""
    caps = server.client_capabilities.workspace
    change = caps.did_change_configuration if caps is not None else None
    if change is None or not change.dynamic_registration:
        return
    registration = types.Registration(
        id="shapelens-configuration",
        method=types.WORKSPACE_DID_CHANGE_CONFIGURATION,
        register_options=types.DidChangeConfigurationRegistrationOptions(section=SECTION),
    )
    try:
        await asyncio.wait_for(
            server.client_register_capability_async(types.RegistrationParams([registration])), CONFIG_TIMEOUT_S
        )
    except Exception as err:
        log.debug("didChangeConfiguration registration failed: %s", err)
