"""The rule catalogue: every rule is documented with a bad and a good example, docs/rules.md is generated
from it, and each static rule's own examples are its test cases (the bad one triggers it, the good one
does not)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from shapelens.analysis import rules
from shapelens.analysis.static_rules import CODES, static_findings
from shapelens.core.source import Source, parse

ROOT = Path(__file__).resolve().parent.parent
# the rules static_rules.py reports (SL203's Dropout2d half needs a trace; its alpha-dropout half is static)
STATIC = [rules.rule(code) for code in CODES]


@pytest.mark.parametrize("rule", rules.RULES.values(), ids=lambda r: r.code)
def test_every_rule_is_documented(rule: rules.Rule) -> None:
    assert rule.code.startswith("SL") and len(rule.code) == 5
    assert rule.name and rule.name == rule.name.lower() and " " not in rule.name
    assert rule.summary.strip() and rule.bad.strip() and rule.good.strip()
    assert rule.bad != rule.good
    assert rule.fix is None or rule.fix.strip()
    assert rule.url.endswith(f"#{rule.code.lower()}-{rule.name}")


def test_codes_and_names_are_unique() -> None:
    assert len({r.name for r in rules.RULES.values()}) == len(rules.RULES)


def test_docs_page_is_generated_from_the_catalogue() -> None:
    """Regenerate with `.venv/bin/python -m shapelens.analysis.rules > docs/rules.md`."""
    assert (ROOT / "docs" / "rules.md").read_text(encoding="utf-8") == rules.render_markdown()


def in_a_module(example: str) -> str:
    """A rule's example as a user would write it: in the `forward` of a module whose `__init__` builds
    the layers the examples use (`self.fc`)."""
    body = textwrap.indent(textwrap.dedent(example).strip("\n"), " " * 8)
    return (
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(400, 120)\n\n"
        "    def forward(self, x):\n"
        f"{body}\n"
        "        return x\n"
    )


def findings_for(code: str) -> list[str]:
    source = parse("example.py", code)
    assert isinstance(source, Source), source
    return [f.code for f in static_findings(source)]


@pytest.mark.parametrize("rule", STATIC, ids=lambda r: r.code)
def test_static_rule_bad_example_triggers_it(rule: rules.Rule) -> None:
    assert rule.code in findings_for(in_a_module(rule.bad))


@pytest.mark.parametrize("rule", STATIC, ids=lambda r: r.code)
def test_static_rule_good_example_does_not(rule: rules.Rule) -> None:
    assert findings_for(in_a_module(rule.good)) == []
