"""From a trace result to reports: hints per statement, the layers each model built, and the findings that
need a trace, which the rule families make (`rules/trace_failures.py`: SL001-SL005, SL008;
`rules/layer_sizes.py`: SL101-SL105; `rules/dropout.py`: SL203's Dropout2d/3d half).
"""

from __future__ import annotations

import ast
from typing import Any

from shapelens.analysis.inputs import Inputs
from shapelens.analysis.plan import Plan
from shapelens.analysis.rules import dropout, layer_sizes, trace_failures
from shapelens.analysis.rules.sources import Sources
from shapelens.core.findings import (
    FileReport,
    Finding,
    Hint,
    LayerCall,
    LayerInfo,
    ModelInput,
    Span,
    SymShape,
    TracedModel,
    merge_hints,
)
from shapelens.core.source import Source
from shapelens.core.wire import SCRIPT_TARGET, InputSource, LayerRecord, Status, SymDims, TargetResult, TraceResult

SOURCE_PRIORITY = {InputSource.DIRECTIVE: 0, InputSource.EXAMPLE: 1, InputSource.WORKSPACE: 2, InputSource.INFER: 2}


def _sorted_targets(plan: Plan, result: TraceResult) -> list[TargetResult]:
    order = {m.name: SOURCE_PRIORITY.get(i.source, 3) for m, i in plan.traced}
    order[SCRIPT_TARGET] = SOURCE_PRIORITY[InputSource.EXAMPLE]  # the script's own tensors: user-given
    return sorted(result.targets, key=lambda t: order.get(t.name, 3))


def reports_from_trace(parsed: Source, plan: Plan, result: TraceResult, texts: dict[str, str]) -> dict[str, FileReport]:
    sources = Sources(texts)
    reports: dict[str, FileReport] = {}

    def report(path: str) -> FileReport:
        return reports.setdefault(path, FileReport(path))

    # Shapes from inputs the user gave (directive, example call) all count: a block with its own directive
    # that a bigger model also uses shows every shape it met. Shapes from an inferred input are a guess at
    # the size, so they only fill statements no user-given input reached.
    inferred = {m.name for m, i in plan.traced if not i.source.user_given}
    guessed = {m.name: i for m, i in plan.traced if not i.source.user_given or i.guessed}
    reached = _reached_by_others(plan, result)  # guessed targets another target's trace went through
    claimed: dict[tuple[str, int], str] = {}  # statement → the first target that recorded it
    for target in _sorted_targets(plan, result):
        name = target.name
        if target.status == Status.SKIPPED:
            continue
        traced_model = _traced_model(plan, target)
        if traced_model is not None:
            report(parsed.path).models.append(traced_model)
        if target.status == Status.COVERED:
            continue  # a parent's trace reached it: its shapes and findings are the parent's
        report(parsed.path).traced.append(name)
        for rec in target.records:
            owner = claimed.setdefault((rec.path, rec.line), name)
            if owner != name and name in inferred:
                continue
            report(rec.path).hints.append(
                Hint(
                    rec.path,
                    rec.line,
                    rec.end_line,
                    rec.end_column,
                    rec.target,
                    _shapes(rec.shapes),
                    rec.dtype,
                    rec.device,
                    rec.producer,
                    rec.unknown,
                    _symbolic(rec.symbolic),
                )
            )
        for layer in target.layers:
            info = _layer(layer, name)
            report(info.span.path).layers.append(info)
            misuse = dropout.spatial_dropout(info, sources)
            known = report(info.span.path).findings
            if misuse is not None and not any((f.code, f.span) == (misuse.code, misuse.span) for f in known):
                known.append(misuse)  # a layer the script calls that is also traced as a model: once
        for mismatch in target.mismatches:
            found = layer_sizes.layer_mismatch(mismatch, sources)
            known = report(found.span.path).findings if found is not None else []
            same = _filed(known, found) if found is not None else None
            if found is not None and same is None:
                known.append(found)  # two targets, one layer (a model, and the script that calls it again)
            elif found is not None and same is not None and found.related and not known[same].related:
                known[same] = found  # the one that says where the layer met its input (the script's call)
        for error in (target.error, *target.errors):  # `errors`: a script's later failures (trace/script_run.py)
            if error is None or (name == SCRIPT_TARGET and not error.line and plan.traced):
                continue  # a load that never finished: the models' findings say so
            found = trace_failures.trace_error(error, target, plan, sources)
            if name in guessed:  # a guess never accuses the code
                if name in reached:
                    continue  # its lines have their shapes from that trace: its own guess has nothing to add
                found = trace_failures.from_a_guess(found, target, _how(guessed[name]))
            for finding in (found, trace_failures.pointer(found, error, target, plan, sources)):
                # filed on the file it is in; a file that failed to load fails every model alike, and a model
                # that fails in its own trace fails again where the script calls it (the same span): once
                if finding is not None and _filed(report(finding.span.path).findings, finding) is None:
                    report(finding.span.path).findings.append(finding)
        mode = target.mode
        for r in reports.values():
            r.mode = r.mode or mode
    for r in reports.values():  # a statement several models reached: one hint with every shape it met
        r.hints = merge_hints(r.hints)
    built = {layer.type for r in reports.values() for layer in r.layers}  # classes some traced model used
    for model, inputs in plan.skipped:
        if model.name not in built and not _covered(model.node, parsed.path, claimed):
            report(parsed.path).findings.append(trace_failures.no_input(parsed, model.node, inputs.reason))
    return reports


