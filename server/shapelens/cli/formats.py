"""The faces of `shapelens check`'s result: text (each traced function with its shapes, then ruff-style findings),
JSON (contract version 2; version 1 on request), GitHub Actions workflow commands and SARIF 2.1.0."""

from __future__ import annotations

import ast
import os
import urllib.parse
from pathlib import Path
from typing import Any

from shapelens import __version__
from shapelens.analysis import notebook
from shapelens.analysis.rules import RULES
from shapelens.core.findings import (
    FileReport,
    Finding,
    Fix,
    Severity,
    Span,
    TracedModel,
    hint_label,
    to_json,
)
from shapelens.core.source import Source, parse, read_source_or_empty, split_lines


def display_path(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


# -- JSON ------------------------------------------------------------------------------------------------


JSON_VERSIONS = (1, 2)
JSON_VERSION = 2


def json_document(reports: list[FileReport], version: int = JSON_VERSION) -> dict[str, object]:
    """The `--format json` contract: lines and columns 1-based. A hint's `line` is its statement's first line;
    `end_line`/`column` are where its label goes (just after the statement's last character).

    Version 2 (the default) is version 1 and the symbolic pass's account (#13): a hint's and a model input's
    `"symbolic"` (`["B", 16, "H/2", "W/2"]`: a number where the model fixes the size, a name or expression where
    it is free), a model's `"dims"` (each name's size in the traced example) and `"accepts"` (the input sizes
    the model accepts), each present only where the symbolic pass said it. `version=1` is version 1 exactly."""
    if version not in JSON_VERSIONS:
        raise ValueError(f"JSON contract version {version}: expected one of {JSON_VERSIONS}")
    return {"version": version, "files": [_notebook_cell(_json_file(r, version), r.path) for r in reports]}


def _json_file(report: FileReport, version: int) -> dict[str, object]:
    hints = []
    for hint in sorted(report.hints, key=lambda h: (h.line, h.end_column)):
        for index, shape in enumerate(hint.shapes):
            entry: dict[str, object] = {
                "line": hint.line,  # the statement's first line: the line a user (or a CPU run) names
                "column": hint.end_column,  # with end_line: where the label goes, just after the statement
                "end_line": hint.end_line,
                "target": hint.target,
                "shape": list(shape),
            }
            form = hint.symbolic_of(index)
            if version >= 2 and form is not None:
                entry["symbolic"] = list(form)
            entry["dtype"] = hint.dtype
            entry["label"] = hint_label(shape, hint.dtype)
            if hint.unknown:
                entry["unknown"] = hint.unknown
            hints.append(entry)
    return {
        "path": display_path(report.path),
        "hints": hints,
        "diagnostics": [_json_finding(f, version) for f in _sorted_findings(report.findings)],
        # how each model of the file was traced: "input_source" tells a guess ("inferred", "workspace") from
        # an input the user gave ("directive", "example")
        "models": [_json_model(m, version) for m in report.models],
    }


def _json_model(model: TracedModel, version: int) -> dict[str, object]:
    inputs = []
    for given in model.inputs:
        entry: dict[str, object] = {"name": given.name, "shape": _list(given.shape)}
        if version >= 2 and given.symbolic is not None:
            entry["symbolic"] = list(given.symbolic)
        entry |= {"dtype": given.dtype, "note": given.note}
        inputs.append(entry)
    out: dict[str, object] = {
        "name": model.name,
        "line": model.line,
        "input_source": model.input_source,
        "inputs": inputs,
        "notes": list(model.notes),
    }
    if version >= 2 and model.dims:
        out["dims"] = dict(model.dims)
    if version >= 2 and model.accepts:
        out["accepts"] = model.accepts
    return out


def _notebook_cell(entry: dict[str, Any], path: str) -> dict[str, Any]:
    """A notebook cell's entry: `path` the notebook's, `cell` (1-based, `cells[cell - 1]` in its JSON) on the
    entry and on each hint, diagnostic and fix edit; their lines and columns count within the cell."""
    cell = notebook.parse_cell_path(path)
    if cell is None:
        return entry
    number = cell[1] + 1
    entry["path"], entry["cell"] = display_path(cell[0]), number
    for item in [*entry["hints"], *entry["diagnostics"]]:
        item["cell"] = number
    for diagnostic in entry["diagnostics"]:
        places = [edit for fix in diagnostic["fixes"] for edit in fix["edits"]] + diagnostic.get("related", [])
        for place in places:
            where = notebook.parse_cell_path(place["path"])
            if where is not None:
                place["path"], place["cell"] = where[0], where[1] + 1
    return entry


def _in_cell(span: Span) -> str:
    """The words `cell 3, line 5, column 29: ` for a place in a notebook cell ("" elsewhere): what a format
    that can only name the notebook file says of the place."""
    cell = notebook.parse_cell_path(span.path)
    return "" if cell is None else f"cell {cell[1] + 1}, line {span.line}, column {span.column}: "


def _source_text(path: str) -> str:
    """A file's text, or a notebook cell's source for a `nb.ipynb:cell N` path ("" when unreadable)."""
    cell = notebook.parse_cell_path(path)
    if cell is None:
        return read_source_or_empty(path)
    try:
        return notebook.load_cell_text(read_source_or_empty(cell[0]), cell[1])
    except notebook.NotebookError:
        return ""


def _list(shape: tuple[int | None, ...] | None) -> list[int | None] | None:
    return None if shape is None else list(shape)


def _json_finding(finding: Finding, version: int) -> dict[str, object]:
    span = finding.span
    out: dict[str, object] = {
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
        "code": finding.code,
        "severity": finding.severity.value,
        "message": finding.message,
        "fixes": [
            {
                "title": fix.title,
                "safe": fix.safe,
                "edits": [
                    {**to_json(e.span), "path": display_path(e.span.path), "new_text": e.new_text} for e in fix.edits
                ],
            }
            for fix in finding.fixes
        ],
    }
    if version >= 2 and finding.related:
        # the second places a finding names (LSP relatedInformation): a wrong constructor's finding points at
        # the line where the layer meets its input, where a CPU run raises
        out["related"] = [
            {**to_json(r.span), "path": display_path(r.span.path), "message": r.message} for r in finding.related
        ]
    return out


def _sorted_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.span.line, f.span.column, f.code))


