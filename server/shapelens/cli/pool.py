"""`shapelens check --jobs N`'s scheduler: N traces at a time over a warm pool (analysis/worker_pool.py), the
editor-side analysis of the files run ahead of them one at a time, and each plan handed to an idle worker
already warm for what it needs — long ones first."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sys
import threading

from shapelens.analysis.worker_client import TraceWorker, WorkerUnavailable
from shapelens.analysis.worker_pool import PoolWorker, start_warm_pool
from shapelens.core.warm import needs
from shapelens.core.wire import PoolSetup, TracePlan, TraceResult


def worker_env(files: int, threads: int | None) -> dict[str, str]:
    """The environment of `check`'s workers: one file gets only the warm-up every trace needs (its one child
    meets only its own model's kernels); several files the meta kernels of the rest of the warm-up
    (core/warm.py; a pool shares what its first plan needs, `shared_warm_up`) before the first trace and before
    a pool forks, and any other part a plan needs before that plan's trace, never the editor's whole warm-up
    after the first reply; with a pool each worker's torch gets its share of the cores, not all of them (N
    workers that each use every core only fight; a user's setting wins)."""
    env = dict(os.environ)
    env.setdefault("SHAPELENS_WARM", "minimal" if files == 1 else "full")
    env.setdefault("SHAPELENS_WARM_PARTS", "meta")
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(threads))
    return env


def shared_warm_up(first: TracePlan) -> list[str]:
    """What a pool warms once before it forks: the common layers' meta kernels, and what the first plan needs
    (core/warm.py's `needs`): FakeTensorMode and the solver where its inputs are guessed (zero edits, the
    normal case: a classifier's image size is solved), the symbolic forms' pass only where the output shows
    them (JSON version 2; text, GitHub and SARIF never do). A folder whose first file has its directive pays
    neither; a worker warms what a later plan needs before that plan's trace."""
    return ["meta", *(part for part in needs(first) if part != "meta")]


# files analysed per trace slot: the analysis of the next files fills the cores the pool's start leaves idle,
# and a plan waiting for a worker warm for it lets later ones by
LOOKAHEAD = 16


@dataclasses.dataclass(eq=False)
class Wait:
    """A plan waiting for a worker of `Pool`: the warm-up parts it needs, and its place in the queue."""

    need: frozenset[str]
    ticket: int
    refused: bool = False  # an early sibling refused it: it needs FakeTensorMode, and takes long

    def key(self) -> tuple[bool, int]:
        return (not self.refused, self.ticket)


