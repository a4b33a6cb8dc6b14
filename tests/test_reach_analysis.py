"""Reach, the analysis side (#8): how a model gets a constructor and an input with nobody's help, what the
user sees about where they came from, and that a guess never accuses the code.

- directives: above or below decorators, tuples of tensors, `None`, keyword inputs;
- constructors: the class's defaults, a config class built from its defaults (found by annotation or name),
  a real call of the class in another file of the workspace, small ints chosen by the parameter's name, no
  weights ever downloaded; the plan's alternatives end with `{"build": ...}`;
- SL003 names the real reason (no `forward`; the constructor argument nothing could supply);
- a failure of a guessed trace is information (SL010), never an error; with the user's input it stays one;
- `input_source` and the inputs in `--format json` and in the hover on the class name.

Shapes are compared with a real CPU run of the same model (tests/oracle.py).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from engine_support import Analyse, write
from oracle import run_on_cpu
from shapelens.analysis.discover import find_models
from shapelens.analysis.inputs import Inputs, inputs_for
from shapelens.analysis.plan import build_plan
from shapelens.analysis.trace_report import reports_from_trace
from shapelens.cli import main
from shapelens.core.findings import FileReport, Severity
from shapelens.core.options import Options
from shapelens.core.source import Source, parse
from shapelens.core.wire import InputSource, Status, TargetResult, TraceResult
from shapelens.lsp import render


def parsed(folder: Path, name: str, text: str) -> Source:
    path = write(folder, name, text)
    source = parse(path, textwrap.dedent(text))
    assert isinstance(source, Source)
    return source


def inputs_of(folder: Path, text: str, model: str, name: str = "model.py") -> Inputs:
    source = parsed(folder, name, text)
    found = next(m for m in find_models(source, str(folder)) if m.name == model)
    return inputs_for(source, found, str(folder))


def hints(reports: dict[str, FileReport]) -> dict[tuple[str, int, str], list[tuple[int | None, ...]]]:
    return {(h.path, h.line, h.target): list(h.shapes) for r in reports.values() for h in r.hints}


def assert_matches_cpu(
    reports: dict[str, FileReport], truth: dict[tuple[str, int, str], list[tuple[int, ...]]]
) -> None:
    ours = hints(reports)
    assert ours, "the trace produced no hints"
    assert ours == {k: [tuple(s) for s in v] for k, v in truth.items() if not k[2].startswith("self.")}


def errors(reports: dict[str, FileReport]) -> list[str]:
    return [f"{f.code} {f.message}" for r in reports.values() for f in r.findings if f.severity == Severity.ERROR]


# -- directives ------------------------------------------------------------------------------------------

DECORATED = """
    import torch
    from torch import nn


    def register(cls):
        return cls


    @register
    # shapelens: x=(4, 8)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            y = self.fc(x)
            return y.relu()
"""


def test_a_directive_between_a_decorator_and_the_class_is_read(analyse: Analyse, tmp_path: Path) -> None:
    found = inputs_of(tmp_path, DECORATED, "Net")
    assert found.source == InputSource.DIRECTIVE
    assert found.kwargs == {"x": {"tensor": [4, 8], "dtype": "float32"}}
    reports = analyse(DECORATED)
    path = str(tmp_path / "model.py")
    assert not reports[path].findings  # no SL003 asking for the directive the user wrote
    assert_matches_cpu(reports, run_on_cpu(path, "Net", {"x": (4, 8)}).shapes())
    [model] = reports[path].models
    assert (model.name, model.input_source, model.inputs[0].shape) == ("Net", "directive", (4, 8))


LSTM_STATE = """
    import torch
    from torch import nn


    # shapelens: x=(2, 5, 8), hidden=((1, 2, 16), (1, 2, 16)), mask=None
    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True)

        def forward(self, x, hidden=None, mask=None):
            out, (h, c) = self.lstm(x, hidden)
            if mask is not None:
                out = out * mask
            return out