def _filed(findings: list[Finding], finding: Finding) -> int | None:
    """Where a finding of the same code at the same place is filed already (two targets met one failure)."""
    return next((i for i, f in enumerate(findings) if (f.code, f.span) == (finding.code, finding.span)), None)


def _reached_by_others(plan: Plan, result: TraceResult) -> set[str]:
    """The models of the checked file another target's trace built or went through (a block of a traced
    parent): a failed standalone guess of theirs is no news (the child says COVERED where it knows)."""
    lines: dict[tuple[str, int], set[str]] = {}
    for target in result.targets:
        for rec in target.records:
            lines.setdefault((rec.path, rec.line), set()).add(target.name)
    # built inside another and called there: a script that builds a model but never reaches its call (its loop
    # over a loader that failed) has given it no shapes, and its own failed guess is still news
    found = {x.type for t in result.targets for x in t.layers if x.type != t.name and x.calls}
    for model, _ in plan.traced:
        first, last = model.node.lineno, model.node.end_lineno or model.node.lineno
        inside = [names for (p, n), names in lines.items() if p == plan.source.path and first <= n <= last]
        if any(names - {model.name} for names in inside):
            found.add(model.name)
    return found


def _how(inputs: Inputs) -> str:
    if inputs.source.user_given:
        return f"{inputs.source.value} input, constructor arguments made up"
    return inputs.source.value


def _traced_model(plan: Plan, target: TargetResult) -> TracedModel | None:
    """How a model of the checked file was traced: where its input came from, the input itself (the trace's
    account, else the directive's sizes), and what was chosen for it."""
    found = next(((m, i) for m, i in plan.traced if m.name == target.name), None)
    if found is None:
        if target.name == SCRIPT_TARGET and target.notes:  # the file's top level: loops cut short, lines left out
            return TracedModel(SCRIPT_TARGET, 1, "script", [], list(target.notes))
        return None
    model, inputs = found
    given = [ModelInput(i.name, _tuple(i.shape), i.dtype, i.note, _tuple(i.symbolic)) for i in target.inputs]
    if not given:
        tensors = {k: v for k, v in inputs.kwargs.items() if "tensor" in v}
        given = [ModelInput(k, tuple(v["tensor"]), v.get("dtype", "float32")) for k, v in tensors.items()]
    notes = [*inputs.synthesized, *(n for n in target.notes if n not in inputs.synthesized)]
    if target.status == Status.COVERED and target.covered_by:
        notes.append(f"shapes from {target.covered_by}'s trace, which reached it")
    dims, accepts = dict(target.dims), target.accepts
    source = target.input_source or inputs.source  # the trace's account: an example may have fallen back
    return TracedModel(target.name, model.node.lineno, source.value, given, notes, dims, accepts)


def _covered(node: ast.AST, path: str, claimed: dict[tuple[str, int], str]) -> bool:
    first, last = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
    return any(p == path and first <= line <= last for p, line in claimed)


def _shapes(shapes: list[list[int | None]]) -> list[tuple[int | None, ...]]:
    return [tuple(s) for s in shapes]


def _symbolic(forms: list[SymDims | None]) -> list[SymShape | None]:
    """The symbolic pass's forms, parallel to the shapes (#13): labels as the trace wrote them, never parsed here."""
    return [None if form is None else tuple(form) for form in forms]


def _tuple(dims: list[Any] | None) -> tuple[Any, ...] | None:
    return None if dims is None else tuple(dims)


def _layer(layer: LayerRecord, model: str) -> LayerInfo:
    site = layer.site
    span = Span(site.path, site.line, site.col + 1, site.end_line, site.end_col + 1)
    calls = [LayerCall(c.line or 0, c.path or site.path, _shapes(c.inputs), _shapes(c.outputs)) for c in layer.calls]
    return LayerInfo(layer.name, layer.type, span, layer.params or 0, layer.bytes or 0, layer.flops, calls,
                     layer.extra, model)  # fmt: skip
