"""The trace child's sandbox: what user code may not do while it is traced, enforced by a Python audit hook
(`sys.addaudithook`) installed before any user code runs, and the process hygiene that leaves nothing running.

Refused, with a `SandboxRefusal` (a `PermissionError`) that names what and where:

- writing, appending or creating a file, and deleting, renaming, linking, chmod/chown, mkdir, truncating
  anything, outside the trace's private temporary folder (`TMPDIR` and the caches point there);
- reading the credential files under the home folder (`SECRETS`);
- sockets: connect, bind, send to an address, name lookups (so no download: `torch.hub.load`,
  `from_pretrained` without a local cache);
- starting processes: `subprocess`, `os.system`, `os.exec*`, `os.spawn*`, `os.posix_spawn`, `os.fork`, and
  signals to any process but the child itself;
- `ctypes`: loading a library or looking up a symbol (`ctypes.CDLL("libc.so.6").system` would get round all
  of the above), except under `--device cuda`, where torch's CUDA set-up loads its libraries lazily.

The hook is a floor against accidents (a `forward` that saves a checkpoint, a constructor that downloads
weights), not a security boundary: audit hooks do not hold against code written to get round them. Beneath
it, where Linux allows it unprivileged, `confine.py` has the kernel enforce the same promise on all code of
the process, C and C++ included (Landlock: no file changes outside the private folder, no TCP, no signals
out; a network namespace: no network at all; seccomp: no leaving the process group the worker kills).
What the kernel refuses reaches the user's code as an `OSError` (or torch's `RuntimeError` naming
"Permission denied"), which `refusal_of` turns into a refusal too, so it is reported the same way.

Each refusal is noted (message, and the innermost line of the user's project) so that one the model's own
`try`/`except` swallowed, or one in a thread, still becomes a finding.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from shapelens.trace.confine import confine

# under the home folder, never read by a trace (files, or folders and everything in them)
SECRETS = (
    ".ssh",
    ".aws",
    ".azure",
    ".gnupg",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".config/gcloud",
    ".config/gh",
    ".huggingface/token",
    ".cache/huggingface/token",
)
# written by the child's set-up to the private folder, so that libraries keep their caches there
CACHE_VARIABLES = ("TMPDIR", "TMP", "TEMP", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "MPLCONFIGDIR")
DEVICES = ("/dev/null", "/dev/stdout", "/dev/stderr")  # writable all the same

PR_SET_PDEATHSIG = 1


class SandboxRefusal(PermissionError):
    """What the trace refused to let user code do; `str()` is the whole message for the user."""


def refusal_of(err: BaseException) -> SandboxRefusal | None:
    """The refusal that `err` is, or was raised from (a library that re-raised it as an error of its own);
    under the kernel's rules, also a denial of theirs (`kernel_refusal`)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, SandboxRefusal):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return kernel_refusal(err) if KERNEL.get("landlock", "").startswith("ABI") else None


KERNEL: dict[str, str] = {}  # what confine.confine() enforced in this process (empty: nothing, or not yet)
KERNEL_WHY = "enforced by the kernel: a trace changes no file outside its temporary folder and talks to no one"


