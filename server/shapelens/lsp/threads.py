"""Blocking work off the event loop, in daemon threads."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run blocking work in a daemon thread. Unlike the default executor, a daemon thread never holds up
    the process's exit: a model that hangs cannot delay `exit` (its child is killed separately)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = fn()
        except BaseException as err:  # handed over to the awaiting coroutine
            error: BaseException | None = err
            result = None
        else:
            error = None
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked (server exiting)
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future
