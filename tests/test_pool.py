"""`shapelens check --jobs N`: a pool of trace workers forked from one warm worker (one `import torch`), whose
results are those of a serial run, and the progress line that shows only on a terminal, never in JSON."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceWorker
from shapelens.analysis.worker_pool import PoolWorker, start_warm_pool
from shapelens.core.options import Options
from shapelens.core.wire import to_wire

pytestmark = pytest.mark.timeout(300)

BLOCK = """\
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))
"""


def model(i: int) -> str:
    return f"""\
import torch
from torch import nn

from block import Block


# shapelens: x=({i + 1}, {8 + i})
class Net{i}(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Block({8 + i})
        self.head = nn.Linear({8 + i}, {i + 2})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(x)
        return self.head(h)
"""


BROKEN = """\
import torch
from torch import nn


# shapelens: x=(2, 10)
class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(10, 20)
        self.b = nn.Linear(30, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "block.py").write_text(BLOCK)
    for i in range(5):
        (tmp_path / f"net{i}.py").write_text(model(i))
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "latin1.py").write_bytes(b"x = '\xe9'\n")  # unreadable: SL007, the others keep theirs
    return tmp_path


def check(*args: str, cwd: Path, stderr: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shapelens.cli", "check", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def test_pool_json_equals_a_serial_run(folder: Path) -> None:
    serial = check(".", "--format", "json", "--jobs", "1", cwd=folder)
    pooled = check(".", "--format", "json", "--jobs", "3", cwd=folder)
    assert serial.returncode == pooled.returncode == 1  # broken.py's SL101 and latin1.py's SL007
    assert json.loads(pooled.stdout) == json.loads(serial.stdout)
    files = {Path(f["path"]).name: f for f in json.loads(serial.stdout)["files"]}
    assert all(files[f"net{i}.py"]["hints"] for i in range(5)), "every model traced"
    assert [x["code"] for x in files["broken.py"]["diagnostics"]] == ["SL101"]


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def test_pool_workers_are_forked_from_one_warm_worker(folder: Path) -> None:
    workers = [PoolWorker(), PoolWorker()]
    start_warm_pool(workers)
    first, sibling = workers
    try:
        first_pid = first._proc.pid  # type: ignore[union-attr]
        sibling_pid = sibling._proc.pid  # type: ignore[union-attr]
        assert sibling_pid not in (None, first_pid)
        assert _parent_of(sibling_pid) == first_pid  # forked from the warm worker: one import torch for both
        assert sibling.torch_version == first.torch_version is not None
        path = str(folder / "net3.py")
        text = (folder / "net3.py").read_text()
        by_sibling = analyze(path, text, Options(), sibling, root=str(folder))
        by_first = analyze(path, text, Options(), first, root=str(folder))
    finally:
        for worker in workers:
            worker.close()
    serial = TraceWorker()
    try:
        alone = analyze(path, text, Options(), serial, root=str(folder))
    finally:
        serial.close()
    for reports in (by_sibling, by_first, alone):
        for report in reports.values():
            report.elapsed_ms = None
    assert to_wire(by_sibling) == to_wire(by_first) == to_wire(alone)
    assert by_sibling[path].hints
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{sibling_pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{sibling_pid}"), "the forked worker ends with the pool"


def _on_a_terminal(*args: str, cwd: Path) -> str:
    """check's stderr as a terminal shows it (stdout piped)."""
    main, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shapelens.cli", "check", *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other side closed: the process ended
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=240)
    finally:
        os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_progress_line_on_a_terminal_only(folder: Path) -> None:
    shown = _on_a_terminal(".", "--jobs", "2", cwd=folder)
    assert "[8/8]" in shown and "[1/8]" in shown
    assert "[1/8]" not in _on_a_terminal(".", "--format", "json", cwd=folder)
    piped = check(".", "--jobs", "2", cwd=folder)
    assert "[1/8]" not in piped.stderr and "/8]" not in piped.stderr


SLOW = """\
import time

import torch
from torch import nn


# shapelens: x=(2, 4)
class Slow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(4)
        return self.fc(x)
"""


def test_text_output_streams_file_by_file_and_equals_a_serial_run(folder: Path) -> None:
    serial = check(".", "--jobs", "1", cwd=folder)
    pooled = check(".", "--jobs", "3", cwd=folder)
    assert serial.returncode == pooled.returncode == 1
    assert pooled.stdout == serial.stdout  # in the order the files were found, whichever finished first
    assert serial.stdout.count("SL101") == 1 and serial.stdout.rstrip().endswith("Found 2 findings.")
    # net0.py's block comes with net0.py, the block it imports after it, with the shapes net0's trace met
    net0 = serial.stdout.split("── net0.py")[1].split("── net1.py")[0]
    assert "── block.py" in net0 and "# return: [1, 8]" in net0

    (folder / "zz_slow.py").write_text(SLOW)  # found last, and its trace takes 4 s
    proc = subprocess.Popen(
        [sys.executable, "-m", "shapelens.cli", "check", ".", "--jobs", "1"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("── net4.py"):
            break
    still_running = proc.poll() is None  # net4.py's shapes are out while zz_slow.py still traces
    rest = proc.stdout.read()
    proc.wait()
    assert still_running, "the output came only at the end"
    assert "── zz_slow.py" in rest and rest.rstrip().endswith("Found 2 findings.")
