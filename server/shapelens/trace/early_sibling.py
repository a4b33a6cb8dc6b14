"""A pool's early sibling (`shapelens check --jobs N`, cli/check.py's `_Pool`): forked before its worker warmed
FakeTensorMode and the solver (≈0.8 s), it traces files on a core that would otherwise wait for that warm-up.
It never warms them itself: a trace of it that comes to need FakeTensorMode (a guessed image size to solve, a
data-dependent size, the symbolic forms) stops there and says so (`Event.REFUSED`), and the pool traces that
file again on a warm worker. Everything such a trace did before is thrown away with it, so what a user sees
never depends on which worker traced a file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

_refuse: Callable[[], None] | None = None  # set in an early sibling's trace child (`refuse_fake_tensors`)


def refuse_fake_tensors(say_so: Callable[[], None]) -> None:
    """In an early sibling's child, before user code runs: `needs_fake_tensors` calls `say_so`, then ends it."""
    global _refuse
    _refuse = say_so


def needs_fake_tensors() -> None:
    """Where a trace is about to make its first FakeTensorMode: in an early sibling's child, the end of it."""
    if _refuse is None:
        return
    _refuse()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
