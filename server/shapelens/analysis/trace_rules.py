"""From a trace result to reports: hints per statement, layers, and the findings that need a trace —
SL001 (shape error), SL002 (timeout, recursion without end, a load that did not finish), SL003 (no input),
SL004 (trace failed, `sys.exit()` in user code), SL005 (memory), SL008 (a module with no `forward` yet),
SL101–SL105 (a layer's declared size against what it received) and SL203 (Dropout2d/3d without spatial dims).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from typing import Any

from shapelens.analysis.names import dotted
from shapelens.analysis.plan import Plan
from shapelens.analysis.rules import rule
from shapelens.core.findings import (
    Edit,
    FileReport,
    Finding,
    Fix,
    Hint,
    LayerCall,
    LayerInfo,
    Related,
    Span,
    hint_label,
)
from shapelens.core.source import Source, parse, span_of

ERROR_CODES = {"shape": "SL001", "timeout": "SL002", "recursion": "SL002", "noinput": "SL003", "build": "SL004",
               "crash": "SL004", "datadep": "SL004", "exit": "SL004", "memory": "SL005",
               "noforward": "SL008"}  # fmt: skip
SOURCE_PRIORITY = {"directive": 0, "example": 1, "infer": 2}

# which constructor argument holds the checked size: (positional index, keyword)
SIZE_ARGUMENT = {
    "in_features": (0, "in_features"),
    "in_channels": (0, "in_channels"),
    "num_features": (0, "num_features"),
    "normalized_shape": (0, "normalized_shape"),
    "num_channels": (1, "num_channels"),
    "input_size": (0, "input_size"),
}
SPATIAL_DROPOUT = {"Dropout2d": 4, "Dropout3d": 5}  # the rank the module is meant for (batched)


def finding(
    code: str, span: Span, message: str, fixes: tuple[Fix, ...] = (), related: tuple[Related, ...] = ()
) -> Finding:
    return Finding(code, rule(code).severity, span, message, fixes, related)


def worker_unavailable(path: str, message: str) -> Finding:
    return finding("SL004", Span(path, 1, 1, 1, 1), f"shapes unavailable: {message}")


class Sources:
    """Parsed project files, the edited buffer first (it may be unsaved)."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts
        self.parsed: dict[str, Source | None] = {}

    def get(self, path: str) -> Source | None:
        if path not in self.parsed:
            text = self.texts.get(path)
            if text is None:
                try:
                    with open(path, encoding="utf-8") as handle:
                        text = handle.read()
                except OSError:
                    text = None
            result = parse(path, text) if text is not None else None
            self.parsed[path] = result if isinstance(result, Source) else None
        return self.parsed[path]

    def line_span(self, path: str, line: int) -> Span:
        """The statement text on `line`, without its indentation."""
        source = self.get(path)
        if source is None or not 0 < line <= len(source.lines):
            return Span(path, max(line, 1), 1, max(line, 1), 1)
        text = source.lines[line - 1]
        start = len(text) - len(text.lstrip())
        return Span(path, line, start + 1, line, len(text.rstrip()) + 1)

    def call_at(self, site: dict[str, Any], type_name: str) -> ast.Call | None:
        source = self.get(site["path"])
        if source is None:
            return None
        exact = None
        on_line = None
        for node in ast.walk(source.tree):
            if not isinstance(node, ast.Call):
                continue
            if (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset) == (
                site["line"], site["col"], site["end_line"], site["end_col"]):  # fmt: skip
                exact = node
            callee = dotted(node.func) or ""
            if node.lineno == site["line"] and callee.split(".")[-1] == type_name and on_line is None:
                on_line = node
        return exact or on_line


def _sorted_targets(plan: Plan, result: dict[str, Any]) -> list[dict[str, Any]]:
    order = {m.name: SOURCE_PRIORITY.get(i.source, 3) for m, i in plan.traced}
    return sorted(result.get("targets", []), key=lambda t: order.get(t["name"], 3))


