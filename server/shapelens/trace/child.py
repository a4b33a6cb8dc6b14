"""The trace child: one forked process per plan. It loads the user's file (only the statements the plan
keeps, every function instrumented), builds each model on the trace device, runs its `forward` and writes
what it saw to the worker as JSON lines, one `target` event per model.

User code runs here and nowhere else. Its stdout/stdin are detached, every descriptor it inherited from the
worker is closed (the event pipe moves to a high number, and each event carries the run's token), a timer
bounds the load and each model, an address-space limit bounds memory, and the worker kills the whole
process if it stops answering. Whatever user code raises (`sys.exit` included) is a finding, never our
traceback.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import gc
import importlib
import importlib.abc
import importlib.machinery
import os
import random
import resource
import stat
import struct
import sys
import tempfile
import traceback
import types
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

from shapelens.core.source import Source, parse, read_source
from shapelens.core.syntax import node_key
from shapelens.core.wire import (
    ErrorKind,
    Event,
    Status,
    TargetResult,
    TraceError,
    TracePlan,
)
from shapelens.trace import early_sibling, explain, script_run
from shapelens.trace.context import Context, Emitter, time_limit
from shapelens.trace.imports import IMPORTING, STAND_IN, ImportClock, guard_imports, stand_in_factory
from shapelens.trace.instrument import RECORD, RETURN, instrument
from shapelens.trace.library import install as install_library_support
from shapelens.trace.model_run import _classify, _find_nodes, order_targets, trace_target
from shapelens.trace.patches import install_patches
from shapelens.trace.recording import Recorder
from shapelens.trace.sandbox import CACHE_VARIABLES, Sandbox, die_with_parent

# Offline Hugging Face, and torchvision beside a CPU torch (trace/library.py): here at import, so that the warm
# worker (which preloads what children imported) has it as well as every child it forks.
install_library_support()

# -- process set-up ---------------------------------------------------------------------------------------


def isolate(plan: TracePlan) -> None:
    """Detach stdin/stdout (user prints must not corrupt the protocol), cap memory, and put the file's
    folder, the project root and the folder above the file's package on sys.path, as when the file is run
    from its folder (or imported from above its package)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # prints go to the log, not to the worker's protocol channel
    folder = os.path.dirname(plan.file)
    _, above = package_of(plan.file)
    for entry in (plan.root, above, folder):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    os.chdir(folder)
    if plan.device == "cuda":
        return  # CUDA reserves tens of GB of address space at init: the worker's RSS watch bounds it instead
    try:
        with open("/proc/self/statm") as handle:
            current = int(handle.read().split()[0]) * resource.getpagesize()
        limit = current + int(plan.memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (OSError, ValueError):  # not Linux: the worker's kill on timeout is the only bound
        pass


def seal_descriptors(channel: int) -> int:
    """Move the event pipe to a high descriptor and close every other one this process inherited, but 0, 1
    and 2: the worker's protocol stdout (duplicated there) and any older pipe must be out of user code's
    reach. Character devices stay (/dev/null, a GPU driver's handles, which CUDA here still uses).
    Returns the event pipe's new descriptor."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    floor = 1000 if soft < 0 else max(3, min(1000, soft - 24))
    try:
        moved = fcntl.fcntl(channel, fcntl.F_DUPFD_CLOEXEC, floor)
        os.close(channel)
        channel = moved
    except OSError:  # a tiny descriptor limit: it stays where it is, the token still guards it
        pass
    try:
        inherited = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # not Linux
        inherited = list(range(3, 1024 if soft < 0 else min(soft, 65536)))
    for fd in inherited:
        if fd <= 2 or fd == channel:
            continue
        try:
            if not stat.S_ISCHR(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:  # already closed (the listing's own descriptor)
            continue
    return channel


def package_of(path: str) -> tuple[str, str]:
    """The dotted name a file has inside its package, found by walking up the folders that hold an
    `__init__.py` (`pkg/models/resnet.py` → "pkg.models.resnet"), and the folder above the package (its
    own folder when it is in no package)."""
    folder = os.path.dirname(os.path.abspath(path))
    parts = [os.path.splitext(os.path.basename(path))[0]]
    while os.path.exists(os.path.join(folder, "__init__.py")) and os.path.dirname(folder) != folder:
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    return ".".join(parts), folder


def project_root(plan: TracePlan) -> str:
    """The project's root, moved up above the file's package when the root is inside it (the file checked
    from its own folder): the package's other files are the user's too."""
    root = os.path.abspath(plan.root)
    _, above = package_of(plan.file)
    return above if root.startswith(above + os.sep) else root


def module_name(plan: TracePlan) -> str:
    """The planner's name, or the longer one the package gives when the planner's root was inside it."""
    dotted, _ = package_of(plan.file)
    return dotted if dotted.count(".") > plan.module.count(".") else plan.module


def project_file_test(root: str, main_file: str) -> Callable[[str], bool]:
    root = os.path.abspath(root)
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # shapelens itself is never user code
    excluded = tuple({os.path.abspath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, ours)})
    cache: dict[str, bool] = {main_file: True}

    def is_project(path: str) -> bool:
        known = cache.get(path)
        if known is None:
            full = os.path.abspath(path)
            known = cache[path] = (
                not path.startswith("<")  # <frozen runpy>, <string>, <shapelens>
                and full.startswith(root + os.sep)
                and not full.startswith(excluded)
                and "site-packages" not in full
                and os.sep + "." not in full[len(root) :]  # .venv, .tox, ...
            )
        return known

    return is_project


# -- loading user code --------------------------------------------------------------------------------------


class Loader:
    """Executes project files as real modules, recording every function: the checked file's kept top level,
    and each project file it imports whole."""

    def __init__(
        self, recorder: Recorder, on_file: Callable[[int, str], None], is_project: Callable[[str], bool]
    ) -> None:
        self.recorder = recorder
        self.on_file = on_file  # the worker maps progress (file id, line) back to a path
        self.clock = ImportClock()  # imports run on their own budget, not the trace's timeout
        self.stand_in = stand_in_factory(is_project)

    def exec_file(self, module: types.ModuleType, path: str, text: str, keep: set[tuple[Any, ...]] | None) -> None:
        exec(self.prepare(module, path, text, keep), module.__dict__)

    def prepare(
        self, module: types.ModuleType, path: str, text: str, keep: set[tuple[Any, ...]] | None
    ) -> types.CodeType:
        """The file's code, instrumented, with the recording and import functions in `module`. `keep` (the
        checked file) runs only those top-level statements; `None` (a file it imports) runs whole, as Python
        would import it."""
        parsed = parse(path, text)
        if not isinstance(parsed, Source):
            raise SyntaxError(f"{path}:{parsed.span.line}: {parsed.message}")
        tree = parsed.tree
        body = tree.body if keep is None else [s for s in tree.body if node_key(s) in keep]
        module_tree = ast.Module(body=body, type_ignores=[])
        module_tree, table = instrument(module_tree, text)
        module_tree.body = guard_imports(module_tree.body, path)
        file_id = self.recorder.add_file(path, table)
        self.on_file(file_id, path)
        record, record_return = self.recorder.bind(file_id)
        module.__dict__[RECORD] = record
        module.__dict__[RETURN] = record_return
        module.__dict__[IMPORTING] = self.clock.importing
        module.__dict__[STAND_IN] = self.stand_in
        return compile(module_tree, path, "exec")


class ProjectFinder(importlib.abc.MetaPathFinder):
    """Imports of the user's own files go through `Loader` (filtered and recorded); all else is untouched."""

    def __init__(self, loader: Loader, is_project: Callable[[str], bool]) -> None:
        self.loader = loader
        self.is_project = is_project

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py") or not self.is_project(spec.origin):
            return None
        spec.loader = _ProjectModuleLoader(self.loader, spec.origin)
        return spec


