"""What every rule module is made of: the `Rule` declaration (code, name, severity, doc, bad and good
example, fix and its safety), the finding a rule reports, and the hooks a static check answers during the
one walk over a file (`walk.py`)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shapelens.core.findings import Finding, Fix, Related, Severity, Span

if TYPE_CHECKING:
    from shapelens.analysis.rules.resolution import FileModel, Scope

RULES_URL = "https://github.com/shapelens/shapelens/blob/main/docs/rules.md"


@dataclass(frozen=True)
class Rule:
    """One rule, declared once, in the module that holds its check.

    `bad` and `good` are its tests as well as its docs (tests/rules/test_examples.py): a `complete` example
    is a whole file, run as it is (traced, when the rule needs a trace); otherwise it is a snippet of a
    module's `forward`, whose `__init__` builds `self.fc`.
    """

    code: str
    name: str
    severity: Severity
    summary: str
    bad: str
    good: str
    fix: str | None = None  # what the quick fix does, if there is one
    fix_safe: bool = False
    needs_trace: bool = True
    complete: bool = False

    @property
    def url(self) -> str:
        return f"{RULES_URL}#{self.code.lower()}-{self.name}"

    def finding(
        self,
        span: Span,
        message: str,
        fixes: tuple[Fix, ...] = (),
        related: tuple[Related, ...] = (),
        severity: Severity | None = None,
    ) -> Finding:
        """A finding of this rule (at its default severity unless the check knows better)."""
        return Finding(self.code, severity or self.severity, span, message, fixes, related)


class StaticCheck:
    """A family of static rules, fed by the one walk over a file (`walk.py`) with the scope it carries.

    Override the hooks a rule needs; `findings` collects what they report. The walk resolves each call's
    callee once and passes the canonical name (None when the file does not say).
    """

    def __init__(self, model: FileModel) -> None:
        self.model = model  # the file's names and values, shared by every check
        self.findings: list[Finding] = []

    def name(self, node: ast.Name | ast.Attribute, scope: Scope) -> None:
        """A name or attribute read anywhere (the walk calls this for every one: keep it cheap)."""

    def call(self, call: ast.Call, callee: str | None, scope: Scope) -> None:
        """A call, before its arguments are visited."""

    def block(self, block: list[ast.stmt], scope: Scope) -> None:
        """A list of statements (a body, a branch), before they are visited one by one."""

    def assignment(self, node: ast.Assign | ast.AugAssign | ast.AnnAssign, scope: Scope) -> None:
        """An assignment statement."""

    def finish(self) -> None:
        """The walk is over: report what needed the whole file."""