"""


def test_directive_tuples_of_tensors_and_none(analyse: Analyse, tmp_path: Path) -> None:
    found = inputs_of(tmp_path, LSTM_STATE, "Encoder")
    tensor = {"tensor": [1, 2, 16], "dtype": "float32"}
    assert found.kwargs == {
        "x": {"tensor": [2, 5, 8], "dtype": "float32"},
        "hidden": {"tuple": [tensor, tensor]},
        "mask": {"code": "None"},
    }
    reports = analyse(LSTM_STATE)
    path = str(tmp_path / "model.py")
    assert not reports[path].findings
    state = (torch.zeros(1, 2, 16), torch.zeros(1, 2, 16))
    truth = run_on_cpu(path, "Encoder", {"x": (2, 5, 8), "hidden": state, "mask": None}).shapes()
    assert_matches_cpu(reports, truth)


def test_a_nested_tuple_and_a_dtype_inside_a_tuple(tmp_path: Path) -> None:
    text = LSTM_STATE.replace("hidden=((1, 2, 16), (1, 2, 16))", "hidden=((1, 2, 16), (int64(1, 2), (3,)))")
    found = inputs_of(tmp_path, text, "Encoder")
    assert found.kwargs["hidden"] == {
        "tuple": [
            {"tensor": [1, 2, 16], "dtype": "float32"},
            {"tuple": [{"tensor": [1, 2], "dtype": "int64"}, {"tensor": [3], "dtype": "float32"}]},
        ]
    }


def test_a_directive_mixing_sizes_and_tensors_says_so(tmp_path: Path) -> None:
    found = inputs_of(tmp_path, LSTM_STATE.replace("((1, 2, 16), (1, 2, 16))", "(1, (2, 16))"), "Encoder")
    assert found.source == InputSource.NONE
    assert "mix of sizes and tensors" in found.reason


# -- constructors ----------------------------------------------------------------------------------------

GPT_LIKE = """
    from dataclasses import dataclass

    import torch
    from torch import nn


    @dataclass
    class TinyConfig:
        vocab_size: int = 50
        n_embd: int = 24
        n_layer: int = 2


    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.fc = nn.Linear(config.n_embd, config.n_embd)

        def forward(self, x):
            return x + self.fc(x)


    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.wte = nn.Embedding(config.vocab_size, config.n_embd)
            self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
            self.head = nn.Linear(config.n_embd, config.vocab_size)

        def forward(self, idx):
            x = self.wte(idx)
            for block in self.blocks:
                x = block(x)
            logits = self.head(x)
            return logits