# -- GitHub Actions annotations --------------------------------------------------------------------------

_GITHUB_LEVEL = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFORMATION: "notice",
    Severity.HINT: "notice",
}


def render_github(reports: list[FileReport]) -> str:
    """One workflow command per finding (`::error file=...,line=...::message`): GitHub Actions shows each as
    an annotation on the pull request's diff."""
    out = []
    for report in reports:
        for finding in _sorted_findings(report.findings):
            span = finding.span
            rule = RULES.get(finding.code)
            properties = {
                "file": display_path(span.path),
                "line": span.line,
                "col": span.column,
                "endLine": span.end_line,
                "endColumn": span.end_column,
                "title": f"{finding.code} {rule.name}" if rule else finding.code,
            }
            message = finding.message
            cell = notebook.parse_cell_path(span.path)
            if cell is not None:  # no line of the notebook's JSON is the cell's: the file, and the place in words
                properties = {"file": display_path(cell[0]), "title": properties["title"]}
                message = _in_cell(span) + message
            listed = ",".join(f"{key}={_github_property(str(value))}" for key, value in properties.items())
            out.append(f"::{_GITHUB_LEVEL[finding.severity]} {listed}::{_github_data(message)}")
    return "".join(line + "\n" for line in out)


def _github_data(text: str) -> str:
    """A workflow command's message, escaped as the Actions runner reads it back."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _github_property(text: str) -> str:
    """A workflow command's property value: a message's escapes, and `:` and `,` that would end the value."""
    return _github_data(text).replace(":", "%3A").replace(",", "%2C")


# -- SARIF -----------------------------------------------------------------------------------------------

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/shapelens/shapelens"
_SARIF_LEVEL = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFORMATION: "note",
    Severity.HINT: "note",
}


def sarif_document(reports: list[FileReport]) -> dict[str, object]:
    """SARIF 2.1.0 (what GitHub code scanning uploads): one run, every rule of the registry, a result per
    finding. Lines are 1-based; columns are 1-based UTF-16 code units (SARIF's default `columnKind`), and
    URIs are relative to the current folder (`%SRCROOT%`) where the file lies below it."""
    codes = list(RULES)
    columns = _Utf16Columns()
    results = [
        _sarif_result(finding, codes, columns) for report in reports for finding in _sorted_findings(report.findings)
    ]
    rules = [
        {
            "id": rule.code,
            "name": rule.name,
            "shortDescription": {"text": _first_sentence(rule.summary)},
            "fullDescription": {"text": rule.summary},
            "helpUri": rule.url,
            "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
            "properties": {"needsTrace": rule.needs_trace},
        }
        for rule in RULES.values()
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "shapelens",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path(os.getcwd()).as_uri() + "/"}},
                "columnKind": "utf16CodeUnits",
                "results": results,
            }
        ],
    }


def _sarif_result(finding: Finding, codes: list[str], columns: _Utf16Columns) -> dict[str, object]:
    result: dict[str, Any] = {"ruleId": finding.code}
    if finding.code in codes:
        result["ruleIndex"] = codes.index(finding.code)
    result["level"] = _SARIF_LEVEL[finding.severity]
    result["message"] = {"text": _in_cell(finding.span) + finding.message}
    result["locations"] = [_sarif_location(finding.span, columns)]
    if finding.related:
        result["relatedLocations"] = [
            {"id": i, **_sarif_location(r.span, columns), "message": {"text": r.message}}
            for i, r in enumerate(finding.related)
        ]
    if finding.fixes and notebook.parse_cell_path(finding.span.path) is None:  # a region of a cell: not SARIF's
        result["fixes"] = [_sarif_fix(fix_, columns) for fix_ in finding.fixes]
    return result


def _sarif_fix(fix_: Fix, columns: _Utf16Columns) -> dict[str, object]:
    by_path: dict[str, list[dict[str, object]]] = {}
    for edit in fix_.edits:
        by_path.setdefault(edit.span.path, []).append(
            {"deletedRegion": _sarif_region(edit.span, columns), "insertedContent": {"text": edit.new_text}}
        )
    return {
        "description": {"text": f"{fix_.title} ({'safe' if fix_.safe else 'unsafe'})"},
        "artifactChanges": [
            {"artifactLocation": _sarif_artifact(path), "replacements": replacements}
            for path, replacements in by_path.items()
        ],
    }


def _sarif_location(span: Span, columns: _Utf16Columns) -> dict[str, object]:
    cell = notebook.parse_cell_path(span.path)
    if cell is not None:  # a notebook: the file only, the cell and line are in the message
        return {"physicalLocation": {"artifactLocation": _sarif_artifact(cell[0])}}
    return {
        "physicalLocation": {"artifactLocation": _sarif_artifact(span.path), "region": _sarif_region(span, columns)}
    }


def _sarif_artifact(path: str) -> dict[str, str]:
    shown = display_path(path)
    if os.path.isabs(shown):  # outside the current folder: an absolute file: URI of its own
        return {"uri": Path(shown).as_uri()}
    return {"uri": urllib.parse.quote(Path(shown).as_posix()), "uriBaseId": "%SRCROOT%"}


def _sarif_region(span: Span, columns: _Utf16Columns) -> dict[str, int]:
    return {
        "startLine": span.line,
        "startColumn": columns(span.path, span.line, span.column),
        "endLine": span.end_line,
        "endColumn": columns(span.path, span.end_line, span.end_column),
    }


class _Utf16Columns:
    """Our 1-based character columns as SARIF's 1-based UTF-16 columns (a character outside the BMP, an emoji
    in a comment or string, counts two), reading each file once."""

    def __init__(self) -> None:
        self._lines: dict[str, list[str]] = {}

    def __call__(self, path: str, line: int, column: int) -> int:
        if path not in self._lines:
            self._lines[path] = split_lines(_source_text(path))
        lines = self._lines[path]
        before = lines[line - 1][: column - 1] if 0 < line <= len(lines) else ""
        return column + sum(1 for char in before if ord(char) > 0xFFFF)


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[: end + 1]


# -- text ------------------------------------------------------------------------------------------------


def render_text(reports: list[FileReport], summary: bool = True) -> str:
    """Each traced function's source with shapes at the end of each statement, then ruff-style findings, then
    (with `summary`) the count of findings."""
    out: list[str] = []
    for report in reports:
        out += _annotated_source(report)
    total = 0
    for report in reports:
        for finding in _sorted_findings(report.findings):
            total += 1
            span = finding.span
            out.append(
                f"{display_path(span.path)}:{span.line}:{span.column}: {finding.code} "
                f"[{finding.severity.value}] {finding.message}"
            )
            for place in finding.related:
                where = place.span
                out.append(f"  {display_path(where.path)}:{where.line}:{where.column}: {place.message}")
            for fix in finding.fixes:
                out.append(f"  fix ({'safe' if fix.safe else 'unsafe'}): {fix.title}")
    if summary:
        out.append(summary_line(total))
    return "\n".join(out) + "\n" if out else ""


def summary_line(total: int) -> str:
    return f"Found {total} finding{'s' if total != 1 else ''}." if total else "No findings."


def _annotated_source(report: FileReport) -> list[str]:
    """Each function the trace went through, with the shapes at the end of the statements that bound them, then
    the top-level statements that bound tensors."""
    if not report.hints:
        return []
    parsed = parse(report.path, _source_text(report.path))
    if not isinstance(parsed, Source):
        return []
    tree = parsed.tree
    lines = parsed.lines
    by_line: dict[int, list[str]] = {}
    for hint in sorted(report.hints, key=lambda h: h.end_column):
        labels = " | ".join(hint_label(s, hint.dtype) for s in hint.shapes)
        by_line.setdefault(hint.end_line, []).append(f"{hint.target}: {labels}")
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    shown = sorted(
        {
            min((f for f in functions if f.lineno <= line <= (f.end_lineno or f.lineno)), key=_size, default=None)
            for line in by_line
        }
        - {None},
        key=lambda f: f.lineno,  # type: ignore[union-attr]
    )
    out = [f"── {display_path(report.path)} " + "─" * 40]
    for function in shown:
        assert function is not None
        first, last = function.lineno, function.end_lineno or function.lineno
        width = min(max(len(lines[i - 1]) for i in range(first, last + 1)), 88)
        for number in range(first, last + 1):
            line = lines[number - 1]
            note = by_line.get(number)
            out.append(f"{number:4} │ {line.ljust(width)}  # {' · '.join(note)}" if note else f"{number:4} │ {line}")
        out.append("")
    # Statements outside any function (a script's or a notebook cell's top level): each hinted one alone.
    inside = {n for f in functions for n in range(f.lineno, (f.end_lineno or f.lineno) + 1)}
    top = sorted({n for h in report.hints if h.end_line not in inside for n in range(h.line, h.end_line + 1)})
    if top:
        width = min(max(len(lines[n - 1]) for n in top), 88)
        for number in top:
            note = by_line.get(number)
            line = lines[number - 1]
            out.append(f"{number:4} │ {line.ljust(width)}  # {' · '.join(note)}" if note else f"{number:4} │ {line}")
        out.append("")
    return out


def _size(node: ast.AST) -> int:
    return (node.end_lineno or node.lineno) - node.lineno  # type: ignore[attr-defined]
