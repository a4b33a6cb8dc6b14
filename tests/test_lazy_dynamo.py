"""The first meta op no longer imports torch._dynamo (trace/lazy_dynamo.py): a plain meta trace leaves it
unimported, its shapes are the CPU run's, and once something does import dynamo (the FakeTensorMode
fallback, `torch.compile`) torch's own `disable` takes over."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import analyser
from oracle import cpu_line_shapes
from shapelens.analysis.worker_client import TraceWorker
from test_engine import CONVNET, assert_matches_cpu, hints_by_key

pytestmark = pytest.mark.timeout(300)

DYNAMO_PROBE = """
    import sys

    import torch
    from torch import nn


    # shapelens: x=(2, 4)
    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            y = self.fc(x).relu()
            dynamo = torch.zeros(len([m for m in sys.modules if m.startswith("torch._dynamo")]))
            return y
"""

DATA_DEPENDENT = """
    import torch
    from torch import nn


    # shapelens: x=(3, 4)
    class Positive(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            h = self.fc(x)
            kept = h[h > 0]
            return kept.sum()
"""


@pytest.fixture(scope="module")
def cold_worker() -> Iterator[TraceWorker]:
    """A worker as `check` of one file starts it: nothing warmed beyond the first meta op."""
    w = TraceWorker(env={**os.environ, "SHAPELENS_WARM": "minimal"})
    w.ensure_started()
    yield w
    w.close()


def test_a_meta_trace_never_imports_dynamo_and_its_shapes_are_the_cpu_runs(
    cold_worker: TraceWorker, tmp_path: Path
) -> None:
    analyse = analyser(cold_worker, tmp_path)
    reports = analyse(CONVNET)
    path = str(tmp_path / "model.py")
    assert_matches_cpu(reports, cpu_line_shapes(path, "ConvNet", {"x": (4, 3, 32, 32)}))
    assert not reports[path].findings

    probe = analyse(DYNAMO_PROBE, name="probe.py")
    hints = hints_by_key(probe)
    probe_path = str(tmp_path / "probe.py")
    assert hints[(probe_path, 15, "y")] == [(2, 3)]
    assert hints[(probe_path, 16, "dynamo")] == [(0,)]  # no torch._dynamo module in the trace's process


def test_the_fakemode_fallback_imports_dynamo_and_still_traces(cold_worker: TraceWorker, tmp_path: Path) -> None:
    reports = analyser(cold_worker, tmp_path)(DATA_DEPENDENT, name="positive.py")
    path = str(tmp_path / "positive.py")
    hints = hints_by_key(reports)
    assert hints[(path, 13, "h")] == [(3, 4)]
    assert len(hints[(path, 14, "kept")][0]) == 1  # a size only the values know
    assert not [f for f in reports[path].findings if f.severity.name == "ERROR"]


def test_dynamo_takes_over_once_imported() -> None:
    """torch.compile after the stand-ins: dynamo imports, compiles, and torch's wrapped kernels run under its
    real `disable` (a stand-in that kept calling the bare function would let dynamo trace into them)."""
    script = textwrap.dedent("""
        import sys
        import torch
        from shapelens.trace import lazy_dynamo

        assert lazy_dynamo.install() > 0
        with torch.device("meta"):
            torch.nn.Linear(2, 2)(torch.randn(1, 2))
        assert "torch._dynamo" not in sys.modules
        compiled = torch.compile(lambda x: torch.nn.functional.linear(x, torch.ones(3, 2)).relu(), backend="eager")
        print(compiled(torch.ones(4, 2)).tolist())
        assert "torch._dynamo" in sys.modules
        with torch.device("meta"):
            print(tuple(torch.nn.Linear(2, 5)(torch.randn(1, 2)).shape))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [str([[2.0, 2.0, 2.0]] * 4), "(1, 5)"]


MNIST_LENET = """
    import sys

    import torch
    import torch.nn.functional as F
    from torch import nn


    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 4 * 4, 120)
            self.fc2 = nn.Linear(120, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.view(x.size(0), -1)
            dynamo = torch.zeros(len([m for m in sys.modules if m.startswith("torch._dynamo")]))
            return self.fc2(F.relu(self.fc1(x)))
"""


def test_a_classifier_written_for_a_common_image_size_needs_no_solve(cold_worker: TraceWorker, tmp_path: Path) -> None:
    """Zero edits, fc1 written for MNIST's 28 pixels: the first guess is refused by fc1, and the common sizes
    traced plainly find 28 before any symbolic solve, so FakeTensorMode (and torch._dynamo with it) is never
    made; the shapes are the CPU run's at that size and the hover says why it was chosen."""
    reports = analyser(cold_worker, tmp_path)(MNIST_LENET, name="lenet.py")
    path = str(tmp_path / "lenet.py")
    (model,) = reports[path].models
    (given,) = model.inputs
    assert given.shape == (2, 1, 28, 28) and "H = W = 28, the size fc1 accepts" in (given.note or "")
    assert hints_by_key(reports)[(path, 21, "dynamo")] == [(0,)]
    oracle = cpu_line_shapes(path, "LeNet", {"x": (2, 1, 28, 28)})
    assert_matches_cpu(reports, {k: v for k, v in oracle.items() if k[2] != "dynamo"} | {(path, 21, "dynamo"): [(0,)]})
