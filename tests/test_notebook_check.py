"""`shapelens check` on Jupyter notebooks: the code cells traced as one program (a model defined in one cell,
called in another), findings and hints reported per cell (`nb.ipynb:cell 3:5:29`, JSON `"cell"`), shapes
against a real CPU run of the same code, and `--fix` rewriting the notebook's JSON with everything else kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from oracle import run_on_cpu
from shapelens.analysis import notebook
from shapelens.cli.formats import render_github, sarif_document
from shapelens.core.findings import Edit, FileReport, Finding, Fix, Related, Severity, Span
from test_formats import assert_valid_sarif

IMPORTS = ["%matplotlib inline\n", "import torch\n", "import torch.nn as nn"]
MODEL = [
    "class Net(nn.Module):\n",
    "    def __init__(self):\n",
    "        super().__init__()\n",
    "        self.conv = nn.Conv2d(3, 8, 3)\n",
    "        self.fc = nn.Linear(100, 10)\n",  # 8 * 30 * 30 = 7200 arrive after the flatten
    "\n",
    "    def forward(self, x):\n",
    "        x = self.conv(x)\n",
    "        x = torch.flatten(x, 1)\n",
    "        return self.fc(x)",
]
CALL = ["model = Net()\n", "out = model(torch.randn(4, 3, 32, 32))"]
OUTPUT = {"output_type": "stream", "name": "stdout", "text": ["a plot was here ✓\n"]}


def cell(kind: str, source: list[str], outputs: list[Any] | None = None, count: int | None = None) -> dict[str, Any]:
    made: dict[str, Any] = {"cell_type": kind, "metadata": {"tags": ["kept"]}, "source": source}
    if kind == "code":
        made |= {"execution_count": count, "outputs": outputs or []}
    return made


def write_notebook(folder: Path, cells: list[dict[str, Any]], name: str = "nb.ipynb") -> Path:
    document = {
        "cells": cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = folder / name
    # as Jupyter writes a notebook (nbformat.write): indent 1, sorted keys, raw UTF-8, a final newline
    path.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def model_notebook(folder: Path) -> Path:
    return write_notebook(
        folder,
        [
            cell("markdown", ["# A small net\n", "Markdown is not code."]),
            cell("code", IMPORTS, count=1),
            cell("code", MODEL, count=2),
            cell("code", CALL, [OUTPUT], count=3),
        ],
    )


def check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shapelens.cli", "check", *args], cwd=cwd, capture_output=True, text=True, timeout=180
    )


def cpu_hints_by_cell(folder: Path, cells: list[list[str]], first_cell: int) -> dict[tuple[int, int, str], list]:
    """The shapes a real CPU run binds, keyed by (cell number, line in the cell, target): the code cells
    written one after another as a script (a magic line left blank), run by the oracle, each line mapped
    back to its cell by counting lines here (not with Shapelens' own map)."""
    lines: list[str] = []
    where: list[tuple[int, int]] = []
    for number, source in enumerate(cells, start=first_cell):
        for line_no, line in enumerate("".join(source).split("\n"), start=1):
            lines.append("" if line.startswith("%") else line)
            where.append((number, line_no))
    script = folder / "as_script.py"
    script.write_text("\n".join(lines) + "\n")
    run = run_on_cpu(str(script), "Net", inputs=[(4, 3, 32, 32)])
    assert run.error is None, run.error
    return {(*where[r.line - 1], r.target): r.shapes for r in run.records if not r.target.startswith("self.")}


def json_hints(document: dict[str, Any]) -> dict[tuple[int, int, str], list]:
    return {
        (h["cell"], h["line"], h["target"]): [tuple(h["shape"])] for entry in document["files"] for h in entry["hints"]
    }


def test_text_names_the_cell_and_the_line_in_it(tmp_path: Path) -> None:
    model_notebook(tmp_path)
    result = check("nb.ipynb", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    # the model is cell 3 (the markdown cell counts), `nn.Linear(100, ...)` its line 5, column 29
    assert "nb.ipynb:cell 3:5:29: SL101 [error] Linear(in_features=100) receives [4, 7200]" in result.stdout
    assert "fix (safe): Set in_features to 8 * 30 * 30" in result.stdout
    assert "── nb.ipynb:cell 3 " in result.stdout and "x = torch.flatten(x, 1)  # x: [4, 7200]" in result.stdout
    # the call cell's top level: the statement that bound a tensor, shown alone
    assert "── nb.ipynb:cell 4 " in result.stdout
    assert "   2 │ out = model(torch.randn(4, 3, 32, 32))  # out: [4, 10]" in result.stdout


def test_json_gives_the_cell_and_fix_rewrites_only_that_cell(tmp_path: Path) -> None:
    path = model_notebook(tmp_path)
    before = path.read_text(encoding="utf-8")
    result = check("nb.ipynb", "--format", "json", cwd=tmp_path)
    document = json.loads(result.stdout)
    [diagnostic] = [d for entry in document["files"] for d in entry["diagnostics"]]
    assert (diagnostic["code"], diagnostic["cell"], diagnostic["line"], diagnostic["column"]) == ("SL101", 3, 5, 29)
    [edit] = diagnostic["fixes"][0]["edits"]
    assert (edit["path"], edit["cell"], edit["line"], edit["new_text"]) == ("nb.ipynb", 3, 5, "8 * 30 * 30")
    assert {entry["path"] for entry in document["files"]} == {"nb.ipynb"}

    fixed = check("nb.ipynb", "--fix", cwd=tmp_path)
    assert "fixed 1 place in nb.ipynb" in fixed.stderr
    after = path.read_text(encoding="utf-8")
    # byte for byte the same notebook (outputs, metadata, ✓, indent 1, key order) but for the one line
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]
    assert changed == [
        ('    "        self.fc = nn.Linear(100, 10)\\n",', '    "        self.fc = nn.Linear(8 * 30 * 30, 10)\\n",')
    ]
    assert after.endswith("}\n")

    # the fixed notebook: no finding, and every hint is what a CPU run of the same cells binds
    clean = check("nb.ipynb", "--format", "json", cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout
    truth = cpu_hints_by_cell(
        tmp_path, [IMPORTS, [*MODEL[:4], "        self.fc = nn.Linear(8 * 30 * 30, 10)\n", *MODEL[5:]]], 2
    )
    forward = {k: v for k, v in truth.items() if k[0] == 3}
    assert forward and json_hints(json.loads(clean.stdout)) | forward == json_hints(json.loads(clean.stdout))
    assert {k: v for k, v in json_hints(json.loads(clean.stdout)).items() if k[0] == 3} == forward


def test_magics_and_a_broken_cell_cost_the_other_cells_nothing(tmp_path: Path) -> None:
    write_notebook(
        tmp_path,
        [
            cell("code", ["!pip install torch\n", "%load_ext autoreload\n", *IMPORTS]),
            cell("code", ["%%bash\n", "echo this is not python ("]),
            cell("code", ["def broken(:\n", "    pass"]),
            cell("code", MODEL),
            cell("code", ["files = !ls\n", "for i in range(1):\n", "    %time pass\n", *CALL]),
        ],
    )
    result = check("nb.ipynb", "--format", "json", cwd=tmp_path)
    diagnostics = [
        (d["cell"], d["line"], d["code"]) for e in json.loads(result.stdout)["files"] for d in e["diagnostics"]
    ]
    # the broken cell has its syntax error; the model, called from the last cell, is still traced
    assert sorted(diagnostics) == [(3, 1, "SL000"), (4, 5, "SL101")]


def test_a_folder_includes_its_notebooks_and_a_bad_one_says_why(tmp_path: Path) -> None:
    model_notebook(tmp_path)
    (tmp_path / "notes.ipynb").write_text("{ not json")
    result = check(".", "--format", "json", "--no-trace", cwd=tmp_path)
    files = {(e["path"], e.get("cell")) for e in json.loads(result.stdout)["files"]}
    assert ("nb.ipynb", None) in files  # read, traced nothing (--no-trace), nothing to say: still listed
    [bad] = [e for e in json.loads(result.stdout)["files"] if e["path"] == "notes.ipynb"]
    [diagnostic] = bad["diagnostics"]
    assert diagnostic["code"] == "SL007" and "not a notebook: its JSON does not parse" in diagnostic["message"]


def test_only_python_notebooks_are_read_as_python() -> None:
    code = {"cell_type": "code", "source": "x <- c(1, 2)"}
    r_notebook = {"cells": [code], "metadata": {"kernelspec": {"language": "R", "name": "ir"}}}
    assert notebook.code_cells(r_notebook) == []
    python = {"cells": [code], "metadata": {"language_info": {"name": "python"}, "kernelspec": {"language": "R"}}}
    assert [c.text for c in notebook.code_cells(python)] == ["x <- c(1, 2)"]
    assert len(notebook.code_cells({"cells": [code]})) == 1  # no metadata: Python, as Jupyter assumes


def test_a_top_level_await_is_no_syntax_error() -> None:
    cells = [notebook.CodeCell(0, "import asyncio\n"), notebook.CodeCell(1, "x = 1\nawait asyncio.sleep(0)")]
    built = notebook.build("/nb.ipynb", cells, str)
    finding = built.broken[1]
    assert (finding.code, finding.severity.value, finding.span.line) == ("SL011", "information", 2)
    assert built.virtual == "import asyncio\n"  # the rest of the program is traced without it
    returning = notebook.build("/nb.ipynb", [notebook.CodeCell(0, "x = 1\nreturn x")], str).broken[0]
    assert (returning.code, returning.span.line, returning.message) == (
        "SL000",
        2,
        "cell does not compile: 'return' outside function",
    )


def test_cell_lines_keep_their_columns_and_count() -> None:
    source = "x = 1\n%time y = 2\n  !ls\nz = x % 2\nhelp?\n"
    assert notebook.python_lines(source) == ["x = 1", "", "  pass", "z = x % 2", ""]
    built = notebook.build("/nb.ipynb", [notebook.CodeCell(1, "a = 1\n"), notebook.CodeCell(4, "b = a\nc = b")], str)
    assert built.virtual == "a = 1\nb = a\nc = b\n"
    assert [built.locate(n) for n in (1, 2, 3, 4)] == [(1, 1), (4, 1), (4, 2), None]


def test_github_and_sarif_name_the_notebook_and_say_the_cell(tmp_path: Path, monkeypatch: Any) -> None:
    """Neither format has a place for a cell: the notebook file, and the cell and line in the message (a cell's
    line is no line of the notebook's JSON, so no line number that would point at the wrong place)."""
    monkeypatch.chdir(tmp_path)
    cell = notebook.cli_cell_path(str(tmp_path / "nb.ipynb"), 2)
    span = Span(cell, 5, 29, 5, 32)
    fix = Fix("Set in_features to 8 * 30 * 30", (Edit(span, "8 * 30 * 30"),), True)
    related = (Related(Span(cell, 10, 9, 10, 26), "Linear meets its input here: [4, 7200]"),)
    found = Finding("SL101", Severity.ERROR, span, "Linear(in_features=100) receives [4, 7200]", (fix,), related)
    reports = [FileReport(cell, findings=[found])]
    assert render_github(reports) == (
        "::error file=nb.ipynb,title=SL101 linear-in-features::"
        "cell 3, line 5, column 29: Linear(in_features=100) receives [4, 7200]\n"
    )
    document = sarif_document(reports)
    assert_valid_sarif(document)
    [result] = document["runs"][0]["results"]
    assert result["message"]["text"].startswith("cell 3, line 5, column 29: Linear(in_features=100)")
    assert result["locations"] == [
        {"physicalLocation": {"artifactLocation": {"uri": "nb.ipynb", "uriBaseId": "%SRCROOT%"}}}
    ]
    assert "fixes" not in result  # a region inside a cell is not one of the notebook file's
