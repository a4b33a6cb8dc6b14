"""Command line: `shapelens serve` (the language server over stdio) and `shapelens check` (the same findings
as text, JSON, GitHub Actions annotations or SARIF, for CI, pre-commit and any editor).

Exit status of `check`: 0 without error findings (or with `--exit-zero`), 1 with any (an unreadable file is
one: SL007), 2 for a usage error or a path that does not exist.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import threading
import urllib.parse
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shapelens import __version__
from shapelens.analysis import edits
from shapelens.analysis.engine import analyze
from shapelens.analysis.rules import RULES
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.findings import FileReport, Finding, Fix, Severity, Span, hint_label, to_json
from shapelens.core.options import DEVICES, Options, timeout_problem
from shapelens.core.source import Source, parse, read_source, read_source_or_empty, split_lines
from shapelens.core.wire import TracePlan, TraceResult

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
FORMATS = ("text", "json", "github", "sarif")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shapelens", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the language server over stdio")
    check = sub.add_parser("check", help="trace the models in files or folders and report shape findings")
    check.add_argument("paths", nargs="+", metavar="PATH", help="a .py file or a folder (all *.py below it)")
    check.add_argument("--format", choices=FORMATS, default="text", help="default text")
    check.add_argument("--device", choices=DEVICES, default="meta", help="where tensors live (default meta)")
    check.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds per model (default 10)")
    check.add_argument("--fix", action="store_true", help="apply the fixes marked safe")
    check.add_argument("--no-trace", action="store_true", help="static findings only; run no user code")
    check.add_argument("--exit-zero", action="store_true", help="exit 0 even with error findings")
    check.add_argument(
        "--jobs", type=_positive_int, default=1, help="trace workers for several files (default 1; see README)"
    )
    args = parser.parse_args(argv)
    if args.command == "serve":
        from shapelens.lsp.server import main as serve

        serve()
        return EXIT_OK
    return run_check(args)


def _positive_float(value: str) -> float:
    number = float(value)
    problem = timeout_problem(number)  # nan, inf and 1e308 parse as floats, and no trace ends with them
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
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
    # One worker by default: each pooled worker pays its own `import torch` and warm-up (≈2 s), which on this
    # 2-core machine outweighed the faster traces (20 small models: --jobs 2 took 0.85× the speed of --jobs 1
    # on meta, 1.17× on --device cpu). One core per worker by default waits for a pool that shares one warm-up.
    jobs = max(1, min(args.jobs, len(files)))
    per_file = (
        _check_serially(files, options, None)
        if args.no_trace
        else _check_serially(files, options, TraceWorker(), cuda=args.device == "cuda")
        if jobs == 1
        else _check_in_pool(files, options, jobs, cuda=args.device == "cuda")
    )
    reports: dict[str, FileReport] = {}
    for file_reports in per_file:  # merged in the order of `files`, whatever order the traces ended in
        for other, report in file_reports.items():
            reports.setdefault(other, FileReport(other)).merge(report)
    ordered = [reports[p] for p in sorted(reports)]
    if args.fix:
        _apply_safe_fixes(ordered)
    if args.format == "json":
        print(json.dumps(json_document(ordered), indent=1))
    elif args.format == "sarif":
        print(json.dumps(sarif_document(ordered), indent=1))
    elif args.format == "github":
        print(render_github(ordered), end="")
    else:
        print(render_text(ordered), end="")
    has_error = any(f.severity == Severity.ERROR for r in ordered for f in r.findings)
    return EXIT_FINDINGS if has_error and not args.exit_zero else EXIT_OK


def _check_one(path: str, options: Options, worker: TraceWorker | None) -> dict[str, FileReport]:
    try:
        text = read_source(path)
    except (OSError, UnicodeDecodeError) as err:  # one bad file must not cost the others' findings
        report = _unreadable(path, err)
        return {report.path: report}
    return analyze(path, text, options, worker, root=os.getcwd())


def _check_serially(
    files: list[str], options: Options, worker: TraceWorker | None, cuda: bool = False
) -> list[dict[str, FileReport]]:
    try:
        if cuda and worker is not None:
            _warn_without_cuda(worker)
        return [_check_one(path, options, worker) for path in files]
    finally:
        if worker is not None:
            worker.close()


class _PooledWorker(TraceWorker):
    """One worker of `--jobs`: its thread holds the pool's lock for everything but the trace itself, so the
    editor-side analysis (parsing, jedi, the rules, which are not thread-safe) runs one file at a time while
    the traces, where the time goes, run side by side in their own processes."""

    def __init__(self, lock: threading.Lock, threads: int) -> None:
        # torch's own thread pool in each worker gets its share of the cores, not all of them: N workers
        # that each use every core only fight (a user's setting wins)
        env = dict(os.environ)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(threads))
        super().__init__(env=env)
        self._analysis_lock = lock

    def trace(self, plan: TracePlan) -> TraceResult:
        self._analysis_lock.release()
        try:
            return super().trace(plan)
        finally:
            self._analysis_lock.acquire()


def _check_in_pool(files: list[str], options: Options, jobs: int, cuda: bool) -> list[dict[str, FileReport]]:
    """`files` spread over `jobs` warm workers (each one trace at a time); the results in the order of `files`."""
    lock = threading.Lock()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    idle = [_PooledWorker(lock, threads) for _ in range(jobs)]
    workers = list(idle)
    take = threading.Lock()

    def check(path: str) -> dict[str, FileReport]:
        with take:
            worker = idle.pop()
        try:
            with lock:
                return _check_one(path, options, worker)
        finally:
            with take:
                idle.append(worker)

    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="shapelens-check") as pool:
            list(pool.map(_start_quietly, workers))  # every worker imports torch at once, not on its first file
            if cuda:
                _warn_without_cuda(workers[0])
            return list(pool.map(check, files))
    finally:
        for worker in workers:
            worker.close()


def _start_quietly(worker: TraceWorker) -> None:
    try:
        worker.ensure_started()
    except Exception:  # the per-file finding (SL004) says what is wrong with the worker
        return


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
            listed = ",".join(f"{key}={_github_property(str(value))}" for key, value in properties.items())
            out.append(f"::{_GITHUB_LEVEL[finding.severity]} {listed}::{_github_data(finding.message)}")
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
    result["message"] = {"text": finding.message}
    result["locations"] = [_sarif_location(finding.span, columns)]
    if finding.related:
        result["relatedLocations"] = [
            {"id": i, **_sarif_location(r.span, columns), "message": {"text": r.message}}
            for i, r in enumerate(finding.related)
        ]
    if finding.fixes:
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
            self._lines[path] = split_lines(read_source_or_empty(path))
        lines = self._lines[path]
        before = lines[line - 1][: column - 1] if 0 < line <= len(lines) else ""
        return column + sum(1 for char in before if ord(char) > 0xFFFF)


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[: end + 1]


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
