"""The traces' results: what the last fresh trace of each open model found, per path it entered, and what
the server knows about a path from all of them together (hints, layers, findings), static findings first.
A result from the results cache is kept marked `cached` until the fresh trace of the document replaces it."""

from __future__ import annotations

from dataclasses import dataclass

from shapelens.core.findings import FileReport, Finding, Hint, LayerInfo, merge_hints
from shapelens.lsp.documents import Documents
from shapelens.lsp.shift import Change, shift_finding, shift_report

CACHED_NOTE = "cached — confirming"  # what the hover and the status say of a result from the results cache


@dataclass
class TraceResult:
    """What one `analyze` of a document produced, per path, and against which texts."""

    version: int | None
    reports: dict[str, FileReport]
    static: frozenset[Finding]  # the traced text's static findings (already published separately)
    versions: dict[str, int | None]  # path -> open document version the trace saw (fix freshness)
    cached: bool = False  # from the results cache: shown at once, until the fresh trace confirms it

    def take_flops(self, counted: dict[str, FileReport]) -> None:
        """Each layer's FLOPs from the follow-up trace's reports `counted` (the hints and findings stay)."""
        flops = {(x.model, x.name, x.span): x.flops for r in counted.values() for x in r.layers}
        for report in self.reports.values():
            for layer in report.layers:
                layer.flops = flops.get((layer.model, layer.name, layer.span), layer.flops)


class Results:
    def __init__(self, docs: Documents) -> None:
        self.docs = docs
        self.traces: dict[str, TraceResult] = {}  # by the traced document's path

    def get(self, path: str) -> TraceResult | None:
        return self.traces.get(path)

    def store(self, path: str, result: TraceResult) -> set[str]:
        """Keep a fresh result; the paths whose diagnostics change (the new and the old result's)."""
        previous = self.traces.get(path)
        self.traces[path] = result
        return set(result.reports) | (set(previous.reports) if previous else set()) | {path}

    def drop(self, path: str) -> set[str]:
        """Forget the trace of a closed document; the paths whose diagnostics change."""
        result = self.traces.pop(path, None)
        return {path} | (set(result.reports) if result else set())

    def forget(self) -> set[str]:
        """Forget every trace (the workspace is no longer trusted); the paths they reported on."""
        paths: set[str] = set()
        for result in self.traces.values():
            paths |= set(result.reports)
        self.traces.clear()
        return paths

    def shift(self, path: str, change: Change) -> None:
        """Move the results in `path` along with an edit, until the next trace replaces them."""
        for source, result in list(self.traces.items()):
            if path in result.reports:
                reports = dict(result.reports)
                reports[path] = shift_report(reports[path], path, change)
                static = result.static
                if source == path:
                    shifted = (shift_finding(f, path, change) for f in static)
                    static = frozenset(f for f in shifted if f is not None)
                self.traces[source] = TraceResult(result.version, reports, static, result.versions, result.cached)

    def cached_for(self, path: str) -> bool:
        """Whether what is shown for `path` comes (partly) from the results cache, not yet confirmed."""
        return any(result.cached for _, result, _ in self.reports_for(path))

    def reports_for(self, path: str) -> list[tuple[str, TraceResult, FileReport]]:
        return [(src, r, r.reports[path]) for src, r in self.traces.items() if path in r.reports]

    def hints_for(self, path: str) -> list[Hint]:
        return merge_hints(h for _, _, report in self.reports_for(path) for h in report.hints)

    def layers_for(self, path: str) -> list[LayerInfo]:
        seen: set[tuple[object, ...]] = set()
        out = []
        for _, _, report in self.reports_for(path):
            for layer in report.layers:
                key = (layer.model, layer.name, layer.span)
                if key not in seen:
                    seen.add(key)
                    out.append(layer)
        return out

    def findings_for(self, path: str) -> list[tuple[Finding, int | None, bool]]:
        """(finding, the version its fixes were made for, whether its fixes fit the current text): the open
        document's static findings, then the traces' (those of the traced text itself are the static ones)."""
        uri = self.docs.uri_of(path)
        current = self.docs.open_version(uri)
        out: list[tuple[Finding, int | None, bool]] = []
        seen: set[Finding] = set()
        state = self.docs.get(uri)
        if state is not None and state.static is not None:
            for finding in state.static.findings:
                seen.add(finding)
                out.append((finding, state.static_version, state.static_version == current))
        for source, result, report in self.reports_for(path):
            made_for = result.versions.get(path)
            for finding in report.findings:
                if finding in seen or (source == path and finding in result.static):
                    continue  # static findings of the traced text are published from the static report
                seen.add(finding)
                out.append((finding, made_for, made_for == current))
        return out
