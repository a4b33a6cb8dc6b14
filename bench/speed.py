"""Benchmark (not a test): issue #12's speed ratios in one run, beside `python -c "import torch"`, Pyrefly's
`check` and torchinfo on the same files. Prints a Markdown table with the date and the load average.

    .venv/bin/python bench/speed.py [--runs 5] [--pyrefly PATH] [--json]

Pyrefly is not a dependency: install it apart, e.g. `python -m venv /tmp/pyrefly && /tmp/pyrefly/bin/pip install
pyrefly==1.4.1` (a Rust binary wheel), and pass `--pyrefly /tmp/pyrefly/bin/pyrefly` (default: `pyrefly` on the
PATH; its rows are skipped without it). Every command-line measurement is a fresh process (cold), the tools
alternate within each round, and each number is the median of `--runs` rounds:

- `import torch`: `python -c "import torch"`, the floor of anything that runs torch;
- check one file: `shapelens check --format json bench/models/small_cnn.py` (Python start, the worker's
  `import torch` and the warm-up one trace needs, the trace, JSON); Pyrefly: `pyrefly check` of the same file
  (static, with torch's stubs from our venv); torchinfo: a process that imports torch and torchinfo, builds
  the model on CPU and runs `summary` on real tensors;
- editor (`shapelens serve` over stdio, as lsp_latency.py drives it):
  - fresh file → first hints: from spawning the server (SHAPELENS_START_WORKER=1, as the VS Code client sets
    in a trusted workspace; an empty results cache) to the first inlay hints of the opened file;
  - reopened file → hints from cache: a restarted server, same file and cache: spawn → first hints, and
    didOpen → first hints (marked "cached — confirming" until the trace confirms them);
  - edit → diagnostics: the seed-sized model, didChange → publishDiagnostics of that version after its
    trace (the adaptive debounce included), median of the edits;
- folder: 50 generated model files (bench/speed.py writes them: CNNs, MLPs, LSTMs, attention blocks of
  varied sizes, each with a directive), `shapelens check DIR --jobs 1` vs `--jobs 2`; Pyrefly on the folder.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lsp_latency import _DIRECTIVE, Session, _offset_position
from lsprotocol import types
from run import MODELS_DIR, REPO, shapelens_cli

SMALL = MODELS_DIR / "small_cnn.py"
FOLDER_FILES = 50

# -- the folder of model files ----------------------------------------------------------------------------

CNN = """\
import torch
import torch.nn.functional as F
from torch import nn


