"""Benchmark (not a test): how long `shapelens check` takes, and how much memory its trace needs, on models of
growing size, beside `torchinfo.summary` on real CPU tensors. Run it with `make bench` or
`.venv/bin/python bench/run.py`; it prints a Markdown table (and `--json` the raw numbers).

For each model in `bench/models/` (a small CNN, a hand-written ResNet-50, GPT-2 and a 7B LLaMA config from
`transformers` configs, no weights):

- cold: wall time of a fresh `shapelens check --format json MODEL` process (Python start, `import torch` in
  the worker, warm-up, trace, JSON), as a user pays it the first time;
- warm: `shapelens.analysis.engine.analyze` called repeatedly with one `TraceWorker` kept alive, as the
  editor does on each keystroke; the median of N calls after two unmeasured ones;
- peak MB: the peak resident set size of the largest process the warm runs used (the worker or a forked
  trace child: the child counts the pages of torch it shares with the worker too). It comes from
  `getrusage(RUSAGE_CHILDREN)` in a process that did nothing else, after the worker exited;
- torchinfo: `torchinfo.summary` on the model built on CPU with random weights and real input tensors (the
  time of the `summary` call only, not of building the model) and the peak RSS of that process. The 7B
  config is not attempted: its fp32 weights alone need about 27 GB on a 24 GB machine;
- ratio: torchinfo ms / shapelens warm ms.

Every measurement runs in its own subprocess, so one model's memory does not leak into another's numbers.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MODELS_DIR = Path(__file__).resolve().parent / "models"
GB = 1024**3


@dataclass(frozen=True)
class BenchModel:
    label: str
    file: str  # under bench/models/
    class_name: str
    warm_runs: int
    budget_ms: float | None  # the warm budget from the design notes
    budget_mb: float | None = None
    torchinfo: bool = True  # False: too big to run on real tensors here


MODELS = [
    BenchModel("small CNN", "small_cnn.py", "SmallCNN", warm_runs=30, budget_ms=50),
    BenchModel("ResNet-50", "resnet50.py", "ResNet50", warm_runs=10, budget_ms=300),
    BenchModel("GPT-2 (124M)", "gpt2.py", "GPT2Bench", warm_runs=7, budget_ms=500),
    BenchModel("LLaMA 7B config", "llama7b.py", "Llama7B", warm_runs=5, budget_ms=1000, budget_mb=500, torchinfo=False),
]
IMPOSSIBLE = "impossible here (needs ~{gb:.0f} GB for fp32 weights on a {machine:.0f} GB machine)"


# -- helpers shared by the measuring subprocesses ----------------------------------------------------------


def median_ms(call: Callable[[], Any], runs: int) -> float:
    """The median wall time of `runs` calls, in milliseconds, after one unmeasured call (first-call caches)."""
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def directive(path: Path, class_name: str) -> str:
    """The `# shapelens:` directive on the comment line(s) right above `class <class_name>`."""
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if re.match(rf"class {class_name}\b", line))
    while index > 0 and lines[index - 1].startswith("#"):
        index -= 1
        match = re.match(r"#\s*shapelens:\s*(.+)$", lines[index])
        if match:
            return match.group(1).strip()
    raise LookupError(f"no directive above {class_name} in {path}")


def build_and_inputs(path: Path, class_name: str, device: str) -> tuple[Any, dict[str, Any]]:
    """The model built from the file's directive (`init(...)` arguments) and its inputs, on `device`."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    call = ast.parse(f"f({directive(path, class_name)})", mode="eval").body
    assert isinstance(call, ast.Call)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for item in call.args:  # init(...)
        assert isinstance(item, ast.Call)
        args += [ast.literal_eval(a) for a in item.args]
        kwargs.update({k.arg: ast.literal_eval(k.value) for k in item.keywords if k.arg})
    inputs: dict[str, Any] = {}
    for keyword in call.keywords:
        value = keyword.value
        assert keyword.arg is not None
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):  # int64(1, 128)
            shape = tuple(ast.literal_eval(a) for a in value.args)
            dtype = getattr(torch, value.func.id)
            inputs[keyword.arg] = torch.randint(0, 2, shape, dtype=dtype, device=device)
        else:
            inputs[keyword.arg] = torch.randn(ast.literal_eval(value), device=device)
    with torch.device(device):
        model = getattr(module, class_name)(*args, **kwargs)
    return model, inputs


