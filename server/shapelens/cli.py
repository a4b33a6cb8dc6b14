"""Command line: `shapelens serve` (the language server over stdio) and `shapelens check` (the same findings
as text or JSON, for CI, pre-commit and any editor).

Exit status of `check`: 0 without error findings, 1 with any (an unreadable file is one: SL007), 2 for a usage
error or a path that does not exist.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence

from shapelens.analysis import edits
from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.findings import FileReport, Finding, Severity, Span, hint_label, to_json
from shapelens.core.options import DEVICES, Options
from shapelens.core.source import Source, parse, read_source, read_source_or_empty

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shapelens", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the language server over stdio")
    check = sub.add_parser("check", help="trace the models in files or folders and report shape findings")
    check.add_argument("paths", nargs="+", metavar="PATH", help="a .py file or a folder (all *.py below it)")
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--device", choices=DEVICES, default="meta", help="where tensors live (default meta)")
    check.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds per model (default 10)")
    check.add_argument("--fix", action="store_true", help="apply the fixes marked safe")
    check.add_argument("--no-trace", action="store_true", help="static findings only; run no user code")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from shapelens.lsp.server import main as serve

        serve()
        return EXIT_OK
    return run_check(args)


def _positive_float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:  # nan and inf parse as floats, and no trace ends with them
        raise argparse.ArgumentTypeError("must be a positive, finite number of seconds")
    return number


def collect_files(paths: Iterable[str]) -> list[str]:
    """The .py files named or below the folders named; raises FileNotFoundError for a missing path."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
                found += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".py")]
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(path)
    return found


def run_check(args: argparse.Namespace) -> int:
    try:
        files = collect_files(args.paths)
    except FileNotFoundError as err:
        print(f"shapelens: no such file or folder: {err}", file=sys.stderr)
        return EXIT_USAGE
    options = Options(device=args.device, timeout=args.timeout, trusted=not args.no_trace)
    worker = None if args.no_trace else TraceWorker()
    if args.device == "cuda" and worker is not None:
        _warn_without_cuda(worker)
    reports: dict[str, FileReport] = {}
    try:
        for path in files:
            try:
                text = read_source(path)
            except (OSError, UnicodeDecodeError) as err:  # one bad file must not cost the others' findings
                report = _unreadable(path, err)
                reports.setdefault(report.path, FileReport(report.path)).merge(report)
                continue
            for other, report in analyze(path, text, options, worker, root=os.getcwd()).items():
                reports.setdefault(other, FileReport(other)).merge(report)
    finally:
        if worker is not None:
            worker.close()
    ordered = [reports[p] for p in sorted(reports)]
    if args.fix:
        _apply_safe_fixes(ordered)
    if args.format == "json":
        print(json.dumps(json_document(ordered), indent=1))
    else:
        print(render_text(ordered), end="")
    has_error = any(f.severity == Severity.ERROR for r in ordered for f in r.findings)
    return EXIT_FINDINGS if has_error else EXIT_OK


def _unreadable(path: str, err: OSError | UnicodeDecodeError) -> FileReport:
    reason = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else (err.strerror or str(err))
    span = Span(os.path.abspath(path), 1, 1, 1, 1)
    return FileReport(span.path, findings=[Finding("SL007", Severity.ERROR, span, f"cannot read the file: {reason}")])


def _warn_without_cuda(worker: TraceWorker) -> None:
    try:
        worker.ensure_started()
    except Exception:  # the per-file finding says what is wrong with the worker
        return
    if not worker.cuda_available:
        print("shapelens: --device cuda: no CUDA device here; tracing on the meta device", file=sys.stderr)


def display_path(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


# -- JSON ------------------------------------------------------------------------------------------------


def json_document(reports: list[FileReport]) -> dict[str, object]:
    """The `--format json` contract (version 1): lines and columns 1-based. A hint's `line` is its statement's
    first line; `end_line`/`column` are where its label goes (just after the statement's last character)."""
    return {"version": 1, "files": [_json_file(r) for r in reports]}


def _json_file(report: FileReport) -> dict[str, object]:
    hints = []
    for hint in sorted(report.hints, key=lambda h: (h.line, h.end_column)):
        for shape in hint.shapes:
            entry: dict[str, object] = {
                "line": hint.line,  # the statement's first line: the line a user (or a CPU run) names
                "column": hint.end_column,  # with end_line: where the label goes, just after the statement
                "end_line": hint.end_line,
                "target": hint.target,
                "shape": list(shape),
                "dtype": hint.dtype,
                "label": hint_label(shape, hint.dtype),
            }
            if hint.unknown:
                entry["unknown"] = hint.unknown
            hints.append(entry)
    return {
        "path": display_path(report.path),
        "hints": hints,
        "diagnostics": [_json_finding(f) for f in _sorted_findings(report.findings)],
    }


def _json_finding(finding: Finding) -> dict[str, object]:
    span = finding.span
    return {
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


def _sorted_findings(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.span.line, f.span.column, f.code))


# -- text ------------------------------------------------------------------------------------------------


def render_text(reports: list[FileReport]) -> str:
    """Each traced function's source with shapes at the end of each statement, then ruff-style findings."""
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
            for fix in finding.fixes:
                out.append(f"  fix ({'safe' if fix.safe else 'unsafe'}): {fix.title}")
    out.append(f"Found {total} finding{'s' if total != 1 else ''}." if total else "No findings.")
    return "\n".join(out) + "\n"


def _annotated_source(report: FileReport) -> list[str]:
    """Each function the trace went through, with the shapes at the end of the statements that bound them."""
    if not report.hints:
        return []
    parsed = parse(report.path, read_source_or_empty(report.path))
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
    return out


def _size(node: ast.AST) -> int:
    return (node.end_lineno or node.lineno) - node.lineno  # type: ignore[attr-defined]


# -- --fix -----------------------------------------------------------------------------------------------


def _apply_safe_fixes(reports: list[FileReport]) -> None:
    findings = [finding for report in reports for finding in report.findings]
    for path, (new_text, applied) in sorted(edits.apply_safe_fixes(findings, _text_or_none).items()):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(new_text)
        print(
            f"shapelens: fixed {applied} place{'s' if applied != 1 else ''} in {display_path(path)}",
            file=sys.stderr,
        )


def _text_or_none(path: str) -> str | None:
    try:
        return read_source(path)
    except (OSError, UnicodeDecodeError):
        return None


if __name__ == "__main__":
    sys.exit(main())
