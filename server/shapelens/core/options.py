"""What a trace runs with: device, time and memory limits, trust, FLOP counting (the CLI's flags and the
editor's settings both become one `Options`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

DEVICES = ("meta", "cpu", "cuda")
# A trace longer than this is no trace: and the child's timer (setitimer) overflows on absurd values
# (`--timeout 1e308` ended in "OverflowError: timestamp out of range" on every model).
MAX_TIMEOUT_S = 3600.0


def timeout_problem(seconds: float) -> str | None:
    """Why `seconds` cannot be a trace's timeout, or None: the one rule the CLI and the editor's settings share."""
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT_S:
        return f"expected a positive number of seconds, at most {MAX_TIMEOUT_S:g}"
    return None


@dataclass(frozen=True)
class Options:
    device: str = "meta"  # meta | cpu | cuda
    timeout: float = 10.0  # seconds per traced model
    memory_mb: int = 4096  # cap on the trace child's memory
    trusted: bool = True  # False: static findings only, no user code runs
    flops: bool = False  # count FLOPs per layer (the editor's hover shows them; `check` does not need them)
    # run the symbolic pass after each plain trace (#13): named sizes for JSON v2 and the editor's hints; off by
    # default because it costs more than the plain trace itself (the editor runs it in a follow-up trace)
    symbolic: bool = False