class _ProjectModuleLoader(importlib.abc.Loader):
    def __init__(self, loader: Loader, path: str) -> None:
        self.loader = loader
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_file(module, self.path, read_source(self.path), keep=None)


# -- the child's main ---------------------------------------------------------------------------------------


def trace_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        return torch.device("meta")  # the CLI/LSP already said there is no CUDA here
    return torch.device({"cuda": "cuda", "cpu": "cpu"}.get(requested, "meta"))


def library_imports(before: set[str], is_project: Callable[[str], bool]) -> list[str]:
    """Modules this child imported that are libraries (installed packages, the standard library), never the
    user's files: the worker imports them after the trace, so the next children inherit them warm."""
    found = []
    for name in set(sys.modules) - before:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and not is_project(path) and name != "__main__" and not name.startswith("shapelens"):
            found.append(name)
    return sorted(found)


def own_session(worker: int) -> None:
    """Lead a session (and process group) of its own, which the worker kills whole when the trace ends, and
    die with the worker (PR_SET_PDEATHSIG); if the worker is already gone, end now."""
    os.setsid()
    die_with_parent()
    if os.getppid() != worker:
        os._exit(1)


def private_folder(folder: str) -> None:
    """Point the temporary folder and the caches libraries write at the trace's private folder."""
    for name in CACHE_VARIABLES:
        os.environ[name] = folder
    tempfile.tempdir = folder


