"""Real projects load as Python loads them (#9): imported project files whole, failures filed on the file
they are in, script code sliced with what changes the objects it reads (argparse, configs), packages by
their dotted names, imports the model never uses never blocking the trace, stock attention with masks on
meta, imports on their own time budget, and messages a user can read. Shapes are checked against a real
CPU run (tests/oracle.py) through the real trace worker."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import Analyse, analyser, write
from oracle import cpu_line_shapes, run_on_cpu
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.findings import FileReport, Severity
from test_engine import assert_matches_cpu, hints_by_key


def line_of(path: str, text: str) -> int:
    """The first line of the file that holds `text` (tests name lines by what they say, not by number)."""
    with open(path) as handle:
        return next(number for number, line in enumerate(handle, 1) if text in line)


def findings(reports: dict[str, FileReport]) -> list[tuple[str, str, int, Severity]]:
    return sorted(
        (os.path.basename(p), f.code, f.span.line, f.severity) for p, r in reports.items() for f in r.findings
    )


def _without_out(reports: dict[str, FileReport]) -> dict[str, FileReport]:
    """The example call's own result (`out = model(x)`) is the caller's line, not the model's: left out."""
    for report in reports.values():
        report.hints = [h for h in report.hints if h.target != "out"]
    return reports


# -- 1. imported project files load whole ------------------------------------------------------------------


def test_a_constant_from_a_data_only_module_is_imported(analyse: Analyse, tmp_path: Path) -> None:
    write(tmp_path, "labels.py", """
        CLASSES = ["cat", "dog", "bird"]
        SIZES = {name: len(name) for name in CLASSES}
    """)  # fmt: skip
    reports = analyse("""
        import torch
        from torch import nn
        from labels import CLASSES


        # shapelens: x=(4, 16)
        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(16, len(CLASSES))

            def forward(self, x):
                y = self.fc(x)
                return y
    """)
    assert findings(reports) == []
    assert_matches_cpu(reports, cpu_line_shapes(str(tmp_path / "model.py"), "Head", {"x": (4, 16)}))


# -- 2. a failure in another project file is filed on that file --------------------------------------------

HELPERS = """
    import torch


    def widen(x):
        w = torch.zeros(3, 5)
        return x @ w
"""
USES_HELPERS = """
    import torch
    from torch import nn
    from helpers import widen


    # shapelens: x=(4, 16)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 8)

        def forward(self, x):
            y = self.fc(x)
            z = widen(y)
            return z
"""


def test_a_failure_in_another_file_is_filed_there_with_a_pointer_here(analyse: Analyse, tmp_path: Path) -> None:
    helpers = write(tmp_path, "helpers.py", HELPERS)
    reports = analyse(USES_HELPERS)
    model = str(tmp_path / "model.py")
    cpu = run_on_cpu(model, "Net", {"x": (4, 16)})
    assert isinstance(cpu.error, RuntimeError)  # the real run fails at helpers.py's `x @ w`
    failing_line = cpu.error.__traceback__ and _last_line_in(cpu.error, helpers)
    [error] = reports[helpers].findings
    assert (error.code, error.span.line, error.severity) == ("SL001", failing_line, Severity.ERROR)
    [pointer] = reports[model].findings
    call = line_of(model, "z = widen(y)")
    assert (pointer.code, pointer.span.line, pointer.severity) == ("SL001", call, Severity.INFORMATION)
    assert f"helpers.py line {failing_line}" in pointer.message
    assert hints_by_key(reports)[(model, call - 1, "y")] == [(4, 8)]


