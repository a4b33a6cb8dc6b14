"""Benchmark (not a test): what Shapelens' instrumentation costs over a bare meta-device forward.

For each bench model, in a subprocess of its own (the engine's patches are process-wide):

1. bare: the file imported as is, the model built under `torch.device("meta")`, and `model(**inputs)` timed;
2. then the engine's own child-side pieces from `shapelens.trace.child` are set up in the same process, as a
   trace child does (`install_patches`, the instrumented module from `Loader.exec_file`, `Target.build`), and
   the forward is timed again, twice: with line recording and layer hooks only ("recorded"), and as the
   engine runs it, inside `FlopCounterMode` too ("as traced").

Both forwards run on the same meta device with the same input shapes; each number is the median of N calls
after one unmeasured call. The design budget is ≤ 1.2× for the instrumentation. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import MODELS, MODELS_DIR, REPO, BenchModel, build_and_inputs, median_ms

BUDGET = 1.2


def measure(path: Path, class_name: str, runs: int) -> dict[str, float]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)  # meta kernels do no arithmetic; keep both sides on one thread
    model, inputs = build_and_inputs(path, class_name, "meta")

    def bare_forward() -> None:
        with torch.device("meta"):
            model(**inputs)

    with torch.no_grad():
        bare = median_ms(bare_forward, runs)

    from shapelens.analysis import plan as plan_mod
    from shapelens.core.options import Options
    from shapelens.core.source import Source, parse
    from shapelens.trace import child, model_run

    text = path.read_text()
    parsed = parse(str(path), text)
    assert isinstance(parsed, Source), parsed
    plan = plan_mod.build_plan(parsed, str(REPO), Options()).message()
    spec = next(t for t in plan.targets if t.name == class_name)
    device = torch.device("meta")
    is_project = child.project_file_test(plan.root, plan.file)
    recorder = child.Recorder(is_project)
    ctx = child.Context(types.ModuleType(plan.module), {}, device)
    child.install_patches(recorder, ctx)
    loader = child.Loader(recorder, lambda file_id, file: None)
    sys.meta_path.insert(0, child.ProjectFinder(loader, is_project))
    ctx.module.__file__ = plan.file
    sys.modules[plan.module] = ctx.module
    with torch.device(device):
        loader.exec_file(ctx.module, plan.file, plan.source, {tuple(k) for k in plan.keep})
        ctx.nodes = child._find_nodes(parsed.tree)
        target = model_run.Target(spec, ctx.module, plan.file, ctx.nodes, device)
        traced_model, args, kwargs = target.build()
    assert traced_model is not None

    def recorded_forward() -> None:
        recorder.active = True
        try:
            with torch.device(device):
                traced_model(*args, **kwargs)
        finally:
            recorder.active = False

    def traced_forward() -> None:
        recorder.active = True
        try:
            with torch.device(device), FlopCounterMode(display=False):
                traced_model(*args, **kwargs)
        finally:
            recorder.active = False

    with torch.no_grad():
        recorded = median_ms(recorded_forward, runs)
        traced = median_ms(traced_forward, runs)
    records = sum(len(v) for v in recorder.records.values())
    return {"bare_ms": bare, "recorded_ms": recorded, "traced_ms": traced, "records": records}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="file names under bench/models/ (default: all)")
    parser.add_argument("--runs", type=int, default=0, help="timed calls per model (default: 5 to 30 by size)")
    parser.add_argument("--_one", nargs=3, metavar=("PATH", "CLASS", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._one:
        print(json.dumps(measure(Path(args._one[0]), args._one[1], int(args._one[2]))))
        return 0

    chosen: list[BenchModel] = [m for m in MODELS if not args.models or m.file in args.models]
    rows = [
        "| model | bare meta forward ms | recorded ms | ratio | as traced (with FlopCounterMode) ms | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model in chosen:
        runs = args.runs or model.warm_runs
        proc = subprocess.run(
            [sys.executable, __file__, "--_one", str(MODELS_DIR / model.file), model.class_name, str(runs)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=900,
        )
        if proc.returncode != 0:
            rows.append(f"| {model.label} | failed: {(proc.stderr.strip().splitlines() or ['?'])[-1][:100]} |||||")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        ratio, traced_ratio = r["recorded_ms"] / r["bare_ms"], r["traced_ms"] / r["bare_ms"]
        mark = "✓" if ratio <= BUDGET else "✗"
        mark_traced = "✓" if traced_ratio <= BUDGET else "✗"
        rows.append(
            f"| {model.label} | {r['bare_ms']:.1f} | {r['recorded_ms']:.1f} | {ratio:.2f}× {mark} | "
            f"{r['traced_ms']:.1f} | {traced_ratio:.2f}× {mark_traced} |"
        )
    print("\n".join(rows))
    print(f"\nBudget: ≤ {BUDGET}× a bare meta forward (median of N calls, one thread, same process).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
