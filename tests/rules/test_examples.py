"""Every rule's bad and good example is its test: the bad one triggers the rule, the good one does not.

A rule whose examples are complete files (`Rule.complete`) is checked on the file as it is: traced through
the real worker when the rule needs a trace (or, like SL003, is only reported by one). A snippet is put in
the `forward` of a module whose `__init__` builds `self.fc`, as a user would write it, and checked
statically. Three rules cannot be triggered by a file's content alone, so their test builds the input:
SL006 (a file over the size limit), SL007 (a file `shapelens check` cannot read) and SL002 (a trace timeout
short enough for a test).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from engine_support import Analyse
from shapelens.analysis.engine import static_report
from shapelens.analysis.rules import RULES, Rule
from shapelens.cli import main
from shapelens.core.source import MAX_CHARS

# options a rule's example needs to show its rule in a test's time
OPTIONS: dict[str, dict[str, object]] = {
    "SL002": {"timeout": 1.0},  # the default is 10 s
    "SL005": {"device": "cpu"},  # meta tensors take no memory: the cap is met on a real device
}
TRACED = {"SL003"} | {code for code, r in RULES.items() if r.needs_trace}  # SL003 is reported by a trace
BUILT = {"SL006", "SL007"}  # examples in words; the test builds the file


def in_a_module(example: str) -> str:
    """A snippet as a user would write it: in the `forward` of a module whose `__init__` builds `self.fc`."""
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


def codes(rule: Rule, example: str, analyse: Analyse) -> list[str]:
    text = example if rule.complete else in_a_module(example)
    if rule.code in TRACED:
        assert rule.complete, f"{rule.code}: a traced rule's examples must be complete files"
        reports = analyse(text, **OPTIONS.get(rule.code, {}))
        return [f.code for report in reports.values() for f in report.findings]
    return [f.code for f in static_report("example.py", text).findings]


STATIC = [r for r in RULES.values() if r.code not in TRACED | BUILT]
TRACED_RULES = [r for r in RULES.values() if r.code in TRACED]


@pytest.mark.parametrize("rule", STATIC, ids=lambda r: r.code)
def test_static_rule_bad_example_triggers_it(rule: Rule) -> None:
    assert rule.code in codes(rule, rule.bad, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", STATIC, ids=lambda r: r.code)
def test_static_rule_good_example_has_no_finding(rule: Rule) -> None:
    assert codes(rule, rule.good, None) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", TRACED_RULES, ids=lambda r: r.code)
def test_traced_rule_bad_example_triggers_it(rule: Rule, analyse: Analyse) -> None:
    assert rule.code in codes(rule, rule.bad, analyse)


@pytest.mark.parametrize("rule", TRACED_RULES, ids=lambda r: r.code)
def test_traced_rule_good_example_has_no_finding(rule: Rule, analyse: Analyse) -> None:
    assert codes(rule, rule.good, analyse) == []


def test_sl006_a_file_over_the_size_limit() -> None:
    assert "one line of 10 MB" in RULES["SL006"].bad
    huge = "WEIGHTS = [" + "0.1, " * (MAX_CHARS // 5) + "]\n"
    assert [f.code for f in static_report("weights.py", huge).findings] == ["SL006"]
    assert static_report("weights.py", in_a_module(RULES["SL006"].good)).findings == []


def test_sl007_a_file_check_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "shapelens check" in RULES["SL007"].bad
    unreadable = tmp_path / "model.py"
    unreadable.write_bytes(b"x = '\xff\xfe'\n")  # not UTF-8 text (the tests run as root: chmod 000 reads)
    assert main(["check", str(tmp_path), "--format", "json", "--no-trace"]) == 1
    found = [d["code"] for d in json.loads(capsys.readouterr().out)["files"][0]["diagnostics"]]
    assert found == ["SL007"]
    unreadable.write_text("x = 1\n")
    assert main(["check", str(tmp_path), "--format", "json", "--no-trace"]) == 0


def test_every_rule_is_exercised() -> None:
    """A new rule lands in one of the groups above, or this fails: no rule goes without its examples run."""
    assert {r.code for r in STATIC} | {r.code for r in TRACED_RULES} | BUILT == set(RULES)
    assert BUILT.isdisjoint(TRACED) and all(r.complete for r in TRACED_RULES)
