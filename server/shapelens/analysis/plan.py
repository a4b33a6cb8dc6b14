"""The plan: which models of a file are traced, how each is built and called, and which top-level statements
the trace child may run. Its `message()` is what crosses the process boundary (`core.wire.TracePlan`).
Models with no known input are not sent; they stay in `Plan.skipped` and become SL003 findings.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

from shapelens.analysis import script
from shapelens.analysis.discover import Model, find_models
from shapelens.analysis.inputs import Inputs, Item, inputs_for
from shapelens.core.options import Options
from shapelens.core.source import Source
from shapelens.core.syntax import bound_names, keep_top_level, loaded_names, node_key
from shapelens.core.wire import InputSource, Status, TargetSpec, TracedInput, TracePlan, TraceResult


@dataclass
class Plan:
    source: Source
    root: str
    options: Options
    models: list[tuple[Model, Inputs]] = field(default_factory=list)
    keep: list[ast.stmt] = field(default_factory=list)

    @property
    def traced(self) -> list[tuple[Model, Inputs]]:
        return [(m, i) for m, i in self.models if i.source != InputSource.NONE]

    @property
    def skipped(self) -> list[tuple[Model, Inputs]]:
        return [(m, i) for m, i in self.models if i.source == InputSource.NONE]

    def message(self) -> TracePlan:
        """The plan as the trace worker receives it."""
        return TracePlan(
            file=self.source.path,
            root=self.root,
            module=module_name(self.source.path, self.root),
            source=self.source.text,
            device=self.options.device,
            timeout=self.options.timeout,
            memory_mb=self.options.memory_mb,
            flops=self.options.flops,
            symbolic=self.options.symbolic,
            keep=[list(node_key(s)) for s in self.keep],
            script=script.script_items(self.source.tree, self.keep) if self.options.trusted else [],
            targets=[
                TargetSpec(
                    name=model.name,
                    kind=model.kind,
                    line=model.node.lineno,
                    input_source=inputs.source,
                    setup=inputs.setup,
                    model=inputs.model,
                    args=inputs.args,
                    kwargs=inputs.kwargs,
                    infer_from=inputs.infer_from,
                    alternatives=inputs.alternatives,
                    synthesized=inputs.synthesized,
                    prior=_PRIOR.get((self.source.path, model.name), []) if inputs.infer_from is not None else [],
                )
                for model, inputs in self.traced
            ],
        )


# The inputs each inferred model was last traced with, by (file, model): the next trace of the file (the editor
# traces after every edit) tries them first, so a model whose free sizes were solved is not solved again while
# they still fit (the symbolic pass costs 0.4-0.8 s; a plain trace, milliseconds).
_PRIOR: dict[tuple[str, str], list[TracedInput]] = {}


def remember_inputs(plan: Plan, result: TraceResult) -> None:
    """Keep the inputs of the inferred models that traced cleanly, for `build_plan`'s next plan of the file."""
    inferred = {m.name for m, i in plan.traced if i.infer_from is not None and not i.args and not i.kwargs}
    for target in result.targets:
        if target.name in inferred and target.status == Status.OK and target.error is None and target.inputs:
            if len(_PRIOR) > 1000:  # an editor session's worth; a long one starts over
                _PRIOR.clear()
            _PRIOR[(plan.source.path, target.name)] = target.inputs


def module_name(path: str, root: str) -> str:
    """The dotted name the file has when imported from `root` (packages need `__init__.py` all the way),
    else its stem: executed user code lives in a real module registered under this name."""
    folder, stem = os.path.split(os.path.abspath(path))[0], os.path.splitext(os.path.basename(path))[0]
    parts = [stem]
    root = os.path.abspath(root)
    while folder.startswith(root) and folder != root and os.path.exists(os.path.join(folder, "__init__.py")):
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    return ".".join(parts)


def _nodes_by_key(source: Source) -> dict[tuple[int | None, ...], list[ast.AST]]:
    """The file's nodes by their key: a plan item names its node by key, and a file's models share one walk."""
    keyed: dict[tuple[int | None, ...], list[ast.AST]] = {}
    for node in ast.walk(source.tree):
        keyed.setdefault(node_key(node), []).append(node)
    return keyed


def _item_nodes(keyed: dict[tuple[int | None, ...], list[ast.AST]], items: list[Item]) -> list[ast.AST]:
    wanted = {tuple(i["node"]) for i in items if "node" in i}
    return [n for key in wanted for n in keyed.get(key, [])]


def build_plan(source: Source, root: str, options: Options) -> Plan:
    plan = Plan(source, os.path.abspath(root), options)
    extra: set[str] = set()  # what the traced models reach: their names and what their example calls read
    keyed = _nodes_by_key(source)
    for model in find_models(source, root):
        inputs = inputs_for(source, model, plan.root)
        plan.models.append((model, inputs))
        if inputs.source == InputSource.NONE:
            continue
        extra.add(model.name)
        items = [
            *inputs.setup,
            *([inputs.model] if inputs.model else []),
            *inputs.args,
            *inputs.kwargs.values(),
        ]
        nodes = _item_nodes(keyed, items)
        setup_nodes = [n for n in _item_nodes(keyed, inputs.setup) if isinstance(n, ast.stmt)]
        bound = set().union(*(bound_names(n) for n in setup_nodes)) if setup_nodes else set()
        extra |= set().union(*(loaded_names(n) for n in nodes)) - bound if nodes else set()
        for item in [*items, *inputs.alternatives]:  # generated code (`Net(10)`, `batch = 8`) names them too
            if "code" in item:
                extra |= loaded_names(ast.parse(item["code"]))
    plan.keep = keep_top_level(source.tree, extra)
    return plan