"""


def test_a_config_object_is_built_from_its_dataclass_defaults(analyse: Analyse, tmp_path: Path) -> None:
    found = inputs_of(tmp_path, GPT_LIKE, "GPT")
    assert found.source == InputSource.INFER
    assert found.model == {"code": "GPT(config=TinyConfig())"}
    assert found.synthesized == ["config=TinyConfig() (its defaults)"]
    assert found.alternatives[-1] == {"build": "GPT"}
    assert not found.guessed  # the config's own defaults are not a guess
    reports = analyse(GPT_LIKE)
    path = str(tmp_path / "model.py")
    assert errors(reports) == []
    gpt = next(m for m in reports[path].models if m.name == "GPT")
    assert gpt.input_source == "inferred"
    assert "config=TinyConfig() (its defaults)" in gpt.notes
    [given] = gpt.inputs
    assert given.dtype == "int64" and given.shape is not None
    idx = torch.randint(0, 50, given.shape)  # type: ignore[arg-type]
    truth = run_on_cpu(path, build="GPT(TinyConfig())", inputs=[idx]).shapes()
    ours = hints(reports)
    for key, shapes in truth.items():  # every line GPT's real run bound has that shape
        if not key[2].startswith("self."):
            assert ours.get(key, [None])[0] == shapes[0], key


def test_a_config_found_by_annotation_a_namedtuple_and_a_plain_class(tmp_path: Path) -> None:
    text = """
        from typing import NamedTuple
        from torch import nn


        class Shape(NamedTuple):
            width: int = 8


        class Settings:
            def __init__(self, depth=2):
                self.depth = depth


        class A(nn.Module):
            def __init__(self, shape: Shape):
                super().__init__()
                self.fc = nn.Linear(shape.width, 2)

            def forward(self, x):
                return self.fc(x)


        class B(nn.Module):
            def __init__(self, cfg):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(x)
    """
    assert inputs_of(tmp_path, text, "A").model == {"code": "A(shape=Shape())"}
    assert inputs_of(tmp_path, text, "B").model == {"code": "B(cfg=Settings())"}


def test_a_config_with_no_class_is_a_namespace_of_what_the_model_reads(analyse: Analyse, tmp_path: Path) -> None:
    text = """
        from torch import nn


        class Head(nn.Module):
            def __init__(self, args):
                super().__init__()
                self.fc = nn.Linear(args.d_hidden, args.n_classes)

            def forward(self, x):
                return self.fc(x)


        class Encoder(nn.Module):
            def __init__(self, args):
                super().__init__()
                self.args = args
                self.rnn = nn.GRU(args.d_embed, args.d_hidden, num_layers=args.n_layers, batch_first=True)
                self.head = Head(args)  # reads args.n_classes, which Encoder never does

            def forward(self, x):
                out, h = self.rnn(x)
                last = out[:, -1] if not self.args.use_mean else out.mean(1)
                return self.head(last)
    """
    found = inputs_of(tmp_path, text, "Encoder")
    namespace = "__import__('types').SimpleNamespace(d_hidden=64, n_classes=10, d_embed=64, n_layers=2, use_mean=False)"
    assert found.model == {"code": f"Encoder(args={namespace})"}
    assert found.guessed
    reports = analyse(text)
    path = str(tmp_path / "model.py")
    assert errors(reports) == []
    assert_matches_cpu(reports, run_on_cpu(path, build=found.model["code"], inputs=[(2, 8, 64)]).shapes())


def test_a_placeholder_size_in_a_config_gets_a_small_value(tmp_path: Path) -> None:
    text = """
        from dataclasses import dataclass
        from torch import nn


        @dataclass
        class ModelArgs:
            dim: int = 32
            vocab_size: int = -1  # defined later by the tokenizer


        class Transformer(nn.Module):
            def __init__(self, model_args: ModelArgs):
                super().__init__()
                self.emb = nn.Embedding(model_args.vocab_size, model_args.dim)

            def forward(self, tokens):
                return self.emb(tokens)
    """
    found = inputs_of(tmp_path, text, "Transformer")
    assert found.model == {"code": "Transformer(model_args=ModelArgs(vocab_size=100))"}
    [note] = found.synthesized
    assert note == "model_args=ModelArgs(vocab_size=100) (its defaults, vocab_size=100 for a placeholder)"


def test_a_layer_parameter_none_by_default_that_init_calls_gets_a_layer_of_its_rank(tmp_path: Path) -> None:
    # timm's Bottle2neck pattern (the trace of it is in test_reach_trace): the norm follows the block's convolutions
    text = """
        from torch import nn


        class Block1d(nn.Module):
            def __init__(self, channels, norm_layer=None, act_layer=None, attn_layer=None):
                super().__init__()
                self.conv = nn.Conv1d(channels, channels, 3, padding=1)
                self.norm = norm_layer(channels)
                self.act = act_layer()
                self.attn = attn_layer(channels) if attn_layer else nn.Identity()

            def forward(self, x):
                return self.attn(self.act(self.norm(self.conv(x))))
    """
    found = inputs_of(tmp_path, text, "Block1d")
    assert found.model == {"code": "Block1d(channels=16, norm_layer=nn.BatchNorm1d, act_layer=nn.ReLU)"}


def test_a_constructor_inherited_from_a_base_of_the_file_or_a_torch_layer(tmp_path: Path) -> None:
    text = """
        import torch
        from torch import nn


        class Base(nn.Module):
            def __init__(self, hidden):
                super().__init__()
                self.fc = nn.Linear(hidden, 2)


        class Child(Base):
            def forward(self, x):
                return self.fc(x)


        class Flat(nn.Linear):
            def forward(self, x):
                return super().forward(x.flatten(1))
    """
    assert inputs_of(tmp_path, text, "Child").model == {"code": "Child(hidden=64)"}
    assert inputs_of(tmp_path, text, "Flat").model == {"code": "Flat(in_features=64, out_features=64)"}


HEAD = """
    import torch
    from torch import nn


    class Head(nn.Module):
        def __init__(self, hidden, num_classes, n_layers, dropout, bias):
            super().__init__()
            self.blocks = nn.Sequential(*[nn.Linear(hidden, hidden, bias=bias) for _ in range(n_layers)])
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(hidden, num_classes)

        def forward(self, x):
            x = self.blocks(x)
            x = self.drop(x)
            return self.out(x)