# shapelens: x=({batch}, 3, {side}, {side})
class Cnn{i}(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, {c}, 3, padding=1)
        self.conv2 = nn.Conv2d({c}, {c2}, 3, padding=1)
        self.fc = nn.Linear({c2} * {quarter} * {quarter}, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc(x)
"""

MLP = """\
import torch
from torch import nn


# shapelens: x=({batch}, {width})
class Mlp{i}(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear({width}, {hidden}), nn.ReLU(), nn.Dropout(0.1), nn.Linear({hidden}, {hidden})
        )
        self.norm = nn.LayerNorm({hidden})
        self.head = nn.Linear({hidden}, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.body(x))
        return self.head(h)
"""

LSTM = """\
import torch
from torch import nn


# shapelens: ids=int64({batch}, {steps})
class Tagger{i}(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, {width})
        self.lstm = nn.LSTM({width}, {hidden}, batch_first=True)
        self.head = nn.Linear({hidden}, 12)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embed(ids)
        out, (h_n, c_n) = self.lstm(emb)
        return self.head(out)
"""

ATTENTION = """\
import torch
import torch.nn.functional as F
from torch import nn


# shapelens: x=({batch}, {steps}, {width})
class Block{i}(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.heads = 4
        self.qkv = nn.Linear({width}, 3 * {width})
        self.proj = nn.Linear({width}, {width})
        self.norm = nn.LayerNorm({width})
        self.mlp = nn.Sequential(nn.Linear({width}, 4 * {width}), nn.GELU(), nn.Linear(4 * {width}, {width}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm(x)).split(c, dim=2)
        q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        x = x + self.proj(y)
        return x + self.mlp(self.norm(x))
"""


def write_folder(folder: Path, count: int = FOLDER_FILES) -> list[Path]:
    """`count` model files of four kinds and varied sizes."""
    paths = []
    for i in range(count):
        kind = i % 4
        batch, steps, width = 2 + i % 5, 8 + i % 7, 16 * (1 + i % 4)
        if kind == 0:
            side = 16 * (1 + i % 3)
            text = CNN.format(i=i, batch=batch, side=side, c=8 + i % 8, c2=16 + i % 8, quarter=side // 4)
        elif kind == 1:
            text = MLP.format(i=i, batch=batch, width=width, hidden=32 + 8 * (i % 5))
        elif kind == 2:
            text = LSTM.format(i=i, batch=batch, steps=steps, width=width, hidden=24 + 8 * (i % 3))
        else:
            text = ATTENTION.format(i=i, batch=batch, steps=steps, width=width)
        path = folder / f"model_{i:02d}.py"
        path.write_text(text)
        paths.append(path)
    return paths


# -- command-line measurements ----------------------------------------------------------------------------


def run_timed(cmd: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, proc.returncode, proc.stdout


TORCHINFO = """\
import sys
sys.path.insert(0, {bench!r})
from run import build_and_inputs
from pathlib import Path
import torchinfo
model, inputs = build_and_inputs(Path({path!r}), "SmallCNN", "cpu")
torchinfo.summary(model, input_data=inputs, device="cpu", verbose=0)
"""


def command_rows(runs: int, pyrefly: str | None, folder: Path) -> dict[str, list[float]]:
    python = sys.executable
    # `check` as CI and pre-commit run it (text); JSON version 2 also runs the symbolic pass (#13): its own row
    check = [*shapelens_cli(), "check"]
    bench = str(Path(__file__).resolve().parent)
    commands: dict[str, tuple[list[str], Path]] = {
        "import torch": ([python, "-c", "import torch"], REPO),
        "shapelens check, one file": ([*check, str(SMALL)], REPO),
        "shapelens check --format json, one file": ([*check, "--format", "json", str(SMALL)], REPO),
        "torchinfo, one file": ([python, "-c", TORCHINFO.format(bench=bench, path=str(SMALL))], REPO),
        "shapelens check DIR --jobs 1": ([*check, "--jobs", "1", "."], folder),
        "shapelens check DIR --jobs 2": ([*check, "--jobs", "2", "."], folder),
    }
    if pyrefly:
        py = ["--python-interpreter-path", python]
        commands["pyrefly check, one file"] = ([pyrefly, "check", *py, str(SMALL)], REPO)
        commands["pyrefly check DIR"] = ([pyrefly, "check", *py, "."], folder)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs):
        for name, (cmd, cwd) in commands.items():  # the tools alternate within each round
            elapsed, rc, stdout = run_timed(cmd, cwd)
            if name.startswith("shapelens") and (rc not in (0, 1) or ('"hints"' not in stdout and " # " not in stdout)):
                raise SystemExit(f"{name}: exit {rc}, no hints")
            times[name].append(elapsed)
        print(f"  round {round_ + 1}/{runs} done", file=sys.stderr, flush=True)
    return times


# -- editor measurements ----------------------------------------------------------------------------------


async def first_hints(root: Path, text: str, env: dict[str, str]) -> dict[str, float]:
    """Spawn a server, open model.py: seconds from spawn and from didOpen to the first non-empty hints."""
    path = root / "model.py"
    session = Session(root, env)
    rec = session.rec
    spawned = await session.start()
    opened = time.perf_counter()
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(path.as_uri(), "python", 1, text))
    )
    lines = text.count("\n") + 1
    while True:
        seen = len(rec.refreshes)
        await rec.until(lambda seen=seen: len(rec.refreshes) > seen or None, 120)
        if await session.hints(path.as_uri(), lines):
            break
    done = time.perf_counter()
    cached = any("cached" in str(s.get("message")) for _, s in rec.statuses)
    # let the fresh trace land (and its cache entry be written) before the server goes
    await rec.until(lambda: any(s.get("state") == "idle" and s.get("elapsedMs") for _, s in rec.statuses), 120)
    await asyncio.sleep(0.5)
    await session.stop()
    return {"spawn_s": done - spawned, "open_s": done - opened, "cached": float(cached)}


async def edits_to_diagnostics(root: Path, text: str, env: dict[str, str], edits: int) -> list[float]:
    path = root / "model.py"
    uri = path.as_uri()
    session = Session(root, env)
    rec = session.rec
    await session.start()
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
    )
    await rec.until(lambda: any(s.get("state") == "idle" and s.get("elapsedMs") for _, s in rec.statuses), 120)
    await asyncio.sleep(2.0)  # the editor's worker warms its other kernels after the first reply
    match = _DIRECTIVE.search(text)
    assert match is not None
    batch = int(match.group(2))
    current, version, out = text, 1, []
    for i in range(edits + 2):  # the first two teach the debounce this document's trace cost
        found = _DIRECTIVE.search(current)
        assert found is not None
        start, end = _offset_position(current, found.start(2)), _offset_position(current, found.end(2))
        new = str(batch + 1 + i % 2)
        current = current[: found.start(2)] + new + current[found.end(2) :]
        version += 1
        n, n_status = len(rec.diagnostics), len(rec.statuses)
        sent = time.perf_counter()
        session.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [types.TextDocumentContentChangePartial(range=types.Range(start, end), text=new)],
            )
        )
        # the diagnostics of the shifted results go out at once; the ones that count follow this edit's trace
        started = await rec.until(
            lambda m=n_status: next((t for t, st in rec.statuses[m:] if st.get("state") == "tracing"), None), 60
        )
        at = await rec.until(
            lambda n=n, v=version, t0=started: next(
                (t for t, u, ver in rec.diagnostics[n:] if u == uri and ver == v and t > t0), None
            ),
            60,
        )
        if i >= 2:
            out.append(at - sent)
        await asyncio.sleep(0.5)
    await session.stop()
    return out


async def editor_rows(runs: int, edits: int) -> dict[str, list[float]]:
    text = SMALL.read_text()
    out: dict[str, list[float]] = {
        "fresh: spawn → hints": [],
        "reopened: spawn → hints": [],
        "reopened: didOpen → hints": [],
    }
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="shapelens-speed-") as folder:
            root = Path(folder)
            (root / "model.py").write_text(text)
            env = {**os.environ, "SHAPELENS_START_WORKER": "1", "SHAPELENS_CACHE_DIR": str(root / ".cache")}
            fresh = await first_hints(root, text, env)
            assert not fresh["cached"]
            again = await first_hints(root, text, env)
            if not again["cached"]:
                raise SystemExit("the restarted server did not show the cached result")
            out["fresh: spawn → hints"].append(fresh["spawn_s"])
            out["reopened: spawn → hints"].append(again["spawn_s"])
            out["reopened: didOpen → hints"].append(again["open_s"])
    with tempfile.TemporaryDirectory(prefix="shapelens-speed-") as folder:
        root = Path(folder)
        (root / "model.py").write_text(text)
        env = {**os.environ, "SHAPELENS_CACHE_DIR": str(root / ".cache")}
        out["edit → diagnostics"] = await edits_to_diagnostics(root, text, env, edits)
    return out


# -- the table --------------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def table(times: dict[str, list[float]], load: tuple[str, str]) -> str:
    def cell(name: str) -> str:
        return f"{med(times[name]):.2f} s" if times.get(name) else "—"

    torch_s = med(times["import torch"])
    one = med(times["shapelens check, one file"])
    j1, j2 = med(times["shapelens check DIR --jobs 1"]), med(times["shapelens check DIR --jobs 2"])
    pyrefly_one = cell("pyrefly check, one file")
    rows = [
        f"Speed (#12), {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"load average {load[0]} at the start, {load[1]} at the end; medians of {len(times['import torch'])} runs",
        "",
        "| measurement | Shapelens | ratio | target | Pyrefly 1.4.1 | torchinfo |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f'| `python -c "import torch"` | {torch_s:.2f} s | 1× | | | |',
        f"| `check` of one small file, cold process | {one:.2f} s | {one / torch_s:.2f}× import torch | ≤ 1.3× | "
        f"{pyrefly_one} | {cell('torchinfo, one file')} |",
        f"| `check --format json` (version 2: the symbolic pass too) of the same file | "
        f"{cell('shapelens check --format json, one file')} | "
        f"{med(times['shapelens check --format json, one file']) / torch_s:.2f}× import torch | | | |",
    ]
    if times.get("fresh: spawn → hints"):
        rows += [
            f"| editor: fresh file → first hints (server spawn → hints) | {cell('fresh: spawn → hints')} | "
            "| ≤ 2.5 s | | |",
            f"| editor: reopened file → hints from cache (spawn → hints) | {cell('reopened: spawn → hints')} | | | | |",
            f"| editor: reopened file → hints from cache (didOpen → hints) | {cell('reopened: didOpen → hints')} | "
            "| ≤ 0.3 s | | |",
            f"| editor: edit → diagnostics, seed-sized model | {med(times['edit → diagnostics']) * 1000:.0f} ms | "
            "| ≤ 150 ms | | |",
        ]
    rows.append(
        f"| `check` of {FOLDER_FILES} model files: `--jobs 1` / `--jobs 2` | {j1:.2f} s / {j2:.2f} s | "
        f"{j1 / j2:.2f}× faster with 2 | ≥ 1.7× | {cell('pyrefly check DIR')} | |"
    )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--edits", type=int, default=10, help="edits for edit → diagnostics")
    parser.add_argument("--pyrefly", default=shutil.which("pyrefly"), help="the pyrefly executable")
    parser.add_argument("--no-editor", action="store_true", help="skip the language-server rows")
    parser.add_argument("--json", action="store_true", help="print the raw seconds as JSON too")
    args = parser.parse_args()
    load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="shapelens-folder-") as folder:
        write_folder(Path(folder))
        times = command_rows(args.runs, args.pyrefly, Path(folder))
    if not args.no_editor:
        times.update(asyncio.run(editor_rows(args.runs, args.edits)))
    load_end = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(table(times, (load_start, load_end)))
    if args.json:
        print(json.dumps(times, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