def reports_from_trace(
    parsed: Source, plan: Plan, result: dict[str, Any], texts: dict[str, str]
) -> dict[str, FileReport]:
    sources = Sources(texts)
    reports: dict[str, FileReport] = {}

    def report(path: str) -> FileReport:
        return reports.setdefault(path, FileReport(path))

    # Shapes from inputs the user gave (directive, example call) all count: a block with its own directive
    # that a bigger model also uses shows every shape it met. Shapes from an inferred input are a guess at
    # the size, so they only fill statements no user-given input reached.
    inferred = {m.name for m, i in plan.traced if i.source == "infer"}
    claimed: dict[tuple[str, int], str] = {}  # statement → the first target that recorded it
    by_key: dict[tuple[str, int, int, str], Hint] = {}  # two statements on one line are two hints
    for target in _sorted_targets(plan, result):
        name = target["name"]
        if target.get("status") == "skipped":
            continue
        report(parsed.path).traced.append(name)
        for rec in target.get("records", []):
            owner = claimed.setdefault((rec["path"], rec["line"]), name)
            if owner != name and name in inferred:
                continue
            key = (rec["path"], rec["line"], rec["end_column"], rec["target"])
            shapes = [tuple(s) for s in rec["shapes"]]
            hint = by_key.get(key)
            if hint is None:
                hint = by_key[key] = Hint(
                    rec["path"], rec["line"], rec["end_line"], rec["end_column"], rec["target"], shapes,
                    rec["dtype"], rec["device"], rec.get("producer"), rec.get("unknown"),
                )  # fmt: skip
                report(rec["path"]).hints.append(hint)
            else:
                hint.shapes += [s for s in shapes if s not in hint.shapes]
        for layer in target.get("layers", []):
            info = _layer(layer, name)
            report(info.span.path).layers.append(info)
            spatial = SPATIAL_DROPOUT.get(info.type)
            if spatial and any(len(s) < spatial for call in info.calls for s in call.inputs):
                report(info.span.path).findings.append(_sl203(info, sources))
        for mismatch in target.get("mismatches", []):
            found = _mismatch(mismatch, sources)
            if found is not None:
                report(found.span.path).findings.append(found)
        error = target.get("error")
        if error:
            found = _error(error, target, plan, sources)
            if found not in report(parsed.path).findings:  # a file that failed to load fails every model alike
                report(parsed.path).findings.append(found)
        mode = target.get("mode")
        for r in reports.values():
            r.mode = r.mode or mode
    built = {layer.type for r in reports.values() for layer in r.layers}  # classes some traced model used
    for model, inputs in plan.skipped:
        if model.name not in built and not _covered(model.node, parsed.path, claimed):
            span = _name_span(parsed, model.node)
            report(parsed.path).findings.append(finding("SL003", span, inputs.reason))
    return reports


def _covered(node: ast.AST, path: str, claimed: dict[tuple[str, int], str]) -> bool:
    first, last = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
    return any(p == path and first <= line <= last for p, line in claimed)


def _name_span(source: Source, node: ast.AST) -> Span:
    """The class name (`class Net` → `Net`), or the assignment target of a Sequential."""
    if isinstance(node, ast.ClassDef):
        text = source.lines[node.lineno - 1]
        start = text.find(node.name, node.col_offset)
        return Span(source.path, node.lineno, start + 1, node.lineno, start + 1 + len(node.name))
    if isinstance(node, ast.Assign):
        return span_of(source.path, node.targets[0])
    return span_of(source.path, node)


def _shapes(shapes: list[list[int | None]]) -> list[tuple[int | None, ...]]:
    return [tuple(s) for s in shapes]


def _layer(layer: dict[str, Any], model: str) -> LayerInfo:
    site = layer["site"]
    span = Span(site["path"], site["line"], site["col"] + 1, site["end_line"], site["end_col"] + 1)
    calls = [
        LayerCall(c["line"] or 0, c["path"] or site["path"], _shapes(c["inputs"]), _shapes(c["outputs"]))
        for c in layer["calls"]
    ]
    return LayerInfo(layer["name"], layer["type"], span, layer["params"], layer["bytes"], layer["flops"], calls,
                     layer["extra"], model)  # fmt: skip


def _error(error: dict[str, Any], target: dict[str, Any], plan: Plan, sources: Sources) -> Finding:
    code = ERROR_CODES.get(error["kind"], "SL004")
    path, line = error.get("path") or plan.source.path, error.get("line") or 0
    if not line or (not os.path.exists(path) and path != plan.source.path):
        model = next((m for m, _ in plan.models if m.name == target["name"]), None)
        span = _name_span(plan.source, model.node) if model else Span(plan.source.path, 1, 1, 1, 1)
        path = plan.source.path
    else:
        span = sources.line_span(path, line)
    message = error["message"]
    if code in ("SL002", "SL005") and line:
        message += f" at line {line}"
    elif error["kind"] == "crash" and line:
        message += f" after line {line}"
    if error.get("note"):
        message += f" {error['note']}"
    if code in ("SL001", "SL004") and not message.startswith(target["name"]):
        message = f"{message} (tracing {target['name']})"
    if span.path != plan.source.path:  # the failure is in another project file: say where from here
        message += f" [{os.path.basename(span.path)}:{span.line}]"
    return finding(code, span, message)


