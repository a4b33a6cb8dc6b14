"""The rule registry: every finding Shapelens can report, collected from the family modules that declare
each rule once, beside its check, message and fix.

- `trace_failures`: SL000-SL009, the file does not parse or the traced model could not run;
- `scripts`: SL011, part of a script (or all of a PyTorch file) was not traced, and why;
- `layer_sizes`: SL101-SL105, a layer's declared size against what it received (traced);
- `dropout`: SL201 and SL203, where a dropout sits and which one (static, and SL203's traced half);
- `train_eval`: SL202, a functional dropout that ignores `model.eval()` (static);
- `layer_resize`: SL204, a layer "resized" after construction (static).

The static checks share one walk over the file (`walk.py`) and one name-resolution model
(`resolution.py`); what they know about PyTorch is `core/torch_facts.py`. docs/rules.md is generated from
this registry (`python -m shapelens.analysis.rules > docs/rules.md`); a test keeps it in sync, and another
runs every rule's bad and good example.
"""

from __future__ import annotations

from shapelens.analysis.rules import dropout, layer_resize, layer_sizes, scripts, trace_failures, train_eval
from shapelens.analysis.rules.base import RULES_URL, Rule, StaticCheck
from shapelens.analysis.rules.resolution import FileModel
from shapelens.analysis.rules.walk import Walk
from shapelens.core.findings import Finding
from shapelens.core.source import Source

__all__ = ["RULES", "RULES_URL", "STATIC_CHECKS", "Rule", "render_markdown", "rule", "static_findings"]

_FAMILIES = (trace_failures, scripts, layer_sizes, dropout, train_eval, layer_resize)

RULES: dict[str, Rule] = {r.code: r for r in sorted((r for f in _FAMILIES for r in f.RULES), key=lambda r: r.code)}
STATIC_CHECKS: tuple[type[StaticCheck], ...] = (*dropout.CHECKS, *train_eval.CHECKS, *layer_resize.CHECKS)


def rule(code: str) -> Rule:
    return RULES[code]


def static_findings(source: Source) -> list[Finding]:
    """The rules that need no trace (SL201, SL202, SL203's alpha-dropout half, SL204) for one parsed file, in
    source order. They read the AST only: nothing is imported or executed, so they are safe on untrusted
    code and run on every keystroke."""
    model = FileModel(source)
    checks = [check(model) for check in STATIC_CHECKS]
    Walk(model, checks).run()
    return sorted((f for c in checks for f in c.findings), key=lambda f: (f.span.line, f.span.column, f.code))


def render_markdown() -> str:
    """The rules page (docs/rules.md): one anchor per rule, with a bad and a good example."""
    out = [
        "# Shapelens rules",
        "",
        "Generated from the rule modules in `server/shapelens/analysis/rules/`; do not edit by hand.",
        "Suppress one on a line with `# shapelens: ignore[SL201]` (or `# shapelens: ignore` for all).",
        "",
        "| code | name | severity | needs a trace | fix |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in RULES.values():
        fix = f"{r.fix} ({'safe' if r.fix_safe else 'unsafe'})" if r.fix else ""
        link = f"[{r.code}](#{r.code.lower()}-{r.name})"
        out.append(f"| {link} | {r.name} | {r.severity.value} | {'yes' if r.needs_trace else 'no'} | {fix} |")
    for r in RULES.values():
        out += [
            "",
            f"## {r.code} {r.name}",
            "",
            r.summary,
            "",
            "Bad:",
            "```python",
            r.bad.rstrip("\n"),
            "```",
            "Good:",
            "```python",
            r.good.rstrip("\n"),
            "```",
        ]
    return "\n".join(out) + "\n"
