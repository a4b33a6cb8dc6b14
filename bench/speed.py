"""Benchmark (not a test): issue #12's speed ratios in one run, beside `python -c "import torch"`, Pyrefly's
`check` and torchinfo on the same files. Prints a Markdown table with the date and the load average.

    .venv/bin/python bench/speed.py [--runs 5] [--pyrefly PATH] [--only folder] [--folder DIR ...] [--json]

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
    in a trusted workspace; an empty results cache) to the first inlay hints of the opened file; the same for
    the zero-edit folder's first file, a LeNet for 28-pixel images (no directive: its input inferred, its image
    size found);
  - reopened file → hints from cache: a restarted server, same file and cache: spawn → first hints, and
    didOpen → first hints (marked "cached — confirming" until the trace confirms them);
  - edit → diagnostics: the seed-sized model, didChange → publishDiagnostics of that version after its
    trace (the adaptive debounce included), median of the edits;
- folders: two folders of 50 generated model files each (bench/speed.py writes them from its own templates),
  `shapelens check DIR --jobs 1` vs `--jobs 2` (text, as CI runs it), each `--jobs 2` output checked equal to
  the folder's `--jobs 1` output; Pyrefly on each folder:
  - directive: small CNNs, MLPs, LSTMs, attention blocks of varied sizes, each with a directive;
  - zero-edit: no directive, no example call (the normal case): LeNet-like CNNs whose image size the solver
    finds from the classifier's in_features, ResNet-style residual nets, small GPTs built from a config
    dataclass, U-Nets with torch.cat, LSTM/GRU classifiers.

`--only folder` runs just the folder commands (alternating, `--runs` rounds) and prints their rows.
`--folder DIR` (repeatable) adds a folder of code nobody here wrote, unchanged (a checkout of PyTorch-GAN's
implementations, vit-pytorch's models), to the folders measured the same way.
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


# The zero-edit folder: model files as people write them, with no directive and no example call, so the
# input is inferred from the model (and its free sizes solved where a Linear after a flatten fixes them). Our
# own templates, sized differently per file.

LENET = """\
import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet{i}(nn.Module):
    \"\"\"Conv layers first; the classifier's in_features fix the image size.\"\"\"

    def __init__(self, num_classes: int = {classes}) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d({channels}, {c1}, {k})
        self.conv2 = nn.Conv2d({c1}, {c2}, {k})
        self.fc1 = nn.Linear({c2} * {side} * {side}, {hidden})
        self.fc2 = nn.Linear({hidden}, {hidden2})
        self.fc3 = nn.Linear({hidden2}, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
"""

RESNET = """\
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet{i}(nn.Module):
    def __init__(self, blocks=({blocks}), num_classes: int = {classes}) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, {width}, 3, padding=1, bias=False), nn.BatchNorm2d({width}), nn.ReLU())
        layers = []
        channels = {width}
        for stage, count in enumerate(blocks):
            out = {width} * 2**stage
            for b in range(count):
                layers.append(Residual(channels, out, stride=2 if stage > 0 and b == 0 else 1))
                channels = out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        x = self.pool(x).flatten(1)
        return self.fc(x)
"""

GPT = """\
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class Settings{i}:
    vocab: int = {vocab}
    context: int = {context}
    width: int = {width}
    heads: int = {heads}
    depth: int = {depth}
    dropout: float = 0.1


class SelfAttention(nn.Module):
    def __init__(self, cfg: Settings{i}) -> None:
        super().__init__()
        assert cfg.width % cfg.heads == 0
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)
        self.drop = nn.Dropout(cfg.dropout)
        mask = torch.tril(torch.ones(cfg.context, cfg.context)).view(1, 1, cfg.context, cfg.context)
        self.register_buffer("mask", mask)

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        att = self.drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.out(y)


class Layer(nn.Module):
    def __init__(self, cfg: Settings{i}) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.ff = nn.Sequential(nn.Linear(cfg.width, 4 * cfg.width), nn.GELU(), nn.Linear(4 * cfg.width, cfg.width))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ff(self.ln2(x))