"""


def test_required_ints_get_small_values_chosen_by_name(analyse: Analyse, tmp_path: Path) -> None:
    found = inputs_of(tmp_path, HEAD, "Head")
    assert found.model == {"code": "Head(hidden=64, num_classes=10, n_layers=2, dropout=0.1, bias=False)"}
    assert "hidden=64 (no value known: a small one)" in found.synthesized
    assert found.guessed and found.source == InputSource.INFER
    reports = analyse(HEAD)
    path = str(tmp_path / "model.py")
    assert errors(reports) == []
    truth = run_on_cpu(path, build=found.model["code"], inputs=[(2, 64)]).shapes()
    assert_matches_cpu(reports, truth)
    [model] = reports[path].models
    assert model.inputs[0].shape == (2, 64)
    assert "hidden=64 (no value known: a small one)" in model.notes


def test_unknown_ints_get_distinct_values_and_strings_come_from_init(tmp_path: Path) -> None:
    text = """
        from torch import nn


        class Net(nn.Module):
            def __init__(self, a, b, rnn_type):
                super().__init__()
                if rnn_type in ["LSTM", "GRU"]:
                    self.rnn = getattr(nn, rnn_type)(a, b)

            def forward(self, x):
                return self.rnn(x)
    """
    found = inputs_of(tmp_path, text, "Net")
    assert found.model == {"code": "Net(a=8, b=12, rnn_type='LSTM')"}
    assert found.alternatives == [{"code": "Net(a=8, b=12, rnn_type='GRU')"}, {"build": "Net"}]


def test_a_real_call_in_another_file_of_the_workspace(analyse: Analyse, tmp_path: Path) -> None:
    model = """
        from torch import nn


        class Net(nn.Module):
            def __init__(self, width, classes):
                super().__init__()
                self.fc = nn.Linear(width, classes)

            def forward(self, x):
                y = self.fc(x)
                return y
    """
    write(tmp_path, "train.py", """
        import sys
        from model import Net

        WIDTH = 12
        steps = int(sys.argv[1])


        def main():
            net = Net(WIDTH, classes=3 + 2)
            skipped = Net(steps, 3)  # not literal: never taken
    """)  # fmt: skip
    found = inputs_of(tmp_path, model, "Net")
    assert found.source == InputSource.WORKSPACE
    assert found.model == {"code": "Net(12, classes=(3 + 2))"}
    assert found.synthesized == ["Net(12, classes=(3 + 2)) as train.py:10 builds it"]
    assert found.alternatives[-1] == {"build": "Net"}
    reports = analyse(model)
    path = str(tmp_path / "model.py")
    assert errors(reports) == []
    assert_matches_cpu(reports, run_on_cpu(path, build="Net(12, classes=5)", inputs=[(2, 12)]).shapes())
    assert reports[path].models[0].input_source == "workspace"


def test_a_workspace_call_whose_config_is_read_from_elsewhere_is_not_taken(tmp_path: Path) -> None:
    write(tmp_path, "train.py", """
        from model import GPT, TinyConfig

        n_layer = 4
        exec(open("configurator.py").read())
        model_args = dict(n_layer=n_layer)
        model = GPT(TinyConfig(**model_args))
        other = GPT(TinyConfig(n_layer=n_layer))
    """)  # fmt: skip
    found = inputs_of(tmp_path, GPT_LIKE, "GPT")
    assert found.model == {"code": "GPT(config=TinyConfig())"}  # `exec` may rebind n_layer: not self-contained


def test_a_call_with_options_parsed_at_the_top_level_takes_their_defaults(tmp_path: Path) -> None:
    # PyTorch-GAN's scripts: `latent_dim = args.latent_dim` after `args = parser.parse_args()`, then
    # `Generator(latent_dim, n_c, (channels, img_size, img_size))`: each option's default, as a run with no
    # command-line options has it, instead of made-up ints
    found = inputs_of(tmp_path, """
        import argparse
        import torch.nn as nn

        parser = argparse.ArgumentParser()
        parser.add_argument("-d", "--latent_dim", dest="latent_dim", default=30, type=int)
        parser.add_argument("--img-size", type=int, default=28)
        parser.add_argument("--wide", action="store_true")
        args = parser.parse_args()
        img_size = args.img_size


        class Generator(nn.Module):
            def __init__(self, latent_dim, shape, wide):
                super().__init__()
                self.fc = nn.Linear(latent_dim, shape[0] * shape[1] * (2 if wide else 1))

            def forward(self, z):
                return self.fc(z)


        generator = Generator(args.latent_dim, (img_size, img_size), args.wide)
    """, "Generator")  # fmt: skip
    assert found.model == {"code": "Generator(30, (28, 28), False)"}
    assert found.source == InputSource.WORKSPACE


def test_weights_are_never_downloaded(tmp_path: Path) -> None:
    text = """
        import torch
        from torch import nn


        class Backbone(nn.Module):
            def __init__(self, classes, pretrained=True):
                super().__init__()
                self.fc = nn.Linear(4, classes)
                if pretrained:
                    self.load_state_dict(torch.hub.load_state_dict_from_url("https://example.com/w.pt"))

            def forward(self, x):
                return self.fc(x)


        class Hub(nn.Module):
            def __init__(self, classes):
                super().__init__()
                self.body = torch.hub.load("owner/repo", "net")

            def forward(self, x):
                return self.body(x)
    """
    found = inputs_of(tmp_path, text, "Backbone")
    assert found.model == {"code": "Backbone(classes=10, pretrained=False)"}
    assert "pretrained=False (a trace never downloads weights)" in found.synthesized
    hub = inputs_of(tmp_path, text, "Hub")
    assert hub.source == InputSource.NONE
    assert "torch.hub.load" in hub.reason and "download" in hub.reason


# -- SL003 says why ---------------------------------------------------------------------------------------


def test_sl003_names_the_real_reason(analyse: Analyse, tmp_path: Path) -> None:
    text = """
        from torch import nn


        class Empty(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)


        class Wrapper(nn.Module):
            def __init__(self, encoder):
                super().__init__()
                self.encoder = encoder

            def forward(self, x):
                return self.encoder(x)
    """
    reports = analyse(text)
    found = {f.message.split(" ")[0]: f for f in reports[str(tmp_path / "model.py")].findings}
    assert set(found) == {"Empty", "Wrapper's"}
    assert all(f.code == "SL003" and f.severity == Severity.INFORMATION for f in found.values())
    assert "has no `forward`" in found["Empty"].message
    assert "x=(8, 3, 32, 32)" not in found["Empty"].message
    assert "needs `encoder` and nothing could supply it" in found["Wrapper's"].message


# -- a guess never accuses the code ----------------------------------------------------------------------

PICKY = """
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            if x.shape[0] != 3:
                raise ValueError("this model takes batches of exactly 3")
            return self.fc(x)
