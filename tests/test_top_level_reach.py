"""Only what a traced model reaches runs: a module-level statement that only the training code (or another
unrelated def) reads never runs during a check, so a check cannot truncate a log or run a shell command.
Class bodies, decorators and default arguments of what is reached still run, as Python requires."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine_support import Analyse, write

TRAINING_SCRIPT = """\
import os
import torch
from torch import nn

log = open("results.csv", "w")   # the training log; only train() writes to it
marker = os.system("touch SENTINEL")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)

    def save_log(self):  # a method the trace never reaches
        log.write("saved")


def train(model):
    for step in range(3):
        log.write(f"{step},0.5\\n")
    print(marker)


model = Net()
out = model(torch.randn(3, 4))
if __name__ == "__main__":
    train(model)
"""

RESULTS = b"step,loss\n0,0.9\n"


def test_check_leaves_a_file_only_the_training_code_writes_untouched(tmp_path: Path) -> None:
    write(tmp_path, "model.py", TRAINING_SCRIPT)
    (tmp_path / "results.csv").write_bytes(RESULTS)
    result = subprocess.run(
        [sys.executable, "-m", "shapelens.cli", "check", "--format", "json", "model.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results.csv").read_bytes() == RESULTS  # not truncated
    assert not (tmp_path / "SENTINEL").exists()  # os.system never ran
    [file] = json.loads(result.stdout)["files"]
    # Had the filter let those lines run, the trace's sandbox would have refused them (SL009) and the load
    # would have failed with no shapes: the hints and the empty findings prove they never ran at all.
    assert file["diagnostics"] == []
    # the top level runs as a script too (#10): `out` has its shape, `train(model)` stops at the unknown `log`
    assert [(h["target"], h["shape"]) for h in file["hints"]] == [("return", [3, 2]), ("out", [3, 2])]


def test_a_def_reading_a_module_level_call_does_not_make_it_run(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import os
        import torch
        from torch import nn

        marker = os.system("touch SENTINEL")


        def report():
            return marker


        # shapelens: x=(2, 4)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(x)
    """
    [report] = analyse(source).values()
    assert not (tmp_path / "SENTINEL").exists()
    assert report.findings == []  # not even a refused os.system (SL009): it never ran
    assert [(h.target, h.shape) for h in report.hints] == [("return", (2, 2))]


def test_what_the_model_reaches_still_runs(analyse: Analyse, tmp_path: Path) -> None:
    """A constant read by forward, a decorator, a default argument, a class attribute, a helper called from a
    method, a base class and a `try: import` fallback: Python needs all of them to define and run Net."""
    source = """
        import functools
        import torch
        from torch import nn

        try:
            from missing_package import fancy_act
        except ImportError:
            fancy_act = torch.relu

        WIDTH = 4
        HIDDEN = WIDTH * 2
        SCALE = 0.5
        OUT = 3


        def traced(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return fn(*args, **kwargs)
            return wrapper


        def head(width, out=OUT):
            return nn.Linear(width, out)


        class Base(nn.Module):
            act = staticmethod(fancy_act)


        # shapelens: x=(2, 4)
        class Net(Base):
            hidden = HIDDEN

            def __init__(self, scale=SCALE):
                super().__init__()
                self.scale = scale
                self.fc = nn.Linear(WIDTH, self.hidden)
                self.head = self.build_head()

            def build_head(self):
                return head(self.hidden)

            @traced
            def forward(self, x):
                h = self.act(self.fc(x)) * self.scale
                return self.head(h)
    """
    [report] = analyse(source).values()
    assert [f.code for f in report.findings] == ["SL003"]  # Base has no forward of its own: not traced
    lines = (tmp_path / "model.py").read_text().splitlines()
    forward = lines.index("    def forward(self, x):") + 1
    in_forward = [(h.target, h.shape) for h in report.hints if h.line > forward]  # not the wrapper's return
    assert in_forward == [("h", (2, 8)), ("return", (2, 3))]


def test_imports_in_a_try_whose_handler_reports_and_raises_still_run(analyse: Analyse, tmp_path: Path) -> None:
    # PyTorch-GAN's clustergan imports everything inside `try: ... except ImportError as e: print(e); raise`: the
    # block was not taken for definitions, so nothing was imported and every model failed to build (SL004)
    source = """
        try:
            import torch
            import torch.nn as nn
        except ImportError as e:
            print(e)
            raise ImportError


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                y = torch.relu(self.fc(x))
                return y
    """
    [report] = analyse(source).values()
    assert report.findings == []
    lines = (tmp_path / "model.py").read_text().splitlines()
    forward = lines.index("    def forward(self, x):") + 1
    assert {h.target for h in report.hints if h.line > forward} == {"y", "return"}
