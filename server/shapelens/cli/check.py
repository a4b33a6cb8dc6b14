"""`shapelens check`: the files named or below the folders named, each analysed (on one warm worker, or a pool
with `--jobs`), their reports merged, the safe fixes applied with `--fix`, and the result rendered.

The text format streams: each file's shapes and findings print as soon as it and every file before it are
done (in the order the files were found, so the output is the same with any `--jobs`), the count at the end.
A file another file's trace entered (a block a model imports) shows with that model's file too, with the
shapes that trace met; a finding prints once, with the first file that reported it. JSON, SARIF and GitHub
annotations stay one document at the end."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from shapelens.analysis import edits
from shapelens.analysis import notebook as nb
from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import Tracer, TraceWorker, WorkerUnavailable
from shapelens.cli.formats import (
    display_path,
    json_document,
    render_github,
    render_text,
    sarif_document,
    summary_line,
)
from shapelens.cli.pool import LOOKAHEAD, Pool, warn_without_cuda, worker_env
from shapelens.core.findings import FileReport, Finding, Severity, Span
from shapelens.core.options import Options
from shapelens.core.source import read_source

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def collect_files(paths: Iterable[str]) -> list[str]:
    """The .py files and notebooks named or below the folders named; raises FileNotFoundError for a missing
    path."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
                found += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".py") or nb.is_notebook(f)]
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
    # the symbolic pass only where its output is printed: JSON version 2 (text, GitHub and SARIF do not show it)
    symbolic = args.format == "json" and args.json_version >= 2
    options = Options(device=args.device, timeout=args.timeout, trusted=not args.no_trace, symbolic=symbolic)
    # One worker per core by default: the pool's workers are forked from one warm worker (one `import torch`,
    # one warm-up), so a second one costs a fork, not torch's start-up again; see README.
    jobs = max(1, min(args.jobs, len(files)))
    cuda = args.device == "cuda"
    progress = Progress(len(files), sys.stderr.isatty() and args.format not in ("json", "sarif"))
    stream = Stream(progress) if args.format == "text" else None
    done = progress.finished if stream is None else stream.arrived
    if args.no_trace:
        per_file = _check_serially(files, options, None, done=done)
    elif jobs == 1:
        # one worker warms each part before the first trace that needs it: nothing is worth warming ahead
        worker = TraceWorker(env=worker_env(len(files), None))
        with contextlib.suppress(WorkerUnavailable):  # its `import torch` runs while the first file is analysed
            worker.spawn()
        per_file = _check_serially(files, options, worker, cuda, done)
    else:
        per_file = _check_in_pool(files, options, jobs, cuda, done)
    progress.done()
    reports: dict[str, FileReport] = {}
    for file_reports in per_file:  # merged in the order of `files`, whatever order the traces ended in
        for other, report in file_reports.items():
            reports.setdefault(other, FileReport(other)).merge(report)
    ordered = [reports[p] for p in sorted(reports)]
    if args.fix:
        _apply_safe_fixes(ordered)
    if args.format == "json":
        print(json.dumps(json_document(ordered, args.json_version), indent=1))
    elif args.format == "sarif":
        print(json.dumps(sarif_document(ordered), indent=1))
    elif args.format == "github":
        print(render_github(ordered), end="")
    elif stream is not None:  # the files' own output is already out
        print(summary_line(stream.total))
    has_error = any(f.severity == Severity.ERROR for r in ordered for f in r.findings)
    return EXIT_FINDINGS if has_error and not args.exit_zero else EXIT_OK


def _check_one(path: str, options: Options, worker: Tracer | None) -> dict[str, FileReport]:
    try:
        text = read_source(path)
    except (OSError, UnicodeDecodeError) as err:  # one bad file must not cost the others' findings
        report = _unreadable(path, err)
        return {report.path: report}
    if nb.is_notebook(path):
        return _check_notebook(path, text, options, worker)
    return analyze(path, text, options, worker, root=os.getcwd())


def _check_notebook(path: str, text: str, options: Options, worker: Tracer | None) -> dict[str, FileReport]:
    """A notebook's code cells analysed as one program, reported per cell (`nb.ipynb:cell 3`); the cells with
    nothing to say are left out."""
    path = os.path.abspath(path)
    try:
        notebook = nb.read(path, text, lambda index: nb.cli_cell_path(path, index))
    except nb.NotebookError as err:
        finding = Finding("SL007", Severity.ERROR, Span(path, 1, 1, 1, 1), f"cannot read the file: {err}")
        return {path: FileReport(path, findings=[finding])}
    reports: dict[str, FileReport] = {}
    for other, report in analyze(path, notebook.virtual, options, worker, root=os.getcwd()).items():
        reports.update(nb.split_report(notebook, report) if other == path else {other: report})
    said = {p: r for p, r in reports.items() if r.hints or r.findings or r.layers or nb.parse_cell_path(p) is None}
    if not any(nb.parse_cell_path(p) for p in said):
        said[path] = FileReport(path)  # the notebook was read and has nothing to say: it still shows as checked
    return said


Done = Callable[[int, str, dict[str, FileReport]], None]  # (index in the files, path, its reports)


def _check_serially(
    files: list[str], options: Options, worker: TraceWorker | None, cuda: bool = False, done: Done | None = None
) -> list[dict[str, FileReport]]:
    try:
        if cuda and worker is not None:
            warn_without_cuda(worker)
        out = []
        for index, path in enumerate(files):
            out.append(_check_one(path, options, worker))
            if done is not None:
                done(index, path, out[-1])
        return out
    finally:
        if worker is not None:
            worker.close()


