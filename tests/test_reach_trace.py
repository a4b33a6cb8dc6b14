"""Zero edits (#8), the trace child's half: models with no directive and no example call get their inputs from
the model itself, along forward's data flow; free sizes (an image's H and W) are solved so the whole model
fits; a submodule a traced parent reached is not traced again; and a guessed input never accuses the code,
while a failure no input can cause stays the code's error.

Every model here is traced with zero directives (fixtures in tests/fixtures/reach/, our own code in the
patterns of the issue's reproductions) and its hints are compared with a real CPU run (tests/oracle.py) at the
inputs the trace chose."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
from engine_support import Analyse
from oracle import rpc_group, run_on_cpu
from shapelens.analysis.plan import build_plan
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.findings import FileReport, Severity
from shapelens.core.options import Options
from shapelens.core.source import Source, parse
from shapelens.core.wire import ErrorKind, Status, TargetResult

FIXTURES = Path(__file__).parent / "fixtures" / "reach"


def trace(worker: TraceWorker, tmp_path: Path, name: str) -> tuple[str, dict[str, TargetResult]]:
    """The fixture copied into a fresh project and traced as `shapelens check` plans it: results by target."""
    path = tmp_path / name
    shutil.copy(FIXTURES / name, path)
    source = parse(str(path), path.read_text())
    assert isinstance(source, Source)
    plan = build_plan(source, str(tmp_path), Options())
    result = worker.trace(plan.message())
    return str(path), {t.name: t for t in result.targets}


def cpu_truth(path: str, results: dict[str, TargetResult]) -> dict[tuple[str, int, str], set[tuple[int, ...]]]:
    """What each traced model binds per statement on real CPU tensors of the shapes its trace reports."""
    truth: dict[tuple[str, int, str], set[tuple[int, ...]]] = {}
    for name, result in results.items():
        if result.status != Status.OK or name.startswith("<"):
            continue
        inputs = {}
        for given in result.inputs:
            assert given.shape is not None and all(d is not None for d in given.shape)
            dims = tuple(int(d) for d in given.shape if d is not None)
            inputs[given.name] = torch.randint(0, 2, dims) if given.dtype == "int64" else dims
        run = run_on_cpu(path, name, inputs)
        assert run.error is None, f"{name} fails on CPU at the inputs the trace chose: {run.error}"
        for key, shapes in run.shapes().items():
            if not key[2].startswith("self."):
                truth.setdefault(key, set()).update(tuple(s) for s in shapes)
    return truth


def hints(report: FileReport) -> dict[tuple[str, int, str], set[tuple[int | None, ...]]]:
    return {(h.path, h.line, h.target): set(h.shapes) for h in report.hints}


def errors(report: FileReport) -> list[str]:
    return [f"{f.code} {f.message}" for f in report.findings if f.severity == Severity.ERROR]


def check_against_cpu(analyse: Analyse, worker: TraceWorker, tmp_path: Path, name: str) -> dict[str, TargetResult]:
    """Zero directives: no error finding, and every hint is what the CPU run at the chosen inputs bound."""
    path, results = trace(worker, tmp_path, name)
    report = analyse((FIXTURES / name).read_text(), name=name)[path]
    assert errors(report) == []
    assert [r.name for r in results.values() if r.error is not None] == []
    ours = hints(report)
    assert ours, "no shapes with zero edits"
    assert ours == cpu_truth(path, results)
    return results


def test_conv_first_network_follows_the_data_flow(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `x = F.max_pool2d(F.relu(self.conv1(x)), 2)`: conv1 meets x first, not fc2 (bug 2 of #8)
    results = check_against_cpu(analyse, worker, tmp_path, "cifar_net.py")
    [given] = results["Net"].inputs
    assert (given.name, given.shape[:2]) == ("x", [2, 3]) and "Conv2d" in (given.note or "")


def test_free_image_size_is_solved_for_the_first_linear(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    results = check_against_cpu(analyse, worker, tmp_path, "lenet.py")
    assert results["LeNet"].inputs[0].shape == [2, 1, 32, 32]
    # kernel 3: 32 does not fit fc1 (16 * 6 * 6 features); the solve picks a size that does
    small = results["SmallKernel"]
    height, width = small.inputs[0].shape[2:]
    assert height == width and height != 32
    assert any("fc1" in note for note in small.notes), small.notes
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3), torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 16, 3), torch.nn.MaxPool2d(2)
    )
    assert net(torch.randn(2, 3, height, width)).flatten(1).shape[1] == 16 * 5 * 5
    # a 1-D pool too (torch's own max_pool1d would fix the symbolic length to its example value)
    sensor = results["SensorCNN"]
    assert sensor.inputs[0].shape[:2] == [2, 6] and sensor.inputs[0].shape[2] != 32
    assert any("classifier" in note for note in sensor.notes), sensor.notes


def test_reshape_with_literal_sizes_gives_the_input(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `input.reshape(-1, 28, 28)` before the LSTM: no guess contradicting the code's own reshape (bug 3)
    results = check_against_cpu(analyse, worker, tmp_path, "mnist_lstm.py")
    assert results["RowLSTM"].inputs[0].shape == [2, 28, 28]


def test_submodules_reached_by_a_parent_are_not_traced_again(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # SelfAttention unpacks `B, T, C = x.shape`: alone with a 2-D guess it gave a false SL001 (bug 4)
    path, results = trace(worker, tmp_path, "attention.py")
    assert results["TinyGPT"].status == Status.OK
    assert results["TinyGPT"].inputs[0].dtype == "int64"
    assert {name: (r.status, r.covered_by) for name, r in results.items() if name != "TinyGPT"} == {
        "Block": (Status.COVERED, "TinyGPT"),
        "SelfAttention": (Status.COVERED, "TinyGPT"),
    }
    report = analyse((FIXTURES / "attention.py").read_text(), name="attention.py")[path]
    assert report.findings == []
    assert hints(report) == cpu_truth(path, results)


def test_embedding_gru_transformer_and_two_inputs(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    results = check_against_cpu(analyse, worker, tmp_path, "inputs_kinds.py")
    shapes = {name: [(i.name, i.shape, i.dtype) for i in r.inputs] for name, r in results.items()}
    assert shapes["TwoInputs"][1] == ("extra", [2, 5], "float32")
    assert shapes["TwoInputs"][0][1][:2] == [2, 3]
    assert shapes["Tagger"][0][2] == "int64"
    assert shapes["Recurrent"][0][1][0] == 2 and shapes["Recurrent"][0][1][2] == 12  # batch_first
    assert shapes["Encoder"][0][1][0] == 2 and shapes["Encoder"][0][1][2] == 32
    assert shapes["GraphConv"] == [("features", [2, 7], "float32")]
    assert [i.note for i in results["Pairwise"].inputs] == ["no layer fixes its size: a guess"] * 2


def test_an_embedded_class_label_is_one_index_per_sample(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # PyTorch-GAN's cgan: torch.cat((self.label_emb(labels), noise), -1) takes one label per sample; token ids
    # [B, T] (the first guess for an Embedding) made the cat fail, and both models had no shapes
    results = check_against_cpu(analyse, worker, tmp_path, "class_labels.py")
    for name in ("LabelledGenerator", "LabelledCritic"):
        [_, labels] = results[name].inputs
        assert (labels.name, len(labels.shape), labels.dtype) == ("labels", 1, "int64")


def test_a_mismatch_no_input_changes_stays_an_error(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    path, results = trace(worker, tmp_path, "wrong_linear.py")
    [mismatch] = results["Broken"].mismatches
    assert (mismatch.code, mismatch.declared, mismatch.actual) == ("SL101", 60, 50)
    report = analyse((FIXTURES / "wrong_linear.py").read_text(), name="wrong_linear.py")[path]
    assert [(f.code, f.severity) for f in report.findings] == [("SL101", Severity.ERROR)]
    assert isinstance(run_on_cpu(path, "Broken", {"x": (2, 100)}).error, RuntimeError)  # the CPU run fails too


def test_a_guess_never_accuses_the_code(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    path, results = trace(worker, tmp_path, "guess_fails.py")
    fixed = results["FixedSize"]
    assert fixed.error is not None and fixed.error.kind == ErrorKind.GUESS
    assert "guessed" in fixed.error.message and "# shapelens: x=" in fixed.error.message
    assert fixed.mismatches == []
    # no image size makes fc1's input 401 features: that one is the code's error, with the reason
    no_fit = results["NoSizeFits"]
    assert [(m.code, m.declared) for m in no_fit.mismatches] == [("SL101", 401)]
    assert any("fc1" in note for note in no_fit.notes)
    report = analyse((FIXTURES / "guess_fails.py").read_text(), name="guess_fails.py")[path]
    assert [(f.code, f.severity) for f in report.findings if f.severity == Severity.ERROR] == [
        ("SL101", Severity.ERROR)
    ]


def test_a_model_a_script_builds_but_never_calls_still_says_its_guess_failed(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # PyTorch-GAN's cgan: the script built both models, then its loader's dataset could not be read, so it never
    # called them; their own guessed traces failed, and the script's building them was taken for a trace that
    # reached them: no shapes and no word (a file that says nothing looks checked and clean)
    source = (FIXTURES / "guess_fails.py").read_text().split("class NoSizeFits")[0] + (
        "model = FixedSize()\n"
        "data = torch.load('missing.pt', weights_only=False)\n"
        "for x in torch.utils.data.DataLoader(data, batch_size=4):\n"
        "    out = model(x)\n"
    )
    report = analyse(source, name="builds_only.py")[str(tmp_path / "builds_only.py")]
    assert errors(report) == []
    assert [f.code for f in report.findings if f.span.line < source.count("\n") - 3] == ["SL010"]


def test_defaults_we_relied_on_are_a_guess_but_a_constructor_without_parameters_is_not(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    path, results = trace(worker, tmp_path, "constructor_defaults.py")
    placeholder = results["Positional"].error
    assert placeholder is not None and placeholder.kind == ErrorKind.GUESS and "init(...)" in placeholder.message
    asserted = results["Classifier"]  # `assert ... seq_len is not None`: the placeholder is given a value
    assert asserted.status == Status.OK and asserted.error is None, asserted.error
    broken = results["Broken"].error
    assert broken is not None and broken.kind == ErrorKind.BUILD
    report = analyse((FIXTURES / "constructor_defaults.py").read_text(), name="constructor_defaults.py")[path]
    assert sorted((f.code, f.severity) for f in report.findings) == [
        ("SL004", Severity.WARNING),
        ("SL010", Severity.INFORMATION),
    ]


def test_the_next_trace_starts_from_the_sizes_the_last_one_solved(analyse: Analyse, tmp_path: Path) -> None:
    # the editor traces after every edit: a model whose free sizes were solved tries them first next time (no
    # symbolic pass while they fit), and a change they no longer fit is solved again
    source = (FIXTURES / "lenet.py").read_text()
    path = str(tmp_path / "lenet.py")
    first = analyse(source, name="lenet.py")[path]
    solved = {m.name: m for m in first.models}["SmallKernel"]
    assert any("fc1" in note for note in solved.notes)  # this trace solved H and W
    second = analyse(source, name="lenet.py")[path]
    again = {m.name: m for m in second.models}["SmallKernel"]
    assert again.inputs == solved.inputs and not any("fc1" in note for note in again.notes)  # taken, not solved
    assert hints(second) == hints(first)
    # fc1 now wants 16 * 4 * 4 features: the remembered size no longer fits and is solved anew
    changed = source.replace("16 * 5 * 5, 10)", "16 * 4 * 4, 10)")
    assert changed != source
    third = {m.name: m for m in analyse(changed, name="lenet.py")[path].models}["SmallKernel"]
    assert third.inputs[0].shape != solved.inputs[0].shape and any("fc1" in note for note in third.notes)
    assert errors(analyse(changed, name="lenet.py")[path]) == []


def test_directive_inputs_are_reported_by_parameter_name(worker: TraceWorker, tmp_path: Path) -> None:
    (tmp_path / "given.py").write_text(
        "from torch import nn\n\n\n"
        "# shapelens: x=(4, 6), scale=2.0\n"
        "class Given(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(6, 3)\n\n"
        "    def forward(self, x, scale=1.0):\n"
        "        return self.fc(x) * scale\n"
    )
    source = parse(str(tmp_path / "given.py"), (tmp_path / "given.py").read_text())
    assert isinstance(source, Source)
    [result] = worker.trace(build_plan(source, str(tmp_path), Options()).message()).targets
    assert result.status == Status.OK
    assert [(i.name, i.shape, i.dtype) for i in result.inputs] == [("x", [4, 6], "float32"), ("scale", None, None)]


def test_a_tuple_item_is_a_tuple_of_values() -> None:
    import types

    from shapelens.core.wire import InputSource, TargetSpec
    from shapelens.trace.model_run import Target

    spec = TargetSpec("M", "class", 1, InputSource.DIRECTIVE, [], None, [], {}, None)
    target = Target(spec, types.ModuleType("m"), "m.py", {}, torch.device("meta"))
    item = {"tuple": [{"tensor": [2, 4, 8], "dtype": "float32"}, {"tuple": [{"code": "None"}, {"code": "3"}]}]}
    value = target.value(item, {})
    assert isinstance(value, tuple) and value[0].shape == (2, 4, 8) and value[1] == (None, 3)


def test_an_example_whose_set_up_needs_data_falls_back_to_the_model(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # the example's batch helper computes with module-level CPU tensors and reads `.item()` (pytorch/examples'
    # regression); the other example loads a data file that is not there and makes the model `.double()`
    # (time_sequence_prediction): each was a false SL004 warning with no shapes
    path, results = trace(worker, tmp_path, "example_needs_data.py")
    report = analyse((FIXTURES / "example_needs_data.py").read_text(), name="example_needs_data.py")[path]
    assert [f.code for f in report.findings if f.code != "SL011"] == []
    # the hover and the JSON say the inputs were a guess, not the example's (which never ran)
    models = {m.name: m.input_source for m in report.models if m.name != "<module>"}
    assert models == {"Smoother": "inferred", "Recurrence": "inferred"}
    for name, line in (("Smoother", 43), ("Recurrence", 47)):
        result = results[name]
        assert result.status == Status.OK and result.error is None, (name, result.error)
        assert any(f"set-up stopped at line {line}" in note for note in result.notes), result.notes
    [series] = results["Recurrence"].inputs
    assert series.dtype == "float64"  # the model computes in double: its input follows
    smoother = results["Smoother"].inputs[0].shape
    truth = run_on_cpu(path, "Smoother", {"x": tuple(smoother)}).shapes()
    dims = tuple(series.shape)
    truth.update(
        run_on_cpu(path, build="Recurrence().double()", inputs={"series": torch.randn(dims).double()}).shapes()
    )
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}
    ours = {k: v for k, v in hints(report).items() if k in expected or 15 < k[1] < 40}
    assert ours == expected


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed")
def test_pretrained_weights_are_not_downloaded_and_the_model_traces(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `models.resnet18(weights=...IMAGENET1K_V1)` in a constructor (pytorch/examples' fast_neural_style vgg.py):
    # the download was refused by the sandbox (SL009) and the model got no shapes
    path, results = trace(worker, tmp_path, "pretrained_backbone.py")
    result = results["Features"]
    assert result.status == Status.OK and result.error is None, result.error
    assert any("pretrained weights not loaded (resnet18-" in note for note in result.notes), result.notes
    report = analyse((FIXTURES / "pretrained_backbone.py").read_text(), name="pretrained_backbone.py")[path]
    assert report.findings == []
    from shapelens.trace import library

    library.install()  # torchvision beside the CPU torch, as in the trace child (its weights patch is not used:)
    from torchvision.models import _api

    monkeypatch.setattr(_api.WeightsEnum, "get_state_dict", lambda self, *a, **k: None)  # the CPU run loads none
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, *a, **k: None)
    [image] = result.inputs
    truth = run_on_cpu(path, "Features", {"image": tuple(image.shape or [])}).shapes()
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}
    assert expected and hints(report) == expected


def test_a_constructor_reading_the_main_blocks_options(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `self.threshold = args.threshold` with `args = parser.parse_args()` under `if __name__ == "__main__":`
    # (pytorch/examples' mnist_forward_forward): NameError, no shapes. The block's slice for `args` runs
    path, results = trace(worker, tmp_path, "main_block_args.py")
    result = results["Scorer"]
    assert result.status == Status.OK and result.error is None, result.error
    report = analyse((FIXTURES / "main_block_args.py").read_text(), name="main_block_args.py")[path]
    assert report.findings == []
    [x] = result.inputs
    options = "__import__('argparse').Namespace(hidden=20, threshold=0.5)"  # the parser's defaults
    build = f"(globals().__setitem__('args', {options}), Scorer())[1]"
    truth = run_on_cpu(path, build=build, inputs={"x": tuple(x.shape or [])}).shapes()
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}
    assert expected and hints(report) == expected


def test_a_constructor_that_reads_tensor_values_is_built(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `[r.item() for r in torch.linspace(0, max_rate, depth)]` then nn.Dropout(r) (vit-pytorch's cct): `.item()`
    # has no answer on meta — a false SL004 warning, no shapes. Small tensors are made on the CPU for the build
    path, results = trace(worker, tmp_path, "rates_from_values.py")
    tower = results["Tower"]
    assert tower.status == Status.OK and tower.error is None, tower.error
    assert any("constructor reads tensor values" in note for note in tower.notes), tower.notes
    # and `Block(dim, rate)` alone: `rate` goes to nn.Dropout, so it is a probability (it was 8: ValueError)
    report = analyse((FIXTURES / "rates_from_values.py").read_text(), name="rates_from_values.py")[path]
    assert report.findings == []
    [x] = tower.inputs
    truth = run_on_cpu(path, "Tower", {"x": tuple(x.shape or [])}).shapes()
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}
    assert expected and hints(report) == expected


def test_a_block_class_and_a_list_of_counts_are_chosen(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `Net(block, counts)`, torchvision's ResNet(block, layers) pattern: `block(...)` and `block.grow` make it a
    # class of the file that defines `grow`; `counts[index]` for `index in range(3)` a list of three
    path, results = trace(worker, tmp_path, "block_and_layers.py")
    net = results["Net"]
    assert net.status == Status.OK and net.error is None, net.error
    report = analyse((FIXTURES / "block_and_layers.py").read_text(), name="block_and_layers.py")[path]
    assert [f.code for f in report.findings] == []
    notes = {m.name: m.notes for m in report.models}["Net"]
    assert any(n.startswith("block=Plain ") for n in notes) and any(n.startswith("counts=[2, 2, 2] ") for n in notes)
    [image] = net.inputs
    truth = run_on_cpu(path, build="Net(Plain, [2, 2, 2])", inputs={"image": tuple(image.shape or [])}).shapes()
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}
    ours = hints(report)
    assert expected and all(ours.get(k) == v for k, v in expected.items() if k[1] > 55), (ours, expected)
    # a block only handed to a helper: its annotation `type[Plain | Wide]` names the candidates (timm's ResNet)
    annotated = results["Annotated"]
    assert annotated.status == Status.OK and annotated.error is None, annotated.error
    notes = {m.name: m.notes for m in report.models}["Annotated"]
    assert any(n.startswith("block=Plain (a class its annotation names)") for n in notes), notes
    [image] = annotated.inputs
    truth = run_on_cpu(path, build="Annotated(Plain, [2])", inputs={"image": tuple(image.shape or [])}).shapes()
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.") and k[1] > 40}
    assert expected and all(ours.get(k) == v for k, v in expected.items()), (ours, expected)


def test_a_global_bound_in_the_branches_of_an_if(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `channels = 3` / `channels = 1` by dataset, the branch chosen by the command line (pytorch/examples'
    # dcgan `nc`): NameError in the constructor, no shapes. The first branch's literal is taken, and said
    path, results = trace(worker, tmp_path, "branch_constant.py")
    critic = results["Critic"]
    assert critic.status == Status.OK and critic.error is None, critic.error
    assert any(note.startswith("channels=3 (line 13") for note in critic.notes), critic.notes
    report = analyse((FIXTURES / "branch_constant.py").read_text(), name="branch_constant.py")[path]
    assert errors(report) == []
    [image] = critic.inputs
    assert (image.shape or [])[1] == 3
    build = "(globals().__setitem__('channels', 3), Critic())[1]"
    truth = run_on_cpu(path, build=build, inputs={"image": tuple(image.shape or [])}).shapes()
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}
    assert expected and {k: v for k, v in hints(report).items() if k[1] > 20} == expected


def test_a_functional_conv_with_a_weight_made_in_forward_fixes_the_rank(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # timm's BlurPool2d: `F.conv2d(x, self.filt.expand(c, ...), groups=c)` — the weight is no attribute, and a
    # 2-D guess failed ("Padding size 4 is not supported for 2D input"); the call still says x is 4-D
    results = check_against_cpu(analyse, worker, tmp_path, "functional_blur.py")
    assert len(results["Blur"].inputs[0].shape or []) == 4


@pytest.mark.skipif(importlib.util.find_spec("einops") is None, reason="einops is not installed (pinned in dev)")
def test_an_einops_pattern_says_the_inputs_rank(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `Rearrange('b c (h p1) (w p2) -> ...', p1=4, p2=4)` first in a Sequential (vit-pytorch's patch embedding)
    # and `rearrange(x, 'b (h w) c -> b c h w', h=6)`: a 2-D guess failed in einops, no shapes
    results = check_against_cpu(analyse, worker, tmp_path, "patch_embedding.py")
    image = results["PatchEmbed"].inputs[0].shape or []
    assert len(image) == 4 and image[2] % 4 == 0 and image[3] % 4 == 0
    tokens = results["TokensToMap"].inputs[0].shape or []
    assert len(tokens) == 3 and tokens[1] % 6 == 0


def test_none_defaults_an_assert_requires_are_given(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `depth=None, heads=None` with `assert depth is not None and heads is not None` (vit-pytorch's T2TViT): the
    # constructor from its defaults always failed the assert (SL010, no shapes)
    path, results = trace(worker, tmp_path, "asserted_placeholders.py")
    encoder = results["Encoder"]
    assert encoder.status == Status.OK and encoder.error is None, encoder.error
    report = analyse((FIXTURES / "asserted_placeholders.py").read_text(), name="asserted_placeholders.py")[path]
    assert report.findings == []
    notes = {m.name: m.notes for m in report.models}["Encoder"]
    assert {n.split(" ")[0] for n in notes} >= {"dim=64", "depth=2", "heads=4"}
    [tokens] = encoder.inputs
    truth = run_on_cpu(path, build="Encoder(dim=64, depth=2, heads=4)", inputs={"tokens": tuple(tokens.shape or [])})
    expected = {k: {tuple(s) for s in v} for k, v in truth.shapes().items() if not k[2].startswith("self.")}
    assert expected and hints(report) == expected


def test_the_image_size_the_constructor_declares_is_tried_first(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # position embeddings sized for `img_size=40`: a 32x32 guess fails at `tokens + self.pos` (vit-pytorch's
    # CCT at 224, timm's patch embedding: "Input height (32) doesn't match model (224)")
    results = check_against_cpu(analyse, worker, tmp_path, "declared_image_size.py")
    [x] = results["TinyViT"].inputs
    assert x.shape == [2, 3, 40, 40] and "image size its constructor declares" in (x.note or "")


def test_a_graph_models_adjacency_matrix_is_nodes_by_nodes(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # `torch.mm(adj, support)` and `torch.where(adj_mat > 0, ...)` (pytorch/examples' gcn and gat): no layer says
    # the adjacency's size and an [2, 8] guess failed; it is square over the node features' rows
    results = check_against_cpu(analyse, worker, tmp_path, "graph_conv.py")
    nodes, adj = results["TwoHop"].inputs
    assert nodes.shape and adj.shape == [nodes.shape[0]] * 2


def test_an_input_object_read_through_its_fields(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # `self.embed(batch.premise)` (pytorch/examples' legacy snli): a [2, 8] tensor for `batch` failed on
    # `.premise`; the fields are inferred one by one and passed as one object
    import types

    path, results = trace(worker, tmp_path, "batch_object.py")
    result = results["PairClassifier"]
    assert result.status == Status.OK and result.error is None, result.error
    fields = {i.name: i for i in result.inputs}
    assert set(fields) == {"batch.premise", "batch.hypothesis"} and fields["batch.premise"].dtype == "int64"
    report = analyse((FIXTURES / "batch_object.py").read_text(), name="batch_object.py")[path]
    assert report.findings == []
    batch = types.SimpleNamespace(
        premise=torch.randint(0, 2, tuple(fields["batch.premise"].shape or [])),
        hypothesis=torch.randint(0, 2, tuple(fields["batch.hypothesis"].shape or [])),
    )
    truth = run_on_cpu(path, "PairClassifier", {"batch": batch}).shapes()
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}
    assert expected and hints(report) == expected


def test_a_mask_field_is_a_boolean_of_the_rank_the_code_uses(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # detr's NestedTensor: `~tensor_list.mask` then `.cumsum(2)`: a float [2, 8] for the whole object failed on
    # `.tensors`; the mask is a boolean with at least three dims, the image field a guess
    path, results = trace(worker, tmp_path, "nested_input.py")
    result = results["SinePositions"]
    assert result.status == Status.OK and result.error is None, result.error
    fields = {i.name: i for i in result.inputs}
    mask = fields["padded.mask"]
    assert mask.dtype == "bool" and len(mask.shape or []) == 3
    report = analyse((FIXTURES / "nested_input.py").read_text(), name="nested_input.py")[path]
    assert report.findings == []
    padded = "Padded(torch.zeros({}), torch.zeros({}, dtype=torch.bool))".format(
        tuple(fields["padded.tensors"].shape or []), tuple(mask.shape or [])
    )
    truth = run_on_cpu(path, "SinePositions", {"padded": padded}).shapes()
    expected = {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}
    assert expected and hints(report) == expected


def test_a_model_written_for_an_rpc_group_traces_in_one_process(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # pytorch/examples distributed/rpc: parts built on a parameter server (`rpc.remote` + RRef), a DDP-wrapped
    # layer, forward through `rref.rpc_sync().forward(x)`, `.remote().forward(RRef(x)).to_here()`, a stage whose
    # input is an RRef (its output moved back with `.cpu()`), micro-batches of `xs.split(n)` sent to it with
    # `rpc_async` and gathered with `torch.futures.wait_all`, a helper handed `Stage.forward` and the stage's
    # RRef. The trace has no RPC group and got no shapes ("RPC has not been initialized"). The CPU run is a real
    # one-worker group, named as the code names its server, with RRef inputs as RRefs
    name = "rpc_model.py"
    path, results = trace(worker, tmp_path, name)
    report = analyse((FIXTURES / name).read_text(), name=name)[path]
    assert errors(report) == [] and [r.name for r in results.values() if r.error is not None] == []
    assert [(i.name, i.dtype) for i in results["SplitClassifier"].inputs] == [("tokens", "int64")]
    assert [(i.name, i.shape) for i in results["LastStage"].inputs] == [("x_rref", [2, 12])]
    assert [(i.name, len(i.shape or [])) for i in results["MicroBatches"].inputs] == [("xs", 4)]
    assert [(i.name, len(i.shape or [])) for i in results["ConvClient"].inputs] == [("images", 4)]
    assert results["ConvStage"].mode == "meta"  # `.cpu()` is a move to the trace device, not a copy out of meta
    truth: dict[tuple[str, int, str], set[tuple[int, ...]]] = {}
    with rpc_group("ps"):
        for model in ("SplitClassifier", "TokenTable", "LastStage", "ConvStage", "MicroBatches", "ConvClient"):
            inputs: dict[str, object] = {}
            for given in results[model].inputs:
                dims = tuple(int(d or 0) for d in given.shape or [])
                inputs[given.name] = torch.randint(0, 2, dims) if given.dtype == "int64" else dims
            if "x_rref" in inputs:
                inputs["x_rref"] = f"RRef(torch.zeros({inputs['x_rref']}))"
            run = run_on_cpu(path, model, inputs)
            assert run.error is None, run.error
            for key, shapes in run.shapes().items():
                truth.setdefault(key, set()).update(tuple(s) for s in shapes)
    ours = hints(report)
    # the real group runs a remote call on its own threads, which the oracle's settrace does not see (the stages'
    # own lines are seen in their standalone runs): the helper `_on_owner` runs only there; what it returns is
    # what ConvStage returns
    lines_of = (FIXTURES / name).read_text().splitlines()
    remote_only = lines_of.index("    return method(rref.local_value(), *args)") + 1
    stage_return = lines_of.index("        return features.cpu()") + 1
    assert ours.pop((path, remote_only, "return")) == truth[(path, stage_return, "return")]
    lines = {line for _, line, _ in ours}
    assert {43, 45, 46, 47, 29, 30, 31, 58, 59, 74, 91, 92} <= lines  # the forwards of SplitClassifier, the two
    # stages, MicroBatches, ConvClient
    assert ours == truth


def test_a_hybrid_model_with_a_remote_module_traces_with_one_directive(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # pytorch/examples' ddp_rpc: the constructor takes a RemoteModule built elsewhere in the script, which one
    # directive gives; in the trace it is built here (trace/rpc_stand_in.py), in the CPU run on a real RPC
    # worker named as the directive names its device ("ps/cpu")
    name = "rpc_hybrid.py"
    path, results = trace(worker, tmp_path, name)
    report = analyse((FIXTURES / name).read_text(), name=name)[path]
    assert report.findings == [] and results["Hybrid"].error is None
    with rpc_group("ps"):
        run = run_on_cpu(
            path,
            "Hybrid",
            {"ids": torch.randint(0, 50, (10,)), "offsets": torch.tensor([0, 4, 7])},
            build='Hybrid(RemoteModule("ps/cpu", nn.EmbeddingBag, args=(50, 12), kwargs={"mode": "mean"}), "cpu")',
        )
    assert run.error is None, run.error
    truth = {key: set(map(tuple, shapes)) for key, shapes in run.shapes().items()}
    assert hints(report) == truth and len(truth) == 3  # bags [3, 12], scores [3, 4], the return


def test_a_returned_tuple_gets_a_hint_per_tensor(analyse: Analyse, worker: TraceWorker, tmp_path: Path) -> None:
    # pytorch/examples fx/replace_op.py: `forward(self, x, y): return x + y, torch.add(x, y), x.add(y)` traced
    # and showed nothing, since a return of a tuple had no record
    results = check_against_cpu(analyse, worker, tmp_path, "tuple_return.py")
    path = str(tmp_path / "tuple_return.py")
    report = analyse((FIXTURES / "tuple_return.py").read_text(), name="tuple_return.py")[path]
    lines = (FIXTURES / "tuple_return.py").read_text().splitlines()
    marks = ("x + y", "self.rnn(t", "None")
    sums, rnn, heads = (1 + next(i for i, t in enumerate(lines) if text in t) for text in marks)
    returns = sorted((h.line, h.target) for h in report.hints if h.target.startswith("return"))
    assert returns == [
        (sums, "return[0]"), (sums, "return[1]"), (sums, "return[2]"),  # the fx example's pattern
        (rnn, "return[0]"), (rnn, "return[1][0]"), (rnn, "return[1][1]"),  # an LSTM's out, (h, c)
        (heads, "return[0]"), (heads, "return[1][0]"), (heads, "return[1][1]"),  # the None is no tensor
    ]  # fmt: skip
    # a list of ten stages' outputs is too long for a line's hint: none, on both sides
    assert results["Stages"].status == Status.OK


def test_a_parameter_typed_by_an_alias_takes_what_the_file_passes_under_its_name(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # timm's efficientnet.py: `block_args: BlockArgs` with `BlockArgs = List[List[Dict[str, Any]]]` imported from
    # the builder was built as a class (`BlockArgs()`: "Type List cannot be instantiated"), and the only real
    # value is `block_args=decode_arch_def(arch_def)` in a builder function that reaches the class through a
    # registry: no shapes at all
    for name in ("specs.py", "net.py"):
        shutil.copy(FIXTURES / "stage_specs" / name, tmp_path / name)
    # timm's ghostnet: `cfgs: List[List[List[...]]]`, iterated through self.cfgs, was given a small int
    path = str(tmp_path / "net.py")
    report = analyse((tmp_path / "net.py").read_text(), name="net.py")[path]
    assert report.findings == []
    models = {m.name: m for m in report.models}
    assert any("stages=decode_stages([" in note for note in models["StageNet"].notes), models["StageNet"].notes
    assert any("widths=[[8], [12, 16]]" in note for note in models["Ladder"].notes), models["Ladder"].notes
    truth: dict[tuple[str, int, str], list[tuple[int, ...]]] = {}
    for model, build in (("StageNet", "StageNet(decode_stages(['c16_r1', 'c24_r2_s2', 'c32_r1_s2']))"),
                         ("Ladder", "Ladder([[8], [12, 16]])")):  # fmt: skip
        [x] = models[model].inputs
        truth.update(run_on_cpu(path, build=build, inputs={"x": tuple(x.shape)}).shapes())
    ours = {k: v for k, v in hints(report).items() if k[0] == path}
    assert ours and ours == {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}


def test_constructor_arguments_are_followed_across_rpc_and_spawn_calls(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # pytorch/examples' ddp_rpc: HybridModel(remote_emb_module, rank) in the trainer function, whose arguments come
    # from `rpc.rpc_async(trainer_name, _run_trainer, args=(remote_emb_module, trainer_rank))` in run_worker: it
    # needed a directive. Zero edits now; the model's RemoteModule forward is its EmbeddingBag's (ids, offsets)
    name = "rpc_trainer.py"
    path, results = trace(worker, tmp_path, name)
    report = analyse((FIXTURES / name).read_text(), name=name)[path]
    assert errors(report) == [] and [f.code for f in report.findings if f.code == "SL003"] == []
    hybrid, tower = results["Hybrid"], results["Tower"]
    assert hybrid.status == Status.OK and tower.status == Status.OK, (hybrid.error, tower.error)
    models = {m.name: m for m in report.models}
    assert any('RemoteModule("ps/cpu"' in note or "RemoteModule('ps/cpu'" in note for note in models["Hybrid"].notes)
    ids, offsets = (tuple(i.shape) for i in hybrid.inputs)
    assert len(ids) == 1 and len(offsets) == 1  # a flat run of ids, one offset per bag
    starts = torch.arange(offsets[0]) * (ids[0] // offsets[0])
    build = 'Hybrid(RemoteModule("ps/cpu", nn.EmbeddingBag, args=(50, 12), kwargs={"mode": "sum"}), "cpu")'
    with rpc_group("ps"):
        run = run_on_cpu(path, "Hybrid", {"ids": torch.randint(0, 50, ids), "offsets": starts}, build=build)
    assert run.error is None, run.error
    truth = {key: set(map(tuple, shapes)) for key, shapes in run.shapes().items()}
    [x] = tower.inputs
    tower_run = run_on_cpu(path, build="Tower(24)", inputs={"x": tuple(x.shape)})  # the first width spawned
    truth.update({key: set(map(tuple, shapes)) for key, shapes in tower_run.shapes().items()})
    assert hints(report) == truth and len(truth) == 4  # bags, scores, Hybrid's return, Tower's return


def test_a_constructor_using_an_op_with_no_meta_kernel_is_built_with_values(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # timm's regnet: torch.unique in __init__ failed on meta ("aten::_unique2 ... with Meta tensors"), which the
    # value-read check missed for its capital M: RegNet got no shapes
    results = check_against_cpu(analyse, worker, tmp_path, "unique_widths.py")
    assert any("reads tensor values" in note for note in results["Widths"].notes), results["Widths"].notes


def test_a_limit_inside_another_keeps_the_outer_deadline() -> None:
    # timm's densenet/rexnet with the symbolic pass (JSON, the editor's follow-up): the pass ran past its target's
    # time because its own limit disarmed the target's, and the worker's backstop killed the child: the plain
    # result was lost (SL002 and SIGKILL warnings, no shapes). Now the sooner deadline holds inside a nested
    # limit and the outer one goes on after it; the target bounds the pass and keeps its plain result
    import contextlib
    import time

    from shapelens.trace.context import TraceTimeout, time_limit
    from shapelens.trace.recording import Recorder

    recorder = Recorder(lambda path: False)
    started = time.monotonic()
    with pytest.raises(TraceTimeout), time_limit(0.3, recorder):
        with contextlib.suppress(TraceTimeout), time_limit(5.0, recorder):
            time.sleep(2)  # the outer deadline cuts it (the inner caller gives up, as the symbolic pass does)
        time.sleep(2)  # and, the inner limit done, the outer one still runs out
    assert time.monotonic() - started < 1.5
    with time_limit(5.0, recorder):
        with time_limit(0.1, recorder), contextlib.suppress(TraceTimeout):
            time.sleep(0.5)
        time.sleep(0.2)  # an inner limit that ran out leaves the outer one its own time


def test_layer_parameters_defaulting_to_none_that_init_calls_get_a_layer(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # timm's res2net: Bottle2neck(norm_layer=None) calls norm_layer(...) unguarded ('NoneType' object is not
    # callable): the file had no shapes
    name = "layer_placeholders.py"
    path, results = trace(worker, tmp_path, name)
    report = analyse((FIXTURES / name).read_text(), name=name)[path]
    assert report.findings == [] and results["Block"].status == Status.OK
    [model] = report.models
    assert any(note.startswith("norm_layer=nn.BatchNorm2d") for note in model.notes), model.notes
    [x] = model.inputs
    build = f"Block({x.shape[1]}, norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU)"
    truth = run_on_cpu(path, build=build, inputs={"x": tuple(x.shape)}).shapes()
    assert hints(report) == {k: {tuple(s) for s in v} for k, v in truth.items() if not k[2].startswith("self.")}


def test_a_video_model_takes_the_frames_and_size_its_constructor_declares(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    # vit-pytorch's cct_3d: the position embedding fits only [B, 3, num_frames, img_size, img_size], which the
    # guess missed; and its constructor (a block it builds) reads values, which cost a failing build on meta first
    results = check_against_cpu(analyse, worker, tmp_path, "video_tokens.py")
    [video] = results["VideoNet"].inputs
    assert tuple(video.shape)[2:] == (4, 32, 32)
    assert any("reads tensor values" in note for note in results["VideoNet"].notes), results["VideoNet"].notes