def _last_line_in(err: BaseException, path: str) -> int:
    tb, line = err.__traceback__, 0
    while tb is not None:
        if os.path.realpath(tb.tb_frame.f_code.co_filename) == os.path.realpath(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def test_a_file_that_fails_to_import_is_reported_at_its_own_line(analyse: Analyse, tmp_path: Path) -> None:
    broken = write(tmp_path, "settings.py", """
        WIDTH = 8
        DEPTH = WIDTH // 0
    """)  # fmt: skip
    reports = analyse("""
        from torch import nn
        from settings import WIDTH


        # shapelens: x=(4, 8)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(WIDTH, 2)

            def forward(self, x):
                return self.fc(x)
    """)
    [error] = reports[broken].findings
    assert (error.code, error.span.line) == ("SL004", line_of(broken, "// 0")) and "ZeroDivisionError" in error.message
    model = str(tmp_path / "model.py")
    [pointer] = reports[model].findings
    assert pointer.span.line == line_of(model, "from settings") and pointer.severity == Severity.INFORMATION


# -- 3. script code: argparse, configs, assertions ----------------------------------------------------------

SCRIPT = """
    import argparse

    import torch
    from torch import nn

    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--scale", type=float, default="0.5")
    args = parser.parse_args()
    args.hidden = args.hidden * 2


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, args.hidden)

        def forward(self, x):
            y = self.fc(x) * args.scale
            return y


    model = Net()
    out = model(torch.randn(4, 8))
"""


def test_a_script_with_argparse_traces_with_the_defaults(
    analyse: Analyse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = analyse(SCRIPT)
    path = str(tmp_path / "model.py")
    assert findings(reports) == []
    monkeypatch.setattr(sys, "argv", ["model.py"])  # the real run, from the command line with no options
    script = [line_of(path, text) for text in ("parser =", '"--hidden"', '"--scale"', "args =", "args.hidden =",
                                               "model = Net()", "out = model")]  # fmt: skip
    truth = run_on_cpu(path, example_lines=script).shapes()
    assert_matches_cpu(_without_out(reports), {k: v for k, v in truth.items() if k[2] != "out"})
    assert hints_by_key(reports)[(path, line_of(path, "y = self.fc"), "y")] == [(4, 64)]


def test_a_required_option_does_not_stop_the_trace(analyse: Analyse, tmp_path: Path) -> None:
    required = 'parser.add_argument("--data", required=True); parser.add_argument("--act", required=True, ' \
               'choices=["tanh", "relu"])'  # fmt: skip
    reports = analyse(SCRIPT.replace('parser.add_argument("--scale", type=float, default="0.5")', required)
                            .replace("* args.scale", ".tanh() if args.act == 'tanh' else None"))  # fmt: skip
    assert findings(reports) == []
    path = str(tmp_path / "model.py")
    assert hints_by_key(reports)[(path, line_of(path, "y = self.fc"), "y")] == [(4, 64)]


MINGPT_CONFIG = """
    import torch
    from torch import nn


    class CN:
        def merge_from_dict(self, d):
            self.__dict__.update(d)


    C = CN()
    C.n_embd = 48
    C.n_head = {heads}
    C.merge_from_dict({{"vocab": 11}})


    class Attn(nn.Module):
        def __init__(self, config):
            super().__init__()
            assert config.n_embd % config.n_head == 0
            self.embed = nn.Embedding(config.vocab, config.n_embd)
            self.proj = nn.Linear(config.n_embd, config.n_embd)

        def forward(self, ids):
            x = self.embed(ids)
            y = self.proj(x)
            return y


    def main():
        model = Attn(C)
        out = model(torch.zeros(2, 5, dtype=torch.long))
        return out
"""


def test_a_mingpt_style_config_is_built_by_its_attribute_assignments(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse(MINGPT_CONFIG.format(heads=4))
    path = str(tmp_path / "model.py")
    assert findings(reports) == []
    truth = run_on_cpu(path, example_lines=_config_lines(path)).shapes()
    assert_matches_cpu(_without_out(reports), {k: v for k, v in truth.items() if k[2] != "out"})


def _config_lines(path: str) -> list[int]:
    return [line_of(path, text) for text in ("C = CN()", "C.n_embd", "C.n_head", "C.merge", "model = Attn", "out =")]


def test_a_failing_assert_says_which_assertion(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse(MINGPT_CONFIG.format(heads=5))
    path = str(tmp_path / "model.py")
    assert isinstance(run_on_cpu(path, example_lines=_config_lines(path)).error, AssertionError)
    [finding] = reports[path].findings
    assert finding.span.line == line_of(path, "assert config")
    assert "AssertionError: assert config.n_embd % config.n_head == 0" in finding.message


# -- 4. packages -----------------------------------------------------------------------------------------


def _package(tmp_path: Path) -> Path:
    models = tmp_path / "pkg" / "models"
    models.mkdir(parents=True)
    write(tmp_path / "pkg", "__init__.py", "")
    write(models, "__init__.py", "from .resnet import Block\n")
    write(models, "_utils.py", "WIDTH = 12\n")
    write(models, "resnet.py", """
        from torch import nn

        from ._utils import WIDTH


        # shapelens: x=(2, 4)
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, WIDTH)

            def forward(self, x):
                y = self.fc(x)
                return y
    """)  # fmt: skip
    write(tmp_path, "driver.py", "from pkg.models.resnet import Block\n")  # the truth imports it as a package
    return models


@pytest.mark.parametrize("from_inside", [False, True])
def test_a_module_of_a_package_traces_with_relative_imports(
    worker: TraceWorker, tmp_path: Path, from_inside: bool
) -> None:
    models = _package(tmp_path)
    resnet = models / "resnet.py"
    root = models if from_inside else tmp_path  # checked from its own folder: the root is inside the package
    reports = analyser(worker, root)(resnet.read_text(), name=str(resnet.relative_to(root)))
    assert findings(reports) == []
    truth = cpu_line_shapes(str(tmp_path / "driver.py"), build="Block()", inputs={"x": (2, 4)}, root=str(tmp_path))
    assert_matches_cpu(reports, truth)


# -- 5. imports the model does not use --------------------------------------------------------------------

MISSING = """
    import torch
    import shapelens_missing_vision
    from shapelens_missing_gym import spaces
    import shapelens_missing_plot.pyplot as plt
    from torch import nn


    # shapelens: x=(4, 16)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 8)

        def forward(self, x):
            y = self.fc(x)
            return y


    # shapelens: x=(4, 16)
    class Needs(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 8)
            self.space = spaces.Box(0, 1)

        def forward(self, x):
            return self.fc(x)
"""


def test_missing_imports_block_only_the_model_that_uses_them(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse(MISSING)
    path = str(tmp_path / "model.py")
    [finding] = reports[path].findings
    assert (finding.code, finding.span.line, finding.severity) == ("SL004", line_of(path, "gym"), Severity.WARNING)
    assert "shapelens_missing_gym" in finding.message and "spaces.Box" in finding.message
    assert f"(used at line {line_of(path, 'spaces.Box')})" in finding.message  # why: where the model uses it
    # the truth: the same file without the three imports nothing installed provides (same line numbers)
    clean = MISSING
    for name in ("import shapelens_missing_vision", "from shapelens_missing_gym import spaces",
                 "import shapelens_missing_plot.pyplot as plt"):  # fmt: skip
        clean = clean.replace(name, "pass")
    twin = tmp_path / "twin" / "model.py"
    twin.parent.mkdir()
    twin.write_text(textwrap.dedent(clean))
    truth = cpu_line_shapes(str(twin), "Net", {"x": (4, 16)})
    assert_matches_cpu(reports, {(path, line, target): shapes for (_, line, target), shapes in truth.items()})


def test_a_missing_import_used_in_arithmetic_names_the_import(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse("""
        from torch import nn
        from shapelens_missing_vision.models.resnet import Bottleneck


        # shapelens: x=(2, 4)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4 * Bottleneck.expansion)

            def forward(self, x):
                return self.fc(x)
    """)
    path = str(tmp_path / "model.py")
    [finding] = reports[path].findings
    assert (finding.code, finding.span.line, finding.severity) == ("SL004", 3, Severity.WARNING)
    assert finding.message.startswith("`from shapelens_missing_vision.models.resnet import Bottleneck` failed")
    assert "Bottleneck.expansion" in finding.message


def test_a_missing_submodule_leaves_its_package_usable(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse("""
        import torch
        import torch.shapelens_missing_board
        from torch import nn


        # shapelens: x=(2, 4)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                y = torch.relu(self.fc(x))
                return y
    """)
    assert findings(reports) == []
    path = str(tmp_path / "model.py")
    assert hints_by_key(reports)[(path, line_of(path, "y = torch.relu"), "y")] == [(2, 3)]


def test_imports_inside_methods_and_an_unbuilt_native_library_are_guarded(analyse: Analyse, tmp_path: Path) -> None:
    # an import inside a method runs when the trace calls it: a missing library there stopped the model with an
    # SL004 although nothing used it; `torch.classes.load_library` of a library the project builds itself (not
    # built here: pytorch/examples' fx/native_interpreter) stopped the whole file at load
    reports = analyse("""
        import torch
        from torch import nn

        torch.classes.load_library("build/libshapelens_not_built.so")


        # shapelens: x=(2, 4)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                import shapelens_missing_helpers
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                from shapelens_missing_plot import pyplot
                y = torch.relu(self.fc(x))
                return y


        # shapelens: x=(2, 4)
        class Uses(nn.Module):
            def forward(self, x):
                import shapelens_missing_ops
                return shapelens_missing_ops.double(x)
    """)
    path = str(tmp_path / "model.py")
    [finding] = reports[path].findings
    assert (finding.code, finding.severity) == ("SL004", Severity.WARNING)
    assert finding.message.startswith("`import shapelens_missing_ops` failed"), finding.message
    line = line_of(path, "y = torch.relu")
    twin = tmp_path / "twin" / "model.py"  # the truth: the file without what is not here (same line numbers)
    twin.parent.mkdir()
    text = (tmp_path / "model.py").read_text()
    for gone in ('torch.classes.load_library("build/libshapelens_not_built.so")', "import shapelens_missing_helpers",
                 "from shapelens_missing_plot import pyplot"):  # fmt: skip
        text = text.replace(gone, "pass")
    twin.write_text(text)
    truth = cpu_line_shapes(str(twin), "Net", {"x": (2, 4)})
    assert hints_by_key(reports)[(path, line, "y")] == list(truth[(str(twin), line, "y")])


# -- 7. stock attention with a mask, on meta ----------------------------------------------------------------


def test_transformer_encoder_with_a_causal_mask_traces_on_meta(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse("""
        import torch
        from torch import nn


        # shapelens: src=(2, 7, 16)
        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
                self.enc = nn.TransformerEncoder(layer, 2)
                self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

            def forward(self, src):
                mask = nn.Transformer.generate_square_subsequent_mask(src.size(1))
                pad = torch.zeros(src.size(0), src.size(1), dtype=torch.bool)
                y = self.enc(src, mask=mask, src_key_padding_mask=pad)
                z, weights = self.attn(y, y, y, attn_mask=mask)
                return z
    """)
    path = str(tmp_path / "model.py")
    assert findings(reports) == []
    assert reports[path].mode == "meta"
    model = str(tmp_path / "model.py")
    for mode in ("train", "eval"):  # the real run takes the fast path in eval mode: same shapes
        build = "Encoder()" if mode == "train" else "Encoder().eval()"
        assert_matches_cpu(reports, cpu_line_shapes(model, build=build, inputs={"src": (2, 7, 16)}))


# -- 8. imports on their own budget ------------------------------------------------------------------------

SLOW_IMPORT = """
    from torch import nn
    import slowlib


    # shapelens: x=(2, 4)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, slowlib.WIDTH)

        def forward(self, x):
            y = self.fc(x)
            return y
"""


@pytest.fixture
def budget_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[TraceWorker]:
    """A worker whose children have a 3 s import budget (the default is 30 s: too slow for a test)."""
    monkeypatch.setenv("SHAPELENS_IMPORT_BUDGET_S", "3")
    w = TraceWorker()
    w.ensure_started()
    yield w
    w.close()


def test_import_time_is_not_the_trace_timeout(budget_worker: TraceWorker, tmp_path: Path) -> None:
    write(tmp_path, "slowlib.py", "import time\n\ntime.sleep(2)\nWIDTH = 6\n")
    reports = analyser(budget_worker, tmp_path)(SLOW_IMPORT, timeout=1)  # the import alone takes 2 s
    assert findings(reports) == []
    assert_matches_cpu(reports, cpu_line_shapes(str(tmp_path / "model.py"), "Net", {"x": (2, 4)}))


def test_an_import_over_its_budget_is_sl002_at_the_import(budget_worker: TraceWorker, tmp_path: Path) -> None:
    write(tmp_path, "slowlib.py", "import time\n\ntime.sleep(60)\nWIDTH = 6\n")
    reports = analyser(budget_worker, tmp_path)(SLOW_IMPORT, timeout=1)
    [finding] = reports[str(tmp_path / "model.py")].findings
    assert (finding.code, finding.span.line) == ("SL002", line_of(str(tmp_path / "model.py"), "import slowlib"))
    assert finding.message.startswith("import of slowlib did not finish in 3 s")


def test_an_import_stuck_in_native_code_is_still_named(budget_worker: TraceWorker, tmp_path: Path) -> None:
    """The child's timer cannot fire (the signal is blocked, as in a C extension's long call): the worker
    kills the child, and says which import it was stuck in, not "killed by SIGKILL"."""
    write(tmp_path, "slowlib.py", """
        import signal
        import time

        BLOCKED = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        time.sleep(60)
        WIDTH = 6
    """)  # fmt: skip
    reports = analyser(budget_worker, tmp_path)(SLOW_IMPORT, timeout=1)
    path = str(tmp_path / "model.py")
    [finding] = reports[path].findings
    assert (finding.code, finding.span.line) == ("SL002", line_of(path, "import slowlib"))
    assert finding.message.startswith("import of slowlib did not finish in 3 s")


# -- 9. messages ------------------------------------------------------------------------------------------


def test_a_dtype_mismatch_the_real_run_raises_is_reported(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse("""
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                y = self.fc(x)
                return y


        net = Net()
        out = net(torch.randn(3, 4, dtype=torch.float64))
    """)
    path = str(tmp_path / "model.py")
    cpu = run_on_cpu(path, example_lines=[line_of(path, "net = Net()"), line_of(path, "out = net")])
    assert isinstance(cpu.error, RuntimeError)
    found = reports[path].findings  # (the module-level script trace may report the same line too)
    line = line_of(path, "y = self.fc")
    assert {(f.code, f.span.line, f.severity) for f in found} == {("SL001", line, Severity.ERROR)}
    assert all(f.message.startswith(str(cpu.error)) for f in found)  # "mat1 and mat2 must have the same dtype"


def test_the_dtype_checks_do_not_break_torch_compile(analyse: Analyse, tmp_path: Path) -> None:
    """torch.compile registers kernels by their function's name: the checked matmuls keep theirs (nanoGPT's
    `model = torch.compile(model)` was 'AssertionError: duplicate extern kernel: wrapper')."""
    reports = analyse("""
        import torch
        from torch import nn


        # shapelens: x=(2, 4)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.compile(nn.Linear(4, 3))

            def forward(self, x):
                y = self.fc(x)
                return y
    """)
    assert [f for r in reports.values() for f in r.findings if f.code in ("SL001", "SL004")] == []


def test_ansi_codes_never_reach_a_message(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse("""
        import torch
        from torch import nn


        # shapelens: x=(2, 4)
        class Net(nn.Module):
            def forward(self, x):
                raise ValueError("\\x1b[31mwrong input\\x1b[0m")
    """)
    [finding] = reports[str(tmp_path / "model.py")].findings
    assert "wrong input" in finding.message and "\x1b" not in finding.message


def test_check_prints_no_numpy_warning(tmp_path: Path) -> None:
    """torch warns `Failed to initialize NumPy` on stderr where numpy cannot serve it: numpy is in the dev
    extra (pyproject), and the worker ignores that warning; a model that uses numpy traces."""
    write(tmp_path, "model.py", """
        import numpy as np
        from torch import nn


        # shapelens: x=(2, 4)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, int(np.prod([2, 3])))

            def forward(self, x):
                return self.fc(x)
    """)  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "shapelens.cli", "check", "model.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert "Failed to initialize NumPy" not in done.stderr + done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
