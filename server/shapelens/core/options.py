"""What a trace runs with: device, time and memory limits, trust, FLOP counting (the CLI's flags and the
editor's settings both become one `Options`)."""

from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("meta", "cpu", "cuda")


@dataclass(frozen=True)
class Options:
    device: str = "meta"  # meta | cpu | cuda
    timeout: float = 10.0  # seconds per traced model
    memory_mb: int = 4096  # cap on the trace child's memory
    trusted: bool = True  # False: static findings only, no user code runs
    flops: bool = False  # count FLOPs per layer (the editor's hover shows them; `check` does not need them)
