"""What a change of settings does: a new interpreter or trust restarts the worker (untrusted: every trace
result is forgotten, static findings stay), a new device or timeout traces again, new hint settings ask the
client for the hints again."""

from __future__ import annotations

import logging

from shapelens.lsp.configuration import Config
from shapelens.lsp.diagnostics import Diagnostics
from shapelens.lsp.documents import Documents
from shapelens.lsp.notify import Notifier
from shapelens.lsp.results import Results
from shapelens.lsp.scheduler import Scheduler
from shapelens.lsp.settings import Settings, describe

log = logging.getLogger("shapelens.lsp")


async def apply_settings(
    new: Settings,
    config: Config,
    docs: Documents,
    results: Results,
    scheduler: Scheduler,
    diagnostics: Diagnostics,
    notify: Notifier,
) -> None:
    new = config.within_trust(new)
    old, config.settings = config.settings, new
    if old == new:
        return
    log.info("settings: %s", describe(new))
    if old.trusted != new.trusted or old.interpreter != new.interpreter:
        scheduler.epoch += 1  # what runs now is meaningless
        await scheduler.host.reset()
        if not new.trusted:
            # Untrusted from now on: forget everything the user's code produced, keep static findings.
            changed = results.forget()
            diagnostics.publish_paths(changed | {s.path for s in docs})
            notify.refresh_inlay_hints()
            notify.untrusted()
            return
        scheduler.spawn(scheduler.host.warm())
        scheduler.retrace_all()
    elif (old.device, old.trace_timeout) != (new.device, new.trace_timeout):
        scheduler.epoch += 1
        scheduler.retrace_all()
    elif old.symbolic == "off" and new.symbolic == "on":
        scheduler.retrace_all()  # the named sizes come from the follow-up trace, which "off" did not run
    if (old.inlay_hints_enabled, old.layer_shapes, old.show_dtype, old.symbolic) != (
        new.inlay_hints_enabled,
        new.layer_shapes,
        new.show_dtype,
        new.symbolic,
    ):
        notify.refresh_inlay_hints()
