"""Benchmark (not a test): editor latency of `shapelens serve`, measured from the client's side of the wire.

Run it with `.venv/bin/python bench/lsp_latency.py` (`--json` for the raw numbers, `--runs N` per model). For
each model it starts a fresh server over stdio, as an editor does, with the default settings (300 ms
debounce, meta device), and measures:

- cold: from spawning the server to the first inlay hints of the opened model (Python start, pygls, the
  worker importing torch and warming up, the first trace, the hint request), and from `didOpen` alone;
- warm: N edits, one at a time, each changing the batch size in the model's `# shapelens:` directive so every
  edit really changes the shapes. From the `didChange` notification to
  - diagnostics: the `publishDiagnostics` of that version that follows its trace,
  - refresh: the `workspace/inlayHint/refresh` request that follows,
  - hints: the answer to the `textDocument/inlayHint` request the client sends on that refresh, checked to
    carry the new batch size.
  The debounce is part of what the user waits for; the "after debounce" columns subtract it, which is what
  the budget in the design notes counts (seed-sized model <= 100 ms, ResNet-50 <= 300 ms, cold <= 5 s).

Models: `bench/models/small_cnn.py` (seed-sized) and `bench/models/resnet50.py`; if a file is missing, a
built-in stand-in is written to the temporary workspace instead (the table says which was used).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEBOUNCE_MS = 300
_DIRECTIVE = re.compile(r"(#\s*shapelens:.*?\bx=\()(\d+)")

FALLBACK_SMALL = """\
import torch
import torch.nn.functional as F
from torch import nn


# shapelens: x=(8, 3, 32, 32)
class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 8 * 8, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
"""

FALLBACK_RESNET50 = """\
import torch
from torch import nn


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or inplanes != planes * 4:
            self.down = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# shapelens: x=(1, 3, 224, 224)
