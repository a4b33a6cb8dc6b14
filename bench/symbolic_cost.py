"""Benchmark (not a test): what the symbolic forms of #13 cost beside the plain trace, per model, warm.

For each model of bench/models (built on meta, so a 7B config is only shapes), in this process:

- plain: the model's forward on meta tensors of its directive's input (what the plain trace runs);
- symbolic: `trace.symbolic.run_pass` — the same forward under FakeTensorMode + ShapeEnv with the batch and
  the free sizes as symbols (which dims: `trace.symbolic.input_dims`, as after a real trace), then every
  recorded size turned into its label.

Each is measured after one unmeasured run (torch's lazy kernels and guards warmed), median of RUNS. In the
editor the pass is capped (`symbolic.CAP` of the trace's timeout): a model over the cap keeps its plain hints,
without names.
Prints a Markdown table; the machine is shared, so read the load average beside it.

    .venv/bin/python bench/symbolic_cost.py [resnet50 gpt2 llama7b small_cnn]
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import median_ms

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "bench" / "models"
RUNS = 3
CASES = {  # file: (class, input name, input shape, dtype)
    "small_cnn": ("SmallCNN", "x", (8, 3, 32, 32), "float32"),
    "resnet50": ("ResNet50", "x", (1, 3, 224, 224), "float32"),
    "gpt2": ("GPT2Bench", "ids", (1, 128), "int64"),
    "llama7b": ("Llama7B", "ids", (1, 128), "int64"),
}


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", MODELS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def measure(name: str) -> tuple[str, float, float, str]:
    import torch
    from shapelens.trace import symbolic
    from shapelens.trace.recording import Recorder

    class_name, input_name, shape, dtype = CASES[name]
    module = load(name)
    with torch.device("meta"):
        model = getattr(module, class_name)()
    x = torch.zeros(shape, dtype=getattr(torch, dtype), device="meta")

    def plain() -> None:
        with torch.device("meta"), torch.no_grad():
            model(x)

    dims = symbolic.input_dims(model, [(input_name, x)], None, {})
    found: dict[str, Any] = {}

    def run_symbolic() -> None:
        found["pass"] = symbolic.run_pass(model, [x], {}, dims, Recorder(lambda path: False), 600.0)
        printer = symbolic.Printer(found["pass"])
        found["inputs"] = {k: [printer.label(s, None) for s in v] for k, v in found["pass"].inputs.items()}

    cost_plain = median_ms(plain, RUNS)
    cost_symbolic = median_ms(run_symbolic, RUNS)
    error = found["pass"].error
    what = f"failed: {type(error).__name__}" if error is not None else str(found["inputs"])
    return class_name, cost_plain, cost_symbolic, what


def through_worker(names: list[str]) -> list[tuple[str, float, float]]:
    """Wall time of a whole trace of each model file through a warm worker (median of RUNS), without the
    symbolic pass (Options.symbolic off) and with it: what the editor waits for its first hints."""
    from shapelens.analysis.plan import build_plan
    from shapelens.analysis.worker_client import TraceWorker
    from shapelens.core.options import Options
    from shapelens.core.source import Source, parse

    rows = []
    timings: dict[str, dict[str, float]] = {}
    for setting in ("0", "1"):
        worker = TraceWorker()
        worker.ensure_started()
        try:
            for name in names:
                path = MODELS / f"{name}.py"
                source = parse(str(path), path.read_text())
                assert isinstance(source, Source)
                message = build_plan(source, str(MODELS), Options(symbolic=setting == "1")).message()
                timings.setdefault(name, {})[setting] = median_ms(lambda m=message, w=worker: w.trace(m), RUNS)
        finally:
            worker.close()
    for name in names:
        rows.append((CASES[name][0], timings[name]["0"], timings[name]["1"]))
    return rows


def main() -> None:
    names = sys.argv[1:] or ["small_cnn", "resnet50", "gpt2", "llama7b"]
    from shapelens.trace import symbolic
    from shapelens.trace.library import install

    install()  # transformers beside a CPU torch, offline, as in the trace child

    symbolic.warm_up()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; median of {RUNS} warm runs")
    print(f"editor cap for the symbolic pass: {symbolic.CAP * 10:.1f} s (a {symbolic.CAP} of the 10 s timeout)\n")
    print("| model | plain meta forward ms | symbolic pass ms | × | input's symbolic form |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name in names:
        label, plain, cost, what = measure(name)
        print(f"| {label} | {plain:.0f} | {cost:.0f} | {cost / plain:.0f} | {what} |", flush=True)
    print("\n| model file (warm worker, whole trace) | plain ms | with the symbolic pass ms |")
    print("| --- | ---: | ---: |")
    for label, plain, both in through_worker(names):
        print(f"| {label} | {plain:.0f} | {both:.0f} |", flush=True)


if __name__ == "__main__":
    main()