def run(plan: TracePlan, fd: int, progress: Any, token: str, folder: str | None = None, early: bool = False) -> None:
    emit = Emitter(fd, progress, token)
    if early:
        early_sibling.refuse_fake_tensors(lambda: emit({"event": Event.REFUSED}))
    before = set(sys.modules)
    isolate(plan)
    emit.fd = seal_descriptors(fd)
    device = trace_device(plan.device)
    is_project = project_file_test(project_root(plan), plan.file)
    recorder = Recorder(is_project)
    recorder.on_progress = emit.at
    ctx = Context(types.ModuleType(module_name(plan)), {}, device)
    install_patches(recorder, ctx)
    if folder is not None:  # from here on, user code runs: nothing outside the folder changes
        private_folder(folder)
        sys.dont_write_bytecode = True  # a library imported for the first time caches no .pyc
        ctx.sandbox = Sandbox(folder, is_project, ctypes_allowed=device.type == "cuda")
        ctx.sandbox.install()
    loader = Loader(
        recorder, lambda file_id, path: emit({"event": Event.FILE, "id": file_id, "path": path}), is_project
    )
    sys.meta_path.insert(0, ProjectFinder(loader, is_project))
    loader.clock.on_change = lambda path, line: report_import(progress, recorder, path, line)
    # -- loading: the checked file's kept top level (and, through ProjectFinder, the project files it
    # imports, whole); a failure here fails every target alike --
    same_draws()
    error = load_main(plan, ctx, recorder, loader)
    if error is not None:
        for spec in plan.targets:
            emit.result(TargetResult(spec.name, Status.ERROR, device.type, error=error))
        if plan.script:  # the file's top level as a script (trace/script_run.py) failed with it
            emit.result(script_run.script_failed(plan, error))
        return
    # -- loading ends: the module is ctx.module; tracing each target starts --
    if ctx.sandbox is not None:  # refusals the top level caught are reported with each model (sandbox.py)
        ctx.sandbox.loaded()
    parsed = parse(plan.file, plan.source)
    ctx.nodes = _find_nodes(parsed.tree) if isinstance(parsed, Source) else {}
    emit({"event": Event.IMPORTS, "modules": library_imports(before, is_project)})
    for spec in order_targets(plan.targets, parsed.tree if isinstance(parsed, Source) else None):
        same_draws()
        try:
            trace_target(spec, ctx, recorder, emit, plan)
        except BaseException as err:  # a bug of ours while reporting: lose this model, not the ones after it
            traceback.print_exc()
            message = f"shapelens could not report this trace ({type(err).__name__}: {err})"
            error = TraceError(ErrorKind.CRASH, message, plan.file, 0)
            emit.result(TargetResult(spec.name, Status.ERROR, ctx.device.type, error=error))
    if plan.script:  # then the file's top level, statement by statement (trace/script_run.py)
        script_run.run_script_safely(plan, ctx, recorder, emit)


