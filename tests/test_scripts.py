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
from pathlib import Path

import oracle
import pytest
from engine_support import Analyse
from shapelens.core.findings import FileReport

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"


def only(reports: dict[str, FileReport]) -> FileReport:
    [report] = reports.values()
    return report


def errors(report: FileReport) -> list[tuple[str, int]]:
    return sorted((f.code, f.span.line) for f in report.findings if f.severity.value == "error")


def assert_hints_match_cpu(report: FileReport, path: Path, skip_lines: tuple[int, ...] = ()) -> None:
    """Every hint is a shape the CPU run of the same script bound at that line, and every tensor the CPU run
    bound before its first failure has a hint."""
    run, failures = oracle.run_script_on_cpu(str(path), skip_lines=skip_lines)
    real = os.path.realpath(path)
    truth: dict[tuple[int, str], set[tuple[tuple[int, ...], str]]] = {}
    for record in run.records:
        if record.file == real:
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
    # its data file is missing), so the call is no example; the class is traced from its own layers instead
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
    assert [(f.code, f.severity.value) for f in report.findings] == [("SL011", "information")]
    [model] = [m for m in report.models if m.name == "Discriminator"]
    assert model.input_source == "inferred"
    assert any(h.line == 12 and h.target == "return" for h in report.hints)  # forward traced from its layers


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
    analyse: Analyse, tmp_path: Path
) -> None:
    path = tmp_path / "train_digits.py"
    shutil.copy(FIXTURES / "train_digits.py", path)
    report = only(analyse(path.read_text(), name="train_digits.py"))
    assert not (tmp_path / "digits-data").exists(), "nothing downloaded or written"
    assert errors(report) == []
    [info] = [f for f in report.findings if f.code == "SL011"]  # the loader over a dataset that is not here
    assert "`train_set` is unknown" in info.message and "refused" in info.message
    script = next(m for m in report.models if m.name == "<module>")
    assert "loop at line 58 stopped after 2 of 40 iterations: the shapes repeat" in script.notes
    lines = path.read_text().splitlines()
    prints = tuple(n for n, text in enumerate(lines, start=1) if text.strip().startswith("print("))
    dataset = next(n for n, text in enumerate(lines, start=1) if text.startswith("train_set ="))
    assert_hints_match_cpu(report, path, skip_lines=(*prints, *range(dataset, len(lines) + 1)))
    forward = {h.line for h in report.hints if h.line < 48}
    assert forward == {44, 45, 46}, "every line of the model's forward has its shape"


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
    assert hints[(12, "out")] == [(64, 3)] and hints[(13, "loss")] == [()]
    script = next(m for m in report.models if m.name == "<module>")
    assert "loop at line 11 traced for its first batch only" in script.notes


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
