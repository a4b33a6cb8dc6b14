"""Module-level code traced (#10): a file's top level runs statement by statement in the trace child, like a
`forward` — a hint per tensor it binds, SL001 at the failing line, SL1xx on the constructor — and loops stop
once their shapes repeat (#9 item 8). Shapes are checked against a real CPU run of the same script
(`oracle.run_script_on_cpu`), never typed by hand; the scripts are our own, written for the patterns of PyTea's
unit tests and of a training script.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import traceback
from pathlib import Path

import oracle
import pytest
import torch
from engine_support import Analyse
from shapelens.core.findings import FileReport
from shapelens.lsp import render

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"


def only(reports: dict[str, FileReport]) -> FileReport:
    [report] = reports.values()
    return report


def errors(report: FileReport) -> list[tuple[str, int]]:
    return sorted((f.code, f.span.line) for f in report.findings if f.severity.value == "error")


def assert_hints_match_cpu(
    report: FileReport, path: Path, skip_lines: tuple[int, ...] = (), not_ours: tuple[int, ...] = ()
) -> None:
    """Every hint is a shape the CPU run of the same script bound at that line, and every tensor the CPU run
    bound before its first failure has a hint. `not_ours`: lines only the CPU run can reach (a dataset's own
    code, reading data the trace does not have)."""
    run, failures = oracle.run_script_on_cpu(str(path), skip_lines=skip_lines)
    real = os.path.realpath(path)
    truth: dict[tuple[int, str], set[tuple[tuple[int, ...], str]]] = {}
    for record in run.records:
        if record.file == real and record.line not in not_ours:
            truth.setdefault((record.line, record.target), set()).update(
                (s, str(d).removeprefix("torch.")) for s, d in zip(record.shapes, record.dtypes, strict=True)
            )
    hints = {(h.line, h.target): {(tuple(s), h.dtype) for s in h.shapes} for h in report.hints}
    problems = [f"line {k[0]} {k[1]}: {sorted(v)}, CPU run: {sorted(truth.get(k, []))}" for k, v in hints.items()
                if k in truth and not v <= truth[k]]  # fmt: skip
    problems += [f"line {k[0]} {k[1]}: hint but no CPU tensor" for k in hints if k not in truth and not failures]
    first_failure = min(failures, default=10**9)
    problems += [f"line {k[0]} {k[1]}: no hint, CPU run: {sorted(v)}" for k, v in truth.items()
                 if k not in hints and k[0] < first_failure]  # fmt: skip
    assert not problems, "\n".join(problems)


def write(tmp_path: Path, source: str, name: str = "script.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


# -- PyTea's patterns: a crash at a line, or a wrong constructor --------------------------------------------


def test_a_wrong_linear_built_at_the_top_level_is_flagged_on_its_constructor(analyse: Analyse) -> None:
    source = """
        import torch
        import torch.nn as nn

        a = torch.rand(10, 1023)
        fc = nn.Linear(1024, 512)
        x = fc(a)
        y = x.relu()
    """
    report = only(analyse(source))
    assert errors(report) == [("SL101", 6)]
    fix = next(f for f in report.findings if f.code == "SL101").fixes[0]
    assert fix.edits[0].new_text == "1023"
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(7, "x")] == [(10, 512)] and hints[(8, "y")] == [(10, 512)]  # lenient: the lines after it too


def test_a_shape_error_is_flagged_at_its_line_and_what_needs_it_is_skipped_not_failed(
    analyse: Analyse, tmp_path: Path
) -> None:
    source = """
        import torch

        b = torch.rand(3, 4)
        c = torch.matmul(b, torch.rand(5, 6))
        d = c * 2
        e = b.sum(0)
    """
    report = only(analyse(source, name="mm.py"))
    assert errors(report) == [("SL001", 5)]
    [finding] = [f for f in report.findings if f.code == "SL001"]
    assert "[3, 4]" in finding.message and "[5, 6]" in finding.message
    assert not [f for f in report.findings if f.span.line == 6]  # `d` needs `c`: skipped, no second finding
    assert_hints_match_cpu(report, tmp_path / "mm.py")
    assert {(h.line, h.target) for h in report.hints} == {(4, "b"), (7, "e")}


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("a = torch.rand(10, 28, 28)\ny = F.max_pool2d(a, 32)\n", 2),
        ("a = torch.rand(2, 3)\nt = torch.rand(2)\ny = F.nll_loss(a, t)\n", 3),
        ("a = torch.rand(100)\ny = torch.flatten(a, 1)\n", 2),
        ("a = torch.rand(4, 6)\ny = F.log_softmax(a, dim=2)\n", 2),
    ],
)
def test_a_script_that_crashes_on_cpu_is_flagged_at_the_crash_line(
    analyse: Analyse, tmp_path: Path, source: str, line: int
) -> None:
    header = "import torch\nimport torch.nn.functional as F\n"
    report = only(analyse(header + source, name="crash.py"))
    _, failures = oracle.run_script_on_cpu(str(tmp_path / "crash.py"))
    assert sorted(failures) == [line + 2], "the CPU run crashes there too"
    assert errors(report) == [("SL001", line + 2)]
    assert_hints_match_cpu(report, tmp_path / "crash.py")


def test_a_wrong_conv_built_at_the_top_level_is_flagged_on_its_constructor(analyse: Analyse) -> None:
    source = """
        import torch
        import torch.nn as nn

        a = torch.rand(10, 32, 28, 28)
        conv = nn.Conv2d(64, 32, 3)
        b = conv(a)
    """
    report = only(analyse(source))
    assert errors(report) == [("SL102", 6)]


def test_a_clean_script_has_no_error_and_every_tensor_it_binds_has_its_cpu_shape(
    analyse: Analyse, tmp_path: Path
) -> None:
    source = """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        x = torch.rand(8, 3, 32, 32)
        conv = nn.Conv2d(3, 16, 5, stride=2, padding=1)
        h = F.max_pool2d(F.relu(conv(x)), 2, ceil_mode=True)
        flat = torch.flatten(h, start_dim=1)
        fc = nn.Linear(flat.shape[1], 10)
        logits = F.log_softmax(fc(flat), dim=1)
        target = torch.randint(0, 10, (8,))
        loss = F.nll_loss(logits, target)
        total = loss + 0
        best = logits.argmax(dim=1)
    """
    report = only(analyse(source, name="clean.py"))
    assert errors(report) == []
    assert_hints_match_cpu(report, tmp_path / "clean.py")
    assert len(report.hints) == 8


def test_the_main_block_is_traced_as_the_top_level(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        def make():
            return nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(5, 2))


        if __name__ == "__main__":
            net = make()
            out = net(torch.randn(3, 6))
    """
    report = only(analyse(source, name="main_block.py"))
    assert errors(report) == [("SL101", 7)]  # the second Linear, built in make(), gets 4 features


