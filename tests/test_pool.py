"""`shapelens check --jobs N`: a pool of trace workers forked from one warm worker (one `import torch`), whose
results are those of a serial run, and the progress line that shows only on a terminal, never in JSON."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from engine_support import analyser
from shapelens.analysis.engine import analyze
from shapelens.analysis.plan import build_plan
from shapelens.analysis.worker_client import TraceWorker
from shapelens.analysis.worker_pool import PoolWorker, start_warm_pool
from shapelens.cli.pool import Pool, Wait, shared_warm_up
from shapelens.core.findings import Finding
from shapelens.core.options import Options
from shapelens.core.source import parse
from shapelens.core.wire import PoolSetup, TracePlan, TraceResult, to_wire
from test_engine import hints_by_key

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
    start_warm_pool(workers, [], lambda: PoolSetup(["meta"], early=False))
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


# -- zero edits (the normal case) and the warm-up a folder's pool shares -----------------------------------

LENET = """\
import torch.nn as nn
import torch.nn.functional as F


class LeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc2(F.relu(self.fc1(x)))
"""

GRU = """\
from torch import nn


class Classifier(nn.Module):
    def __init__(self, vocab: int = 300, width: int = 16, hidden: int = 24, classes: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.rnn = nn.GRU(width, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, tokens):
        out, _ = self.rnn(self.embedding(tokens))
        return self.fc(out[:, -1, :])
"""

TINY_GPT = """\
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Config:
    vocab: int = 50
    context: int = 16
    width: int = 32


class Tiny(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.tokens = nn.Embedding(cfg.vocab, cfg.width)
        self.positions = nn.Embedding(cfg.context, cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab)

    def forward(self, idx):
        t = idx.size(1)
        x = self.tokens(idx) + self.positions(torch.arange(t, device=idx.device))
        return self.head(x)
"""


def test_zero_edit_folder_pool_equals_a_serial_run(tmp_path: Path) -> None:
    """No directive, no example call: inputs inferred, LeNet's image size solved (FakeTensorMode), the symbolic
    forms of JSON version 2 — a pool's workers give what one worker gives."""
    for name, text in {"lenet.py": LENET, "gru.py": GRU, "tiny_gpt.py": TINY_GPT}.items():
        (tmp_path / name).write_text(text)
    for args in (("--format", "json"), ()):
        serial = check(".", *args, "--jobs", "1", cwd=tmp_path)
        pooled = check(".", *args, "--jobs", "2", cwd=tmp_path)
        assert serial.returncode == pooled.returncode == 0, serial.stderr
        assert pooled.stdout == serial.stdout
    files = {Path(f["path"]).name: f for f in json.loads(check(".", "--format", "json", cwd=tmp_path).stdout)["files"]}
    assert all(files[name]["hints"] for name in ("lenet.py", "gru.py", "tiny_gpt.py"))
    (lenet,) = files["lenet.py"]["models"]
    assert lenet["inputs"][0]["shape"] == [2, 1, 28, 28]  # solved: the size fc1's 16·4·4 accepts
    assert any("symbolic" in hint for hint in files["gru.py"]["hints"])  # version 2's forms came through


def _plan(tmp_path: Path, name: str, text: str, symbolic: bool = False) -> TracePlan:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    parsed = parse(str(path), path.read_text())
    assert not isinstance(parsed, Finding)
    return build_plan(parsed, str(tmp_path), Options(symbolic=symbolic)).message()


def test_the_shared_warm_up_follows_the_first_plan_and_the_output_format(tmp_path: Path) -> None:
    """What a pool warms before it forks: FakeTensorMode and the solver when the first file's inputs are
    guessed (zero edits), neither when it has its directive, and the symbolic forms' pass only for output that
    shows the forms (JSON version 2)."""
    from test_lazy_dynamo import DYNAMO_PROBE

    directive = _plan(tmp_path, "probe.py", DYNAMO_PROBE)
    assert shared_warm_up(directive) == ["meta"]
    assert shared_warm_up(_plan(tmp_path, "lenet.py", LENET)) == ["meta", "fake", "solve"]
    assert shared_warm_up(_plan(tmp_path, "probe.py", DYNAMO_PROBE, symbolic=True)) == ["meta", "fake", "forms"]
    assert shared_warm_up(_plan(tmp_path, "lenet.py", LENET, symbolic=True)) == ["meta", "fake", "solve", "forms"]


def _dynamo_modules(folder: Path, *args: str) -> int:
    """The count of torch._dynamo modules probe.py's trace found imported (its `dynamo` hint's size)."""
    result = check(".", "--format", "json", *args, "--jobs", "2", cwd=folder)
    assert result.returncode == 0, result.stderr
    (probe,) = [f for f in json.loads(result.stdout)["files"] if f["path"].endswith("probe.py")]
    (size,) = [h["shape"][0] for h in probe["hints"] if h["target"] == "dynamo"]
    return int(size)


def test_a_folder_with_directives_pays_no_fake_tensor_warm_up(tmp_path: Path) -> None:
    """`check DIR --jobs 2`: with every input given and no symbolic forms printed, no trace needs
    FakeTensorMode, so the pool never imports torch._dynamo; JSON version 2 prints the forms, whose pass needs
    it, so the pool warms it once for every child (a first file whose input is guessed too: below)."""
    from test_lazy_dynamo import DYNAMO_PROBE

    (tmp_path / "probe.py").write_text(textwrap.dedent(DYNAMO_PROBE))
    (tmp_path / "probe_twin.py").write_text(textwrap.dedent(DYNAMO_PROBE))
    assert _dynamo_modules(tmp_path, "--json-version", "1") == 0
    assert _dynamo_modules(tmp_path) > 0


def test_early_siblings_trace_during_the_warm_up_and_refuse_what_needs_fake_tensors(tmp_path: Path) -> None:
    """A pool whose first file's input is guessed warms FakeTensorMode and the solver before it forks; an early
    sibling, forked from the same worker before that warm-up, traces a model with its directive as the others
    do, and refuses a LeNet whose image size is solved under FakeTensorMode: nothing of that trace is kept, and
    a warm worker's trace of it is the one a user sees."""
    from test_lazy_dynamo import DYNAMO_PROBE

    env = {**os.environ, "SHAPELENS_WARM": "full"}
    first, late, early = PoolWorker(env=env), PoolWorker(env=env), PoolWorker(env=env)
    settled: list[PoolWorker] = []
    start_warm_pool([first, late], [early], lambda: PoolSetup(["meta", "fake", "solve"], early=True), settled.append)
    try:
        assert settled == [early, first, late]  # the early one is up before the warm-up ends
        assert _parent_of(early._proc.pid) == first._proc.pid  # type: ignore[union-attr]
        assert early.warm == {"meta"} and first.warm == late.warm == {"meta", "fake", "solve"}
        # fc1 written for 36 pixels: no common size fits, so the size is solved under FakeTensorMode
        lenet = _plan(tmp_path, "lenet.py", LENET.replace("16 * 4 * 4", "16 * 6 * 6"))
        probe = _plan(tmp_path, "probe.py", DYNAMO_PROBE)
        dynamo = [_probe_dynamo(worker.trace(probe)) for worker in (early, late)]
        assert dynamo[0] == 0 and dynamo[1] > 0  # only the warm ones' children have FakeTensorMode's modules
        refused = early.trace(lenet)
        assert refused.refused and not refused.targets and not refused.files
        solved = late.trace(lenet)
        assert not solved.refused
        (target,) = solved.targets
        assert target.status.value == "ok" and target.inputs[0].shape == [2, 1, 36, 36]
        assert early.trace(probe).targets[0].status.value == "ok"  # still serving after a refusal
    finally:
        for worker in (early, late, first):
            worker.close()


def _probe_dynamo(result: TraceResult) -> int:
    """The count of torch._dynamo modules DYNAMO_PROBE's trace found imported (its `dynamo` hint's size)."""
    (target,) = result.targets
    (record,) = [r for r in target.records if r.target == "dynamo"]
    return int(record.shapes[0][0])


def test_a_part_left_out_of_the_shared_warm_up_is_warmed_before_the_first_trace_that_needs_it(
    tmp_path: Path,
) -> None:
    """A worker that warmed only the meta kernels: a plain trace with a directive needs no FakeTensorMode (its
    child finds no torch._dynamo imported); a trace with the symbolic pass does, and its child finds it
    warmed (imported by the worker before the fork) already during the plain trace."""
    from test_lazy_dynamo import DYNAMO_PROBE

    worker = TraceWorker(env={**os.environ, "SHAPELENS_WARM": "full", "SHAPELENS_WARM_PARTS": "meta"})
    try:
        analyse = analyser(worker, tmp_path)
        path = str(tmp_path / "probe.py")
        plain = hints_by_key(analyse(DYNAMO_PROBE, name="probe.py"))
        assert plain[(path, 16, "dynamo")] == [(0,)]
        symbolic = hints_by_key(analyse(DYNAMO_PROBE, name="probe.py", symbolic=True))
        (dynamo_modules,) = symbolic[(path, 16, "dynamo")][0]
        assert dynamo_modules is not None and dynamo_modules > 0
        again = hints_by_key(analyse(DYNAMO_PROBE, name="probe.py"))
        assert again[(path, 16, "dynamo")] != [(0,)]  # warmed once, in the worker: every later child has it
    finally:
        worker.close()


def test_the_pool_hands_a_refused_plan_the_next_warm_worker_and_the_rest_in_file_order() -> None:
    """`check --jobs N`'s queue, without processes: while the pool starts, a plan goes to an early sibling and
    never to a worker still starting; once it has started, a plan an early sibling refused (it needs
    FakeTensorMode: a long trace) takes the next free warm worker before plans analysed earlier, and those
    go in the order their files were analysed."""
    pool = Pool(jobs=2, threads=1)
    warm = frozenset({"meta", "fake", "solve"})
    (first, _), (early,) = pool.workers, pool.early
    first.warm, early.warm = warm, frozenset({"meta"})
    early._proc = object()  # type: ignore[assignment]  (attached: `started`)
    pool._settled(early)
    assert pool._take(Wait(warm, 0)) is early  # the first worker is still warming: the early one takes it

    taken: list[int] = []

    def take(wait: Wait) -> None:
        worker = pool._take(wait)
        taken.append(wait.ticket)
        pool._give_back(worker, frozenset())

    waits = [Wait(warm, 1), Wait(warm, 2), Wait(warm, 3, refused=True)]
    threads = [threading.Thread(target=take, args=(wait,)) for wait in waits]
    for count, thread in enumerate(threads, 1):
        thread.start()
        while len(pool._waiting) < count:  # queued in this order, the early sibling still busy
            time.sleep(0.01)
    pool._settled(first)  # warm: the one slot left goes to each waiting plan in turn
    with pool._changed:
        pool._starting = False
        pool._changed.notify_all()
    for thread in threads:
        thread.join(timeout=10)
    assert taken == [3, 1, 2]