def same_draws() -> None:
    """Seed Python's, torch's and (if imported) numpy's random numbers alike for every trace and every model
    in it: a forward that draws (`if random.random() > self.p: return x`, a random crop) takes the same path
    on every run, on any worker, whatever the other models drew, so its hints and findings do not flap."""
    random.seed(0)
    torch.manual_seed(0)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        with contextlib.suppress(Exception):  # a numpy that failed to import halfway
            numpy.random.seed(0)


def report_import(progress: Any, recorder: Recorder, path: str, line: int) -> None:
    """Where the import running now is, in the memory the worker reads if it has to kill this process."""
    if progress is None:
        return
    file_id = next((i for i, (known, _) in enumerate(recorder.files) if known == path), -1) if path else -1
    struct.pack_into("ii", progress, 8, file_id, line)


def register_main(module: types.ModuleType, plan: TracePlan) -> None:
    """Register the checked file's module under its dotted name, its parent packages imported first (a
    relative import needs them); a package whose `__init__` does not import gets a bare stand-in, so its
    other modules still import."""
    name = module.__name__
    module.__file__ = plan.file
    package = name.rpartition(".")[0]
    if package:
        module.__package__ = package
        try:
            importlib.import_module(package)
        except BaseException:  # the trace still needs the file's own code: import its siblings without it
            folder = os.path.dirname(os.path.abspath(plan.file))
            parts = package.split(".")
            for depth in range(len(parts), 0, -1):
                dotted = ".".join(parts[:depth])
                if dotted not in sys.modules or not hasattr(sys.modules[dotted], "__path__"):
                    bare = types.ModuleType(dotted)
                    bare.__path__ = [folder]
                    bare.__package__ = dotted
                    sys.modules[dotted] = bare
                folder = os.path.dirname(folder)
    sys.modules[name] = module


def execute_main(
    code: types.CodeType, module: types.ModuleType, plan: TracePlan, recorder: Recorder, device: torch.device
) -> None:
    """Run the checked file's kept top level in its module: the file's top level is user code too, so a
    slow statement is a timeout at its line (imports run on their own budget: trace/imports.py)."""
    with (
        time_limit(float(plan.timeout), recorder),
        torch.device(device) if device.type == "meta" else nullcontext(),
    ):
        exec(code, module.__dict__)


def load_main(plan: TracePlan, ctx: Context, recorder: Recorder, loader: Loader) -> TraceError | None:
    """Load the checked file into `ctx.module`; the failure every target shares, if it did not load."""
    module = ctx.module
    try:
        with time_limit(float(plan.timeout), recorder), loader.clock.importing(module.__name__, plan.file, 1):
            register_main(module, plan)  # the parent packages' `__init__` files: imports, on their budget
        code = loader.prepare(module, plan.file, plan.source, {tuple(k) for k in plan.keep})
        execute_main(code, module, plan, recorder, ctx.device)
    except BaseException as err:  # the file's own imports or definitions failed: every target fails alike
        return explain.failure(_classify(err, "import"), err, plan, recorder, "import")
    return None


def main_in_child(
    plan: TracePlan, fd: int, progress: Any, token: str, folder: str, worker: int, early: bool = False
) -> None:
    """Entry point after fork: never returns."""
    gc.disable()  # a short-lived process: collecting would only copy the warm parent's pages
    code = 0
    try:
        own_session(worker)
        run(plan, fd, progress, token, folder, early)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