def kernel_refusal(err: BaseException) -> SandboxRefusal | None:
    """A refusal for an error that Landlock caused: C or C++ code (torch's file writer, a C extension) got
    EACCES/EPERM where the audit hook saw nothing. A `PermissionError` on a path counts only where the path
    (or, for a new file, its folder) is writable by the file's own permissions: `access()` does not consult
    Landlock, so a read the file's permissions forbid is not mistaken for a refused write."""
    private = KERNEL.get("private", "")
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.EACCES, errno.EPERM):
            path = current.filename
            if path is None:
                return SandboxRefusal(f"the trace refused this call ({current.strerror}; {KERNEL_WHY})")
            full = os.path.realpath(os.fsdecode(path)) if isinstance(path, str | bytes) else ""
            inside = full == private or full.startswith(private + os.sep)
            target = full if os.path.lexists(full) else os.path.dirname(full)
            if full and not inside and os.access(target, os.W_OK):
                return SandboxRefusal(f"the trace refused to write `{os.fsdecode(path)}` ({KERNEL_WHY})")
            return None
        text = str(current)
        if not isinstance(current, OSError) and "Permission denied" in text:  # torch's C++: RuntimeError
            return SandboxRefusal(f"the trace refused to write a file ({KERNEL_WHY}; {_first_line(text)})")
        current = current.__cause__ or current.__context__
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 160 else line[:157] + "..."


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()  # loaded in the warm worker: the child's hook refuses `ctypes.dlopen`


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send `sig` to this process when the thread that created it ends (PR_SET_PDEATHSIG).
    False where the platform has no such thing."""
    if _LIBC is None:
        return False
    return bool(_LIBC.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)


def kill_group(pgid: int) -> None:
    """SIGKILL every process of a process group (the trace child's: it is the group's leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Sandbox:
    """The rules of one trace child. `install()` adds the audit hook (it cannot be removed again)."""

    def __init__(self, private: str, is_project: Callable[[str], bool], ctypes_allowed: bool = False) -> None:
        self.private = os.path.realpath(private)
        self.is_project = is_project
        self.ctypes_allowed = ctypes_allowed  # under --device cuda, which also lets the GPU's devices be written
        homes = {os.path.expanduser("~")}
        try:
            import pwd

            homes.add(pwd.getpwuid(os.getuid()).pw_dir)
        except (ImportError, KeyError):
            pass
        self.secrets = tuple(
            os.path.join(os.path.realpath(home), name) for home in homes if home and home != "/" for name in SECRETS
        )
        self.refusals = _Refusals()  # (message, path, line) in the order refused
        self.pid = os.getpid()
        self._handlers: dict[str, Callable[[tuple[Any, ...]], None]] = {
            "open": self._open,
            "os.remove": lambda a: self._change("delete", a[0], a[1]),
            "os.rmdir": lambda a: self._change("delete", a[0], a[1]),
            "os.rename": self._rename,
            "os.link": self._rename,
            "os.symlink": lambda a: self._change("create a link at", a[1], a[2]),
            "os.chmod": lambda a: self._change("chmod", a[0], a[2]),
            "os.chown": lambda a: self._change("chown", a[0], a[3]),
            "os.chflags": lambda a: self._change("change the flags of", a[0], None),
            "os.mkdir": lambda a: self._change("create the folder", a[0], a[2]),
            "os.mkfifo": lambda a: self._change("create", a[0], a[2]),
            "os.mknod": lambda a: self._change("create", a[0], a[3]),
            "os.truncate": lambda a: self._change("truncate", a[0], None),
            "os.utime": lambda a: self._change("touch", a[0], a[3]),
            "os.setxattr": lambda a: self._change("change the attributes of", a[0], None),
            "os.removexattr": lambda a: self._change("change the attributes of", a[0], None),
            "socket.connect": lambda a: self._refuse(f"connect to {_address(a[1])}", "a trace talks to no one"),
            "socket.bind": lambda a: self._refuse(f"listen on {_address(a[1])}", "a trace talks to no one"),
            "socket.sendto": lambda a: self._refuse(f"send to {_address(a[1])}", "a trace talks to no one"),
            "socket.sendmsg": lambda a: self._refuse(f"send to {_address(a[1])}", "a trace talks to no one"),
            "socket.getaddrinfo": lambda a: self._refuse(f"look up `{a[0]}`", "a trace talks to no one"),
            "socket.gethostbyname": lambda a: self._refuse(f"look up `{a[0]}`", "a trace talks to no one"),
            "socket.gethostbyname_ex": lambda a: self._refuse(f"look up `{a[0]}`", "a trace talks to no one"),
            "socket.gethostbyaddr": lambda a: self._refuse(f"look up `{a[0]}`", "a trace talks to no one"),
            "socket.getnameinfo": lambda a: self._refuse(f"look up `{a[0]}`", "a trace talks to no one"),
            "subprocess.Popen": lambda a: self._process(f"run `{_command(a[1])}`"),
            "os.system": lambda a: self._process(f"run `{_command(a[0])}`"),
            "os.exec": lambda a: self._process(f"run `{_command(a[1])}`"),
            "os.spawn": lambda a: self._process(f"run `{_command(a[2])}`"),
            "os.posix_spawn": lambda a: self._process(f"run `{_command(a[1])}`"),
            "os.fork": lambda a: self._process("fork the process"),
            "os.forkpty": lambda a: self._process("fork the process"),
            "os.kill": self._kill,
            "os.killpg": lambda a: self._refuse(f"signal process group {a[0]}", "a trace touches no other process"),
        }
        if not ctypes_allowed:
            self._handlers.update({
                "ctypes.dlopen": lambda a: self._ctypes(f"load the library `{a[0]}`"),
                "ctypes.dlsym": lambda a: self._ctypes(f"look up `{a[1]}` with ctypes"),
                "ctypes.dlsym/handle": lambda a: self._ctypes(f"look up `{a[1]}` with ctypes"),
            })  # fmt: skip

    def install(self) -> None:
        """The kernel's rules first (`confine` writes /proc/self/uid_map, which the hook would refuse), unless
        SHAPELENS_KERNEL_SANDBOX=0; then the audit hook and the guards of torch's savers."""
        if os.environ.get("SHAPELENS_KERNEL_SANDBOX", "1") != "0":
            KERNEL.update(confine(self.private, gpu=self.ctypes_allowed), private=self.private)
        handlers = self._handlers

        def hook(event: str, args: tuple[Any, ...]) -> None:
            handler = handlers.get(event)
            if handler is not None:
                handler(args)

        sys.addaudithook(hook)
        self._guard_native_writers()
        self._guard_process_starts()

    def _guard_process_starts(self) -> None:
        """`multiprocessing`'s spawn (torch's `mp.spawn`) starts an interpreter through `_posixsubprocess.fork_exec`,
        which raises no audit event (subprocess.Popen's own event comes before it and is refused already): refuse
        it at the function itself. A process started so would run the user's code without these rules."""
        import _posixsubprocess

        def fork_exec(*args: Any, **kwargs: Any) -> Any:
            self._process(f"run `{_command(args[0])}`" if args and args[0] else "start a process")

        _posixsubprocess.fork_exec = fork_exec  # type: ignore[assignment]

    def _guard_native_writers(self) -> None:
        """torch's own savers open their file in C++, where no audit event is raised: check their path first."""
        import torch
        import torch.serialization

        def guarded(original: Callable[..., Any]) -> Callable[..., Any]:
            def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
                if isinstance(f, str | bytes | os.PathLike):
                    self._change("write", f, None)
                return original(obj, f, *args, **kwargs)

            return save

        torch.save = torch.serialization.save = guarded(torch.serialization.save)
        torch.jit.save = guarded(torch.jit.save)

    def loaded(self) -> None:
        """The file's top level has run: what was refused while it loaded (and the module caught) is kept,
        and reported with every model's trace, as what is refused in the model's own code is."""
        self.refusals.pin()

    # -- the checks ---------------------------------------------------------------------------------------

    def _open(self, args: tuple[Any, ...]) -> None:
        path, mode, flags = args
        if isinstance(path, int) or path is None:  # an open descriptor: how it was opened was checked then
            return
        writes = (flags or 0) & _WRITE_FLAGS if mode is None else any(c in str(mode) for c in "wax+")
        if writes:
            self._change("write", path, None)
            return
        full = self._full(path, None)
        if full is None:
            return
        for candidate in (full, os.path.realpath(full)):
            if any(candidate == s or candidate.startswith(s + os.sep) for s in self.secrets):
                self._refuse(f"read `{_text(path)}`", "credential files under the home folder are never read")

    def _rename(self, args: tuple[Any, ...]) -> None:
        src, dst, src_dir_fd, dst_dir_fd = args[:4]
        self._change("move", src, src_dir_fd)
        self._change("move a file to", dst, dst_dir_fd)

    def _kill(self, args: tuple[Any, ...]) -> None:
        pid = args[0]
        if pid != self.pid and pid != os.getpid():
            self._refuse(f"signal process {pid}", "a trace touches no other process")

    def _ctypes(self, what: str) -> None:
        """Refused where the user's own code calls ctypes; libraries do it as they import (`torch.distributed`
        loads libc), and refusing those stopped real model files from loading at all."""
        frame = sys._getframe(3)  # _ctypes ← the handler's lambda ← the hook ← the ctypes code that asked
        while frame is not None and os.sep + "ctypes" + os.sep in frame.f_code.co_filename:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is not None and self.is_project(frame.f_code.co_filename):
            self._refuse(what, "ctypes would get round the trace's rules")

    def _process(self, what: str) -> None:
        self._refuse(what, "a trace starts no process")

    def _change(self, verb: str, path: Any, dir_fd: Any) -> None:
        full = self._full(path, dir_fd)
        if full is not None:
            real = os.path.realpath(full)
            if real == self.private or real.startswith(self.private + os.sep) or real in DEVICES:
                return
        shown = _text(path) if not isinstance(path, int) else (full or f"descriptor {path}")
        self._refuse(f"{verb} `{shown}`", "a trace changes no file outside its temporary folder")

    def _full(self, path: Any, dir_fd: Any) -> str | None:
        """`path` as an absolute path (an open descriptor's path where it is one), None if unknown."""
        try:
            if isinstance(path, int):
                return os.readlink(f"/proc/self/fd/{path}")
            text = os.fsdecode(path)
            if dir_fd is not None and not os.path.isabs(text):
                return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
            return os.path.abspath(text)
        except (OSError, TypeError, ValueError):
            return None

    def _refuse(self, what: str, why: str) -> None:
        message = f"the trace refused to {what} ({why})"
        path, line = self._where()
        self.refusals.append((message, path, line))
        raise SandboxRefusal(message)

    def _where(self) -> tuple[str, int]:
        """The innermost line of the user's project on the stack (in this thread), or nowhere."""
        frame = sys._getframe(2)
        while frame is not None:
            if self.is_project(frame.f_code.co_filename):
                return frame.f_code.co_filename, frame.f_lineno
            frame = frame.f_back  # type: ignore[assignment]
        return "", 0


class _Refusals(list[tuple[str, str, int]]):
    """The refusals of one model's trace: `clear()` (at each model's start) keeps those pinned, the ones met
    while the file loaded, which every model's trace reports (they are no less swallowed for being earlier)."""

    def __init__(self) -> None:
        super().__init__()
        self.pinned: list[tuple[str, str, int]] = []

    def pin(self) -> None:
        self.pinned = list(self)

    def clear(self) -> None:
        super().clear()
        self.extend(self.pinned)


def _text(path: Any) -> str:
    try:
        return os.fsdecode(path)
    except TypeError:
        return repr(path)


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return _text(address)


def _command(command: Any) -> str:
    if isinstance(command, str | bytes | os.PathLike):
        return _text(command)
    try:
        return " ".join(_text(part) for part in command)
    except TypeError:
        return repr(command)