def children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux


def self_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shapelens_cli() -> list[str]:
    cli = Path(sys.executable).parent / "shapelens"
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "shapelens.cli"]


# -- the measuring subprocesses ------------------------------------------------------------------------


def measure_cold(path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [*shapelens_cli(), "check", "--format", "json", str(path)], capture_output=True, text=True, cwd=REPO
    )
    elapsed = (time.perf_counter() - started) * 1000
    ok = proc.returncode in (0, 1) and _has_hints(proc.stdout)
    return {"ms": elapsed, "rc": proc.returncode, "ok": ok, "peak_mb": children_peak_mb()}


def _has_hints(stdout: str) -> bool:
    try:
        return any(f["hints"] for f in json.loads(stdout)["files"])
    except (json.JSONDecodeError, KeyError):
        return False


def measure_warm(path: Path, runs: int) -> dict[str, Any]:
    from shapelens.analysis.engine import analyze
    from shapelens.analysis.worker_client import TraceWorker
    from shapelens.core.options import Options

    text = path.read_text()
    worker = TraceWorker()
    worker.ensure_started()
    times: list[float] = []
    problems: list[str] = []
    hints = 0
    try:
        for i in range(runs + 2):
            started = time.perf_counter()
            reports = analyze(str(path), text, Options(), worker, root=str(REPO))
            elapsed = (time.perf_counter() - started) * 1000
            if i >= 2:  # the first calls warm caches (jedi, the worker's imports)
                times.append(elapsed)
            hints = sum(len(r.hints) for r in reports.values())
            problems = [f"{f.code} {f.message}" for r in reports.values() for f in r.findings if f.code < "SL100"]
    finally:
        worker.close()
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "runs": len(times),
        "hints": hints,
        "problems": problems,
        "peak_mb": children_peak_mb(),
    }


def measure_torchinfo(path: Path, class_name: str) -> dict[str, Any]:
    import torch
    import torchinfo

    baseline_mb = self_peak_mb()
    started = time.perf_counter()
    model, inputs = build_and_inputs(path, class_name, "cpu")
    build_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    torchinfo.summary(model, input_data=inputs, device="cpu", verbose=0)
    elapsed = (time.perf_counter() - started) * 1000
    return {
        "ms": elapsed,
        "build_ms": build_ms,
        "peak_mb": self_peak_mb(),
        "baseline_mb": baseline_mb,
        "threads": torch.get_num_threads(),
    }


def measure_params(models: list[BenchModel]) -> dict[str, int]:
    counts = {}
    for model in models:
        built, _ = build_and_inputs(MODELS_DIR / model.file, model.class_name, "meta")
        counts[model.file] = sum(p.numel() for p in built.parameters())
    return counts


# -- the driver ---------------------------------------------------------------------------------------------


def _sub(*args: str, timeout: float = 900) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def machine_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB


def _params(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def _budget(value: float | None, budget: float | None) -> str:
    if value is None or budget is None:
        return ""
    return " ✓" if value <= budget else f" ✗ (budget {budget:g})"


def table(models: list[BenchModel], results: dict[str, dict[str, Any]], params: dict[str, int]) -> str:
    rows = [
        "| model | params | shapelens warm ms | cold ms | peak MB | torchinfo ms | torchinfo MB | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model in models:
        r = results[model.file]
        warm, cold, info = r.get("warm", {}), r.get("cold", {}), r.get("torchinfo", {})
        warm_ms = warm.get("median_ms")
        if warm.get("error") or warm.get("problems"):
            warm_cell = f"failed: {warm.get('error') or warm['problems'][0]}"[:80]
        else:
            warm_cell = f"{warm_ms:.0f}{_budget(warm_ms, model.budget_ms)}"
        cold_cell = f"{cold['ms']:.0f}" if "ms" in cold else cold.get("error", "")
        if cold and not cold.get("ok", True):
            cold_cell += f" (exit {cold.get('rc')}, no hints)"
        peak = warm.get("peak_mb")
        peak_cell = f"{peak:.0f}{_budget(peak, model.budget_mb)}" if peak else ""
        if not model.torchinfo:
            gb = params.get(model.file, 0) * 4 / 1e9  # decimal GB, as weight sizes are usually quoted
            info_cell = IMPOSSIBLE.format(gb=gb, machine=machine_gb())
            cells = [model.label, _params(params.get(model.file)), warm_cell, cold_cell, peak_cell, info_cell, "—", "—"]
            rows.append("| " + " | ".join(cells) + " |")
            continue
        if "ms" in info:
            ratio = f"{info['ms'] / warm_ms:.1f}×" if warm_ms else ""
            info_ms, info_mb = f"{info['ms']:.0f}", f"{info['peak_mb']:.0f}"
        else:
            ratio, info_ms, info_mb = "", info.get("error", "skipped"), ""
        cells = [model.label, _params(params.get(model.file)), warm_cell, cold_cell, peak_cell, info_ms, info_mb, ratio]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="file names under bench/models/ (default: all)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold runs")
    parser.add_argument("--no-torchinfo", action="store_true", help="skip torchinfo")
    parser.add_argument("--runs", type=int, help="warm runs per model (default: per model, 5 to 30)")
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON too")
    # internal: one measurement per subprocess
    parser.add_argument("--_cold", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--_warm", nargs=2, metavar=("PATH", "RUNS"), help=argparse.SUPPRESS)
    parser.add_argument("--_torchinfo", nargs=2, metavar=("PATH", "CLASS"), help=argparse.SUPPRESS)
    parser.add_argument("--_params", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._cold:
        print(json.dumps(measure_cold(Path(args._cold))))
        return 0
    if args._warm:
        print(json.dumps(measure_warm(Path(args._warm[0]), int(args._warm[1]))))
        return 0
    if args._torchinfo:
        print(json.dumps(measure_torchinfo(Path(args._torchinfo[0]), args._torchinfo[1])))
        return 0
    chosen = [m for m in MODELS if not args.models or m.file in args.models or m.file[:-3] in args.models]
    if args._params:
        print(json.dumps(measure_params(chosen)))
        return 0

    header = (
        f"# shapelens bench — {platform.machine()}, {os.cpu_count()} cores, {machine_gb():.0f} GB, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )
    print(header, file=sys.stderr, flush=True)
    params = _sub("--_params", *["--models", *[m.file for m in chosen]])
    if "error" in params:
        print(f"  params: {params['error']}", file=sys.stderr)
        params = {}
    results: dict[str, dict[str, Any]] = {}
    for model in chosen:
        path = str(MODELS_DIR / model.file)
        result: dict[str, Any] = {}
        print(f"  {model.label}: warm ...", file=sys.stderr, flush=True)
        result["warm"] = _sub("--_warm", path, str(args.runs or model.warm_runs))
        if not args.no_cold:
            print(f"  {model.label}: cold ...", file=sys.stderr, flush=True)
            result["cold"] = _sub("--_cold", path)
        if model.torchinfo and not args.no_torchinfo:
            print(f"  {model.label}: torchinfo ...", file=sys.stderr, flush=True)
            result["torchinfo"] = _sub("--_torchinfo", path, model.class_name)
        results[model.file] = result
    print(f"{header}, {os.getloadavg()[0]:.2f} at the end\n")
    print(table(chosen, results, params))
    built = [
        (m.label, results[m.file]["torchinfo"]) for m in chosen if "build_ms" in results[m.file].get("torchinfo", {})
    ]
    if built:
        builds = ", ".join(f"{label} {info['build_ms']:.0f} ms" for label, info in built)
        print(
            f"\ntorchinfo ran with {built[0][1]['threads']} torch threads; building the models on CPU first took "
            f"{builds} (not in the torchinfo column). Peak MB is the peak RSS of the process doing the work, "
            "torch included. Ratio: torchinfo ms / shapelens warm ms."
        )
    if args.json:
        print(json.dumps({"params": params, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