class Pool:
    """`--jobs N`: N traces at a time over warm workers forked from one (analysis/worker_pool.py).

    The editor-side analysis (parsing, jedi, the rules, which are not thread-safe) runs one file at a time,
    under `analysis`, files ahead of the traces, which run side by side in their own processes. The pool's
    first worker starts at once; the first plan decides the warm-up it shares (`shared_warm_up`). When that
    goes beyond the meta kernels (FakeTensorMode and the solver, ≈0.8 s: a folder of zero-edit models), N-1
    early siblings are forked before it and trace, on the cores the warm-up leaves idle, what needs no more
    (trace/early_sibling.py); each plan goes to an idle worker already warm for what it needs."""

    def __init__(self, jobs: int, threads: int) -> None:
        self.jobs = jobs
        self.analysis = threading.Lock()
        self.workers = [PoolWorker(env=worker_env(2, threads)) for _ in range(jobs)]
        self.early = [PoolWorker(env=worker_env(2, threads)) for _ in range(jobs - 1)]
        self.first_plan: TracePlan | None = None
        self.first_seen = threading.Event()  # set at the first plan, or when every file is done without one
        self._changed = threading.Condition()
        self._idle: list[PoolWorker] = []  # started (or failed to) and not tracing
        self._starting = True
        self._running = 0
        self._waiting: list[Wait] = []  # the plans waiting for a worker
        self._tickets = itertools.count()

    def trace(self, plan: TracePlan) -> TraceResult:
        """`analyze`'s trace: run while this thread gives up `analysis` to the next file's. A trace an early
        sibling refused (it needs FakeTensorMode) runs again on a warm worker, before any other waiting."""
        self.analysis.release()
        try:
            with self._changed:
                if self.first_plan is None:
                    self.first_plan = plan
                    self.first_seen.set()
                wait = Wait(frozenset(needs(plan)), next(self._tickets))
            while True:
                worker = self._take(wait)
                try:
                    result = worker.trace(plan)
                finally:
                    self._give_back(worker, wait.need if worker not in self.early else frozenset())
                if not result.refused:
                    return result
                wait.refused = True
        finally:
            self.analysis.acquire()

    def _take(self, wait: Wait) -> PoolWorker:
        """The idle worker `_options` names first for `wait`, once no plan before it in `Wait.key`'s order
        can take that worker (refused traces first, then in the order the files were analysed: a long one
        is not left for the end)."""
        with self._changed:
            self._waiting.append(wait)
            try:
                while True:
                    options = self._options(wait) if self._running < self.jobs else []
                    if options:
                        worker = options[0]
                        before = (w for w in self._waiting if w.key() < wait.key())
                        if not any(worker in self._options(other) for other in before):
                            self._idle.remove(worker)
                            self._running += 1
                            return worker
                    self._changed.wait()
            finally:
                self._waiting.remove(wait)

    def _options(self, wait: Wait) -> list[PoolWorker]:
        """The idle workers a plan may go to, best first: those warm for what it needs (the least warm of them:
        a warmer one may be needed next); else an early sibling (it refuses a trace that needs what it lacks;
        not again for a refused one); else, once the pool has started, any other (it warms itself first)."""
        ours = [w for w in self._idle if not (wait.refused and w in self.early)]
        suited = [w for w in ours if wait.need <= w.warm]
        early = [w for w in ours if w in self.early]
        others = [] if self._starting else [w for w in ours if w not in self.early]
        return sorted(suited or early or others, key=lambda w: len(w.warm))

    def _give_back(self, worker: PoolWorker, warmed: frozenset[str]) -> None:
        with self._changed:
            worker.warm |= warmed  # the worker warms what a plan needs before its trace
            self._idle.append(worker)
            self._running -= 1
            self._changed.notify_all()

    def _settled(self, worker: PoolWorker) -> None:
        with self._changed:
            if worker in self.early and not worker.started:  # an early one that did not come up: not used
                return
            self._idle.append(worker)
            self._changed.notify_all()

    def start(self, cuda: bool) -> None:
        """Start the pool at once: its first worker imports torch while the first files are analysed, and
        hears what to warm at the first plan (`_setup`); its workers settle one by one."""
        settled: list[PoolWorker] = []

        def settle(worker: PoolWorker) -> None:
            settled.append(worker)
            self._settled(worker)

        try:
            with contextlib.suppress(WorkerUnavailable):  # the per-file finding (SL004) says what is wrong
                start_warm_pool(self.workers, self.early, self._setup, settle)
            if cuda and self.first_plan is not None:
                warn_without_cuda(self.workers[0])
        finally:
            for worker in self.workers:
                if worker not in settled:  # not started: it starts cold on its first trace
                    self._settled(worker)
            with self._changed:
                self.early = [w for w in self.early if w in settled and w.started]  # the others never came
                self._starting = False
                self._changed.notify_all()

    def _setup(self) -> PoolSetup | None:
        """At the first plan: the warm-up the pool shares (a user's SHAPELENS_WARM_PARTS wins), and early
        siblings where it goes beyond the meta kernels; None when every file was done without a trace."""
        self.first_seen.wait()
        if self.first_plan is None:
            return None
        user = os.environ.get("SHAPELENS_WARM_PARTS")
        shared = user.split(",") if user else shared_warm_up(self.first_plan)
        return PoolSetup(shared, early=bool(set(shared) - {"meta"}))

    def close(self) -> None:
        for worker in self.early + self.workers:
            worker.close()


def warn_without_cuda(worker: TraceWorker) -> None:
    with contextlib.suppress(Exception):  # the per-file finding (SL004) says what is wrong with the worker
        worker.ensure_started()
    if worker.torch_version is not None and not worker.cuda_available:
        print("shapelens: --device cuda: no CUDA device here; tracing on the meta device", file=sys.stderr)