class TinyGPT{i}(nn.Module):
    def __init__(self, cfg: Settings{i}) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab, cfg.width)
        self.positions = nn.Embedding(cfg.context, cfg.width)
        self.layers = nn.ModuleList([Layer(cfg) for _ in range(cfg.depth)])
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab, bias=False)

    def forward(self, idx):
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.tokens(idx) + self.positions(pos)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln(x))
"""

UNET = """\
import torch
import torch.nn as nn


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet{i}(nn.Module):
    def __init__(self, in_channels: int = {channels}, classes: int = {classes}, base: int = {base}) -> None:
        super().__init__()
        self.down1 = double_conv(in_channels, base)
        self.down2 = double_conv(base, base * 2)
        self.bottom = double_conv(base * 2, base * 4)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(base * 4, base * 2, 2, stride=2)
        self.dec2 = double_conv(base * 4, base * 2)
        self.up1 = nn.ConvTranspose2d(base * 2, base, 2, stride=2)
        self.dec1 = double_conv(base * 2, base)
        self.out = nn.Conv2d(base, classes, 1)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(self.pool(d1))
        b = self.bottom(self.pool(d2))
        u2 = self.dec2(torch.cat([self.up2(b), d2], dim=1))
        u1 = self.dec1(torch.cat([self.up1(u2), d1], dim=1))
        return self.out(u1)
"""

RNN = """\
import torch
from torch import nn


class {cell}Classifier{i}(nn.Module):
    def __init__(self, vocab_size: int = {vocab}, embed_dim: int = {width}, hidden: int = {hidden},
                 num_layers: int = {layers}, num_classes: int = {classes}) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = nn.{cell}(embed_dim, hidden, num_layers=num_layers, batch_first=True, bidirectional={bidi})
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(hidden * {directions}, num_classes)

    def forward(self, tokens):
        embedded = self.dropout(self.embedding(tokens))
        output, _ = self.rnn(embedded)
        last = output[:, -1, :]
        return self.fc(last)
