"""The attack suite of the trace's sandbox (trace/sandbox.py): one hostile model per row. For each: the effect
did not happen (the file is still there, nothing was received, no process survives), the user got an SL009
finding on the line that tried, and the next trace in the same worker is right.

The worker runs with a fake HOME holding a fake credential, so reading secrets is tried for real.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from engine_support import Analyse, analyser, assert_worker_still_serves
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.findings import Severity

SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- not a real key"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("home")
    (folder / ".ssh").mkdir()
    (folder / ".ssh" / "id_ed25519").write_text(SECRET)
    (folder / ".aws").mkdir()
    (folder / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = x\n")
    return folder


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tmpdir")


@pytest.fixture(scope="module")
def worker(home: Path, scratch: Path) -> Iterator[TraceWorker]:
    """A worker of its own, whose HOME is the fake one and whose TMPDIR (where it makes each trace's private
    folder) is the suite's own, so that other processes' trace folders never show there."""
    w = TraceWorker(env={**os.environ, "HOME": str(home), "TMPDIR": str(scratch)})
    w.ensure_started()
    yield w
    w.close()


@pytest.fixture
def trace_sessions(worker: TraceWorker, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the trace children the worker starts (each leads its own session: sid == pid)."""
    started: list[int] = []
    read = worker._read

    def recording(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
        message = read(*args, **kwargs)
        if message is not None and message.get("event") == "started":
            started.append(int(message["pid"]))
        return message

    monkeypatch.setattr(worker, "_read", recording)
    return started


def in_sessions(sessions: list[int]) -> list[int]:
    """Processes still alive (not zombies) in any of these sessions."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat[0] != "Z" and int(stat[4]) in sessions:
                found.append(int(entry))
    return found


@pytest.fixture
def analyse(worker: TraceWorker, tmp_path: Path) -> Analyse:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    return analyser(worker, project)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the trace's own, with a file to attack."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.txt").write_text("precious")
    os.chmod(folder / "victim.txt", 0o644)
    return folder


MODEL = """
    import ctypes, os, shutil, socket, subprocess, threading
    import torch
    from torch import nn


    # shapelens: x=(2, 6)
    class Hostile(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            y = self.fc(x)
            {attack}
            return y
"""
LINE = 15  # the attack's line in MODEL


@dataclass
class Attack:
    name: str
    code: str  # one line; {outside}, {port}, {marker} are filled in
    says: str  # in the finding's message
    unharmed: Callable[[Path, dict[str, Any]], bool]  # the effect did not happen


def _victim_intact(outside: Path, _: dict[str, Any]) -> bool:
    victim = outside / "victim.txt"
    return victim.read_text() == "precious" and (victim.stat().st_mode & 0o777) == 0o644


def _same(outside: Path, _: dict[str, Any]) -> bool:
    return sorted(p.name for p in outside.iterdir()) == ["victim.txt"] and _victim_intact(outside, _)


def _no_process(outside: Path, context: dict[str, Any]) -> bool:
    return not processes_with(context["marker"])


ATTACKS = [
    Attack("write", 'open("{outside}/written.txt", "w").write("x")', "refused to write", _same),
    Attack("append", 'open("{outside}/victim.txt", "a").write("x")', "refused to write", _same),
    Attack("os.open", 'os.open("{outside}/new.txt", os.O_CREAT | os.O_WRONLY)', "refused to write", _same),
    Attack("delete", 'os.remove("{outside}/victim.txt")', "refused to delete", _same),
    Attack("rmtree", 'shutil.rmtree("{outside}")', "refused to delete", _same),
    Attack("rename", 'os.rename("{outside}/victim.txt", "{outside}/moved.txt")', "refused to move", _same),
    Attack("chmod", 'os.chmod("{outside}/victim.txt", 0o777)', "refused to chmod", _same),
    Attack("mkdir", 'os.makedirs("{outside}/made/deeper")', "refused to create the folder", _same),
    Attack("symlink", 'os.symlink("/etc/passwd", "{outside}/link")', "refused to create a link", _same),
    Attack("torch.save", 'torch.save(self.state_dict(), "{outside}/ckpt.pt")', "refused to write", _same),
    Attack("torch.hub.load", 'torch.hub.load("pytorch/vision", "resnet18")', "the trace refused", _same),
    Attack("os.system", 'os.system("touch {outside}/sentinel")', "refused to run", _same),
    Attack("popen", 'subprocess.Popen(["sleep", "{marker}"])', "refused to run `sleep", _no_process),
    Attack(
        "setsid-daemon",
        'subprocess.Popen(["sleep", "{marker}"], start_new_session=True, stdout=1, stderr=2)',
        "refused to run",
        _no_process,
    ),
    Attack("execv", 'os.execv("/bin/sleep", ["sleep", "{marker}"])', "refused to run", _no_process),
    Attack("posix_spawn", 'os.posix_spawn("/bin/sleep", ["sleep", "{marker}"], {{}})', "refused to run", _no_process),
    Attack("fork", "os.fork()", "refused to fork", _no_process),
    Attack("kill-the-worker", "os.kill(os.getppid(), 9)", "refused to signal process", _same),
    Attack("ctypes-dlopen", 'ctypes.CDLL("libc.so.6").system(b"touch {outside}/s")', "refused to load", _same),
    Attack("ctypes-pythonapi", 'ctypes.pythonapi.system(b"touch {outside}/s")', "with ctypes", _same),
    Attack("connect", 'socket.socket().connect(("127.0.0.1", {port}))', "refused to connect to 127", _same),
    Attack("create_connection", 'socket.create_connection(("127.0.0.1", {port}), 2)', "refused to look up", _same),
    Attack("unix-socket", 'socket.socket(socket.AF_UNIX).connect("/run/any.sock")', "refused to connect", _same),
    Attack("udp", 'socket.socket(type=2).sendto(b"x", ("127.0.0.1", {port}))', "refused to send", _same),  # SOCK_DGRAM
    Attack("dns", 'socket.getaddrinfo("example.com", 443)', "refused to look up", _same),
    Attack("read-ssh-key", 'open(os.path.expanduser("~/.ssh/id_ed25519")).read()', "refused to read", _same),
    Attack("read-aws", 'open(os.path.expanduser("~/.aws/credentials")).read()', "refused to read", _same),
    Attack("np.save", '__import__("numpy").save("{outside}/array.npy", [1, 2])', "refused to write", _same),
]  # fmt: skip


def processes_with(marker: str) -> list[int]:
    """The processes whose command line names `marker` (and are not zombies)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_attack_is_refused_at_its_line(
    attack: Attack, analyse: Analyse, outside: Path, trace_sessions: list[int]
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", listener.getsockname()[1]))
    udp.settimeout(0.1)
    marker = f"300.{os.getpid()}{time.monotonic_ns() % 100000}"
    context = {"marker": marker}
    code = attack.code.format(outside=outside, port=listener.getsockname()[1], marker=marker)
    try:
        [report] = [r for p, r in analyse(MODEL.replace("{attack}", code)).items() if p.endswith("model.py")]
        [finding] = report.findings
        assert finding.code == "SL009" and finding.severity == Severity.INFORMATION, finding
        assert finding.span.line == LINE and attack.says in finding.message, finding.message
        assert "the trace stopped at this line" in finding.message
        assert [(h.line, h.shape) for h in report.hints] == [(14, (2, 3))]  # shapes before it are shown
        assert attack.unharmed(outside, context)
        with pytest.raises(TimeoutError):
            listener.accept()
        with pytest.raises(TimeoutError):
            udp.recvfrom(100)
    finally:
        listener.close()
        udp.close()
    assert trace_sessions and in_sessions(trace_sessions) == []  # nothing of the trace's session survives
    assert_worker_still_serves(analyse)


def test_a_refusal_the_model_catches_is_information_and_the_trace_goes_on(analyse: Analyse, outside: Path) -> None:
    source = f"""
        import torch
        from torch import nn


        # shapelens: x=(2, 6)
        class Careful(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 3)
                try:
                    torch.save(self.state_dict(), "{outside}/init.pt")
                except OSError:
                    pass

            def forward(self, x):
                y = self.fc(x)
                return y.sum(1)
    """
    [report] = analyse(source).values()
    [finding] = report.findings
    assert finding.code == "SL009" and finding.span.line == 12
    assert "refused to write" in finding.message and "shapes after it are unaffected" in finding.message
    assert [(h.line, h.shape) for h in report.hints] == [(17, (2, 3)), (18, (2,))]
    assert _same(outside, {})


def test_a_thread_is_refused_too(analyse: Analyse, outside: Path) -> None:
    source = f"""
        import threading
        from torch import nn


        def leak():
            open("{outside}/from-thread.txt", "w").write("x")


        # shapelens: x=(2, 6)
        class Threaded(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 3)

            def forward(self, x):
                worker = threading.Thread(target=leak)
                worker.start()
                worker.join()
                y = self.fc(x)
                return y
    """
    [report] = analyse(source).values()
    [finding] = report.findings
    assert finding.code == "SL009" and finding.span.line == 7 and "refused to write" in finding.message
    assert (20, (2, 3)) in [(h.line, h.shape) for h in report.hints]  # the forward went on
    assert _same(outside, {})
    assert_worker_still_serves(analyse)


def test_top_level_refusal_names_the_file(analyse: Analyse, outside: Path) -> None:
    source = f"""
        import os
        from torch import nn

        MARK = os.system("touch {outside}/SENTINEL")


        # shapelens: x=(2, 6)
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 3)
                self.mark = MARK

            def forward(self, x):
                return self.fc(x)
    """
    [report] = analyse(source).values()
    [finding] = report.findings
    assert finding.code == "SL009" and finding.span.line == 5 and "loading model.py" in finding.message
    assert _same(outside, {})
    assert_worker_still_serves(analyse)


def test_a_refusal_caught_while_the_file_loads_is_reported_with_the_shapes(analyse: Analyse, outside: Path) -> None:
    """The top level ran on (its own `try` caught the refusal): every model says what was refused, where."""
    source = f"""
        from torch import nn

        try:
            LOG = open("{outside}/log.txt", "w")
        except OSError:
            LOG = None


        # shapelens: x=(2, 6)
        class Logged(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 3)
                self.log = LOG

            def forward(self, x):
                y = self.fc(x)
                return y
    """
    [report] = analyse(source).values()
    [finding] = report.findings
    assert finding.code == "SL009" and finding.severity == Severity.INFORMATION
    assert finding.span.line == 5 and "refused to write" in finding.message
    assert "shapes after it are unaffected" in finding.message
    assert (19, (2, 3)) in [(h.line, h.shape) for h in report.hints]
    assert _same(outside, {})
    assert_worker_still_serves(analyse)


# -- beneath the audit hook: what the kernel enforces (trace/confine.py), where this platform allows it -------


def kernel_layers() -> dict[str, str]:
    """What `confine` holds on this machine, asked of a fresh process (it cannot be undone)."""
    probe = (
        "import json, tempfile; from shapelens.trace.confine import confine; "
        "print(json.dumps(confine(tempfile.mkdtemp())))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout) if done.returncode == 0 else {}


@pytest.fixture(scope="module")
def kernel() -> dict[str, str]:
    return kernel_layers()


def test_torch_cpp_writer_the_hook_cannot_see_is_refused_by_the_kernel(
    analyse: Analyse, outside: Path, kernel: dict[str, str]
) -> None:
    """`torch._C.PyTorchFileWriter` opens its file in C++ (no audit event, and not the guarded torch.save):
    Landlock refuses it, and the RuntimeError torch raises is still an SL009 at the line."""
    if not kernel.get("landlock", "").startswith("ABI"):
        pytest.skip(f"Landlock is not available here: {kernel}")
    source = f"""
        import torch
        from torch import nn


        # shapelens: x=(2, 6)
        class Saver(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 3)

            def forward(self, x):
                y = self.fc(x)
                torch._C.PyTorchFileWriter("{outside}/ckpt.pt")
                return y
    """
    [report] = analyse(source).values()
    [finding] = report.findings
    assert finding.code == "SL009" and finding.severity == Severity.INFORMATION, finding
    assert finding.span.line == 14 and "refused to write" in finding.message, finding.message
    assert [(h.line, h.shape) for h in report.hints] == [(13, (2, 3))]
    assert _same(outside, {})
    assert_worker_still_serves(analyse)


NETWORK = """
    from torch import nn


    def interfaces():
        with open("/proc/net/dev") as handle:
            return len(handle.read().splitlines()) - 2


    # shapelens: x=(2, 6)
    class Counts(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, interfaces())

        def forward(self, x):
            y = self.fc(x)
            return y
"""


def test_the_trace_sees_no_network_interface_but_a_loopback(analyse: Analyse, kernel: dict[str, str]) -> None:
    """In its own network namespace the trace has one interface, `lo` (down): the model's width is the count."""
    if kernel.get("network") != "namespace":
        pytest.skip(f"unprivileged network namespaces are not allowed here: {kernel}")
    [report] = analyse(NETWORK).values()
    assert report.findings == []
    assert [(h.target, h.shape) for h in report.hints] == [("y", (2, 1)), ("return", (2, 1))]


ESCAPE = """
    import os, subprocess
    from torch import nn


    def escape(command):
        read, write = os.pipe()
        args = [b"/bin/sh", b"-c", command.encode()]
        common = (args, [b"/bin/sh"], True, (), None, None, -1, -1, -1, -1, -1, -1, read, write, True, False)
        tails = ((-1, None, None, None, -1, None, True), (-1, None, None, None, -1, None), (None, None, None, -1, None))
        for tail in tails:
            try:
                pid = subprocess._fork_exec(*common, *tail)  # the builtin itself, taken before the trace began
            except TypeError:
                continue
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        return None


    def width():
        status = escape({command!r})
        return 5 if status is None else 3 + (status != 0)


    # shapelens: x=(2, 6)
    class Escaped(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, width())

        def forward(self, x):
            y = self.fc(x)
            return y
"""
# what a process started past the audit hook tries (the worker's pid is the trace child's parent's)
ESCAPES = {
    "write": "touch {outside}/escaped && echo x > {outside}/victim.txt",
    "kill-the-worker": 'kill -9 "$(cut -d" " -f4 /proc/$PPID/stat)"',
    "connect": f"{sys.executable} -c 'import socket; socket.create_connection((\"127.0.0.1\", {{port}}), 2)'",
}


@pytest.mark.parametrize("attack", list(ESCAPES))
def test_a_process_started_past_the_hook_is_confined_too(
    attack: str, analyse: Analyse, worker: TraceWorker, outside: Path, kernel: dict[str, str]
) -> None:
    """A shell started with the builtin `fork_exec` (as `subprocess` holds it: code written to get round the hook)
    raises no audit event, and the Python it may start has
    no hook at all: the kernel's rules, inherited, still hold. Its command fails (exit status not 0, so the
    layer is 4 wide; 3 had it succeeded, 5 if fork_exec could not be called), nothing outside changed, nothing
    was received, and the same worker serves on."""
    if not kernel.get("landlock", "").startswith("ABI") or kernel.get("network") != "namespace":
        pytest.skip(f"the kernel layers are not all available here: {kernel}")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    command = ESCAPES[attack].format(outside=outside, port=listener.getsockname()[1])
    worker_pid = worker._proc.pid if worker._proc else None
    try:
        [report] = analyse(ESCAPE.replace("{command!r}", repr(command))).values()
        shapes = [h.shape for h in report.hints if h.target == "y"]
        if shapes == [(2, 5)]:
            pytest.skip(f"this Python's _posixsubprocess.fork_exec takes other arguments ({report})")
        assert shapes == [(2, 4)], report
        assert _same(outside, {})
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
    assert worker._proc is not None and worker._proc.pid == worker_pid and worker._proc.poll() is None
    assert_worker_still_serves(analyse)


def test_the_private_folder_is_writable_and_removed_after(analyse: Analyse, scratch: Path) -> None:
    source = """
        import os, tempfile
        from torch import nn


        # shapelens: x=(2, 6)
        class Scratch(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 3)
                with tempfile.NamedTemporaryFile("w", delete=False) as handle:
                    handle.write("scratch")
                self.width = 3 if os.path.dirname(os.path.dirname(handle.name)) == SCRATCH else 2
                os.environ["SHAPELENS_TEST_SCRATCH"] = handle.name

            def forward(self, x):
                y = self.fc(x)[:, : self.width]
                return y
    """
    [report] = analyse(source.replace("SCRATCH", repr(os.path.realpath(scratch)))).values()
    assert report.findings == []
    assert (17, (2, 3)) in [(h.line, h.shape) for h in report.hints]  # it wrote in a folder made in `scratch`
    assert [p.name for p in scratch.iterdir() if p.name.startswith("shapelens-trace-")] == []  # all removed


FORK_EXEC = """
    import os, subprocess
    from torch import nn


    def sneak():
        read, write = os.pipe()
        args = [b"/bin/sleep", b"{marker}"]
        common = (args, [b"/bin/sleep"], True, (), None, None, -1, -1, -1, -1, -1, -1, read, write, True, SETSID)
        tails = ((-1, None, None, None, -1, None, True), (-1, None, None, None, -1, None), (None, None, None, -1, None))
        for tail in tails:
            try:
                return subprocess._fork_exec(*common, *tail) > 0
            except TypeError:
                continue
        return False


    # shapelens: x=(2, 6)
    class Sneaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            y = self.fc(x)
            started = sneak()
            z = y if started else x
            return z
"""


@pytest.mark.parametrize("setsid", [False, True], ids=["same-session", "own-session"])
def test_a_process_that_gets_round_the_hook_dies_with_the_trace(
    setsid: bool, analyse: Analyse, kernel: dict[str, str]
) -> None:
    """The builtin `fork_exec` (as `subprocess` holds it) raises no audit event: the process starts, in the child's
    process group,
    and the worker kills that group when the trace ends. One that leads a session of its own (a daemon) is
    out of that group, unless it cannot leave it: the kernel layer (trace/confine.py) fails `setsid`."""
    if setsid and kernel.get("sessions") != "seccomp":
        pytest.skip(f"no seccomp filter here: {kernel}")
    marker = f"301.{os.getpid()}{time.monotonic_ns() % 100000}"
    [report] = analyse(FORK_EXEC.replace("{marker}", marker).replace("SETSID", str(setsid))).values()
    if (2, 3) not in [h.shape for h in report.hints if h.target == "z"]:  # `z = y if started else x`
        pytest.skip(f"this Python's _posixsubprocess.fork_exec takes other arguments ({report.hints})")
    deadline = time.monotonic() + 2
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []
    assert_worker_still_serves(analyse)


SPAWN = """
    import multiprocessing
    from torch import nn


    # shapelens: x=(2, 6)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(x)


    if __name__ == "__main__":
        worker = multiprocessing.get_context("spawn").Process(target=print, args=("{marker}",))
        worker.start()
        worker.join()
"""


def test_multiprocessing_spawn_is_refused(analyse: Analyse) -> None:
    """`mp.spawn(...)` in a script's `__main__` block (pytorch/examples' RPC scripts) starts an interpreter
    through `_posixsubprocess.fork_exec`, which raises no audit event: refused at the function, so the user's
    code never runs in a process without the trace's rules; the script's note says so, and the model keeps its
    shapes."""
    marker = f"spawned.{os.getpid()}{time.monotonic_ns() % 100000}"
    [report] = analyse(SPAWN.replace("{marker}", marker)).values()
    [script] = [m for m in report.models if m.name == "<module>"]
    assert any("refused to run" in n and "a trace starts no process" in n for n in script.notes), script.notes
    assert [h.shape for h in report.hints if h.target == "return"] == [(2, 3)]
    assert processes_with(marker) == []


HANGING = """
    from torch import nn


    # shapelens: x=(2, 6)
    class Hang(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            while True:
                x = x + 1
"""


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found.append(int(entry))
    return found


def test_killing_the_cli_ends_the_worker_and_its_trace(tmp_path: Path) -> None:
    path = tmp_path / "hang.py"
    path.write_text(textwrap.dedent(HANGING))
    cli = subprocess.Popen(
        [sys.executable, "-m", "shapelens.cli", "check", str(path), "--timeout", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        worker = child = None
        while time.monotonic() < deadline and child is None:
            workers = _children(cli.pid)
            worker = workers[0] if workers else None
            children = _children(worker) if worker else []
            child = children[0] if children else None
            time.sleep(0.1)
        assert worker is not None and child is not None, "the trace never started"
        time.sleep(0.5)  # well inside the hanging forward
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        killed = time.monotonic()
        while (alive(worker) or alive(child)) and time.monotonic() - killed < 5:
            time.sleep(0.05)
        assert not alive(worker) and not alive(child)
        assert time.monotonic() - killed < 1  # the bound; measured 76–157 ms at load ≈7 on 2 cores
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_a_library_may_use_ctypes_as_it_imports(tmp_path: Path) -> None:
    """Only the user's own ctypes calls are refused: `torch.distributed` loads libc as it imports, and refusing
    that stopped pytorch/examples' tensor-parallel files from loading at all."""
    library = tmp_path / "site"
    library.mkdir()
    (library / "native_helper.py").write_text("import ctypes\n\nLIBC = ctypes.CDLL(None)\n")
    project = tmp_path / "project"
    project.mkdir()
    worker = TraceWorker(env={**os.environ, "PYTHONPATH": str(library)})
    try:
        analyse = analyser(worker, project)
        [report] = analyse(
            """
            import native_helper
            import torch
            from torch import nn


            # shapelens: x=(2, 4)
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 3)

                def forward(self, x):
                    return self.fc(x)
            """
        ).values()
    finally:
        worker.close()
    assert report.findings == []
    assert [(h.target, h.shape) for h in report.hints] == [("return", (2, 3))]