class Progress:
    """`[12/50] path` on one line of a terminal's stderr, rewritten as each file finishes (in whatever order
    a pool finishes them); nothing when stderr is not a terminal or the output is JSON or SARIF."""

    def __init__(self, total: int, shown: bool) -> None:
        self.total = total
        self.shown = shown and total > 1
        self.count = 0
        self.last = ""
        self._lock = threading.Lock()

    def finished(self, index: int, path: str, reports: dict[str, FileReport] | None = None) -> None:
        with self._lock:
            self.count += 1
            self.last = path
            self._draw()

    def _draw(self) -> None:
        if self.shown and self.count:
            line = f"[{self.count}/{self.total}] {display_path(self.last)}"
            sys.stderr.write("\r\033[K" + line[:200])
            sys.stderr.flush()

    def above(self, text: str) -> None:
        """`text` on stdout, the progress line cleared first and drawn again below it."""
        with self._lock:
            if self.shown and self.count:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except BrokenPipeError:  # `check . | head`: the reader is gone; the rest goes nowhere, quietly
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self._draw()

    def done(self) -> None:
        if self.shown and self.count:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


class Stream:
    """The text format as results arrive: a file's block prints once it and every file before it are done (a
    pool finishes them in any order; the output is that of a serial run). A finding already printed with an
    earlier file (one in a block two models import) is not printed again; `total` counts what was printed."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.total = 0
        self._waiting: dict[int, dict[str, FileReport]] = {}
        self._paths: dict[int, str] = {}
        self._next = 0
        self._printed: set[tuple[object, ...]] = set()
        self._lock = threading.Lock()

    def arrived(self, index: int, path: str, reports: dict[str, FileReport]) -> None:
        self.progress.finished(index, path)
        with self._lock:
            self._waiting[index] = reports
            self._paths[index] = os.path.abspath(path)
            while self._next in self._waiting:
                text = self._block(self._waiting.pop(self._next), self._paths.pop(self._next))
                self._next += 1
                if text:
                    self.progress.above(text)

    def _block(self, reports: dict[str, FileReport], checked: str) -> str:
        """The checked file first (a notebook: its cells), then the files its trace entered."""
        shown = []
        for path in sorted(reports, key=lambda p: (p != checked and not p.startswith(checked + ":"), p)):
            report = reports[path]
            new = [f for f in report.findings if (f.code, f.span, f.message) not in self._printed]
            self._printed.update((f.code, f.span, f.message) for f in new)
            self.total += len(new)
            shown.append(dataclasses.replace(report, findings=new))
        return render_text(shown, summary=False)


def _check_in_pool(
    files: list[str], options: Options, jobs: int, cuda: bool, done: Done
) -> list[dict[str, FileReport]]:
    """`files` spread over `jobs` warm workers (`Pool`); the results in the order of `files`, whatever order
    they finished in."""
    pool = Pool(jobs, max(1, (os.cpu_count() or 1) // jobs))

    def check(index: int, path: str) -> dict[str, FileReport]:
        with pool.analysis:
            reports = _check_one(path, options, pool)
        done(index, path, reports)
        return reports

    # the pool's first worker imports torch while the first files are analysed
    starter = threading.Thread(target=pool.start, args=(cuda,), name="shapelens-pool-start", daemon=True)
    starter.start()
    try:
        ahead = min(len(files), jobs * LOOKAHEAD)
        with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="shapelens-check") as threads:
            return list(threads.map(check, range(len(files)), files))
    finally:
        pool.first_seen.set()  # no file traced: the pool's first worker is told to end
        starter.join()
        pool.close()


def _unreadable(path: str, err: OSError | UnicodeDecodeError) -> FileReport:
    reason = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else (err.strerror or str(err))
    span = Span(os.path.abspath(path), 1, 1, 1, 1)
    return FileReport(span.path, findings=[Finding("SL007", Severity.ERROR, span, f"cannot read the file: {reason}")])


# -- --fix -----------------------------------------------------------------------------------------------


def _apply_safe_fixes(reports: list[FileReport]) -> None:
    findings = [finding for report in reports for finding in report.findings]
    fixed = edits.apply_safe_fixes(findings, _text_or_none)
    for path, (new_text, applied) in sorted(_notebooks_fixed(fixed).items()):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(new_text)
        print(
            f"shapelens: fixed {applied} place{'s' if applied != 1 else ''} in {display_path(path)}",
            file=sys.stderr,
        )


def _notebooks_fixed(fixed: dict[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """The fixed texts by file to write: a notebook's fixed cells put back into its JSON (outputs, metadata
    and formatting kept), other files as they are."""
    out: dict[str, tuple[str, int]] = {}
    cells: dict[str, dict[int, str]] = {}
    for path, (new_text, applied) in fixed.items():
        cell = nb.parse_cell_path(path)
        if cell is None:
            out[path] = (new_text, applied)
            continue
        cells.setdefault(cell[0], {})[cell[1]] = new_text
        out[cell[0]] = ("", out.get(cell[0], ("", 0))[1] + applied)
    for path, new_sources in cells.items():
        original = _text_or_none(path)
        if original is None:
            out.pop(path)
            continue
        out[path] = (nb.write_cells(original, new_sources), out[path][1])
    return out


def _text_or_none(path: str) -> str | None:
    cell = nb.parse_cell_path(path)
    try:
        if cell is not None:  # a notebook cell's own source, as the fixes' positions count it
            return nb.load_cell_text(read_source(cell[0]), cell[1])
        return read_source(path)
    except (OSError, UnicodeDecodeError, nb.NotebookError):
        return None
