"""SL201 (dropout before an activation) and SL203's static half (alpha dropout without SELU), as a user
sees them: codes, severities, where they point, what they say, and that applying their fix gives code that
parses and no longer triggers the rule. Also a numeric check with torch of which activations give identical
outputs with dropout in front of them (the `identical` flags of core/torch_facts.py)."""

from __future__ import annotations

import textwrap

import pytest
from shapelens.core.findings import Severity
from shapelens.core.torch_facts import ACTIVATIONS
from static_support import HEADER, check, codes, fixed, line_of, model, only

# -- SL201 dropout before activation ---------------------------------------------------------------------


def test_sequential_dropout_before_gelu_is_a_warning_with_a_swap() -> None:
    code = HEADER + "net = nn.Sequential(nn.Linear(64, 64), nn.Dropout(0.1), nn.GELU())\n"
    finding = only(code, "SL201")
    assert finding.severity == Severity.WARNING
    assert (finding.span.line, finding.span.column, finding.span.end_column) == (4, 40, 55)  # nn.Dropout(0.1)
    assert finding.message.startswith("Dropout is applied before GELU: GELU(0) is 0 but GELU is not linear")
    assert "put the dropout after the activation" in finding.message
    assert not finding.fixes[0].safe
    after = fixed(code, finding)
    assert "nn.Sequential(nn.Linear(64, 64), nn.GELU(), nn.Dropout(0.1))" in after
    assert "SL201" not in codes(after)


def test_dropout_before_relu_is_information_saying_identical_never_an_error() -> None:
    finding = only(HEADER + "net = nn.Sequential(nn.Dropout(0.5), nn.ReLU(inplace=True))\n", "SL201")
    assert finding.severity == Severity.INFORMATION
    assert "identical" in finding.message and "convention" in finding.message
    assert "error" not in finding.message.lower()
    # a swap is offered but not marked safe: an in-place ReLU moved first would overwrite its input
    assert finding.fixes and not finding.fixes[0].safe


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: a.label)
def test_every_activation_in_the_table(activation: object) -> None:
    assert hasattr(activation, "label")
    label = activation.label  # type: ignore[attr-defined]
    finding = only(HEADER + f"net = nn.Sequential(nn.Dropout(), nn.{label}())\n", "SL201")
    identical = activation.identical  # type: ignore[attr-defined]
    assert finding.severity == (Severity.INFORMATION if identical else Severity.WARNING)
    assert f"before {label}" in finding.message
    assert ("identical" in finding.message) is identical


def test_which_activations_are_identical() -> None:
    identical = {a.label for a in ACTIVATIONS if a.identical}
    assert identical == {"ReLU", "LeakyReLU", "PReLU", "RReLU"}


def test_sigmoid_message_says_dropped_units_become_one_half() -> None:
    finding = only(HEADER + "net = nn.Sequential(nn.Dropout(), nn.Sigmoid())\n", "SL201")
    assert "Sigmoid(0) = 0.5 instead of 0" in finding.message


def test_relu6_is_not_identical_because_of_its_clamp() -> None:
    finding = only(HEADER + "net = nn.Sequential(nn.Dropout(), nn.ReLU6())\n", "SL201")
    assert finding.severity == Severity.WARNING
    assert "clips at 6" in finding.message


def test_alpha_dropout_before_relu_is_not_identical() -> None:
    code = HEADER + "net = nn.Sequential(nn.AlphaDropout(0.1), nn.ReLU(), nn.SELU())\n"
    finding = only(code, "SL201")
    assert finding.severity == Severity.WARNING
    assert "AlphaDropout is applied before ReLU" in finding.message


@pytest.mark.parametrize(
    "imports, sequential",
    [
        ("from torch.nn import Dropout as D, GELU", "torch.nn.Sequential(D(0.1), GELU())"),
        ("from torch import nn as tnn", "tnn.Sequential(tnn.Dropout2d(0.1), tnn.Tanh())"),
        ("import torch.nn", "torch.nn.Sequential(torch.nn.Dropout1d(), torch.nn.SiLU())"),
    ],
)
def test_sequential_through_any_import_spelling(imports: str, sequential: str) -> None:
    finding = only(f"import torch\n{imports}\nnet = {sequential}\n", "SL201")
    assert finding.severity == Severity.WARNING


def test_sequential_with_named_entries_and_layers_from_init() -> None:
    code = model(
        """
        self.drop = nn.Dropout(0.2)
        self.act = nn.Mish()
        self.net = nn.Sequential(nn.Linear(8, 8), self.drop, self.act)
        """,
        "return self.net(x)",
    )
    finding = only(code, "SL201")
    assert "before Mish" in finding.message
    assert "nn.Sequential(nn.Linear(8, 8), self.act, self.drop)" in fixed(code, finding)