def _product(factors: list[int] | None, value: int) -> str:
    return " * ".join(str(f) for f in factors) if factors and len(factors) > 1 else str(value)


def _argument(call: ast.Call, attr: str) -> ast.expr | None:
    index, keyword = SIZE_ARGUMENT.get(attr, (0, attr))
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[index] if len(call.args) > index else None


DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "SL101": lambda m: f"its input's last dimension is {m['actual']}",
    "SL102": lambda m: f"its input has {m['actual']} channels",
    "SL103": lambda m: f"its input has {m['actual']} there",
    "SL104": lambda m: f"its input's feature size (last dimension) is {m['actual']}",
    "SL105": lambda m: f"it received {m['actual']} values, not integer indices",
}


def _mismatch(m: dict[str, Any], sources: Sources) -> Finding | None:
    site = m.get("site")
    if not site:
        return None
    call = sources.call_at(site, m["layer"])
    source = sources.get(site["path"])
    if call is None or source is None:
        return None
    arg = _argument(call, m["attr"]) if m["code"] != "SL105" else None
    span = span_of(site["path"], arg if arg is not None else call)
    shape = hint_label(tuple(m["input_shape"]), "float32")
    declared = m["declared"]
    message = f"{m['layer']}({m['attr']}={declared}) receives {shape}: {DESCRIBE[m['code']](m)}" + (
        f", so {m['attr']} should be {_product(m['factors'], m['actual'])}" if arg is not None else ""
    )
    related: tuple[Related, ...] = ()
    if m.get("where"):
        path, line = m["where"]
        related = (Related(sources.line_span(path, line), f"{m['layer']} meets its input here: {shape}"),)
    fixes: list[Fix] = []
    if arg is not None:
        actual = m["actual"]
        if isinstance(actual, list):  # LayerNorm: keep an int where one was written
            actual = actual[0] if len(actual) == 1 and not isinstance(arg, ast.Tuple | ast.List) else tuple(actual)
        new_text = _product(m["factors"], actual) if isinstance(actual, int) else str(actual)
        fixes.append(Fix(f"Set {m['attr']} to {new_text}", (Edit(span, new_text),), rule(m["code"]).fix_safe))
        if m["code"] == "SL101" and isinstance(call.func, ast.Attribute | ast.Name):
            fixes.append(_lazy_linear(call, source))
    return finding(m["code"], span, message, tuple(fixes), related)


def _lazy_linear(call: ast.Call, source: Source) -> Fix:
    """`nn.Linear(400, 120, bias=False)` → `nn.LazyLinear(120, bias=False)`: the size is inferred on first use."""
    func = source.segment(call.func)
    head = func.rpartition(".")[0]
    rest = [source.segment(a) for a in call.args[1:]] + [
        source.segment(k) for k in call.keywords if k.arg != "in_features"
    ]
    text = f"{head + '.' if head else ''}LazyLinear({', '.join(rest)})"
    return Fix(f"Use {text}", (Edit(span_of(source.path, call), text),), safe=False)


def _sl203(info: LayerInfo, sources: Sources) -> Finding:
    shapes = ", ".join(hint_label(s, "float32") for call in info.calls for s in call.inputs)
    source = sources.get(info.span.path)
    fixes: tuple[Fix, ...] = ()
    span = info.span
    if source is not None:
        text = source.lines[span.line - 1][span.column - 1 : span.end_column - 1] if span.line == span.end_line else ""
        if info.type in text:
            start = span.column + text.index(info.type)
            name_span = Span(span.path, span.line, start, span.line, start + len(info.type))
            fixes = (Fix("Use nn.Dropout", (Edit(name_span, "Dropout"),), safe=False),)
    rank = SPATIAL_DROPOUT[info.type]
    message = (
        f"{info.type} zeroes whole channels of a {rank}-D input, but it receives {shapes}: "
        f"without spatial dimensions use nn.Dropout"
    )
    return finding("SL203", span, message, fixes)
