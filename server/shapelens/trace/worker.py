"""The long-lived trace worker (`python -m shapelens.trace.worker`), run in the user's interpreter.

It imports torch once and runs one meta op (the lazy sympy import alone costs 0.5–1.6 s), then forks a
child per plan (≈15 ms), so user code never pollutes the warm process and a hang, a crash or a runaway
allocation only ever kills a child. Protocol: JSON lines; requests `{"id", "plan"}` on stdin; events
`{"event": "ready"|"error"}` once, then `{"id", "event": "started", "pid"}` and `{"id", "event": "result",
"result"}` per request on stdout.

A child's events come on a pipe of its own, one JSON object a line, each starting with the run's random
token: a line without it (user code that found a descriptor and wrote to it) is skipped and logged once,
never parsed as ours. A child killed while its file was still loading is reported as the load's timeout.
"""

from __future__ import annotations

import contextlib
import gc
import json
import mmap
import os
import secrets
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from shapelens.core.warm import PARTS, needs
from shapelens.core.wire import (
    SCRIPT_TARGET,
    ErrorKind,
    Event,
    PoolSetup,
    Status,
    TargetResult,
    TraceError,
    TracePlan,
    from_wire,
    to_wire,
)
from shapelens.trace.sandbox import kill_group

GRACE_S = 2.0  # beyond the child's own timer, before we kill it (a hang inside C code ignores the timer)


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def warm_up() -> dict[str, Any]:
    """What every trace needs, before the worker says it is ready: torch, the child's modules, and one small
    meta op under the flop counter — the first meta op imports sympy (torch._check's symbolic shapes), which
    no trace can do without; torch._dynamo it no longer imports (trace/lazy_dynamo.py). The rest of the
    warm-up (`_exercise_kernels`) waits for the first reply."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # ask about CUDA without initialising it
    import logging
    import warnings

    # torch warns once when the interpreter's numpy cannot serve it (missing, or built for another ABI);
    # shapes never need numpy, and the user's terminal is no place for it (a model that uses numpy says so)
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch

    from shapelens.trace import lazy_dynamo

    lazy_dynamo.install()  # before any op: the first one would import torch._dynamo (≈ an `import torch`)
    from torch.utils.flop_counter import FlopCounterMode

    import shapelens.trace.child  # noqa: F401  (imports the flop counter and everything a child needs)

    # its "failed while attempting to run meta" tracebacks are our retries under FakeTensorMode, not user errors
    logging.getLogger("torch._subclasses.fake_tensor").setLevel(logging.CRITICAL)
    with torch.device("meta"), FlopCounterMode(display=False):
        torch.nn.Linear(2, 2)(torch.randn(1, 2)).relu().sum()
    return {"event": "ready", "torch": torch.__version__, "cuda": bool(torch.cuda.is_available())}


def _exercise_kernels() -> None:
    """The rest of the warm-up, before children are forked that would each pay it again: the common layers'
    meta kernels, FakeTensorMode's first use (it imports torch._dynamo), the symbolic passes' first use."""
    warm_parts(PARTS)


WARMED: set[str] = set()  # the parts of core/warm.py's PARTS this process has run


def warm_parts(parts: Iterable[str]) -> None:
    """Warm the parts named that are not warm yet; a part that fails to warm stays cold, nothing more."""
    for part in PARTS:
        if part in parts and part not in WARMED:
            WARMED.add(part)
            with contextlib.suppress(Exception):
                _PART_FUNCTIONS[part]()


def _solver_kernels() -> None:
    from shapelens.trace import solve

    solve.warm_up(others=False)  # the pass that solves free input sizes (#8)


def _form_kernels() -> None:
    from shapelens.trace import symbolic

    symbolic.warm_up()  # the symbolic forms' pass after each trace (#13)


def _meta_kernels() -> None:
    """Run the common layers once on meta, under the flop counter, so their lazily registered meta
    kernels and decompositions (≈0.8 s for the first conv alone) are loaded before any child is forked."""
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"), FlopCounterMode(display=False):
        x = torch.randn(2, 3, 8, 8)
        x = nn.MaxPool2d(2)(F.relu(nn.BatchNorm2d(4)(nn.Conv2d(3, 4, 3, padding=1)(x))))
        x = nn.AdaptiveAvgPool2d(1)(nn.ConvTranspose2d(4, 4, 2, stride=2)(x))
        seq = nn.Conv1d(4, 4, 3, padding=1)(torch.cat([x.flatten(2), x.flatten(2)], dim=2)).transpose(1, 2)
        seq = nn.LayerNorm(4)(seq + nn.Embedding(10, 4)(torch.zeros(2, 2, dtype=torch.long)))
        attn = F.scaled_dot_product_attention(seq[:, None], seq[:, None], seq[:, None], is_causal=True)
        seq = F.gelu(nn.Linear(4, 4)(attn.squeeze(1))).softmax(-1)
        nn.Dropout(0.1)(seq.reshape(2, -1)).view(-1).sum()
        nn.MultiheadAttention(4, 2, batch_first=True)(seq, seq, seq)
        nn.Conv3d(1, 1, 1)(torch.randn(1, 1, 2, 2, 2))
        nn.GroupNorm(2, 4)(torch.randn(2, 4, 3))


def _fake_kernels() -> None:
    """FakeTensorMode's first use (the fallback for data-dependent ops, and the symbolic passes): ≈2.5 s."""
    import torch
    from torch import nn

    from shapelens.trace.model_run import _fake_mode

    with _fake_mode():
        h = nn.Linear(2, 2)(torch.randn(3, 2))
        h[h > 0].sum()


