"""Notebook parity on real files: each .py file given is also written as a notebook (one code cell per
top-level statement, a markdown cell before each), both are checked with `shapelens check --format json`, and
the notebook's hints and diagnostics, mapped from (cell, line) back to the file's lines, are compared with the
file's own. The notebook and the file are one program, so they must agree exactly; the times are printed.

Usage: .venv/bin/python bench/notebook_parity.py FILE.py...   (run from the repository root)
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def as_notebook(text: str) -> tuple[dict[str, object], dict[tuple[int, int], int]]:
    """The file as cells, and (cell number, line in cell) -> file line."""
    lines = text.split("\n")
    tree = ast.parse(text)
    starts = [n.decorator_list[0].lineno if getattr(n, "decorator_list", None) else n.lineno for n in tree.body]
    bounds = [*starts[1:], len(lines) + 1]
    cells: list[dict[str, object]] = []
    where: dict[tuple[int, int], int] = {}
    for start, end in zip([1, *starts[1:]], bounds, strict=True):
        cells.append({"cell_type": "markdown", "metadata": {}, "source": [f"Lines {start}-{end - 1}"]})
        chunk = lines[start - 1 : end - 1]
        number = len(cells) + 1
        for offset in range(len(chunk)):
            where[(number, offset + 1)] = start + offset
        source = [line + "\n" for line in chunk[:-1]] + chunk[-1:]
        cells.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source})
    document = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return document, where


def check(path: Path) -> tuple[dict[str, object], float]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "shapelens.cli", "check", path.name, "--format", "json"],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(out.stdout), time.perf_counter() - started


def facts(document: dict[str, object], name: str, where: dict[tuple[int, int], int] | None) -> set[tuple[object, ...]]:
    found: set[tuple[object, ...]] = set()
    for entry in document["files"]:  # type: ignore[attr-defined]
        if entry["path"] != name:
            continue
        for hint in entry["hints"]:
            line = hint["line"] if where is None else where[(hint["cell"], hint["line"])]
            found.add(("hint", line, hint["target"], tuple(hint["shape"])))
        for diagnostic in entry["diagnostics"]:
            line = diagnostic["line"] if where is None else where[(diagnostic["cell"], diagnostic["line"])]
            found.add(("diagnostic", line, diagnostic["column"], diagnostic["code"]))
    return found


def main(files: list[str]) -> None:
    for name in files:
        source = Path(name)
        with tempfile.TemporaryDirectory() as folder:
            py = Path(folder) / source.name
            shutil.copy(source, py)
            document, where = as_notebook(py.read_text())
            nb = py.with_suffix(".ipynb")
            nb.write_text(json.dumps(document, indent=1))
            as_file, file_s = check(py)
            as_nb, nb_s = check(nb)
            ours, theirs = facts(as_file, py.name, None), facts(as_nb, nb.name, where)
            cells = sum(1 for c in document["cells"] if c["cell_type"] == "code")  # type: ignore[attr-defined]
            verdict = "same" if ours == theirs else f"DIFFER: file only {ours - theirs}, notebook only {theirs - ours}"
            times = f"{file_s:.1f} s as .py, {nb_s:.1f} s as .ipynb"
            print(f"{name}: {cells} cells, {len(ours)} hints+diagnostics; {times}: {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