"""


def write_zero_edit_folder(folder: Path, count: int = FOLDER_FILES) -> list[Path]:
    """`count` model files of five kinds and varied sizes, none with a directive or an example call."""
    paths = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            k = 5 if i % 2 else 3
            image = (28, 36, 40, 24)[(i // 5) % 4]  # the size fc1 was written for: not a guess, the solver finds it
            side = ((image - k + 1) // 2 - k + 1) // 2
            c1, c2 = 6 + 2 * (i % 3), 16 + 4 * (i % 4)
            text = LENET.format(
                i=i, classes=10 + i % 3, channels=1 + 2 * (i % 2), c1=c1, c2=c2, k=k, side=side,
                hidden=120 - 8 * (i % 4), hidden2=84 - 4 * (i % 3),
            )  # fmt: skip
        elif kind == 1:
            blocks = ", ".join(str(1 + (i + s) % 2) for s in range(2 + i % 2))
            text = RESNET.format(i=i, blocks=blocks + ",", classes=10 + i % 5, width=8 * (1 + i % 3))
        elif kind == 2:
            heads = 2 + 2 * (i % 2)
            text = GPT.format(
                i=i, vocab=64 + 32 * (i % 4), context=16 * (1 + i % 3), width=16 * heads, heads=heads,
                depth=1 + i % 3,
            )  # fmt: skip
        elif kind == 3:
            text = UNET.format(i=i, channels=1 + 2 * (i % 2), classes=1 + i % 4, base=8 * (1 + i % 2))
        else:
            bidi = i % 2 == 0
            text = RNN.format(
                i=i, cell="LSTM" if i % 3 else "GRU", vocab=500 + 100 * (i % 5), width=16 * (1 + i % 4),
                hidden=24 + 8 * (i % 3), layers=1 + i % 2, classes=2 + i % 4, bidi=bidi, directions=2 if bidi else 1,
            )  # fmt: skip
        path = folder / f"zero_edit_{i:02d}.py"
        path.write_text(text)
        paths.append(path)
    return paths


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


FOLDER_ROWS = ("directive", "zero-edit")  # the two folders: file-per-file directives, and none at all


def folder_commands(folders: dict[str, Path]) -> dict[str, tuple[list[str], Path]]:
    check = [*shapelens_cli(), "check"]
    return {
        f"shapelens check DIR --jobs {jobs} ({kind})": ([*check, "--jobs", str(jobs), "."], folder)
        for kind, folder in folders.items()
        for jobs in (1, 2)
    }


def command_rows(
    runs: int, pyrefly: str | None, folders: dict[str, Path], only_folders: bool = False
) -> dict[str, list[float]]:
    python = sys.executable
    # `check` as CI and pre-commit run it (text); JSON version 2 also runs the symbolic pass (#13): its own row
    check = [*shapelens_cli(), "check"]
    bench = str(Path(__file__).resolve().parent)
    commands: dict[str, tuple[list[str], Path]] = {}
    if not only_folders:
        commands |= {
            "import torch": ([python, "-c", "import torch"], REPO),
            "shapelens check, one file": ([*check, str(SMALL)], REPO),
            "shapelens check --format json, one file": ([*check, "--format", "json", str(SMALL)], REPO),
            "torchinfo, one file": ([python, "-c", TORCHINFO.format(bench=bench, path=str(SMALL))], REPO),
        }
    commands |= folder_commands(folders)
    if pyrefly and not only_folders:
        py = ["--python-interpreter-path", python]
        commands["pyrefly check, one file"] = ([pyrefly, "check", *py, str(SMALL)], REPO)
        for kind, folder in folders.items():
            commands[f"pyrefly check DIR ({kind})"] = ([pyrefly, "check", *py, "."], folder)
    times: dict[str, list[float]] = {name: [] for name in commands}
    serial_output: dict[str, str] = {}  # a folder's `--jobs 1` output, which `--jobs 2` must print byte for byte
    for round_ in range(runs):
        for name, (cmd, cwd) in commands.items():  # the tools alternate within each round
            elapsed, rc, stdout = run_timed(cmd, cwd)
            if name.startswith("shapelens") and (rc not in (0, 1) or ('"hints"' not in stdout and " # " not in stdout)):
                raise SystemExit(f"{name}: exit {rc}, no hints")
            if name.startswith("shapelens check DIR"):
                kind = name.rsplit("(", 1)[1]
                if serial_output.setdefault(kind, stdout) != stdout:
                    raise SystemExit(f"{name}: its output differs from the folder's --jobs 1 output")
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
    with tempfile.TemporaryDirectory(prefix="shapelens-speed-") as folder:  # the zero-edit folder's first file
        zero_edit = write_zero_edit_folder(Path(folder), count=1)[0].read_text()  # a LeNet for 28-pixel images
    out: dict[str, list[float]] = {
        "fresh: spawn → hints": [],
        "fresh zero-edit: spawn → hints": [],
        "reopened: spawn → hints": [],
        "reopened: didOpen → hints": [],
    }
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="shapelens-speed-") as folder:
            root = Path(folder)
            env = {**os.environ, "SHAPELENS_START_WORKER": "1", "SHAPELENS_CACHE_DIR": str(root / ".cache")}
            (root / "model.py").write_text(zero_edit)  # a server of its own, on an empty cache too
            out["fresh zero-edit: spawn → hints"].append((await first_hints(root, zero_edit, env))["spawn_s"])
            (root / "model.py").write_text(text)
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


FOLDER_WHAT = {
    "directive": f"{FOLDER_FILES} model files, with a directive each",
    "zero-edit": f"{FOLDER_FILES} model files, zero edits (no directive, no example)",
}


def folder_lines(times: dict[str, list[float]], folders: dict[str, Path]) -> list[str]:
    rows = []
    for kind, folder in folders.items():
        j1 = med(times[f"shapelens check DIR --jobs 1 ({kind})"])
        j2 = med(times[f"shapelens check DIR --jobs 2 ({kind})"])
        what = FOLDER_WHAT.get(kind) or f"{kind} ({len(list(folder.rglob('*.py')))} files, unchanged)"
        pyrefly = times.get(f"pyrefly check DIR ({kind})")
        rows.append(
            f"| `check` of {what}: `--jobs 1` / `--jobs 2` | {j1:.2f} s / {j2:.2f} s | "
            f"{j1 / j2:.2f}× faster with 2 | ≥ 1.7× | {f'{med(pyrefly):.2f} s' if pyrefly else '—'} | |"
        )
    return rows


def header(times: dict[str, list[float]], load: tuple[str, str]) -> str:
    runs = min(len(v) for v in times.values())  # (edit → diagnostics has one value per edit)
    return (
        f"Speed (#12), {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"load average {load[0]} at the start, {load[1]} at the end; medians of {runs} runs"
    )


TABLE_HEAD = [
    "| measurement | Shapelens | ratio | target | Pyrefly 1.4.1 | torchinfo |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
]


def table(times: dict[str, list[float]], load: tuple[str, str], folders: dict[str, Path]) -> str:
    if "import torch" not in times:  # --only folder
        return "\n".join([header(times, load), "", *TABLE_HEAD, *folder_lines(times, folders)])

    def cell(name: str) -> str:
        return f"{med(times[name]):.2f} s" if times.get(name) else "—"

    torch_s = med(times["import torch"])
    one = med(times["shapelens check, one file"])
    pyrefly_one = cell("pyrefly check, one file")
    rows = [
        header(times, load),
        "",
        *TABLE_HEAD,
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
            "| editor: fresh zero-edit file (LeNet for 28-pixel images, no directive) → first hints | "
            f"{cell('fresh zero-edit: spawn → hints')} | | ≤ 2.5 s | | |",
            f"| editor: reopened file → hints from cache (spawn → hints) | {cell('reopened: spawn → hints')} | | | | |",
            f"| editor: reopened file → hints from cache (didOpen → hints) | {cell('reopened: didOpen → hints')} | "
            "| ≤ 0.3 s | | |",
            f"| editor: edit → diagnostics, seed-sized model | {med(times['edit → diagnostics']) * 1000:.0f} ms | "
            "| ≤ 150 ms | | |",
        ]
    rows += folder_lines(times, folders)
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--edits", type=int, default=10, help="edits for edit → diagnostics")
    parser.add_argument("--pyrefly", default=shutil.which("pyrefly"), help="the pyrefly executable")
    parser.add_argument("--no-editor", action="store_true", help="skip the language-server rows")
    parser.add_argument(
        "--only", choices=["folder"], help="folder: only the folders' `--jobs 1` / `--jobs 2` rows (alternating)"
    )
    parser.add_argument(
        "--folder", action="append", default=[], type=Path, help="also a folder of real code, as it is (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print the raw seconds as JSON too")
    args = parser.parse_args()
    load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="shapelens-folders-") as tmp:
        folders = {kind: Path(tmp) / kind for kind in FOLDER_ROWS}
        for folder in folders.values():
            folder.mkdir()
        write_folder(folders["directive"])
        write_zero_edit_folder(folders["zero-edit"])
        for real in args.folder:
            folders[f"{real.resolve().parent.name}/{real.resolve().name}"] = real.resolve()
        times = command_rows(args.runs, args.pyrefly, folders, only_folders=args.only == "folder")
    if not args.no_editor and args.only is None:
        times.update(asyncio.run(editor_rows(args.runs, args.edits)))
    load_end = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(table(times, (load_start, load_end), folders))
    if args.json:
        print(json.dumps(times, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
