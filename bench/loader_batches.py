"""Training scripts whose DataLoader's dataset cannot be read under a trace (a download, a data folder that is
not there): how many of their loops over a loader get a batch made from the model's inferred input, and how
many lines inside those loops get shapes (#10).

    .venv/bin/python bench/loader_batches.py FILE_OR_FOLDER... [--json out.json]

Each file is checked in place as `shapelens check` does (one warm trace worker, the file's folder as the root;
the trace writes and downloads nothing). A loop "over a loader" is a top-level `for` whose iterable names a
variable bound to `DataLoader(...)` anywhere in the file (at the top level, in `main()`), or a parameter
named for a loader (`train(model, train_loader, ...)`); its lines are the loop's own lines.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time


def loader_loops(tree: ast.Module) -> list[tuple[int, int]]:
    """(first, last) lines of the loops over a DataLoader: a `for` anywhere in the file (the top level, `main()`,
    `train(model, loader, ...)`) whose iterable names a variable bound to `DataLoader(...)` anywhere in the file,
    or a parameter named for a loader (`train_loader`, `dataloader`)."""
    loaders = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "DataLoader":
                loaders |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    if not loaders:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.For):
            read = {n.id for n in ast.walk(node.iter) if isinstance(n, ast.Name)}
            if read & loaders or any("loader" in name.lower() for name in read):
                out.append((node.lineno, node.end_lineno or node.lineno))
    return out


def main(argv: list[str]) -> None:
    from shapelens.analysis.engine import analyze
    from shapelens.analysis.worker_client import TraceWorker
    from shapelens.core.options import Options

    out_json = None
    if "--json" in argv:
        index = argv.index("--json")
        out_json = argv[index + 1]
        argv = argv[:index] + argv[index + 2 :]
    files = []
    for arg in argv:
        if os.path.isdir(arg):
            files += sorted(os.path.join(d, f) for d, _, fs in os.walk(arg) for f in fs if f.endswith(".py"))
        else:
            files.append(arg)
    worker = TraceWorker()
    rows = []
    try:
        for path in files:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            try:
                loops = loader_loops(ast.parse(text))
            except SyntaxError:
                continue
            if not loops:
                continue
            started = time.perf_counter()
            reports = analyze(path, text, Options(), worker, root=os.path.dirname(path))
            seconds = time.perf_counter() - started
            report = reports.get(path)
            if report is None:
                continue
            script = next((m for m in report.models if m.name == "<module>"), None)
            notes = script.notes if script else []
            made = [n for n in notes if "batch from the model's inferred input" in n]
            lit = {h.line for h in report.hints if any(a <= h.line <= b for a, b in loops)}
            # error findings in every file the check reported (a dataset class in datasets.py as well)
            errors = [(os.path.basename(r.path), f.code, f.span.line) for r in reports.values() for f in r.findings
                      if f.severity.value == "error"]  # fmt: skip
            row = {"file": path, "loops": len(loops), "made": len(made), "lines_with_shapes_in_loops": len(lit)}
            rows.append({**row, "errors": errors, "seconds": round(seconds, 2), "notes": notes})
            print(f"{os.path.relpath(path):70} loops={len(loops)} made={len(made)} lit={len(lit)} "
                  f"errors={errors} {seconds:.1f}s", flush=True)  # fmt: skip
    finally:
        worker.close()
    with_made = sum(1 for r in rows if r["made"])
    print(f"\n{len(rows)} files with a loop over a DataLoader; {with_made} got a made batch; "
          f"{sum(r['lines_with_shapes_in_loops'] for r in rows)} loop lines with shapes; "
          f"{sum(len(r['errors']) for r in rows)} error findings")  # fmt: skip
    if out_json:
        with open(out_json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
