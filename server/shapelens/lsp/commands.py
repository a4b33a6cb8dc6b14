"""`workspace/executeCommand`: `shapelens.traceNow` [uri] traces that document now, skipping the debounce,
and answers {traced, version} when done (or superseded), {traced: false, reason} when it cannot."""

from __future__ import annotations

import asyncio
from typing import Any

from shapelens.lsp.configuration import Config
from shapelens.lsp.documents import Documents, path_of
from shapelens.lsp.notify import Notifier
from shapelens.lsp.results import Results
from shapelens.lsp.scheduler import Scheduler

TRACE_NOW = "shapelens.traceNow"


async def trace_now(
    docs: Documents, results: Results, scheduler: Scheduler, config: Config, notify: Notifier, args: tuple[Any, ...]
) -> dict[str, Any]:
    uri = args[0] if args else None
    if not isinstance(uri, str):
        return {"traced": False, "reason": "expected [uri]"}
    if uri not in docs:
        if docs.source(uri) is None:
            return {"traced": False, "reason": "no such document"}
        docs.add(uri)
    if not config.settings.trusted:
        notify.untrusted(uri)
        return {"traced": False, "reason": "untrusted"}
    scheduler.host.problem = None  # an explicit request retries a worker that failed to start
    task = scheduler.schedule(uri, 0.0)
    if task is not None:
        await asyncio.wait([task])
    result = results.get(scheduler.traced_path(uri))  # a notebook cell's: its notebook's trace
    traced = result is not None and result.versions.get(path_of(uri)) == docs.version(uri) and not result.cached
    return {"traced": traced, "version": docs.version(uri)}
