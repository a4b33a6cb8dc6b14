"""Benchmark (not a test): where the time goes between a process start and the first reply — each step on its
own, in fresh processes, medians of N runs. Prints a Markdown table.

    .venv/bin/python bench/cold_start.py [--runs 5]

Steps: the interpreter itself; `shapelens check`'s own imports (no jedi, no pygls); the language server's
imports (pygls, lsprotocol, our modules); jedi's import and the editor-side analysis of the seed-sized model
(parse, rules, the plan; jedi resolves names there); in the worker: `import torch`, the stand-ins that keep
torch._dynamo unimported (trace/lazy_dynamo.py), our trace modules, the first meta op (it imports sympy), and
the rest of the warm-up in its three parts — other meta kernels, FakeTensorMode's first use (it imports
torch._dynamo), the symbolic passes' first use (the editor's worker runs them after its first reply, `check`
of one file never, `check` of several files before its pool forks); the first trace from a freshly started
worker (its child meets the model's kernels, and the symbolic pass's first use) and a warm trace; and end to
end, `shapelens check` of the file beside `python -c "import torch"`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from run import MODELS_DIR, REPO, shapelens_cli

SMALL = MODELS_DIR / "small_cnn.py"
# `check`'s imports: and that they leave jedi and pygls out (nothing of the editor's is paid by CI)
CLI = "import sys, shapelens.cli; assert not {'jedi', 'pygls', 'lsprotocol'} & set(sys.modules)"

WORKER_STEPS = """\
import json, time
t = [time.perf_counter()]
import torch
t.append(time.perf_counter())
from shapelens.trace import lazy_dynamo
lazy_dynamo.install()
t.append(time.perf_counter())
import shapelens.trace.child
from shapelens.trace import worker
t.append(time.perf_counter())
from torch.utils.flop_counter import FlopCounterMode
with torch.device("meta"), FlopCounterMode(display=False):
    torch.nn.Linear(2, 2)(torch.randn(1, 2)).relu().sum()
t.append(time.perf_counter())
worker._meta_kernels()
t.append(time.perf_counter())
worker._fake_kernels()
t.append(time.perf_counter())
from shapelens.trace import solve
solve.warm_up()
t.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""

EDITOR_SIDE = """\
import json, os, time
t = [time.perf_counter()]
import jedi
t.append(time.perf_counter())
from shapelens.analysis import plan
from shapelens.analysis.engine import static_report
from shapelens.core.options import Options
from shapelens.core.source import parse
t.append(time.perf_counter())
path = {path!r}
text = open(path).read()
static_report(path, text)
plan.build_plan(parse(path, text), os.path.dirname(path), Options()).message()
t.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""

TRACES = """\
import json, os, time
from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.options import Options
path = {path!r}
text = open(path).read()
worker = TraceWorker(env={{**os.environ, "SHAPELENS_WARM": "minimal"}})
t = [time.perf_counter()]
worker.ensure_started()
t.append(time.perf_counter())
analyze(path, text, Options(), worker)
t.append(time.perf_counter())
analyze(path, text, Options(), worker)
t.append(time.perf_counter())
worker.close()
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""


def fresh(code: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    result: list[float] = json.loads(out.strip().splitlines()[-1])
    return result


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, capture_output=True, cwd=REPO, check=False)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    for _ in range(args.runs):
        add("interpreter start (`python -c pass`)", wall([sys.executable, "-c", "pass"]))
        add("`check`: its imports (no jedi, no pygls), interpreter included", wall([sys.executable, "-c", CLI]))
        server = wall([sys.executable, "-c", "import shapelens.lsp.server"])
        add("server: its imports (pygls, lsprotocol, ours), interpreter included", server)
        jedi_s, ours_s, analysis_s = fresh(EDITOR_SIDE.format(path=str(SMALL)))
        add("editor side: `import jedi`", jedi_s)
        add("editor side: analysis modules", ours_s)
        add("editor side: static rules + plan of the seed model (first call)", analysis_s)
        torch_s, lazy_s, trace_mods_s, first_op_s, meta_s, fake_s, symbolic_s = fresh(WORKER_STEPS)
        add("worker: `import torch`", torch_s)
        add("worker: dynamo stand-ins (trace/lazy_dynamo.py)", lazy_s)
        add("worker: our trace modules", trace_mods_s)
        add("worker: first meta op (imports sympy; no longer torch._dynamo)", first_op_s)
        add("worker, rest of the warm-up: other meta kernels", meta_s)
        add("worker, rest of the warm-up: FakeTensorMode's first use (imports torch._dynamo)", fake_s)
        add("worker, rest of the warm-up: the symbolic passes' first use (solve, #13 forms)", symbolic_s)
        ready_s, first_s, warm_s = fresh(TRACES.format(path=str(SMALL)))
        add("worker spawn → ready (interpreter + the four worker steps before the rest)", ready_s)
        add("first trace of the seed model (analyze, cold child: kernels, the symbolic pass)", first_s)
        add("warm trace of the seed model (analyze)", warm_s)
        add("end to end: `shapelens check` of the seed model", wall([*shapelens_cli(), "check", str(SMALL)]))
        add('reference: `python -c "import torch"`', wall([sys.executable, "-c", "import torch"]))
        print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    end = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"Cold start, step by step ({os.cpu_count()} cores, load average {load} at the start, {end} at the end; "
        f"medians of {args.runs} fresh processes)\n"
    )
    print("| step | median | min |\n| --- | ---: | ---: |")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values) * 1000:.0f} ms | {min(values) * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