def test_a_script_in_a_package_that_imports_it_is_traced_once_without_our_own_error(
    analyse: Analyse, tmp_path: Path
) -> None:
    # `pkg/__init__.py` re-exports the checked file (`from .net import *`, as pytorch-cifar and timm do): the
    # file is loaded as `pkg.net` too, and its top level used to index the wrong statement table (our own
    # IndexError, reported as the script's SL001 at a correct line)
    (tmp_path / "pkg").mkdir()
    write(tmp_path / "pkg", "from .net import *\n", "__init__.py")
    source = """
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(x)


        def test():
            net = Net()
            x = torch.randn(3, 4)
            y = net(x)
            return y


        if __name__ == "__main__":
            test()
    """
    reports = analyse(source, name="pkg/net.py")
    report = reports[str(tmp_path / "pkg" / "net.py")]
    assert errors(report) == []
    assert_hints_match_cpu(report, tmp_path / "pkg" / "net.py")
    assert {(h.line, h.target) for h in report.hints} >= {(12, "return"), (17, "x"), (18, "y")}


def test_a_call_on_a_loop_variable_is_no_example_call_and_no_false_warning(analyse: Analyse, tmp_path: Path) -> None:
    # `discriminator(imgs)` inside `for imgs, _ in dataloader`: the batch exists only when the loop runs (here
    # its data file is missing), so the call is no example; the class is traced from its own layers instead,
    # and the loop from a batch made of the model's inferred input
    source = """
        import torch
        import torch.nn as nn


        class Discriminator(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(784, 1)

            def forward(self, img):
                return self.fc(img.view(img.size(0), -1))


        discriminator = Discriminator()
        dataloader = torch.utils.data.DataLoader(torch.load("missing.pt"), batch_size=4)
        for epoch in range(2):
            for i, (imgs, _) in enumerate(dataloader):
                validity = discriminator(imgs)
    """
    report = only(analyse(source, name="gan.py"))
    assert report.findings == []
    [model] = [m for m in report.models if m.name == "Discriminator"]
    assert model.input_source == "inferred"
    assert any(h.line == 12 and h.target == "return" for h in report.hints)  # forward traced from its layers
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(18, "imgs")] == [(4, 784)] and hints[(19, "validity")] == [(4, 1)]


# -- only what shapes need, never harm ----------------------------------------------------------------------


def test_prints_input_and_writes_are_skipped_and_what_they_bind_is_unknown_not_failed(
    analyse: Analyse, tmp_path: Path
) -> None:
    source = """
        import time
        import torch

        n = int(input("how many? "))
        x = torch.zeros(n, 3)
        time.sleep(60)
        y = torch.ones(2, 3)
        print(y)
        torch.save(y, "y.pt")
        with open("log.txt", "w") as log:
            log.write("done")
    """
    report = only(analyse(source, name="harm.py"))
    assert report.findings == []  # `x` needs `n`, which came from input(): skipped quietly
    assert [(h.line, h.target, h.shapes) for h in report.hints] == [(8, "y", [(2, 3)])]
    assert not (tmp_path / "y.pt").exists() and not (tmp_path / "log.txt").exists()


def test_a_value_the_meta_trace_cannot_have_leaves_its_names_unknown_and_says_so(analyse: Analyse) -> None:
    source = """
        import torch

        x = torch.rand(5, 7)
        k = int(x.argmax())
        y = x[:, :k]
        z = x.t()
    """
    report = only(analyse(source))
    assert errors(report) == []
    [info] = report.findings
    assert (info.code, info.span.line) == ("SL011", 6)
    assert "`k` is unknown" in info.message and "values" in info.message
    assert {(h.line, h.target) for h in report.hints} == {(4, "x"), (7, "z")}


def test_a_training_script_traces_its_model_and_loop_once_and_writes_downloads_and_shows_nothing(
    analyse: Analyse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the script: a dataset that downloads itself, a DataLoader over it, an epoch loop (zero_grad,
    # backward, step) with a print flood, torch.save, a plot, input()
    path = tmp_path / "train_digits.py"
    shutil.copy(FIXTURES / "train_digits.py", path)
    monkeypatch.delenv("DIGITS_ROOT", raising=False)
    report = only(analyse(path.read_text(), name="train_digits.py"))
    assert not (tmp_path / "digits-data").exists(), "nothing downloaded or written"
    assert errors(report) == []
    assert not [f for f in report.findings if f.code == "SL011"], "nothing left out: the loop ran on a made batch"
    lines = path.read_text().splitlines()
    at = {text.strip(): n for n, text in enumerate(lines, start=1)}
    loop = at["for images, labels in loader:"]
    hints = {(h.line, h.target): h for h in report.hints}
    assert hints[(loop, "images")].shapes == [(32, 1, 28, 28)], "the model's inferred input, at the loader's batch"
    assert (hints[(loop, "labels")].shapes, hints[(loop, "labels")].dtype) == ([(32,)], "int64")
    hover = render.variable_markdown(hints[(loop, "images")])
    assert "batch from the model's inferred input (the dataset could not be read: " in hover
    assert "from `batch from" not in hover, "a sentence, not an op name"
    script = next(m for m in report.models if m.name == "<module>")
    assert f"loop at line {at['for epoch in range(3):']} stopped after 2 of 3 iterations: the shapes repeat" in (
        script.notes
    ), "the body ran once per epoch until the shapes repeat, never per batch"
    # the same script on the CPU, its dataset a local random one of the same shape (64 digits)
    data = tmp_path / "local-digits"
    data.mkdir()
    torch.save((torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))), data / "digits.pt")
    monkeypatch.setenv("DIGITS_ROOT", str(data))
    left_out = ("print(", "torch.save(", "with open(", "plt.", "input(")
    skip = tuple(n for n, text in enumerate(lines, start=1) if text.strip().startswith(left_out))
    dataset = tuple(range(at["class Digits(Dataset):"], at["class DigitNet(nn.Module):"]))
    assert_hints_match_cpu(report, path, skip_lines=skip, not_ours=dataset)
    model_lines = {at["out = model(images)"], at["loss = F.cross_entropy(out, labels)"], *range(45, 48)}
    assert model_lines <= {h.line for h in report.hints}, "every line the model needs has its shape"


