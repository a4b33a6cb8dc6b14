"""PyTea's unit tests through Shapelens (#10): which scripts crash under a real CPU run, and whether
`shapelens check` flags each at its crash line (or on the constructor that is wrong), with no error finding on
the scripts that run clean and hints that match the CPU run's shapes.

    .venv/bin/python bench/pytea.py [/work/real/pytea/packages/pytea/pytest/unit_tests] [out.json]

Each script is copied to a temporary folder (never into the repository) and
1. run for real: `python file.py` in a subprocess (60 s), its crash line read from the traceback;
2. run again, statement by statement, by the tests' CPU oracle (`tests/oracle.run_script_on_cpu`) for the
   shapes each statement binds;
3. analysed by the engine as `shapelens check` does, with one warm trace worker: seconds per file.
PyTea's own figures, for comparison: 10 of 16 real failures flagged, 1.5-6.7 s per file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = "/work/real/pytea/packages/pytea/pytest/unit_tests"

ORACLE = """
import json, sys
sys.path.insert(0, sys.argv[2])
import oracle
run, failures = oracle.run_script_on_cpu(sys.argv[1])
print(json.dumps({
    "records": [[r.line, r.target, [list(s) for s in r.shapes], list(r.dtypes)] for r in run.records
                if r.file == sys.argv[1]],
    "failures": sorted(failures),
}))
"""


def real_run(path: str) -> tuple[int | None, str]:
    """The line `python file.py` crashed at (None: it ran clean) and the exception's last line."""
    try:
        done = subprocess.run(
            [sys.executable, os.path.basename(path)], cwd=os.path.dirname(path), capture_output=True, text=True,
            timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, "timeout"
    if done.returncode == 0:
        return None, ""
    lines = re.findall(rf'File "[^"]*{re.escape(os.path.basename(path))}", line (\d+)', done.stderr)
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
    return (int(lines[-1]) if lines else None), last


def cpu_shapes(path: str) -> dict[tuple[int, str], set[tuple[tuple[int, ...], str]]]:
    done = subprocess.run(
        [sys.executable, "-c", ORACLE, path, os.path.join(HERE, "..", "tests")], capture_output=True, text=True,
        timeout=120, cwd=os.path.dirname(path),
    )  # fmt: skip
    data = json.loads(done.stdout.strip().splitlines()[-1])
    out: dict[tuple[int, str], set[tuple[tuple[int, ...], str]]] = {}
    for line, target, shapes, dtypes in data["records"]:
        out.setdefault((line, target), set()).update(
            (tuple(s), d.removeprefix("torch.")) for s, d in zip(shapes, dtypes, strict=True)
        )
    return out


def main() -> None:
    from shapelens.analysis.engine import analyze
    from shapelens.analysis.worker_client import TraceWorker
    from shapelens.core.options import Options

    tests = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    scripts = [
        os.path.join(tests, kind, n)
        for kind in ("passes", "fails")
        for n in sorted(os.listdir(os.path.join(tests, kind)))
    ]
    scripts = [s for s in scripts if s.endswith(".py")]
    folder = tempfile.mkdtemp(prefix="shapelens-pytea-")
    worker = TraceWorker()
    worker.ensure_started()
    rows = []
    try:
        for original in scripts:
            path = os.path.join(folder, os.path.basename(original))
            shutil.copy(original, path)
            crash, why = real_run(path)
            truth = cpu_shapes(path)
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            started = time.perf_counter()
            reports = analyze(path, text, Options(), worker, root=folder)
            seconds = time.perf_counter() - started
            report = reports[os.path.abspath(path)]
            errors = [f for f in report.findings if f.severity.value == "error"]
            flagged_at = sorted({f.span.line for f in errors})
            hints = {(h.line, h.target): {(tuple(s), h.dtype) for s in h.shapes} for h in report.hints}
            wrong = [
                f"line {k[0]} {k[1]}: {sorted(v)} vs CPU {sorted(truth.get(k, set()))}"
                for k, v in hints.items()
                if k in truth and not v <= truth[k]
            ]
            missing = [f"line {k[0]} {k[1]}" for k in truth if k not in hints and (crash is None or k[0] < crash)]
            rows.append({
                "file": os.path.relpath(original, tests), "crash": crash, "why": why, "errors_at": flagged_at,
                "findings": [f"{f.code}@{f.span.line}" for f in report.findings], "seconds": round(seconds, 2),
                "hints": len(report.hints), "wrong": wrong, "missing": missing,
                "flagged": crash is not None and bool(errors),
                "at_crash_line": crash is not None and crash in flagged_at,
                "false_error": crash is None and bool(errors),
            })  # fmt: skip
            row = rows[-1]
            mark = "FLAG" if row["flagged"] else ("MISS" if crash else ("FALSE" if row["false_error"] else "ok"))
            print(f"{mark:5} {row['file']:45} crash={crash} errors={flagged_at} {seconds:.2f}s "
                  f"hints={row['hints']} wrong={len(wrong)} missing={len(missing)} {why[:60]}")  # fmt: skip
    finally:
        worker.close()
        shutil.rmtree(folder, ignore_errors=True)
    crashing = [r for r in rows if r["crash"] is not None]
    clean = [r for r in rows if r["crash"] is None]
    seconds = [r["seconds"] for r in rows]
    print()
    print("| PyTea unit tests (49) | Shapelens | PyTea |")
    print("| --- | --- | --- |")
    print(f"| crashing scripts flagged | {sum(r['flagged'] for r in crashing)} of {len(crashing)} "
          f"({sum(r['at_crash_line'] for r in crashing)} at the crash line) | 10 of 16 |")  # fmt: skip
    print(f"| error findings on the {len(clean)} clean scripts | {sum(r['false_error'] for r in clean)} | |")
    wrong, hinted = sum(len(r["wrong"]) for r in rows), sum(r["hints"] for r in rows)
    print(f"| hints differing from a CPU run | {wrong} of {hinted} | |")
    print(f"| CPU-run tensors without a hint | {sum(len(r['missing']) for r in rows)} | |")
    print(f"| seconds per file (warm worker) | median {statistics.median(seconds):.2f}, max {max(seconds):.2f} "
          f"| 1.5-6.7 |")  # fmt: skip
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
