"""Benchmark (not a test): what inferring a model's input and solving its free sizes cost (#8), warm.

For each model, in this process (torch and the symbolic machinery warmed up by one unmeasured run):

- infer: `trace.inference.infer` (reading forward's source, following the data flow);
- plain: the model's forward on meta tensors of the inferred input (what the fast path runs);
- solve: `trace.solve.symbolic_pass` + `solve` (FakeTensorMode with symbolic sizes, then the search).

Then end to end through a warm trace worker (`TargetResult.elapsed_ms`, the child's own time for the target,
median of N plans): a model the plain trace settles, beside one that needs the solve and one whose failure the
solve proves. The solve only runs when the plain trace with the default sizes failed or met a mismatch.
Prints a Markdown table. Median of N runs each; the machine is shared, so read the load average.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import median_ms

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "reach"
RUNS = 7


def in_process() -> list[tuple[str, float, float, float, str]]:
    import torch
    from shapelens.trace.inference import infer
    from shapelens.trace.solve import solve, symbolic_pass

    sys.path.insert(0, str(FIXTURES))
    import guess_fails
    import lenet

    rows = []
    for label, cls in [
        ("LeNet (32 fits)", lenet.LeNet),
        ("SmallKernel (solve → 28)", lenet.SmallKernel),
        ("NoSizeFits (no size fits)", guess_fails.NoSizeFits),
    ]:
        with torch.device("meta"):
            model = cls()
        guesses = infer(model)[0]
        inputs = [torch.zeros(g.shape, device="meta") for g in guesses]

        def plain(model: Any = model, inputs: list[Any] = inputs) -> None:
            with contextlib.suppress(Exception):  # a mismatch with the default size: still the plain cost
                model(*inputs)

        found: dict[str, Any] = {}

        def solved(cls: Any = cls, guesses: Any = guesses, found: dict[str, Any] = found) -> None:
            found["pass"] = symbolic_pass(cls, guesses, 10.0)
            found["solved"] = solve(found["pass"], guesses)

        cost_infer = median_ms(lambda model=model: infer(model), RUNS)
        cost_plain = median_ms(plain, RUNS)
        cost_solve = median_ms(solved, RUNS)
        result = found["solved"]
        what = ", ".join(result.notes) if result else f"unsolved: {[e.layer for e in found['pass'].equations]}"
        rows.append((label, cost_infer, cost_plain, cost_solve, what))
    return rows


def through_worker() -> list[tuple[str, float]]:
    from shapelens.analysis.plan import build_plan
    from shapelens.analysis.worker_client import TraceWorker
    from shapelens.core.options import Options
    from shapelens.core.source import Source, parse

    worker = TraceWorker()
    worker.ensure_started()
    times: dict[str, list[float]] = {}
    try:
        for name in ("lenet.py", "guess_fails.py"):
            path = FIXTURES / name
            source = parse(str(path), path.read_text())
            assert isinstance(source, Source)
            message = build_plan(source, str(FIXTURES), Options()).message()
            worker.trace(message)  # warm: the child's first symbolic pass imports what the next ones inherit
            for _ in range(RUNS):
                for target in worker.trace(message).targets:
                    times.setdefault(f"{name}:{target.name}", []).append(target.elapsed_ms or 0.0)
    finally:
        worker.close()
    return [(label, statistics.median(values)) for label, values in times.items()]


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; median of {RUNS}\n")
    print("| model | infer ms | plain meta forward ms | symbolic pass + solve ms | chosen |")
    print("| --- | ---: | ---: | ---: | --- |")
    for label, cost_infer, cost_plain, cost_solve, what in in_process():
        print(f"| {label} | {cost_infer:.1f} | {cost_plain:.1f} | {cost_solve:.0f} | {what} |")
    print("\n| target (warm worker, the child's time for it) | ms |")
    print("| --- | ---: |")
    for label, ms in through_worker():
        print(f"| {label} | {ms:.0f} |")


if __name__ == "__main__":
    main()
