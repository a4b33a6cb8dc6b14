"""The rule registry: every rule is documented with a bad and a good example, and docs/rules.md is
generated from it. The examples themselves are run by tests/rules/test_examples.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from shapelens.analysis import rules

ROOT = Path(__file__).resolve().parents[2]


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