def test_sequential_of_an_ordered_dict_swaps_whole_named_entries() -> None:
    code = (
        "from collections import OrderedDict\nimport torch.nn as nn\n"
        'net = nn.Sequential(OrderedDict([("fc", nn.Linear(4, 4)), ("drop", nn.Dropout()), ("act", nn.ELU())]))\n'
        "net2 = nn.Sequential(OrderedDict(drop=nn.Dropout(), act=nn.Tanh()))\n"
    )
    found = check(code)
    assert [(f.code, f.span.line) for f in found] == [("SL201", 3), ("SL201", 4)]
    after = fixed(code, found[0])
    assert '("act", nn.ELU()), ("drop", nn.Dropout())' in after
    after = fixed(code, found[1])
    assert "OrderedDict(act=nn.Tanh(), drop=nn.Dropout())" in after


def test_sequential_not_adjacent_or_correct_order_gives_nothing() -> None:
    code = HEADER + (
        "a = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Dropout(0.1))\n"
        "b = nn.Sequential(nn.Dropout(0.1), *blocks, nn.GELU())\n"
        "c = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 4), nn.GELU())\n"
        "d = nn.ModuleList([nn.Dropout(0.1), nn.GELU()])\n"
    )
    assert codes(code) == []


def test_forward_statement_order_with_modules_from_init() -> None:
    code = model(
        """
        self.fc = nn.Linear(16, 16)
        self.drop = nn.Dropout(0.1)
        self.act = nn.GELU()
        """,
        """
        x = self.fc(x)
        x = self.drop(x)
        x = self.act(x)
        return x
        """,
    )
    finding = only(code, "SL201")
    assert finding.span.line == line_of(code, "x = self.drop(x)")
    assert (finding.span.column, finding.span.end_column) == (13, 25)  # self.drop(x)
    after = fixed(code, finding)
    assert "x = self.act(x)\n        x = self.drop(x)\n" in after
    assert codes(after) == []


@pytest.mark.parametrize(
    "body, expected",
    [
        ("h = F.dropout(x, p=0.1, training=self.training)\nreturn F.gelu(h)",
         "h = F.gelu(x)\nreturn F.dropout(h, p=0.1, training=self.training)"),
        ("x = F.dropout(x, 0.1, self.training)\nx = torch.tanh(x)",
         "x = torch.tanh(x)\nx = F.dropout(x, 0.1, self.training)"),
        ("x = F.dropout(x + 1, 0.1, self.training)\nx = x.sigmoid()",
         "x = (x + 1).sigmoid()\nx = F.dropout(x, 0.1, self.training)"),
        ("x = F.dropout(x, 0.1, self.training)\nx = F.leaky_relu(x, 0.2)",
         "x = F.leaky_relu(x, 0.2)\nx = F.dropout(x, 0.1, self.training)"),
    ],
)  # fmt: skip
def test_forward_statement_order_functional(body: str, expected: str) -> None:
    code = model("pass", body)
    finding = only(code, "SL201")
    assert textwrap.indent(expected, " " * 8) in fixed(code, finding)


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("self.act(self.drop(x))", "self.drop(self.act(x))"),
        ("F.gelu(F.dropout(x, 0.1, self.training))", "F.dropout(F.gelu(x), 0.1, self.training)"),
        ("self.drop(x).relu()", "self.drop(x.relu())"),
        ("self.drop(x + 1).relu()", "self.drop((x + 1).relu())"),
        ("torch.sigmoid(nn.Dropout(0.2)(x))", "nn.Dropout(0.2)(torch.sigmoid(x))"),
    ],
)
def test_nested_calls(expression: str, expected: str) -> None:
    code = model("self.drop = nn.Dropout(0.1)\nself.act = nn.GELU()", f"return {expression}")
    finding = only(code, "SL201")
    after = fixed(code, finding)
    assert f"return {expected}" in after
    assert "SL201" not in codes(after)


def test_dropout_result_read_again_gets_the_finding_but_no_swap() -> None:
    code = model(
        "self.drop = nn.Dropout(0.1)\nself.act = nn.Tanh()",
        "h = self.drop(x)\ny = self.act(h)\nreturn y + h",
    )
    finding = only(code, "SL201")
    assert finding.fixes == ()


def test_correct_models_get_nothing() -> None:
    code = model(
        """
        self.fc1 = nn.Linear(16, 16)
        self.act = nn.GELU()
        self.drop = nn.Dropout(0.1)
        self.norm = nn.LayerNorm(16)
        self.in_features = 16
        self.head = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
        """,
        """
        x = self.act(self.fc1(x))
        x = self.drop(x)
        x = self.norm(x)
        y = F.dropout(x, p=0.2, training=self.training)
        z = torch.tanh(x)
        w = F.dropout(F.gelu(x), 0.1, self.training)
        v = F.gelu(F.dropout(x, 0.1, training=False))
        u = F.alpha_dropout(F.selu(x), 0.1, self.training)
        return self.head(x + y + z + w + v + u)
        """,
    )
    assert check(code) == []


def test_a_local_class_named_like_an_activation_is_not_the_activation() -> None:
    code = HEADER + "class GELU(nn.Module):\n    pass\n\nnet = nn.Sequential(nn.Dropout(), GELU())\n"
    assert codes(code) == []