_PART_FUNCTIONS: dict[str, Callable[[], None]] = {
    "meta": _meta_kernels,
    "fake": _fake_kernels,
    "solve": _solver_kernels,
    "forms": _form_kernels,
}


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


ZOMBIES: list[int] = []  # children that reported everything and are still exiting


def reap() -> None:
    for pid in list(ZOMBIES):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            ZOMBIES.remove(pid)


class Run:
    """One forked child and what it reported."""

    def __init__(self, plan: TracePlan, early: bool = False) -> None:
        self.plan = plan
        self.early = early  # run by a pool's early sibling: a trace that needs FakeTensorMode stops (refused)
        self.refused = False
        self.targets: list[dict[str, Any]] = []
        self.files: list[str] = []
        self.current: str | None = None
        self.current_since = time.monotonic()
        self.killed_for: str | None = None
        self.imports: list[str] = []
        self.loaded = False  # the child has run the file's top level (or reported why it could not)
        self.token = secrets.token_hex(16)
        self.marker = f'{{"token": "{self.token}"'.encode()  # how each of the child's events begins
        self.foreign = 0  # bytes of lines that were not the child's events

    def start(self) -> int:
        from shapelens.trace import child

        read_fd, write_fd = os.pipe()
        # (file id, line) of the last statement, then of the import running now (-1: none; trace/imports.py)
        self.progress = mmap.mmap(-1, 16)
        struct.pack_into("iiii", self.progress, 0, -1, 0, -1, 0)
        self.folder = tempfile.mkdtemp(prefix="shapelens-trace-")  # the only place the child may write
        worker = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            child.main_in_child(self.plan, write_fd, self.progress, self.token, self.folder, worker, self.early)
        os.close(write_fd)
        self.pid, self.fd = pid, read_fd
        return pid

    def end(self) -> None:
        """Kill whatever the trace left running (the child leads its own process group: `sandbox` refuses
        processes, this is the belt to those braces) and remove its private folder."""
        kill_group(self.pid)
        shutil.rmtree(self.folder, ignore_errors=True)

    def collect(self) -> dict[str, Any]:
        from shapelens.trace.imports import import_budget

        timeout = float(self.plan.timeout)
        buffer = b""
        eof = False
        expected = len(self.plan.targets) + (1 if self.plan.script else 0)  # a script: its own result
        while not eof and len(self.targets) < expected and not self.refused:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                chunk = os.read(self.fd, 1 << 16)
                eof = not chunk
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self._line(line)
            if os.getppid() != PARENT:  # the editor or the CLI is gone: so are we, and the trace
                self.end()
                os._exit(1)
            elapsed = time.monotonic() - self.current_since
            if not eof and self.killed_for is None:
                # the child's own timers stop it; this is the backstop (a hang inside C code), and while the
                # file loads its imports have their own, larger budget
                if elapsed > timeout + GRACE_S + (0.0 if self.loaded else import_budget()):
                    self._kill("timeout")
                elif _rss_mb(self.pid) > float(self.plan.memory_mb):
                    self._kill("memory")
        os.close(self.fd)
        if self.foreign:
            print(f"shapelens: ignored {self.foreign} bytes the traced code wrote on the event pipe", file=sys.stderr)
        if self.refused:  # it ends itself at once; nothing it did is kept
            self.end()
            os.waitpid(self.pid, 0)
            return {"targets": [], "files": [], "refused": True}
        if len(self.targets) < expected:  # killed or crashed: its status says how
            self.end()  # before the child is reaped, while the group's id is still the child's
            _, status = os.waitpid(self.pid, 0)
            self._fill_missing(status)
        else:  # all reported: don't wait for the child's exit (≈12 ms of unmapping), reap it later
            self.end()
            ZOMBIES.append(self.pid)
        return {"targets": self.targets, "files": self.files}

    def _line(self, line: bytes) -> None:
        """One line from the child: its event if it carries this run's token, else skipped (and counted).
        Garbage written just before an event (no newline) is cut off rather than costing the event."""
        start = line.find(self.marker)
        try:
            event = json.loads(line[start:]) if start >= 0 else None
        except ValueError:
            event = None
        if not isinstance(event, dict) or event.pop("token", None) != self.token:
            self.foreign += len(line) + 1
            return
        self.foreign += start
        self._event(event)

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == Event.FILE:
            self.files.append(event["path"])
        elif kind == Event.IMPORTS:
            self.imports, self.loaded = event["modules"], True
        elif kind == Event.START:
            self.current, self.current_since = event["name"], time.monotonic()
        elif kind == Event.REFUSED:
            self.refused = True
        elif kind == Event.TARGET:
            self.targets.append(event)
            self.current, self.current_since, self.loaded = None, time.monotonic(), True

    def _kill(self, why: str) -> None:
        self.killed_for = why
        with contextlib.suppress(ProcessLookupError):  # it already ended
            os.kill(self.pid, signal.SIGKILL)

    def _importing(self) -> tuple[str, int, str] | None:
        """The import the child was running when it was stopped: where, and the message that says so."""
        from shapelens.trace.imports import import_budget, imported_module

        file_id, line = struct.unpack_from("ii", self.progress, 8)
        if not 0 <= file_id < len(self.files) or line <= 0:
            return None
        path = self.files[file_id]
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read() if path != self.plan.file else self.plan.source
        except OSError:
            text = self.plan.source if path == self.plan.file else ""
        module = imported_module(text, line) or "a module"
        return path, line, f"import of {module} did not finish in {import_budget():g} s"

    def _fill_missing(self, status: int) -> None:
        """Targets the child never reported: it was killed (time, memory, cancel) or it crashed."""
        done = {t["name"] for t in self.targets}
        file_id, line = struct.unpack_from("ii", self.progress, 0)
        path = self.files[file_id] if 0 <= file_id < len(self.files) else self.plan.file
        if os.WIFSIGNALED(status):
            reason = f"the trace process was killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            reason = f"the trace process exited with status {os.WEXITSTATUS(status)}"
        timeout = float(self.plan.timeout)
        messages = {
            "timeout": ("timeout", f"trace stopped after {timeout:g} s"),
            "memory": ("memory", f"trace stopped: it needed more than {self.plan.memory_mb} MB"),
        }
        if not self.loaded:  # stopped while the file's top level ran: every model is stopped by it alike
            loading = os.path.basename(self.plan.file)
            messages = {
                "timeout": ("timeout", f"loading {loading} did not finish in {timeout:g} s"),
                "memory": ("memory", f"loading {loading} needed more than {self.plan.memory_mb} MB"),
            }
            importing = self._importing()
            if importing is not None and self.killed_for == "timeout":  # stuck in an import (in native code)
                path, line, message = importing
                messages["timeout"] = ("timeout", message)
        names = [spec.name for spec in self.plan.targets] + ([SCRIPT_TARGET] if self.plan.script else [])
        for name in names:
            if name in done:
                continue
            kind, message = messages.get(self.killed_for or "", ("crash", reason))
            in_progress = name == self.current or (not self.loaded and self.killed_for is not None)
            error = (
                TraceError(ErrorKind(kind), message, path, line)
                if in_progress
                else TraceError(ErrorKind.CRASH, reason, self.plan.file, 0)
            )
            self.targets.append(to_wire(TargetResult(name, Status.ERROR, None, error=error)))


