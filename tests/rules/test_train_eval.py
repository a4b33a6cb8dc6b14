"""SL202 (a functional dropout that ignores `model.eval()`), as a user sees it."""

from __future__ import annotations

import pytest
from shapelens.core.findings import Severity
from static_support import HEADER, codes, fixed, line_of, model, only

# -- SL202 functional dropout without training -----------------------------------------------------------


def test_functional_dropout_without_training_gets_a_safe_fix() -> None:
    code = model("pass", "x = F.dropout(x, p=0.5)\nreturn x")
    finding = only(code, "SL202")
    assert finding.severity == Severity.WARNING
    assert (finding.span.line, finding.span.column) == (line_of(code, "F.dropout"), 13)
    assert "`Net.forward`" in finding.message and "model.eval()" in finding.message
    assert finding.fixes[0].safe
    after = fixed(code, finding)
    assert "x = F.dropout(x, p=0.5, training=self.training)" in after
    assert codes(after) == []


def test_fix_keeps_a_multi_line_call_with_trailing_comma_valid() -> None:
    code = model("pass", "x = torch.nn.functional.dropout2d(\n    x,\n    0.2,\n)\nreturn x")
    finding = only(code, "SL202")
    after = fixed(code, finding)
    assert "0.2, training=self.training," in after
    assert codes(after) == []


def test_functional_dropout_in_a_helper_method_with_another_self_name() -> None:
    code = HEADER + (
        "class Block(nn.Module):\n"
        "    def drop(me, x):\n"
        "        return F.dropout1d(x, 0.1)\n"
    )  # fmt: skip
    finding = only(code, "SL202")
    assert "Block.drop" in finding.message
    assert "training=me.training" in fixed(code, finding)


def test_explicit_training_true_is_reported_with_an_unsafe_fix() -> None:
    code = model("pass", "return F.dropout(x, 0.5, training=True)")
    finding = only(code, "SL202")
    assert "training=True" in finding.message and "Monte Carlo" in finding.message
    assert not finding.fixes[0].safe
    assert "F.dropout(x, 0.5, training=self.training)" in fixed(code, finding)


def test_torch_dropout_with_literal_train_true() -> None:
    code = model("pass", "return torch.dropout(x, 0.5, True)")
    finding = only(code, "SL202")
    assert "torch.dropout(x, 0.5, self.training)" in fixed(code, finding)


def test_alpha_dropout_without_training_never_drops() -> None:
    code = model("pass", "x = F.alpha_dropout(x, 0.1)\nreturn F.selu(x)")
    finding = only(code, "SL202")
    assert "never drops" in finding.message
    assert not finding.fixes[0].safe  # switching it on changes training


@pytest.mark.parametrize(
    "body",
    [
        "return F.dropout(x, 0.5, self.training)",
        "return F.dropout(x, 0.5, training=self.training and self.mc)",
        "return F.dropout(x, 0.5, False)",
        "return torch.dropout(x, 0.5, self.training)",
        "if self.training:\n    x = F.dropout(x, 0.5)\nreturn x",
        "return F.dropout(x, 0.5) if self.training else x",
        "return F.dropout(x, **self.kw)",
    ],
)
def test_functional_dropout_that_follows_the_mode_gets_nothing(body: str) -> None:
    assert codes(model("pass", body)) == []


def test_functional_dropout_outside_a_module_gets_nothing() -> None:
    code = HEADER + (
        "def mc(x):\n    return F.dropout(x, 0.5)\n\n"
        "class Augment:\n    def __call__(self, x):\n        return F.dropout(x, 0.5)\n"
    )
    assert codes(code) == []