def test_an_attribute_assigned_two_different_layers_is_not_guessed() -> None:
    code = model(
        "self.act = nn.GELU() if True else nn.ReLU()\nself.drop = nn.Dropout()",
        "x = self.drop(x)\nreturn self.act(x)",
    )
    assert codes(code) == []


# -- SL203 alpha dropout without SELU --------------------------------------------------------------------


def test_alpha_dropout_without_selu_in_the_class() -> None:
    code = model("self.drop = nn.AlphaDropout(0.1)\nself.act = nn.ReLU()", "return self.drop(self.act(x))")
    finding = only(code, "SL203")
    assert finding.severity == Severity.WARNING
    assert "no SELU in class `Net`" in finding.message
    after = fixed(code, finding)
    assert "self.drop = nn.Dropout(0.1)" in after
    assert codes(after) == []


@pytest.mark.parametrize(
    "init, forward",
    [
        ("self.drop = nn.AlphaDropout(0.1)\nself.act = nn.SELU()", "return self.drop(self.act(x))"),
        ("self.drop = nn.AlphaDropout(0.1)", "return self.drop(F.selu(x))"),
        ("self.drop = nn.FeatureAlphaDropout(0.1)", "return self.drop(torch.selu(x))"),
    ],
)
def test_alpha_dropout_with_selu_gets_nothing(init: str, forward: str) -> None:
    assert codes(model(init, forward)) == []


def test_functional_alpha_dropout_is_not_sl203() -> None:
    """Only the layers are reported: the functional form is how they are implemented (torch's own
    AlphaDropout calls it), and SL202 already covers its `training` flag."""
    assert codes(model("pass", "return F.alpha_dropout(x, 0.1, self.training)")) == []


def test_alpha_dropout_in_a_module_level_sequential() -> None:
    good = HEADER + "net = nn.Sequential(nn.Linear(4, 4), nn.SELU(), nn.AlphaDropout(0.1))\n"
    assert codes(good) == []
    bad = HEADER + "net = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.FeatureAlphaDropout(0.1))\n"
    finding = only(bad, "SL203")
    assert "this nn.Sequential" in finding.message and "Dropout1d/2d/3d" in finding.message
    assert finding.fixes == ()  # channel-wise: no one-to-one replacement


# -- the numbers behind "identical" ---------------------------------------------------------------------


def test_identical_outputs_with_dropout_before_the_activation_numerically() -> None:
    """act(m * x / (1 - p)) == m * act(x) / (1 - p) for a 0/1 mask m exactly for the `identical` entries."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    x = torch.randn(4096, dtype=torch.float64) * 8  # large values too, to reach clamps such as ReLU6's
    p = 0.3
    mask = (torch.rand(4096, dtype=torch.float64) > p).to(torch.float64)
    for activation in ACTIVATIONS:
        # RReLU in eval mode uses its mean slope; its training mode is checked below
        act = getattr(nn, activation.label)().to(torch.float64).eval()
        before = act(x * mask / (1 - p))
        after = act(x) * mask / (1 - p)
        same = torch.allclose(before, after, rtol=1e-12, atol=1e-12)
        assert same is activation.identical, (activation.label, (before - after).abs().max().item())


def test_rrelu_in_training_scales_like_a_leaky_relu_with_random_slopes() -> None:
    """Training-mode RReLU is x for x >= 0 and a * x with a ~ U(lower, upper) otherwise: for every drawn
    slope it is positively homogeneous with f(0) = 0, so dropout before or after it gives outputs with the
    same distribution (not the same numbers: the slopes are drawn afresh)."""
    torch = pytest.importorskip("torch")
    act = torch.nn.RReLU(0.1, 0.3).train()
    x = torch.randn(4096, dtype=torch.float64) * 3
    for scale in (1.0, 1 / 0.7):
        y = act(x * scale)
        slope = y[x < 0] / (x[x < 0] * scale)
        assert bool(((slope >= 0.1 - 1e-12) & (slope <= 0.3 + 1e-12)).all())
        assert torch.equal(y[x >= 0], x[x >= 0] * scale)
    assert act(torch.zeros(8, dtype=torch.float64)).abs().max().item() == 0


def test_with_torch_dropout_modules_and_the_same_seed() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    x = torch.randn(64, 256) * 4
    for name, identical in (("ReLU", True), ("LeakyReLU", True), ("GELU", False), ("Tanh", False), ("ReLU6", False)):
        act = getattr(nn, name)()
        drop = nn.Dropout(0.5)
        torch.manual_seed(0)
        before = act(drop(x))
        torch.manual_seed(0)  # the same mask: dropout draws it for the same shape
        after = drop(act(x))
        assert torch.allclose(before, after) is identical, name
    # alpha dropout does not zero units: even ReLU differs
    torch.manual_seed(0)
    before = nn.ReLU()(nn.AlphaDropout(0.5)(x))
    torch.manual_seed(0)
    after = nn.AlphaDropout(0.5)(nn.ReLU()(x))
    assert not torch.allclose(before, after)