def test_a_loader_whose_file_is_missing_feeds_its_loop_the_models_input_and_class_targets(
    analyse: Analyse, tmp_path: Path
) -> None:
    source = """
        import os
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        net = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 28 * 28, 5))
        criterion = nn.NLLLoss()
        opt = torch.optim.Adam(net.parameters())
        data_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images.pt")
        loader = DataLoader(torch.load(data_file, weights_only=False), batch_size=16)
        for batch in loader:
            data, target = batch
            logits = net(data).log_softmax(dim=1)
            loss = criterion(logits, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sample, label = next(iter(loader))
        scores = net(sample)
    """
    report = only(analyse(source, name="missing_file.py"))
    assert errors(report) == [] and not [f for f in report.findings if f.code == "SL011"]
    hints = {(h.line, h.target): h for h in report.hints}
    assert {(13, "data"), (13, "target"), (14, "logits"), (15, "loss"), (19, "sample"), (20, "scores")} <= set(hints)
    assert hints[(13, "target")].dtype == "int64"
    assert "batch from the model's inferred input" in render.variable_markdown(hints[(13, "data")])
    hover = render.variable_markdown(hints[(19, "sample")])
    assert "batch from the model's inferred input (the dataset could not be read: " in hover
    assert "images.pt" in hover  # why: the file is missing
    # `label` feeds no loss after `next(iter(loader))`: the loop's loss already said what the labels are
    assert hints[(19, "label")].dtype == "int64"
    assert "class indices for criterion (the dataset could not be read" in render.variable_markdown(
        hints[(19, "label")]
    )
    # a CPU run with a local random dataset of the shape the model takes (32 × 32: what Linear(6 * 28 * 28)
    # accepts), 16 a batch: the same shapes on every line
    dataset = torch.utils.data.TensorDataset(torch.randn(32, 3, 32, 32), torch.randint(0, 5, (32,)))
    torch.save(dataset, tmp_path / "images.pt")
    assert_hints_match_cpu(report, tmp_path / "missing_file.py")


def test_a_loop_over_a_loader_inside_a_function_gets_the_made_batch_too(analyse: Analyse, tmp_path: Path) -> None:
    # pytorch/examples' pattern: `train(model, device, loader, optimizer, epoch)` loops over the loader itself
    source = """
        import os
        import torch
        import torch.nn.functional as F
        from torch import nn
        from torch.utils.data import DataLoader


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(784, 64)
                self.fc2 = nn.Linear(64, 10)

            def forward(self, x):
                x = torch.flatten(x, 1)
                return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


        def train(model, device, loader, optimizer):
            model.train()
            for batch_idx, (data, target) in enumerate(loader):
                data, target = data.to(device), target.to(device)
                optimizer.zero_grad()
                output = model(data)
                loss = F.nll_loss(output, target)
                loss.backward()
                optimizer.step()


        device = torch.device("cpu")
        data_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.pt")
        train_loader = DataLoader(torch.load(data_file, weights_only=False), batch_size=64, shuffle=True)
        model = Net().to(device)
        optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
        for epoch in range(1, 4):
            train(model, device, train_loader, optimizer)
    """
    report = only(analyse(source, name="train_fn.py"))
    assert errors(report) == [] and not [f for f in report.findings if f.code == "SL011"]
    hints = {(h.line, h.target): h for h in report.hints}
    assert {(22, "data"), (22, "target"), (25, "output"), (26, "loss")} <= set(hints)
    assert "batch from the model's inferred input" in render.variable_markdown(hints[(22, "data")])
    dataset = torch.utils.data.TensorDataset(torch.randn(128, 784), torch.randint(0, 10, (128,)))
    torch.save(dataset, tmp_path / "digits.pt")
    assert_hints_match_cpu(report, tmp_path / "train_fn.py")