"""


def test_a_guessed_inputs_failure_is_information_not_an_error(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse(PICKY)
    findings = [f for r in reports.values() for f in r.findings]
    assert errors(reports) == []
    assert [f.code for f in findings] == ["SL010"]
    assert findings[0].severity == Severity.INFORMATION
    assert "shapelens: x=(...)" in findings[0].message  # how to give the input
    given = analyse(PICKY.replace("    class Net", "    # shapelens: x=(2, 4)\n    class Net"))
    assert [f.code for r in given.values() for f in r.findings if f.severity == Severity.ERROR] == ["SL001"]


def test_a_covered_target_has_no_finding_and_counts_as_reached(tmp_path: Path) -> None:
    source = parsed(tmp_path, "model.py", GPT_LIKE)
    plan = build_plan(source, str(tmp_path), Options())
    covered = TargetResult("Block", Status.COVERED, None, covered_by="GPT")
    reports = reports_from_trace(source, plan, TraceResult([covered], []), {source.path: source.text})
    report = reports[source.path]
    assert report.findings == [] and report.traced == []
    [block] = report.models
    assert block.name == "Block" and "shapes from GPT's trace, which reached it" in block.notes


# -- where the input came from, as the user sees it ----------------------------------------------------------


def test_json_names_each_models_input_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "model.py", HEAD)
    write(tmp_path, "given.py", DECORATED)
    monkeypatch.chdir(tmp_path)
    main(["check", "--format", "json", "model.py", "given.py"])
    document = json.loads(capsys.readouterr().out)
    assert document["version"] == 2
    models = {m["name"]: m for f in document["files"] for m in f["models"]}
    assert models["Net"]["input_source"] == "directive"
    inputs = [{k: v for k, v in i.items() if k != "symbolic"} for i in models["Net"]["inputs"]]  # #13's own test
    assert inputs == [{"name": "x", "shape": [4, 8], "dtype": "float32", "note": None}]
    head = models["Head"]
    assert head["input_source"] == "inferred"
    assert head["inputs"][0]["shape"] == [2, 64] and head["inputs"][0]["name"] == "x"
    assert "hidden=64 (no value known: a small one)" in head["notes"]


def test_the_class_hover_says_what_the_model_was_traced_with() -> None:
    from shapelens.core.findings import ModelInput, TracedModel

    model = TracedModel(
        "LeNet", 5, "inferred", [ModelInput("x", (2, 3, 32, 32), "float32", "the size fc1 accepts")], ["hidden=64"]
    )
    text = render.model_markdown(model)
    assert "traced with `x: [2, 3, 32, 32]` — the size fc1 accepts (inferred)" in text
    assert "`hidden=64`" in text
