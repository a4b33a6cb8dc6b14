"""The analysis entry points both faces call: `static_report` (no user code runs) and `analyze` (static
findings plus a trace in the isolated worker). The LSP server and `shapelens check` only render what these
return; no shape or rule is computed anywhere else.
"""

from __future__ import annotations

import os
import time

from shapelens.analysis import plan as plan_mod
from shapelens.analysis import suppress
from shapelens.analysis.rules import scripts, static_findings
from shapelens.analysis.rules.trace_failures import worker_unavailable
from shapelens.analysis.trace_report import reports_from_trace
from shapelens.analysis.worker_client import Tracer, WorkerUnavailable
from shapelens.core.findings import FileReport, Finding
from shapelens.core.options import Options
from shapelens.core.source import Source, parse, read_source_or_empty


def static_report(path: str, text: str) -> FileReport:
    """SL000 and the rules that need no trace. Safe on untrusted code: nothing is executed or imported."""
    path = os.path.abspath(path)
    parsed = parse(path, text)
    if isinstance(parsed, Finding):
        return FileReport(path, findings=[parsed])
    return FileReport(path, findings=_static(parsed))


def _static(source: Source) -> list[Finding]:
    return suppress.filter_findings(source.text, static_findings(source))


def analyze(
    path: str,
    text: str,
    options: Options,
    worker: Tracer | None,
    root: str | None = None,
) -> dict[str, FileReport]:
    """Static findings plus the trace of every model in the file.

    Returns a report per absolute path: always the file itself, plus every project file the trace entered
    (a block imported from `blocks.py` gets its own hints). `root` is the project root (put on `sys.path`
    beside the file's folder, as when the file is run from there); it defaults to the file's folder.
    """
    started = time.perf_counter()
    path = os.path.abspath(path)
    parsed = parse(path, text)
    if isinstance(parsed, Finding):
        return {path: FileReport(path, findings=[parsed])}
    report = FileReport(path, findings=_static(parsed))
    reports = {path: report}
    if not options.trusted or worker is None:
        return reports
    plan = plan_mod.build_plan(parsed, root or os.path.dirname(path), options)
    try:
        result = worker.trace(plan.message())
    except WorkerUnavailable as err:
        report.findings.append(worker_unavailable(path, str(err)))
        return reports
    plan_mod.remember_inputs(plan, result)
    for other, other_report in reports_from_trace(parsed, plan, result, {path: text}).items():
        # another project file the trace entered: its own `# shapelens: ignore` comments count too
        other_text = text if other == path else read_source_or_empty(other)
        other_report.findings = suppress.filter_findings(other_text, other_report.findings)
        reports.setdefault(other, FileReport(other)).merge(other_report)
    if not plan.models and not result.targets:  # nothing ran: say so (SL011), never a bare "No findings."
        report.findings += suppress.filter_findings(text, [f for f in [scripts.nothing_to_trace(parsed)] if f])
    report.elapsed_ms = (time.perf_counter() - started) * 1000
    return reports
