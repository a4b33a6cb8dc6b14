"""SL202 functional-dropout-training: the train/eval rule. `F.dropout` does not follow `model.eval()`
unless it is told to, unlike `nn.Dropout`."""

from __future__ import annotations

import ast

from shapelens.analysis.rules.base import Rule, StaticCheck
from shapelens.analysis.rules.resolution import Scope
from shapelens.core.findings import Edit, Fix, Severity, Span
from shapelens.core.torch_facts import DROPOUTS, Dropout

SL202 = Rule(
    code="SL202",
    name="functional-dropout-training",
    severity=Severity.WARNING,
    summary=(
        "`F.dropout(x, p)` in `forward` (or any method of a module) without `training=self.training` keeps dropping "
        "after `model.eval()`: the functional form defaults to `training=True`, unlike `nn.Dropout`. An explicit "
        "`training=True` is reported too (its fix is not marked safe: Monte Carlo dropout does that on purpose); a "
        "call under `if self.training:` is not."
    ),
    bad="x = F.dropout(x, p=0.5)\n",
    good="x = F.dropout(x, p=0.5, training=self.training)\n",
    fix="Pass `training=self.training`",
    fix_safe=True,
    needs_trace=False,
)

RULES = (SL202,)  # what the registry (`rules/__init__.py`) collects from this family


class FunctionalDropoutCheck(StaticCheck):
    """SL202, at each call of a functional dropout."""

    def call(self, call: ast.Call, callee: str | None, scope: Scope) -> None:
        """A functional dropout in a module's method that does not follow the module's mode."""
        drop = DROPOUTS.get(callee) if callee is not None else None
        if drop is None or not drop.functional:
            return
        if scope.cls is None or scope.self_name is None or scope.method is None or scope.guarded:
            return
        if not call.args or not self.model.is_module_class(scope.cls):
            return
        if any(k.arg is None for k in call.keywords) or any(
            isinstance(a, ast.Starred) for a in call.args[: drop.position + 1]
        ):
            return  # `**kwargs` / `*args` may carry the flag
        value = training_arg(call, drop)
        where = f"{scope.cls.name}.{scope.method.name}"
        callee = self.model.text(call.func)
        flag = f"{drop.training}={scope.self_name}.training"
        if value is None:
            if drop.default is None:
                return  # a required argument is missing: a TypeError, not ours
            last = self.model.source.span(max((*call.args, *(k.value for k in call.keywords)), key=_end))
            at = Span(last.path, last.end_line, last.end_column, last.end_line, last.end_column)
            if drop.default:
                message = (
                    f"`{callee}` in `{where}` keeps dropping after `model.eval()`: the functional form "
                    f"defaults to training=True, unlike nn.Dropout; pass `{flag}`"
                )
            else:
                message = (
                    f"`{callee}` in `{where}` never drops, in training either: it defaults to "
                    f"training=False; pass `{flag}`"
                )
            # adding the flag to F.dropout only changes eval mode (what was meant); switching a silently
            # inactive alpha dropout on changes training, so that one is the user's call
            fix = Fix(f"Pass `{flag}`", (Edit(at, f", {flag}"),), safe=bool(drop.default))
        elif isinstance(value, ast.Constant) and value.value is True:
            message = (
                f"`{callee}` in `{where}` is called with {drop.training}=True, so it keeps dropping after "
                f"`model.eval()`; pass `{flag}` (for Monte Carlo dropout on purpose, suppress this with "
                f"`# shapelens: ignore[SL202]`)"
            )
            # an explicit True may be deliberate (Monte Carlo dropout): not safe to rewrite unasked
            edit = Edit(self.model.source.span(value), f"{scope.self_name}.training")
            fix = Fix(f"Pass `{flag}`", (edit,), safe=False)
        else:
            return
        self.findings.append(SL202.finding(self.model.source.span(call), message, (fix,)))


def training_arg(call: ast.Call, drop: Dropout) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == drop.training:
            return keyword.value
    return call.args[drop.position] if len(call.args) > drop.position else None


def _end(node: ast.expr) -> tuple[int, int]:
    return (node.end_lineno or 0, node.end_col_offset or 0)


CHECKS: tuple[type[StaticCheck], ...] = (FunctionalDropoutCheck,)  # fed by the one walk (`walk.py`)