PARENT = os.getppid()  # the editor or the CLI that started us; another parent means it died


def main() -> None:
    protocol: IO[str] = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printing to stdout goes to the log instead of the protocol
    try:
        hello = warm_up()
    except ImportError as err:
        missing = getattr(err, "name", None) or str(err)
        what = "torch is not installed" if missing == "torch" else f"cannot import {missing}"
        _send(protocol, {
            "event": "error",
            "message": f"{what} in {sys.executable}; install it with `{sys.executable} -m pip install torch` "
                       f"(shapes need torch; static checks keep working)",
        })  # fmt: skip
        return
    except Exception as err:
        _send(protocol, {"event": "error", "message": f"torch failed to start in {sys.executable}: {err}"})
        return
    # The rest of the warm-up: the editor's worker runs it after its first reply (its first hints come
    # sooner); `check` of one file never (its one child meets only its own model's kernels); `check` of many
    # files the parts it names before its pool forks (each child would otherwise load the same kernels
    # again), and the others a plan needs before that plan's child is forked (`needs`).
    warm = os.environ.get("SHAPELENS_WARM", "deferred")
    stdin, protocol, siblings, index, early_sibling = _start_pool(protocol, warm == "full")
    _send(protocol, {**hello, "sibling": index, "pid": os.getpid(), "warm": sorted(WARMED)})
    rest_of_warm_up = warm == "deferred"
    for line in stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        run = Run(from_wire(TracePlan, request["plan"]), early_sibling)
        wanted = needs(run.plan)
        if warm == "full" and not early_sibling and not set(wanted) <= WARMED:
            warm_parts(wanted)  # once per worker: every later child that needs them shares them
            gc.freeze()
        pid = run.start()
        try:
            _send(protocol, {"id": request["id"], "event": "started", "pid": pid})
            _send(protocol, {"id": request["id"], "event": "result", "result": run.collect()})
        except BrokenPipeError:  # the editor or the CLI closed our output mid-trace (its shutdown): we end too
            run.end()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            break
        preload(run.imports)
        if rest_of_warm_up:
            rest_of_warm_up = False
            _exercise_kernels()
        reap()
        gc.freeze()  # what the warm process holds now is never collected: children don't copy its pages
    # end of input: the editor or the CLI is done with us. Skip the interpreter's teardown of torch (≈0.9 s
    # that every restart and every test would wait for); the children are already reaped.
    with contextlib.suppress(OSError):  # a closed pipe: nobody is left to read it
        protocol.flush()
    for sibling in siblings:  # idle at a normal end; mid-trace only when the CLI died, and then they go too
        with contextlib.suppress(ProcessLookupError):
            os.kill(sibling, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(sibling, 0)
    os._exit(0)


def _start_pool(protocol: IO[str], warm: bool) -> tuple[IO[str], IO[str], list[int], int, bool]:
    """The warm-up before the first request (`warm`: the parts named in SHAPELENS_WARM_PARTS, or in the pool's
    `PoolSetup` line), and a pool's siblings forked: the early ones once the meta kernels are warm (they trace
    what needs no more while this process warms the other parts), the rest after. Returns the streams this
    process serves, the siblings forked (in the first worker), its index and whether it is an early one."""
    parts = os.environ.get("SHAPELENS_WARM_PARTS", ",".join(PARTS)).split(",")
    early, late = _sibling_pipes("SHAPELENS_WORKER_EARLY"), _sibling_pipes("SHAPELENS_WORKER_SIBLINGS")
    if os.environ.pop("SHAPELENS_POOL_SETUP", None):  # a pool started before its first plan was built
        line = sys.stdin.readline()
        if not line:  # the CLI found nothing to trace
            os._exit(0)
        setup = from_wire(PoolSetup, json.loads(line))
        parts = setup.warm
        if not setup.early:
            for fd in (fd for pair in early for fd in pair):
                os.close(fd)
            early = []
    stdin: IO[str] = sys.stdin
    siblings: list[int] = []
    for pairs, held, warm_first in ((early, early + late, ["meta"]), (late, late, parts)):
        if warm:
            warm_parts(set(parts) & set(warm_first))
        gc.freeze()
        stdin, protocol, forked, index = _fork_siblings(stdin, protocol, pairs, held, len(siblings))
        if index:  # a sibling: it serves its own pipes, as warm as it was forked, and forks nothing
            return stdin, protocol, [], index, index <= len(early)
        siblings += forked
    return stdin, protocol, siblings, 0, False


def _sibling_pipes(variable: str) -> list[tuple[int, int]]:
    """The pipe pairs the CLI passed for a pool's siblings in `variable` ("in,out;..."), which no child (nor
    sibling) sees again."""
    spec = os.environ.pop(variable, "")
    return [(int(r), int(w)) for r, w in (pair.split(",") for pair in spec.split(";") if pair)]


def _fork_siblings(
    stdin: IO[str], protocol: IO[str], pairs: list[tuple[int, int]], held: list[tuple[int, int]], counted: int
) -> tuple[IO[str], IO[str], list[int], int]:
    """`shapelens check --jobs N`: warm copies of this worker, one per pipe pair in `pairs` (the pool pays one
    `import torch`), each serving its own pair and closing the others this process still holds (`held`).
    Returns the streams this process serves, the pids forked (in the first worker) and its index (0: the
    first worker; a sibling's counts on from `counted`)."""
    global PARENT
    pids: list[int] = []
    for index, (read_fd, write_fd) in enumerate(pairs, counted + 1):
        pid = os.fork()
        if pid == 0:
            PARENT = os.getppid()  # the first worker: it outlives us, and ends us when the CLI is gone
            protocol.close()  # the first worker's streams are not ours to hold open
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            for fd in {fd for pair in held for fd in pair} - {read_fd, write_fd}:
                os.close(fd)
            return os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w"), [], index
        pids.append(pid)
    for pair in pairs:
        for fd in pair:
            os.close(fd)
    return stdin, protocol, pids, 0


def preload(modules: list[str]) -> None:
    """Import, here in the warm process, the libraries a child just imported without trouble (GPT-2's
    `transformers` costs ≈2.4 s per child otherwise). Only library modules are named (the child never
    lists project files), after the reply is sent, and a failure just leaves that module cold."""
    import importlib

    for name in modules:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except BaseException:  # a module that only imports in some context stays cold
                continue


if __name__ == "__main__":
    main()
