"""pytorch/examples model file by model file (#8, #9): does each file get shapes with zero edits, and where not,
with one directive? The table the README's "Coverage on real code" section shows.

    .venv/bin/python bench/examples_reach.py [/work/real/examples] [--jobs 1] [--markdown]

A model file is a file that defines an `nn.Module` subclass, or builds a `torch.nn` layer at its top level
(regression's `fc = torch.nn.Linear(...)`). Zero edits: `shapelens check --format json` over all of them from
the repository's root, as a user runs it. A file "has shapes" when one of its lines gets a hint; a model is
"traced" when the JSON lists the inputs it was traced with (or the parent whose trace reached it).

With one directive: the files that got no shapes are copied (the whole repository, so their imports resolve)
into a temporary folder — never into the repository — with the one line `DIRECTIVES` names inserted above
the class, and checked again there. Findings: codes other than SL011 (what a script's top level skipped).
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

# file → (class, the directive line written above it): one line each, what a user would write
DIRECTIVES: dict[str, tuple[str, str]] = {
    "fx/replace_op.py": ("M", "# shapelens: x=(4, 8), y=(4, 8)"),
    "fx/native_interpreter/use_interpreter.py": ("MyElementwiseModule", "# shapelens: x=(4, 8), y=(4, 8)"),
    "distributed/rpc/pipeline/main.py": ("ResNetShard1", "# shapelens: init('cpu'), x_rref=(2, 3, 32, 32)"),
    "distributed/rpc/ddp_rpc/main.py": ("HybridModel", "# shapelens: init(None, 'cpu'), indices=(8,), offsets=(2,)"),
    # graph models: nodes × features and an adjacency matrix, which no layer says
    "gat/main.py": ("GAT", "# shapelens: init(16, 8, 2, 3), input_tensor=(10, 16), adj_mat=(10, 10)"),
    "gcn/main.py": ("GCN", "# shapelens: init(16, 8, 3), input_tensor=(10, 16), adj_mat=(10, 10)"),
}


@dataclass
class Row:
    path: str
    classes: list[str]
    top_level: bool  # a layer built at the top level (no class)
    forwards: list[str]  # the classes that define a `forward` of their own
    spans: dict[str, tuple[int, int]]  # each class's first and last line
    hints: int = 0
    traced: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    directive: str | None = None
    directive_hints: int | None = None
    directive_codes: dict[str, int] = field(default_factory=dict)
    directive_traced: list[str] = field(default_factory=list)


def _module_base(node: ast.expr) -> bool:
    return ast.unparse(node).split(".")[-1] == "Module"


def _top_level_layer(tree: ast.Module) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
            func = ast.unparse(stmt.value.func)
            layer = func.split(".")[-1]
            if func.startswith(("nn.", "torch.nn.")) and layer[:1].isupper() and not layer.endswith("Loss"):
                return True  # a loss (`criterion = nn.NLLLoss()`) is no model
    return False


def model_files(root: str) -> list[Row]:
    rows = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("cpp", "docs"))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    tree = ast.parse(handle.read())
            except SyntaxError:
                continue
            found = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and any(map(_module_base, n.bases))]
            classes = [n.name for n in found]
            forwards = [n.name for n in found if any(getattr(s, "name", "") == "forward" for s in n.body)]
            spans = {n.name: (n.lineno, n.end_lineno or n.lineno) for n in found}
            top = _top_level_layer(tree)
            if classes or top:
                rows.append(Row(os.path.relpath(path, root), classes, top, forwards, spans))
    return sorted(rows, key=lambda r: r.path)


def check(files: list[str], cwd: str, jobs: int) -> dict[str, Any]:
    shapelens = os.path.join(os.path.dirname(sys.executable), "shapelens")
    done = subprocess.run(
        [shapelens, "check", "--format", "json", "--exit-zero", "--jobs", str(jobs), *files],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    document = json.loads(done.stdout)
    return {os.path.normpath(f["path"]): f for f in document["files"]}


def _codes(report: dict[str, Any]) -> dict[str, int]:
    found = collections.Counter(
        f"{d['code']}/{d['severity'][0]}" for d in report["diagnostics"] if d["code"] != "SL011"
    )
    return dict(sorted(found.items()))


def _traced(report: dict[str, Any], spans: dict[str, tuple[int, int]]) -> list[str]:
    """The classes with a hint on one of their lines, or whose lines a parent's trace reached."""
    lines = {h["line"] for h in report["hints"]}
    covered = {m["name"] for m in report.get("models", []) if any("trace, which reached it" in n for n in m["notes"])}
    return [name for name, (first, last) in spans.items() if name in covered or lines & set(range(first, last + 1))]


