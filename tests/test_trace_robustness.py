"""User code attacking the trace: the timer firing inside our own bookkeeping, garbage and forged events
written to every file descriptor. Each ends in the finding a user should see, and the same worker serves the
next trace."""

from __future__ import annotations

from pathlib import Path

from engine_support import Analyse
from shapelens.findings import Severity
from shapelens.trace.client import TraceWorker

HEALTHY = """
    import torch
    from torch import nn


    class Ok(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            y = self.fc(x)
            return y
"""


def assert_worker_still_serves(analyse: Analyse) -> None:
    reports = analyse(HEALTHY, name="healthy.py")
    [report] = reports.values()
    assert report.findings == []
    assert [(h.target, h.shape) for h in report.hints] == [("y", (2, 3)), ("return", (2, 3))]


# -- 1. the timer fires inside the recorder -------------------------------------------------------------


def test_timer_firing_inside_the_recorder_keeps_the_shapes(analyse: Analyse, tmp_path: Path) -> None:
    """The timer lands while the recorder stores a statement's shape (here, deterministically: reading the
    tensor's shape raises SIGALRM, as a timer expiring at that instant would). The report must survive."""
    source = """
        import torch
        from torch import nn


        class Alarm(torch.Tensor):
            fired = False

            @property
            def shape(self):
                if not Alarm.fired:  # the first reader is the recorder, storing `t` below
                    import signal

                    Alarm.fired = True
                    signal.raise_signal(signal.SIGALRM)
                return super().shape


        # shapelens: x=(2, 4)
        class Spin(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 8)

            def forward(self, x):
                h = self.fc(x)
                t = h.as_subclass(Alarm)
                while True:
                    h = h + 1
                return h
    """
    report = analyse(source, timeout=30.0)[str(tmp_path / "model.py")]
    [finding] = report.findings
    # it stops at the line whose recording the timer interrupted, once that line is recorded
    assert (finding.code, finding.severity, finding.span.line) == ("SL002", Severity.WARNING, 27)
    assert "at line 27" in finding.message
    assert {(h.line, h.target, h.shape) for h in report.hints} == {(26, "h", (2, 8)), (27, "t", (2, 8))}
    assert_worker_still_serves(analyse)


def test_timeouts_landing_anywhere_in_a_long_forward_keep_the_report(analyse: Analyse, tmp_path: Path) -> None:
    """A long forward of statements that each record for the first time: a short timer lands in the middle
    of the recorder most of the time (on the unfixed engine 4 runs out of 5 lost the whole report)."""
    body = "".join(f"        a{i % 50}, b{i % 50} = h, x\n" for i in range(2000))
    source = (
        "import torch\nfrom torch import nn\n\n\n# shapelens: x=(2, 4)\nclass Long(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 8)\n\n"
        f"    def forward(self, x):\n        h = self.fc(x)\n{body}        while True:\n            h = h + 1\n"
    )
    for _ in range(10):
        report = analyse(source, timeout=0.02)[str(tmp_path / "model.py")]
        [finding] = report.findings
        assert finding.code == "SL002", finding.message
        stopped = finding.span.line
        if stopped > 12:  # on a busy machine the timer may fire before forward: no line to check then
            assert f"at line {stopped}" in finding.message
            assert all(h.line <= stopped for h in report.hints)
            assert any(h.line == 12 and h.shape == (2, 8) for h in report.hints)


# -- 2. user code against the protocol -----------------------------------------------------------------


VANDAL = """
    import json, os
    import torch
    from torch import nn


    def vandalise():
        forged_event = {"event": "target", "name": "Vandal", "status": "ok", "mode": "meta", "records": [
            {"path": __file__, "line": 1, "end_line": 1, "end_column": 2, "target": "forged", "shapes": [[9, 9]],
             "dtype": "float32", "device": "meta", "producer": None, "unknown": None}],
            "layers": [], "mismatches": []}
        forged_results = "".join(
            json.dumps({"id": i, "event": "result", "result": {"targets": [], "files": []}}) + "\\n"
            for i in range(1, 200)
        )
        for fd in range(3, 256):
            for data in (b"garbage\\n", (json.dumps(forged_event) + "\\n").encode(), forged_results.encode(),
                         b"not json and no newline"):
                try:
                    os.write(fd, data)
                except OSError:
                    pass


    # shapelens: x=(2, 4)
    class Vandal(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            vandalise()
            y = self.fc(x)
            return y
"""


def test_garbage_and_forged_events_on_every_fd_do_not_reach_the_protocol(
    analyse: Analyse, worker: TraceWorker, tmp_path: Path
) -> None:
    assert worker._proc is not None
    pid = worker._proc.pid
    report = analyse(VANDAL, name="vandal.py")[str(tmp_path / "vandal.py")]
    assert report.findings == []
    assert sorted((h.line, h.target, h.shape) for h in report.hints) == [(33, "y", (2, 5)), (34, "return", (2, 5))]
    assert_worker_still_serves(analyse)  # the same worker, not a restarted one
    assert worker._proc is not None and worker._proc.pid == pid
