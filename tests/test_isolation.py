"""User code cannot take the editor down: an endless forward, a crashing child, a runaway allocation, a
missing torch. Each ends in a finding that says where, and the same worker serves the next trace."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from engine_support import Analyse, assert_worker_still_serves
from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceWorker, WorkerUnavailable
from shapelens.core.findings import Severity
from shapelens.core.options import Options


def test_endless_forward_stops_at_its_line(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        class Spin(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                x = self.fc(x)
                while True:
                    x = x + 1
                return x
    """
    started = time.monotonic()
    report = analyse(source, timeout=1.0)[str(tmp_path / "model.py")]
    assert time.monotonic() - started < 5
    [finding] = report.findings
    assert finding.code == "SL002" and finding.severity == Severity.WARNING
    assert finding.span.line == 14 and "after 1 s at line 14" in finding.message
    assert any(h.line == 12 for h in report.hints)  # shapes before the hang are kept
    assert_worker_still_serves(analyse)


def test_hang_inside_native_code_is_killed_by_the_worker(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import signal, time
        import torch
        from torch import nn


        class Stuck(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                x = self.fc(x)
                signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])  # the timer can no longer fire
                time.sleep(60)
                return x
    """
    started = time.monotonic()
    report = analyse(source, timeout=1.0)[str(tmp_path / "model.py")]
    assert time.monotonic() - started < 8
    [finding] = report.findings
    assert finding.code == "SL002" and "at line 13" in finding.message  # the last line it reached
    assert_worker_still_serves(analyse)


def test_crashing_child_is_reported_and_the_worker_survives(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import os, signal
        import torch
        from torch import nn


        class Boom(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                x = self.fc(x)
                os.kill(os.getpid(), signal.SIGSEGV)
                return x
    """
    [finding] = analyse(source)[str(tmp_path / "model.py")].findings
    assert finding.code == "SL004" and "SIGSEGV" in finding.message
    assert_worker_still_serves(analyse)


def test_runaway_allocation_hits_the_memory_cap(analyse: Analyse, tmp_path: Path) -> None:
    source = """
        import torch
        from torch import nn


        # shapelens: x=(2, 8)
        class Greedy(nn.Module):
            def forward(self, x):
                y = x * 2
                big = torch.ones(1 << 31, 4)
                return big
    """
    report = analyse(source, device="cpu", memory_mb=512)[str(tmp_path / "model.py")]
    [finding] = report.findings
    assert finding.code == "SL005" and finding.span.line == 10 and "512 MB" in finding.message
    assert_worker_still_serves(analyse)


def test_cancel_kills_the_running_trace(worker: TraceWorker, tmp_path: Path) -> None:
    import threading

    from shapelens.analysis.worker_client import TraceCancelled

    path = tmp_path / "slow.py"
    path.write_text(
        textwrap.dedent("""\
            import time
            from torch import nn


            # shapelens: x=(2, 2)
            class Slow(nn.Module):
                def forward(self, x):
                    time.sleep(30)
                    return x
        """)
    )
    threading.Timer(0.5, worker.cancel).start()
    started = time.monotonic()
    with pytest.raises(TraceCancelled):
        analyze(str(path), path.read_text(), Options(timeout=30), worker, root=str(tmp_path))
    assert time.monotonic() - started < 5


def test_interpreter_without_torch_gives_a_clear_message(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    worker = TraceWorker(python=str(venv / "bin" / "python"))
    with pytest.raises(WorkerUnavailable, match="torch is not installed"):
        worker.ensure_started()
    path = tmp_path / "model.py"
    path.write_text("from torch import nn\nclass Net(nn.Module):\n    pass\n")
    [report] = analyze(str(path), path.read_text(), Options(), worker, root=str(tmp_path)).values()
    [finding] = report.findings
    assert finding.code == "SL004" and "pip install torch" in finding.message