def with_directive(rows: list[Row], root: str, jobs: int) -> None:
    wanted = [r for r in rows if r.path in DIRECTIVES and (not r.hints or DIRECTIVES[r.path][0] not in r.traced)]
    if not wanted:
        return
    scratch = tempfile.mkdtemp(prefix="examples_reach_")
    copy = os.path.join(scratch, "examples")
    try:
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pt", "*.pth", "data"))
        for row in wanted:
            cls, line = DIRECTIVES[row.path]
            target = os.path.join(copy, row.path)
            with open(target, encoding="utf-8") as handle:
                lines = handle.read().splitlines(keepends=True)
            at = next(i for i, text in enumerate(lines) if text.lstrip().startswith(f"class {cls}("))
            indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
            lines.insert(at, f"{indent}{line}\n")
            with open(target, "w", encoding="utf-8") as handle:
                handle.write("".join(lines))
            row.directive = f"`{line.removeprefix('# shapelens: ')}` on {cls}"
        reports = check([r.path for r in wanted], copy, jobs)
        for row in wanted:
            report = reports.get(os.path.normpath(row.path), {"hints": [], "diagnostics": []})
            row.directive_hints = len(report["hints"])
            row.directive_codes = _codes(report)
            with open(os.path.join(copy, row.path), encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            spans = {
                n.name: (n.lineno, n.end_lineno or n.lineno) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
            }
            row.directive_traced = _traced(report, spans)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", nargs="?", default="/work/real/examples")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", help="write the rows here")
    options = parser.parse_args()
    root = os.path.abspath(options.root)
    rows = model_files(root)
    started = time.monotonic()
    reports = check([r.path for r in rows], root, options.jobs)
    elapsed = time.monotonic() - started
    for row in rows:
        report = reports.get(os.path.normpath(row.path), {"hints": [], "diagnostics": [], "models": []})
        row.hints = len(report["hints"])
        row.traced = _traced(report, row.spans)
        row.codes = _codes(report)
        row.errors = [
            f"{d['code']}:{d['line']} {d['message'][:100]}" for d in report["diagnostics"] if d["severity"] == "error"
        ]
    with_directive(rows, root, options.jobs)
    print("| file | models | zero edits: hints | models with a forward traced | with ≤ 1 directive | findings |")
    print("| --- | --- | ---: | ---: | --- | --- |")
    for row in rows:
        models = ", ".join(row.classes) + (" + top-level layer" if row.top_level else "")
        if row.directive is not None:
            cls = DIRECTIVES[row.path][0]
            done = "traced" if cls in row.directive_traced else "not traced"
            one = f"{cls} {done} with {row.directive.split(' on ')[0]} ({row.directive_hints} hints)"
        elif row.hints and all(c in row.traced for c in row.forwards):
            one = "—"
        else:
            one = "no directive tried"
        codes = " ".join(f"{c}×{n}" for c, n in row.codes.items()) or "—"
        traced = f"{len(set(row.traced) & set(row.forwards))}/{len(row.forwards)}" if row.forwards else "—"
        print(f"| {row.path} | {models} | {row.hints} | {traced} | {one} | {codes} |")
    lit = sum(1 for r in rows if r.hints)
    lit_one = lit + sum(1 for r in rows if not r.hints and r.directive_hints)
    with_one = sum(len(set(r.traced) & set(r.forwards)) for r in rows) + sum(
        1 for r in rows if r.directive is not None and DIRECTIVES[r.path][0] in r.directive_traced
    )
    errors = sum(len(r.errors) for r in rows)
    forwards = sum(len(r.forwards) for r in rows)
    traced = sum(len(set(r.traced) & set(r.forwards)) for r in rows)
    print(f"\n{traced}/{forwards} model classes with a forward traced with zero edits, {with_one} with at most one")
    print("directive a file; not traced with zero edits:")
    for row in rows:
        missing = [c for c in row.forwards if c not in row.traced]
        if missing:
            print(f"  {row.path}: {', '.join(missing)}")
    sl004 = sum(n for r in rows for c, n in r.codes.items() if c.startswith("SL004"))
    print(
        f"\n{lit}/{len(rows)} model files with shapes with zero edits, {lit_one}/{len(rows)} with at most one "
        f"directive; {errors} error findings, {sl004} SL004; zero-edit check {elapsed:.0f} s (--jobs {options.jobs})"
    )
    for row in rows:
        for error in row.errors:
            print(f"  ERROR {row.path}: {error}")
    if options.json:
        with open(options.json, "w") as handle:
            json.dump([row.__dict__ for row in rows], handle, indent=1)


if __name__ == "__main__":
    main()
