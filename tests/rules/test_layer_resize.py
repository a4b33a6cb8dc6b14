"""SL204 (a layer "resized" at run time), as a user sees it."""

from __future__ import annotations

import pytest
from shapelens.core.findings import Severity
from static_support import HEADER, check, codes, line_of, model, only

# -- SL204 layer "resized" at run time -------------------------------------------------------------------


def test_seed_example_assigning_in_features_in_forward() -> None:
    code = model(
        "self.conv1d = nn.Conv1d(4, 64, 3)\nself.linear = nn.Linear(in_features=1, out_features=10, bias=False)",
        "x = self.conv1d(x)\nx = x.view(x.shape[0], -1)\nself.linear.in_features = x.shape[1]\nreturn self.linear(x)",
    )
    finding = only(code, "SL204")
    assert finding.severity == Severity.WARNING
    assert (finding.span.line, finding.span.column) == (line_of(code, ".in_features ="), 9)
    assert "nn.Linear" in finding.message
    assert "weight keeps the shape [10, 1]" in finding.message
    assert "last dimension is 1" in finding.message and "nn.LazyLinear" in finding.message
    assert finding.fixes == ()
    assert finding.related and finding.related[0].span.line == line_of(code, "nn.Linear(")  # where built


def test_augmented_assignment_on_a_conv_names_the_weight_shape() -> None:
    code = model("self.conv = nn.Conv2d(3, 16, 3)", "self.conv.out_channels += 1\nreturn self.conv(x)")
    finding = only(code, "SL204")
    assert "[16, 3, 3, 3]" in finding.message and "16 output channels" in finding.message


def test_lstm_hidden_size_names_the_gates() -> None:
    code = model("self.lstm = nn.LSTM(32, 128)", "self.lstm.hidden_size = 64\nreturn self.lstm(x)")
    assert "weight_ih_l0 keeps the shape [4 * 128, 32]" in only(code, "SL204").message


def test_module_level_assignments() -> None:
    code = HEADER + (
        "import torchvision\n"
        "model = torchvision.models.resnet18()\n"
        "model.fc.out_features = 10\n"
        "emb = nn.Embedding(1000, 64)\n"
        "emb.num_embeddings = 2000\n"
        "for m in model.modules():\n"
        "    if isinstance(m, nn.BatchNorm2d):\n"
        "        m.num_features = 8\n"
    )
    found = check(code)
    assert [(f.code, f.span.line) for f in found] == [("SL204", 6), ("SL204", 8), ("SL204", 11)]
    assert "model.fc = nn.Linear" in found[0].message
    assert "[1000, 64]" in found[1].message
    assert "BatchNorm2d" in found[2].message


@pytest.mark.parametrize(
    "code",
    [
        # a module keeping its own sizes
        HEADER + "class L(nn.Module):\n    def __init__(self, n):\n        self.in_features = n\n",
        # configs and argument namespaces
        "config.hidden_size = 768\nargs.in_channels = 3\nself_cfg.model.in_features = 4\n",
        "cfg.encoder.in_channels = 3\nhparams.out_features = 2\n",
        # an unknown attribute of self (may be anything) and a layer-neutral name on an unknown object
        HEADER + "class M(nn.Module):\n    def f(self):\n        self.head.in_features = 3\n"
        "        self.backbone.num_features = 3\n",
        # an attribute the layer does not have
        HEADER + "lin = nn.Linear(2, 3)\nlin.in_channels = 4\n",
        # the weight is replaced as well: the attribute is only kept in sync with it
        "def resize(model, new):\n    model.decoder.embed.weight = new.weight\n"
        "    model.decoder.embed.num_embeddings = new.weight.shape[0]\n",
    ],
)
def test_resize_false_positives_stay_quiet(code: str) -> None:
    assert codes(code) == []
