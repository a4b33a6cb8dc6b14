"""Kernel-enforced confinement of the trace child, beneath the audit hook of `sandbox.py`: what Linux gives an
unprivileged process, applied after the libraries are loaded and before any user code runs.

- **Landlock** (Linux 5.13+; `landlock_create_ruleset` / `landlock_add_rule` / `landlock_restrict_self`,
  called through `ctypes.CDLL(None).syscall`): the process may create, write, truncate, delete, rename or link
  files only beneath the trace's private folder (and write `/dev/null`, `/dev/zero`, `/dev/full`). Reading
  stays allowed everywhere. From ABI 4, TCP `bind`/`connect` are denied; from ABI 6, signals to processes
  outside the trace and abstract Unix sockets are. This holds for C and C++ code the audit hook cannot see
  (torch's own file writer, a C extension, a process started past the hook: the rules are inherited and
  cannot be lifted). Not covered by Landlock: chmod/chown/utime/xattrs (the audit hook refuses them from
  Python), UDP and pathname Unix sockets (the network namespace below covers the network). Not applied under
  `--device cuda`: CUDA opens its device files read-write and writes its caches lazily, which has not been
  tried on a GPU machine yet (the audit hook and the namespace still hold there).
- **A network namespace** in a new user namespace (`unshare(CLONE_NEWUSER | CLONE_NEWNET)`), where the kernel
  allows it unprivileged: the trace sees only a loopback interface that is down, so no packet leaves it, by
  any protocol. Only possible in a single-threaded process: the forked child is one (fork copies only the
  calling thread), whatever threads the warm worker has. The user and group ids are mapped to themselves.

- **No new session or process group** (a seccomp filter: `setsid` and `setpgid` fail with EPERM, on x86-64 and
  arm64): every process the trace starts, even past the hook and double-forked as a daemon, stays in the
  trace child's process group, which the worker kills whole when the trace ends.

Each layer is tried on its own and skipped where the platform refuses it; `confine` says which held.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from typing import Any

# syscall numbers: the same on every architecture that has them (the unified table)
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

# filesystem rights (uapi/linux/landlock.h) and the ABI that introduced them
FS_WRITE_FILE = 1 << 1
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2: link or rename across folders
FS_TRUNCATE = 1 << 14  # ABI 3
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

FS_CHANGES = (
    FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG | FS_MAKE_SOCK
    | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM
)  # fmt: skip
FILE_RIGHTS = FS_WRITE_FILE | FS_TRUNCATE  # what a rule on a file (not a folder) may grant
WRITABLE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]  # fmt: skip


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    libc.syscall.restype = ctypes.c_long
    return libc


_LIBC = _libc()  # loaded in the warm worker: the child's audit hook refuses user code's `ctypes` loads


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none (not Linux, too old, disabled at boot)."""
    if _LIBC is None:
        return 0
    version = _LIBC.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                            ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))  # fmt: skip
    return max(0, int(version))


def _fail(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def landlock(private: str) -> int:
    """Restrict this process (and everything it starts) for good: changes to files only beneath `private`,
    no TCP, no signals out. Returns the ABI used; raises OSError where the kernel refuses."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError(errno.ENOSYS, "Landlock is not available")
    fs = FS_CHANGES | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    attr = _RulesetAttr(fs, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)  # fmt: skip
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)  # older kernels: a prefix
    ruleset = _LIBC.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise _fail("landlock_create_ruleset")
    try:
        _allow(ruleset, private, fs)
        for device in WRITABLE_DEVICES:
            if os.path.exists(device):
                _allow(ruleset, device, FILE_RIGHTS & fs)
        if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")
        if _LIBC.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            raise _fail("landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _allow(ruleset: int, path: str, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = _PathBeneathAttr(rights, fd)
        if _LIBC.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                         ctypes.byref(rule), ctypes.c_uint32(0)) != 0:  # fmt: skip
            raise _fail(f"landlock_add_rule({path})")
    finally:
        os.close(fd)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


# (AUDIT_ARCH_*, setsid, setpgid) of the architectures the filter knows
SESSION_CALLS = {"x86_64": (0xC000003E, 112, 109), "aarch64": (0xC00000B7, 157, 154)}


def no_new_sessions() -> None:
    """A seccomp filter for this process and all it starts: `setsid` and `setpgid` fail (EPERM), so nothing
    leaves the process group the worker kills. Other architectures (and the 32-bit/x32 system call
    tables) are let through: the audit hook refuses `start_new_session` there."""
    known = SESSION_CALLS.get(os.uname().machine)
    if _LIBC is None or known is None:
        raise OSError(errno.ENOSYS, f"no filter for {os.uname().machine}")
    arch, setsid, setpgid = known
    ld_abs, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    allow, refuse = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    program = [
        (ld_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, 4, arch),  # another architecture: allow
        (ld_abs, 0, 0, 0),  # seccomp_data.nr
        (jeq, 1, 0, setsid),
        (jeq, 0, 1, setpgid),
        (ret, 0, 0, refuse),
        (ret, 0, 0, allow),
    ]
    filters = (_SockFilter * len(program))(*[_SockFilter(*op) for op in program])
    prog = _SockFprog(len(program), filters)
    if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")
    if _LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise _fail("prctl(PR_SET_SECCOMP)")


def no_network() -> None:
    """Move this (single-threaded) process into a new user and network namespace: only a loopback that is
    down. The user and group ids map to themselves, so files and `getpwuid` see the same ids as before."""
    if _LIBC is None:
        raise OSError(errno.ENOSYS, "not Linux")
    uid, gid = os.geteuid(), os.getegid()
    if _LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        raise _fail("unshare(CLONE_NEWUSER | CLONE_NEWNET)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        try:
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
        except OSError:  # unmapped ids read as "nobody" inside; the kernel checks the real ones all the same
            continue


def confine(private: str, gpu: bool = False) -> dict[str, str]:
    """Apply every layer the platform allows; {layer: what held, or why not}. Called once, in the trace
    child, before user code runs and before the audit hook (whose `open` and `ctypes` rules would refuse
    these very calls)."""
    held: dict[str, str] = {}
    try:
        no_network()
        held["network"] = "namespace"
    except OSError as err:
        held["network"] = f"not confined ({err.strerror or err})"
    try:
        no_new_sessions()
        held["sessions"] = "seccomp"
    except OSError as err:
        held["sessions"] = f"not confined ({err.strerror or err})"
    if gpu:
        held["landlock"] = "not applied under CUDA"
        return held
    try:
        held["landlock"] = f"ABI {landlock(private)}"
    except OSError as err:
        held["landlock"] = f"not confined ({err.strerror or err})"
    return held