class ResNet50(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        layers = []
        inplanes = 64
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(blocks):
                layers.append(Bottleneck(inplanes, planes, stride if i == 0 else 1))
                inplanes = planes * 4
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layers(x)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)
"""


@dataclass(frozen=True)
class BenchModel:
    label: str
    file: str
    fallback: str
    runs: int
    budget_ms: float  # warm, after the debounce


MODELS = [
    BenchModel("seed-sized CNN", "small_cnn.py", FALLBACK_SMALL, runs=20, budget_ms=100),
    BenchModel("ResNet-50", "resnet50.py", FALLBACK_RESNET50, runs=10, budget_ms=300),
]


@dataclass
class Recorder:
    """Everything the server sent, with arrival times (perf_counter seconds)."""

    diagnostics: list[tuple[float, str, int | None]] = field(default_factory=list)
    refreshes: list[float] = field(default_factory=list)
    statuses: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self) -> None:
        self.changed.set()

    async def until(self, predicate: Any, timeout: float) -> Any:
        deadline = time.perf_counter() + timeout
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.perf_counter()
            if left <= 0:
                tail = "".join(self.stderr[-20:])
                raise TimeoutError(f"no answer within {timeout:.0f} s; server log tail:\n{tail}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):  # re-check at least every 50 ms
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    return value


def capabilities() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            configuration=False, inlay_hint=types.InlayHintWorkspaceClientCapabilities(refresh_support=True)
        ),
        text_document=types.TextDocumentClientCapabilities(
            inlay_hint=types.InlayHintClientCapabilities(),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True),
        ),
    )


class Session:
    """One server process and the client side of it."""

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = env  # the server's environment (None: ours)
        self.rec = Recorder()
        self.client = LanguageClient("shapelens-bench", "1")
        rec = self.rec

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            rec.diagnostics.append((time.perf_counter(), params.uri, params.version))
            rec.poke()

        @self.client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
        def on_refresh(params: None) -> None:
            rec.refreshes.append(time.perf_counter())
            rec.poke()

        @self.client.feature("shapelens/status")
        def on_status(params: Any) -> None:
            rec.statuses.append((time.perf_counter(), _plain(params)))
            rec.poke()

    async def start(self) -> float:
        spawned = time.perf_counter()
        await self.client.start_io(sys.executable, "-m", "shapelens.cli", "serve", env=self.env)
        server = self.client._server
        assert server is not None and server.stderr is not None
        stderr = server.stderr

        async def drain() -> None:  # an unread stderr pipe would eventually block the server
            while line := await stderr.readline():
                self.rec.stderr.append(line.decode(errors="replace"))

        self._drain = asyncio.ensure_future(drain())
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=capabilities(),
                root_uri=self.root.as_uri(),
                initialization_options={"debounceMs": DEBOUNCE_MS},
            )
        )
        self.client.initialized(types.InitializedParams())
        return spawned

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    async def hints(self, uri: str, lines: int) -> list[types.InlayHint]:
        rng = types.Range(types.Position(0, 0), types.Position(lines, 0))
        result = await self.client.text_document_inlay_hint_async(
            types.InlayHintParams(text_document=types.TextDocumentIdentifier(uri), range=rng)
        )
        return list(result or [])


def _labels(hints: list[types.InlayHint]) -> str:
    return " ".join(h.label if isinstance(h.label, str) else "".join(p.value for p in h.label) for h in hints)


async def measure(model: BenchModel, runs: int) -> dict[str, Any]:
    source_path = MODELS_DIR / model.file
    used = str(source_path.relative_to(MODELS_DIR.parent.parent)) if source_path.exists() else "built-in stand-in"
    text = source_path.read_text(encoding="utf-8") if source_path.exists() else model.fallback
    match = _DIRECTIVE.search(text)
    if match is None:
        raise SystemExit(f"{model.file}: no `# shapelens: x=(N, ...)` directive to edit")
    batch = int(match.group(2))
    with tempfile.TemporaryDirectory(prefix="shapelens-bench-") as folder:
        root = Path(folder)
        path = root / "model.py"
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        lines = text.count("\n") + 1
        session = Session(root)
        rec = session.rec
        spawned = await session.start()

        # cold: didOpen -> first hints (the server and its worker start from nothing)
        opened = time.perf_counter()
        session.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
        )
        await rec.until(lambda: rec.refreshes, 120)
        hints = await session.hints(uri, lines)
        first_hints = time.perf_counter()
        if not hints:
            raise SystemExit(f"{model.label}: no hints after the first trace:\n{''.join(rec.stderr[-20:])}")
        cold = {"spawn_to_hints_ms": (first_hints - spawned) * 1000, "open_to_hints_ms": (first_hints - opened) * 1000}

        warm: list[dict[str, float]] = []
        version = 1
        current = text
        for i in range(runs):
            new_batch = batch + 1 + i % 2  # alternate so every edit changes the shapes
            found = _DIRECTIVE.search(current)
            assert found is not None
            start = _offset_position(current, found.start(2))
            end = _offset_position(current, found.end(2))
            current = current[: found.start(2)] + str(new_batch) + current[found.end(2) :]
            version += 1
            n_diag, n_refresh, n_status = len(rec.diagnostics), len(rec.refreshes), len(rec.statuses)
            sent = time.perf_counter()
            session.client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    [types.TextDocumentContentChangePartial(range=types.Range(start, end), text=str(new_batch))],
                )
            )

            def traced(n_status: int = n_status) -> tuple[float, dict[str, Any]] | None:
                for at, status in rec.statuses[n_status:]:
                    if status.get("state") == "tracing":
                        return at, status
                return None

            trace_started, _ = await rec.until(traced, 60)
            # diagnostics of this version published after its trace started
            diag_at = await rec.until(
                lambda n=n_diag, v=version, t=trace_started: next(
                    (at for at, u, ver in rec.diagnostics[n:] if u == uri and ver == v and at > t), None
                ),
                60,
            )
            refresh_at = await rec.until(lambda n=n_refresh: rec.refreshes[n] if len(rec.refreshes) > n else None, 60)
            hints = await session.hints(uri, lines)
            hints_at = time.perf_counter()
            if f"[{new_batch}," not in _labels(hints):
                raise SystemExit(f"{model.label}: the hints after edit {i} do not show batch {new_batch}")
            done = await rec.until(
                lambda n=n_status: next(
                    (s for _, s in rec.statuses[n:] if s.get("state") == "idle" and s.get("elapsedMs")), None
                ),
                60,
            )
            warm.append(
                {
                    "diagnostics_ms": (diag_at - sent) * 1000,
                    "refresh_ms": (refresh_at - sent) * 1000,
                    "hints_ms": (hints_at - sent) * 1000,
                    "trace_ms": float(done["elapsedMs"]),
                }
            )
            await asyncio.sleep(0.05)  # a pause between keystrokes, so each edit is its own trace
        await session.stop()
    return {"model": model.label, "file": used, "budget_ms": model.budget_ms, "cold": cold, "warm": warm}


def _offset_position(text: str, offset: int) -> types.Position:
    before = text[:offset]
    column = before.rsplit("\n", 1)[-1]
    return types.Position(before.count("\n"), len(column.encode("utf-16-le")) // 2)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def render(results: list[dict[str, Any]]) -> str:
    out = [
        f"LSP latency, `shapelens serve` over stdio, debounce {DEBOUNCE_MS} ms, meta device "
        f"({platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}: a busy machine stretches every number)",
        "",
        "| model | cold: spawn → hints | cold: didOpen → hints | warm: didChange → diagnostics | "
        "→ refresh | → hints | hints after debounce (p90) | trace (server) | budget after debounce |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        warm = r["warm"]
        diag = _median([w["diagnostics_ms"] for w in warm])
        refresh = _median([w["refresh_ms"] for w in warm])
        hints = [w["hints_ms"] for w in warm]
        trace = _median([w["trace_ms"] for w in warm])
        after = _median(hints) - DEBOUNCE_MS
        verdict = "ok" if after <= r["budget_ms"] else "OVER"
        out.append(
            f"| {r['model']} | {r['cold']['spawn_to_hints_ms']:.0f} ms | {r['cold']['open_to_hints_ms']:.0f} ms | "
            f"{diag:.0f} ms | {refresh:.0f} ms | {_median(hints):.0f} ms | {after:.0f} ms "
            f"({_p90(hints) - DEBOUNCE_MS:.0f} ms) | {trace:.0f} ms | ≤ {r['budget_ms']:.0f} ms ({verdict}) |"
        )
    out += ["", "warm columns: medians of N edits; model files: " + ", ".join(f"{r['file']}" for r in results)]
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> None:
    results = []
    for model in MODELS:
        print(f"measuring {model.label} …", file=sys.stderr, flush=True)
        results.append(await measure(model, args.runs or model.runs))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print(render(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    parser.add_argument("--runs", type=int, default=0, help="warm edits per model (default: 20 and 10)")
    args = parser.parse_args()
    if shutil.which(sys.executable) is None:
        raise SystemExit("no Python interpreter")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