def test_a_batch_part_no_loss_says_the_shape_of_stays_unknown_and_what_reads_it_is_left_out(
    analyse: Analyse,
) -> None:
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        model = nn.Linear(12, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = DataLoader(torch.load("pairs.pt"), batch_size=8)
        errors = []
        for x, y in loader:
            pred = model(x)
            loss = nn.functional.mse_loss(pred, y)
            loss.backward()
            errors.append(loss)
            opt.step()
        mean = torch.stack(errors).mean()
        done = pred.sum()
    """
    report = only(analyse(source, name="regression.py"))
    assert errors(report) == []  # a made-up batch never accuses the code
    [info] = [f for f in report.findings if f.code == "SL011"]
    assert info.span.line == 12 and "`y`" in info.message and "could not be read" in info.message
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(10, "x")] == [(8, 12)] and hints[(11, "pred")] == [(8, 3)] and hints[(17, "done")] == [()]
    assert (10, "y") not in hints and (12, "loss") not in hints and (16, "mean") not in hints


def test_a_batch_unpacked_in_the_loop_body_keeps_its_unknown_part_in_place(analyse: Analyse) -> None:
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        model = nn.Linear(12, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = DataLoader(torch.load("pairs.pt"), batch_size=8)
        errors = []
        for batch in loader:
            x, y = batch
            pred = model(x)
            loss = nn.functional.mse_loss(pred, y)
            loss.backward()
            errors.append(loss)
            opt.step()
        mean = torch.stack(errors).mean()
        done = pred.sum()
    """
    report = only(analyse(source, name="unpacked.py"))
    assert errors(report) == []
    [info] = [f for f in report.findings if f.code == "SL011"]
    assert info.span.line == 13 and "`y`" in info.message
    hints = {(h.line, h.target): h for h in report.hints}
    assert hints[(11, "x")].shapes == [(8, 12)] and hints[(12, "pred")].shapes == [(8, 3)]
    assert "batch from the model's inferred input" in render.variable_markdown(hints[(11, "x")])
    assert hints[(18, "done")].shapes == [()]
    assert (11, "y") not in hints and (13, "loss") not in hints and (17, "mean") not in hints


def test_a_made_up_batch_never_accuses_the_code(analyse: Analyse) -> None:
    # the dataset's rows may well have 21 features and `net` take the first 12 of them elsewhere: with a batch
    # made from the model's input ([8, 12]) an index error says nothing about the code
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        net = nn.Linear(12, 3)
        loader = DataLoader(torch.load("rows.pt"), batch_size=8)
        for x, y in loader:
            out = net(x)
            bias = x[:, 20]
            total = out.sum() + bias.sum()
    """
    report = only(analyse(source, name="guessed.py"))
    assert errors(report) == []
    assert {(h.line, h.target): h.shapes for h in report.hints}[(9, "out")] == [(8, 3)]
    script = next(m for m in report.models if m.name == "<module>")
    assert any("does not fit how the code uses it (IndexError" in note for note in script.notes)


def test_a_dataset_with_no_samples_here_and_a_dict_batch_get_a_made_batch(analyse: Analyse, tmp_path: Path) -> None:
    # an image folder that is not here: the dataset globs nothing, and a shuffling DataLoader raises in its
    # sampler (torch's ValueError, which used to be reported as the script's SL001); its batches are dicts
    source = """
        import glob
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, Dataset


        class Pairs(Dataset):
            def __init__(self, root):
                self.files = sorted(glob.glob(root + "/*.png"))

            def __len__(self):
                return len(self.files)

            def __getitem__(self, index):
                return {"A": torch.randn(3, 16, 16), "B": torch.randn(3, 16, 16)}


        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 16 * 16, 2))
        shuffled = DataLoader(Pairs("../../data/facades"), batch_size=4, shuffle=True)
        plain = DataLoader(Pairs("../../data/facades"), batch_size=4)
        for batch in shuffled:
            scores = net(batch["A"])
        for batch in plain:
            other = net(batch["B"])
    """
    report = only(analyse(source, name="folders.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(23, "scores")] == [(4, 2)] and hints[(25, "other")] == [(4, 2)]


def test_a_loops_use_of_a_made_up_loaders_length_is_left_out_and_the_loop_still_runs(analyse: Analyse) -> None:
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        net = nn.Linear(6, 2)
        loader = DataLoader(torch.load("rows.pt"), batch_size=5)
        for epoch in range(2):
            for i, (x, y) in enumerate(loader):
                step = epoch * len(loader) + i
                out = net(x)
                if step % 100 == 0:
                    scale = torch.ones(step)
                loss = out.sum()
    """
    report = only(analyse(source, name="steps.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(11, "out")] == [(5, 2)] and hints[(14, "loss")] == [()] and (13, "scale") not in hints
    [info] = [f for f in report.findings if f.code == "SL011"]
    assert info.span.line == 10 and "`loader` is unknown: only its dataset knows its length" in info.message


def test_a_dataset_whose_library_is_not_installed_gives_a_made_batch_too(analyse: Analyse) -> None:
    # torchvision (here a vision package that is not installed at all) missing: the import binds a stand-in,
    # the dataset line fails when it is used, and the loader's loop takes the model's inferred input
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader
        from notavision import datasets, transforms

        train_set = datasets.MNIST("data", train=True, download=True, transform=transforms.ToTensor())
        loader = DataLoader(train_set, batch_size=8)
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        for images, labels in loader:
            out = net(images)
            loss = nn.functional.cross_entropy(out, labels)
    """
    report = only(analyse(source, name="no_vision.py"))
    assert errors(report) == [] and not [f for f in report.findings if f.code == "SL011"]
    hints = {(h.line, h.target): h for h in report.hints}
    assert hints[(10, "images")].shapes == [(8, 784)] and hints[(11, "out")].shapes == [(8, 10)]
    assert (hints[(10, "labels")].shapes, hints[(10, "labels")].dtype) == ([(8,)], "int64")
    hover = render.variable_markdown(hints[(10, "images")])
    assert "batch from the model's inferred input (the dataset could not be read: " in hover
    assert "No module named 'notavision'" in hover


def test_a_loop_variable_gets_its_hint_on_the_for_line(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch

        xs = torch.randn(5, 3, 4)
        for x in xs:
            y = x * 2
        for i, (a, b) in enumerate(zip(xs, xs.transpose(1, 2))):
            c = a @ b
    """
    report = only(analyse(source, name="loop_vars.py"))
    assert_hints_match_cpu(report, tmp_path / "loop_vars.py")
    hints = {(h.line, h.target): h for h in report.hints}
    assert hints[(5, "x")].shapes == [(3, 4)]
    assert hints[(7, "a")].shapes == [(3, 4)] and hints[(7, "b")].shapes == [(4, 3)]
    lines = (tmp_path / "loop_vars.py").read_text().splitlines()
    assert hints[(5, "x")].end_column == len(lines[4]) + 1, "placed after the `for` line's colon"


def test_the_scripts_own_checks_and_missing_set_up_are_not_shape_errors(analyse: Analyse) -> None:
    source = """
        import torch

        root = None
        if root is None:
            raise ValueError("--root is required")
        assert root, "give the data folder"
        x = torch.randn(3, 5)
        kind = settings["kind"]
        y = x.t()
    """
    report = only(analyse(source))
    assert errors(report) == []  # a script stopping on its own terms (no data, no settings) says nothing of shapes
    assert {(h.line, h.target) for h in report.hints} == {(8, "x"), (10, "y")}


def test_fx_tracing_at_the_top_level_runs_as_on_cpu(analyse: Analyse) -> None:
    source = """
        import torch
        from torch.fx import Proxy, symbolic_trace


        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.relu = torch.nn.ReLU()

            def forward(self, x):
                return self.relu(x) + 1.0


        m = symbolic_trace(M())
        tracer = torch.fx.proxy.GraphAppendingTracer(m.graph)
        node = next(n for n in m.graph.nodes if n.op == "placeholder")
        out = m.relu(Proxy(node, tracer))
        y = m(torch.randn(2, 3))
    """
    report = only(analyse(source))
    assert report.findings == []
    assert not [m.notes for m in report.models if m.name == "<module>"]  # every line ran: our hooks let Proxies be
    assert [(h.line, h.target, h.shapes) for h in report.hints if h.line > 13] == [(19, "y", [(2, 3)])]


# -- loops ------------------------------------------------------------------------------------------------


def test_a_long_cell_loop_stops_once_its_shapes_repeat_and_the_stack_after_it_is_full(
    analyse: Analyse, tmp_path: Path
) -> None:
    source = """
        import torch
        from torch import nn

        cell = nn.LSTMCell(16, 32)
        x = torch.randn(999, 4, 16)
        h = torch.zeros(4, 32)
        c = torch.zeros(4, 32)
        outs = []
        for t in range(x.shape[0]):
            h, c = cell(x[t], (h, c))
            outs.append(h)
        seq = torch.stack(outs)
    """
    report = only(analyse(source, name="cell.py"))
    assert errors(report) == []
    assert_hints_match_cpu(report, tmp_path / "cell.py")
    script = next(m for m in report.models if m.name == "<module>")
    assert script.notes == ["loop at line 10 stopped after 2 of 999 iterations: the shapes repeat"]


def test_a_loop_over_layers_runs_whole_because_the_next_layer_may_change_the_shape(
    analyse: Analyse, tmp_path: Path
) -> None:
    source = """
        import torch
        from torch import nn

        layers = [nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 16), nn.Linear(16, 4)]
        x = torch.randn(2, 8)
        for layer in layers:
            x = layer(x)
        y = x * 1
    """
    report = only(analyse(source, name="layers.py"))
    assert_hints_match_cpu(report, tmp_path / "layers.py")
    assert [h.shapes for h in report.hints if h.target == "y"] == [[(2, 4)]]


def test_a_forward_loop_stops_early_with_the_right_shapes(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        # shapelens: x=(300, 4, 16)
        class Stepper(nn.Module):
            def __init__(self):
                super().__init__()
                self.cell = nn.GRUCell(16, 24)

            def forward(self, x):
                h = torch.zeros(x.shape[1], 24)
                outs = []
                for step in x:
                    h = self.cell(step, h)
                    outs.append(h)
                return torch.stack(outs, dim=1)
    """
    report = only(analyse(source, name="stepper.py"))
    cpu = oracle.cpu_line_shapes(str(tmp_path / "stepper.py"), "Stepper", inputs=[(300, 4, 16)])
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    for (_, line, target), shapes in cpu.items():
        assert hints[(line, target)] == shapes
    assert hints[(18, "return")] == [(4, 300, 24)]


def test_a_loop_over_a_data_loader_runs_its_first_batch_only(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset

        data = TensorDataset(torch.randn(200, 20), torch.randint(0, 3, (200,)))
        loader = DataLoader(data, batch_size=64, shuffle=True)
        model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3))
        opt = torch.optim.Adam(model.parameters())
        for epoch in range(10):
            for x, y in loader:
                out = model(x)
                loss = nn.functional.cross_entropy(out, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    """
    report = only(analyse(source, name="loader.py"))
    assert errors(report) == []
    assert_hints_match_cpu(report, tmp_path / "loader.py")
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    # the first batch, then the last, smaller one (200 = 3·64 + 8): what a real epoch's lines see
    assert hints[(12, "out")] == [(64, 3), (8, 3)] and hints[(13, "loss")] == [()]
    assert hints[(11, "x")] == [(64, 20), (8, 20)]
    script = next(m for m in report.models if m.name == "<module>")
    assert "loop at line 11 traced for its first batch and its last, smaller one (8 of 200 samples)" in script.notes


def test_a_loop_over_batches_that_divide_the_data_runs_its_first_batch_only(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset

        data = TensorDataset(torch.randn(256, 20), torch.randint(0, 3, (256,)))
        short = DataLoader(TensorDataset(torch.randn(70, 20)), batch_size=64, drop_last=True)
        loader = DataLoader(data, batch_size=64)
        model = nn.Linear(20, 3)
        for step, (x, y) in enumerate(loader):
            out = model(x)
        for (z,) in short:
            out2 = model(z)
    """
    report = only(analyse(source, name="even.py"))
    assert errors(report) == []
    assert_hints_match_cpu(report, tmp_path / "even.py")
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(11, "out")] == [(64, 3)] and hints[(13, "out2")] == [(64, 3)]  # no smaller batch: 256 = 4·64
    script = next(m for m in report.models if m.name == "<module>")
    assert "loop at line 10 traced for its first batch only" in script.notes


def test_a_loops_reads_of_tensor_values_are_left_out_and_the_rest_of_the_loop_still_runs(
    analyse: Analyse, tmp_path: Path
) -> None:
    # `running += loss.item()` has no value on meta: only it (and what reads what it binds) is left out, not
    # the rest of the epoch — the validation loop after it is traced too
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset

        train = DataLoader(TensorDataset(torch.randn(64, 10), torch.randint(0, 4, (64,))), batch_size=16)
        val = DataLoader(TensorDataset(torch.randn(32, 10), torch.randint(0, 4, (32,))), batch_size=8)
        model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(3):
            running = 0.0
            for x, y in train:
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                running += loss.item()
            correct = 0
            with torch.no_grad():
                for vx, vy in val:
                    scores = model(vx)
                    correct += (scores.argmax(1) == vy).sum().item()
            accuracy = correct / 32


        def summary(values):
            total = 0.0
            for v in values:
                total += v.item()
            return total
    """
    report = only(analyse(source, name="epochs.py"))
    assert errors(report) == []
    assert_hints_match_cpu(report, tmp_path / "epochs.py")
    hints = {(h.line, h.target) for h in report.hints}
    assert {(13, "loss"), (20, "vx"), (21, "scores")} <= hints
    script = next(m for m in report.models if m.name == "<module>")
    assert "line 17 not traced: it reads a tensor's values (`.item()`), which a shape-only trace does not have" in (
        script.notes
    )
    assert not [note for note in script.notes if "line 29" in note], "a function's body runs as written, if called"


def test_a_while_loop_stops_once_its_shapes_repeat_and_one_that_changes_them_runs_on(
    analyse: Analyse, tmp_path: Path
) -> None:
    source = """
        import torch
        from torch import nn

        net = nn.Linear(8, 8)
        x = torch.randn(4, 8)
        step = 0
        while True:
            x = net(x).relu()
            step += 1
            if step >= 1000:
                break
        y = x.sum(1)
        z = torch.randn(2, 64)
        while z.shape[-1] > 4:
            z = z[:, ::2]
        w = z + 1
    """
    report = only(analyse(source, name="whiles.py"))
    assert errors(report) == []
    assert_hints_match_cpu(report, tmp_path / "whiles.py")
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(16, "z")] == [(2, 32), (2, 16), (2, 8), (2, 4)] and hints[(17, "w")] == [(2, 4)]
    script = next(m for m in report.models if m.name == "<module>")
    assert script.notes == ["loop at line 8 stopped after 2 iterations: the shapes repeat"]


# -- nothing silent ---------------------------------------------------------------------------------------


def test_a_pytorch_file_with_nothing_to_trace_says_so_once(analyse: Analyse) -> None:
    source = """
        import torch


        def accuracy(logits, labels):
            return (logits.argmax(1) == labels).float().mean()
    """
    report = only(analyse(source))
    assert [(f.code, f.severity.value, f.span.line) for f in report.findings] == [("SL011", "information", 1)]
    assert "nothing to trace" in report.findings[0].message


def test_a_file_without_torch_stays_quiet(analyse: Analyse) -> None:
    report = only(analyse("def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n"))
    assert report.findings == [] and report.hints == []


def test_a_tensor_type_conversion_keeps_the_trace_on_meta(analyse: Analyse, tmp_path: Path) -> None:
    # PyTorch-GAN's `Tensor = torch.cuda.FloatTensor if cuda else torch.FloatTensor; imgs.type(Tensor)`: from meta
    # a copy out of meta ("no data!"), so every line after it was left out; the dtype changes, the sizes stay
    source = """
        import torch
        from torch import nn

        Tensor = torch.cuda.FloatTensor if torch.cuda.is_available() else torch.FloatTensor
        x = torch.randn(4, 10)
        y = x.type(Tensor)
        ids = x.type(torch.LongTensor)
        wide = x.type("torch.DoubleTensor")
        z = nn.Linear(10, 3)(y)
    """
    report = only(analyse(source, name="types.py"))
    assert report.findings == []
    assert_hints_match_cpu(report, tmp_path / "types.py")
    hints = {(h.line, h.target): (h.shapes, h.dtype) for h in report.hints}
    assert hints[(7, "y")] == ([(4, 10)], "float32") and hints[(8, "ids")] == ([(4, 10)], "int64")
    assert hints[(9, "wide")] == ([(4, 10)], "float64") and hints[(10, "z")] == ([(4, 3)], "float32")


def test_noise_sized_by_the_batch_is_no_part_of_it(analyse: Analyse) -> None:
    # a GAN's loop: the generator's noise is sized by `imgs.shape[0]` and called first; the batch is what the
    # discriminator is called with (the generator's [8, 16] latent made the images [8, 16] before)
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        generator = nn.Sequential(nn.Linear(16, 64), nn.Tanh())
        discriminator = nn.Sequential(nn.Linear(64, 1), nn.Sigmoid())
        loader = DataLoader(torch.load("images.pt"), batch_size=8)
        for imgs, _ in loader:
            z = torch.randn(imgs.shape[0], 16)
            fake = generator(z)
            real = discriminator(imgs)
            judged = discriminator(fake)
    """
    report = only(analyse(source, name="gan.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(9, "imgs")] == [(8, 64)], hints
    assert hints[(11, "fake")] == [(8, 64)] and hints[(12, "real")] == hints[(13, "judged")] == [(8, 1)]


MAIN_BUILDS_THE_LOADER = """
    import argparse
    import os
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3)
            self.fc = nn.Linear(8 * 13 * 13, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv(x)), 2)
            x = torch.flatten(x, 1)
            return F.log_softmax(self.fc(x), dim=1)


    def train(args, model, loader, optimizer):
        model.train()
        for step, (data, target) in enumerate(loader):
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            if step % args.log_every == 0:
                print("step", step, len(loader.dataset), loss.item())


    def test(model, loader):
        model.eval()
        total = 0
        with torch.no_grad():
            for data, target in loader:
                output = model(data)
                total += F.nll_loss(output, target, reduction="sum").item()
                pred = output.argmax(dim=1, keepdim=True)
        total /= len(loader.dataset)
        print("test loss", total)


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--log-every", type=int, default=10)
        args = parser.parse_args()
        folder = os.path.dirname(os.path.abspath(__file__))
        train_set = torch.load(os.path.join(folder, "digits.pt"), weights_only=False)
        test_set = torch.load(os.path.join(folder, "digits.pt"), weights_only=False)
        train_kwargs = {"batch_size": args.batch_size}
        train_loader = DataLoader(train_set, **train_kwargs)
        test_loader = DataLoader(test_set, batch_size=16)
        model = Net()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(3):
            train(args, model, train_loader, optimizer)
            test(model, test_loader)


    if __name__ == "__main__":
        main()
"""


def test_a_loader_built_inside_main_feeds_the_loops_of_the_functions_main_calls(
    analyse: Analyse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytorch/examples mnist's form: `main()` reads the dataset and builds the loaders, `train()`/`test()` loop
    # over them and log with `.item()`; here the dataset file is not there when the trace runs
    report = only(analyse(MAIN_BUILDS_THE_LOADER, name="main_loader.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h for h in report.hints}
    assert {(24, "data"), (24, "target"), (26, "output"), (27, "loss"), (38, "data"), (39, "output"),
            (41, "pred")} <= set(hints), sorted(hints)  # fmt: skip
    assert hints[(24, "data")].shapes == [(32, 1, 28, 28)] and hints[(38, "data")].shapes == [(16, 1, 28, 28)]
    assert hints[(24, "target")].dtype == "int64"
    assert "batch from the model's inferred input" in render.variable_markdown(hints[(24, "data")])
    [script] = [m for m in report.models if m.name == "<module>"]
    assert any("line 31 not traced" in note and ".item()" in note for note in script.notes), script.notes
    dataset = torch.utils.data.TensorDataset(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)))
    torch.save(dataset, tmp_path / "digits.pt")
    monkeypatch.setattr("sys.argv", ["main_loader.py"])  # the CPU run parses its own command line, not pytest's
    assert_hints_match_cpu(report, tmp_path / "main_loader.py")


def test_a_function_that_returns_the_loader_gives_it_to_its_caller(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader


        def make_loader(path, batch_size=8):
            data = torch.load(path, weights_only=False)
            loader = DataLoader(data, batch_size=batch_size, shuffle=True)
            return loader


        def run():
            model = nn.Sequential(nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 3))
            loader = make_loader("pairs.pt")
            for x, y in loader:
                out = model(x)
                loss = nn.CrossEntropyLoss()(out, y)


        run()
    """
    report = only(analyse(source, name="returns_loader.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(16, "x")] == [(8, 12)] and hints[(17, "out")] == [(8, 3)] and hints[(18, "loss")] == [()]


RETURNS_THE_LOADER = """
import os

import torch
from torch import nn
from torch.utils.data import DataLoader


def get_loader(batch_size):
    folder = os.path.dirname(os.path.abspath(__file__))
    data = torch.load(os.path.join(folder, "pairs.pt"), weights_only=False)
    return DataLoader(data, batch_size=batch_size, shuffle=True)


def train(model, loader):
    for x, y in loader:
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
        loss.backward()


def main():
    model = nn.Sequential(nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 3))
    loader = get_loader(8)
    train(model, loader)


main()
"""


def test_a_function_that_returns_a_data_loader_call_gives_its_caller_the_made_batch(
    analyse: Analyse, tmp_path: Path
) -> None:
    # `return DataLoader(dataset, ...)` with no name bound first, over a dataset that is not there when the trace
    # runs: the function returned nothing, so train()'s loop had no shapes
    report = only(analyse(RETURNS_THE_LOADER, name="returns_loader_call.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h for h in report.hints}
    assert {(16, "x"), (16, "y"), (17, "out"), (18, "loss")} <= set(hints), sorted(hints)
    assert "batch from the model's inferred input" in render.variable_markdown(hints[(16, "x")])
    dataset = torch.utils.data.TensorDataset(torch.randn(24, 12), torch.randint(0, 3, (24,)))
    torch.save(dataset, tmp_path / "pairs.pt")
    assert_hints_match_cpu(report, tmp_path / "returns_loader_call.py")


def test_a_shape_error_inside_main_is_flagged_at_its_line_and_main_goes_on(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        def main():
            x = torch.randn(4, 10)
            fc = nn.Linear(12, 3)
            y = torch.cat([x, torch.randn(5, 10)], dim=1)
            z = torch.relu(x)
            return z


        if __name__ == "__main__":
            out = main()
    """
    report = only(analyse(source, name="main_crash.py"))
    _, failures = oracle.run_script_on_cpu(str(tmp_path / "main_crash.py"))
    [crash] = failures.values()
    path = str(tmp_path / "main_crash.py")
    assert [f.lineno for f in traceback.extract_tb(crash.__traceback__) if f.filename == path][-1] == 9
    assert errors(report) == [("SL001", 9)]
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(10, "z")] == [(4, 10)] and hints[(15, "out")] == [(4, 10)]


def test_legacy_tensor_constructors_stay_on_the_trace_device(analyse: Analyse, tmp_path: Path) -> None:
    # PyTorch-GAN's form: `Tensor = torch.FloatTensor`, labels from `Tensor(n, 1).fill_(1.0)`, the latent from
    # `Tensor(np.random.normal(...))`; on meta these were CPU tensors, and the loop stopped at the generator
    source = """
        import numpy as np
        import torch
        from torch import nn
        from torch.autograd import Variable
        from torch.utils.data import DataLoader

        Tensor = torch.FloatTensor
        generator = nn.Sequential(nn.Linear(16, 64), nn.Tanh())
        discriminator = nn.Sequential(nn.Linear(64, 1), nn.Sigmoid())
        loss_fn = nn.BCELoss()
        loader = DataLoader(torch.load("images.pt", weights_only=False), batch_size=8)
        for imgs, _ in loader:
            valid = Variable(Tensor(imgs.size(0), 1).fill_(1.0), requires_grad=False)
            real = Variable(imgs.type(Tensor))
            z = Variable(Tensor(np.random.normal(0, 1, (imgs.shape[0], 16))))
            fake = generator(z)
            g_loss = loss_fn(discriminator(fake), valid)
            d_loss = loss_fn(discriminator(real), valid)
            same = isinstance(real, Tensor)
    """
    report = only(analyse(source, name="legacy.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(17, "fake")] == [(8, 64)] and hints[(18, "g_loss")] == hints[(19, "d_loss")] == [()], hints
    dataset = torch.utils.data.TensorDataset(torch.randn(16, 64), torch.zeros(16))
    torch.save(dataset, tmp_path / "images.pt")
    assert_hints_match_cpu(report, tmp_path / "legacy.py")


def test_a_dict_batch_part_no_model_takes_is_left_out_with_what_reads_it(analyse: Analyse, tmp_path: Path) -> None:
    # PyTorch-GAN's cyclegan/esrgan form: `real_B = Variable(batch["B"].type(Tensor))` with `Tensor = torch.Tensor`;
    # the part no model is called with stays unknown, and its statement is left out instead of failing the loop
    source = """
        import torch
        import torch.nn.functional as F
        from torch import nn
        from torch.autograd import Variable
        from torch.utils.data import DataLoader

        Tensor = torch.Tensor
        G = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
        loader = DataLoader(torch.load("pairs.pt", weights_only=False), batch_size=2)
        for batch in loader:
            real_A = Variable(batch["A"].type(Tensor))
            real_B = Variable(batch["B"].type(Tensor))
            fake_B = G(real_A)
            loss = F.l1_loss(fake_B, real_B)
            again = G(fake_B)
    """
    report = only(analyse(source, name="pairs.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert (13, "real_B") not in hints and (15, "loss") not in hints
    assert hints[(14, "fake_B")] == hints[(16, "again")] == [(2, 3, 32, 32)], hints
    [note] = [f for f in report.findings if f.code == "SL011"]
    assert note.span.line == 13 and "`real_B`" in note.message
    pairs = [{"A": torch.randn(3, 32, 32), "B": torch.randn(3, 32, 32)} for _ in range(4)]
    torch.save(pairs, tmp_path / "pairs.pt")
    assert_hints_match_cpu(report, tmp_path / "pairs.py", not_ours=(13, 15))


def test_labels_made_with_the_legacy_tensor_constructor_join_the_trace_device(analyse: Analyse, tmp_path: Path) -> None:
    # PyTorch-GAN's discogan/pix2pix form: `Tensor = torch.Tensor` (no GPU), `valid = Tensor(np.ones(...))` is a
    # CPU tensor whatever the default device; the loss that meets it and a meta output failed on the device
    source = """
        import numpy as np
        import torch
        from torch import nn
        from torch.autograd import Variable
        from torch.utils.data import DataLoader

        Tensor = torch.Tensor
        critic = nn.Sequential(nn.Conv2d(3, 1, 4, stride=2, padding=1))
        loader = DataLoader(torch.load("images.pt", weights_only=False), batch_size=4)
        for imgs, _ in loader:
            real = Variable(imgs.type(Tensor))
            valid = Variable(Tensor(np.ones((real.size(0), 1, 16, 16))), requires_grad=False)
            loss = nn.MSELoss()(critic(real), valid)
            again = critic(real) * valid
    """
    report = only(analyse(source, name="labels.py"))
    assert errors(report) == [] and not [f for f in report.findings if f.code == "SL011"], report.findings
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    assert hints[(14, "loss")] == [()] and hints[(15, "again")] == [(4, 1, 16, 16)], hints
    dataset = torch.utils.data.TensorDataset(torch.randn(8, 3, 32, 32), torch.zeros(8))
    torch.save(dataset, tmp_path / "images.pt")
    assert_hints_match_cpu(report, tmp_path / "labels.py")


def test_a_deep_encoders_batch_is_made_large_enough_for_it(analyse: Analyse, tmp_path: Path) -> None:
    # pix2pix's U-Net halves its input eight times: the 32x32 first guess cannot run, a larger one can
    source = """
        import torch
        from torch import nn
        from torch.utils.data import DataLoader

        layers = [nn.Conv2d(3, 8, 4, stride=2, padding=1)]
        layers += [nn.Conv2d(8, 8, 4, stride=2, padding=1) for _ in range(6)]
        encoder = nn.Sequential(*layers, nn.Flatten(), nn.LazyLinear(5))
        loader = DataLoader(torch.load("photos.pt", weights_only=False), batch_size=2)
        for photos, _ in loader:
            codes = encoder(photos)
    """
    report = only(analyse(source, name="deep.py"))
    assert errors(report) == []
    hints = {(h.line, h.target): h.shapes for h in report.hints}
    [(batch, channels, height, width)] = hints[(10, "photos")]
    assert (batch, channels) == (2, 3) and height == width >= 128, hints
    assert hints[(11, "codes")] == [(2, 5)]


def test_a_batch_part_another_model_takes_is_made_like_the_models_output(analyse: Analyse, tmp_path: Path) -> None:
    # PyTorch-GAN's esrgan/pix2pix form: `imgs["hr"]` goes to the discriminator, as `generator(imgs["lr"])` does;
    # it is made as large as the generator's output, so the pixel loss between them runs as on real data
    source = """
        import torch
        import torch.nn.functional as F
        from torch import nn
        from torch.utils.data import DataLoader

        generator = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Upsample(scale_factor=2))
        discriminator = nn.Sequential(nn.Conv2d(3, 1, 4, stride=2, padding=1))
        loader = DataLoader(torch.load("pairs.pt", weights_only=False), batch_size=2)
        for imgs in loader:
            imgs_lr = imgs["lr"]
            imgs_hr = imgs["hr"]
            gen_hr = generator(imgs_lr)
            loss_pixel = F.l1_loss(gen_hr, imgs_hr)
            real_pred = discriminator(imgs_hr)
            fake_pred = discriminator(gen_hr)
    """
    report = only(analyse(source, name="pairs_hr.py"))
    assert errors(report) == [] and not [f for f in report.findings if f.code == "SL011"], report.findings
    hints = {(h.line, h.target): h for h in report.hints}
    [(batch, channels, height, width)] = hints[(11, "imgs_lr")].shapes
    assert hints[(12, "imgs_hr")].shapes == hints[(13, "gen_hr")].shapes == [(batch, channels, 2 * height, 2 * width)]
    assert (
        hints[(14, "loss_pixel")].shapes == [()] and hints[(15, "real_pred")].shapes == hints[(16, "fake_pred")].shapes
    )
    assert "batch from the model's inferred input of discriminator" in render.variable_markdown(hints[(12, "imgs_hr")])
    pairs = [{"lr": torch.randn(3, height, width), "hr": torch.randn(3, 2 * height, 2 * width)} for _ in range(4)]
    torch.save(pairs, tmp_path / "pairs.pt")
    assert_hints_match_cpu(report, tmp_path / "pairs_hr.py")


def test_jit_tracing_at_the_top_level_is_no_shape_error(analyse: Analyse, tmp_path: Path) -> None:
    # pytorch/examples' cpp/transfer-learning/convert.py: `torch.jit.trace` runs clean on CPU, but on meta it meets
    # a value check ("cond must be a bool, but got a Tensor"): set-up the trace lacks, never SL001
    source = """
        import torch
        from torch import nn

        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        example = torch.rand(1, 3, 16, 16)
        scripted = torch.jit.trace(net, example)
        out = net(example)
    """
    report = only(analyse(source, name="jit_trace.py"))
    _, failures = oracle.run_script_on_cpu(str(tmp_path / "jit_trace.py"))
    assert failures == {}
    assert errors(report) == []
    assert {(h.line, h.target): h.shapes for h in report.hints}[(8, "out")] == [(1, 4, 14, 14)]


def test_a_dataset_that_finds_no_files_is_no_shape_error(analyse: Analyse, tmp_path: Path) -> None:
    # PyTorch-GAN stargan's CelebADataset: `glob.glob(root + "/*.txt")[0]` over a data folder that is not here
    # raised IndexError on the user's line, which read as torch's verdict (SL001 in datasets.py)
    (tmp_path / "faces.py").write_text(
        textwrap.dedent(
            """
            import glob
            import torch


            class Faces(torch.utils.data.Dataset):
                def __init__(self, root):
                    self.files = sorted(glob.glob(root + "/*.jpg"))
                    self.label_path = glob.glob(root + "/*.txt")[0]

                def __len__(self):
                    return len(self.files)
            """
        )
    )
    source = """
        import torch
        from faces import Faces

        loader = torch.utils.data.DataLoader(Faces("../data/celeba"), batch_size=4)
        x = torch.randn(4, 3)
    """
    reports = analyse(source, name="faces_script.py")
    assert [(f.code, f.span.path) for r in reports.values() for f in r.findings if f.severity.value == "error"] == []
    script = reports[str(tmp_path / "faces_script.py")]
    assert {(h.line, h.target) for h in script.hints} == {(6, "x")}
