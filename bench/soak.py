"""Benchmark (not a test): a soak of `shapelens serve` — does a long editing session leak or leave anything?

Run it with `.venv/bin/python bench/soak.py` (`--traces N`, `--burst N`, `--json`). One server over stdio, as
an editor starts it, in a temporary workspace holding the seed-sized CNN (`bench/models/small_cnn.py`, or
the stand-in of `lsp_latency.py`):

1. open it and run 10 edits to warm up; note the RSS of the server and of its trace worker;
2. N consecutive traces (default 300): each edit changes the batch size in the `# shapelens:` directive, and
   waits for that trace to end and for hints that show the new batch;
3. the RSS of both again (the promise: no growth beyond 10 %), and the trace children still alive;
4. a burst of M edits (default 1,000) sent back to back without waiting: the time until the last version's
   diagnostics are published and its hints show its batch;
5. shutdown + exit, then every process of the session (server, worker, trace children, collected while it
   ran) must be gone within 5 s, and no private trace folder (`shapelens-trace-*`) may be left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lsp_latency import _DIRECTIVE, FALLBACK_SMALL, MODELS_DIR, Session, _labels, _offset_position


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry))
    return found


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def trace_folders(base: Path) -> set[str]:
    return {p.name for p in base.iterdir() if p.name.startswith("shapelens-trace-")}


class Editor:
    """The document being edited: each edit writes a new batch size into the directive."""

    def __init__(self, session: Session, uri: str, text: str) -> None:
        self.session = session
        self.uri = uri
        self.text = text
        self.version = 1
        self.lines = text.count("\n") + 1

    def edit(self, batch: int) -> None:
        found = _DIRECTIVE.search(self.text)
        assert found is not None
        start, end = _offset_position(self.text, found.start(2)), _offset_position(self.text, found.end(2))
        self.text = self.text[: found.start(2)] + str(batch) + self.text[found.end(2) :]
        self.version += 1
        self.session.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
                [types.TextDocumentContentChangePartial(range=types.Range(start, end), text=str(batch))],
            )
        )

    async def shows(self, batch: int, timeout: float = 60) -> None:
        """Wait until the hints show `batch` (the trace of the latest text has ended)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if f"[{batch}," in _labels(await self.session.hints(self.uri, self.lines)):
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"the hints never showed batch {batch}")


async def traced_edit(editor: Editor, batch: int) -> float:
    rec = editor.session.rec
    n_status = len(rec.statuses)
    editor.edit(batch)
    started = time.perf_counter()
    await rec.until(lambda: any(s.get("state") == "tracing" for _, s in rec.statuses[n_status:]), 60)
    await rec.until(
        lambda: any(s.get("state") == "idle" and s.get("elapsedMs") for _, s in rec.statuses[n_status:]), 60
    )
    await editor.shows(batch)
    return time.perf_counter() - started


async def soak(traces: int, burst: int) -> dict[str, Any]:
    source = MODELS_DIR / "small_cnn.py"
    text = source.read_text(encoding="utf-8") if source.exists() else FALLBACK_SMALL
    match = _DIRECTIVE.search(text)
    assert match is not None
    batch = int(match.group(2))
    seen: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="shapelens-soak-") as folder:
        root = Path(folder) / "workspace"
        root.mkdir()
        scratch = Path(folder) / "tmp"  # the server's (and so the worker's) TMPDIR: its trace folders land here
        scratch.mkdir()
        os.environ["TMPDIR"] = str(scratch)
        path = root / "model.py"
        path.write_text(text, encoding="utf-8")
        session = Session(root)
        await session.start()
        server = session.client._server
        assert server is not None
        server_pid = server.pid
        editor = Editor(session, path.as_uri(), text)
        session.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(editor.uri, "python", 1, text))
        )
        await editor.shows(batch, timeout=180)
        for i in range(10):
            await traced_edit(editor, batch + 1 + i % 2)
        seen |= descendants(server_pid)
        workers = [
            p for p in children(server_pid) if b"shapelens.trace.worker" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        worker = workers[0] if workers else 0
        before = {"server_mb": rss_mb(server_pid), "worker_mb": rss_mb(worker)}

        durations = []
        started = time.perf_counter()
        for i in range(traces):
            durations.append(await traced_edit(editor, batch + 1 + i % 7))
            if i % 25 == 0:
                seen |= descendants(server_pid)
        soak_s = time.perf_counter() - started
        time.sleep(0.5)  # the last child's exit, the worker's reap
        after = {"server_mb": rss_mb(server_pid), "worker_mb": rss_mb(worker)}
        lingering = [p for p in children(worker) if alive(p)] if worker else []
        same_worker = worker in children(server_pid)

        n_diag = len(session.rec.diagnostics)
        burst_start = time.perf_counter()
        for i in range(burst):
            editor.edit(batch + 1 + i % 11)
        last = batch + 1 + (burst - 1) % 11
        sent_s = time.perf_counter() - burst_start
        await session.rec.until(lambda: any(v == editor.version for _, _, v in session.rec.diagnostics[n_diag:]), 120)
        await editor.shows(last, timeout=120)
        burst_s = time.perf_counter() - burst_start
        seen |= descendants(server_pid)
        seen.add(server_pid)

        await session.stop()
        stopped = time.perf_counter()
        while any(alive(p) for p in seen) and time.perf_counter() - stopped < 5:
            await asyncio.sleep(0.05)
        left = sorted(p for p in seen if alive(p))
        gone_s = time.perf_counter() - stopped
        folders_left = sorted(trace_folders(scratch))
    durations.sort()
    return {
        "traces": traces,
        "soak_s": soak_s,
        "edit_to_hints_ms": {
            "median": 1000 * durations[len(durations) // 2],
            "p90": 1000 * durations[int(0.9 * (len(durations) - 1))],
            "max": 1000 * durations[-1],
        },
        "rss_before": before,
        "rss_after": after,
        "growth_pct": {k: 100 * (after[k] - before[k]) / before[k] if before[k] else None for k in before},
        "same_worker": same_worker,
        "lingering_children": lingering,
        "burst": {"edits": burst, "sent_s": sent_s, "answered_s": burst_s},
        "processes_seen": len(seen),
        "left_after_shutdown": left,
        "shutdown_s": gone_s,
        "trace_folders_left": folders_left,
        "load": os.getloadavg(),
    }


def render(r: dict[str, Any]) -> str:
    b, a, g = r["rss_before"], r["rss_after"], r["growth_pct"]
    return "\n".join([
        f"LSP soak, `shapelens serve` over stdio, seed-sized CNN, meta device ({os.cpu_count()} CPUs, "
        f"load average {' '.join(f'{x:.1f}' for x in r['load'])})",
        "",
        f"- {r['traces']} consecutive traces in {r['soak_s']:.0f} s; edit → hints median "
        f"{r['edit_to_hints_ms']['median']:.0f} ms, p90 {r['edit_to_hints_ms']['p90']:.0f} ms, max "
        f"{r['edit_to_hints_ms']['max']:.0f} ms (debounce included)",
        f"- RSS server {b['server_mb']:.0f} → {a['server_mb']:.0f} MB ({g['server_mb']:+.1f} %), worker "
        f"{b['worker_mb']:.0f} → {a['worker_mb']:.0f} MB ({g['worker_mb']:+.1f} %); same worker throughout: "
        f"{r['same_worker']}; trace children still alive: {len(r['lingering_children'])}",
        f"- burst of {r['burst']['edits']} edits (sent in {r['burst']['sent_s']:.1f} s): the last version's "
        f"diagnostics and hints after {r['burst']['answered_s']:.1f} s",
        f"- shutdown: {r['processes_seen']} processes seen during the session, "
        f"{len(r['left_after_shutdown'])} left after {r['shutdown_s']:.2f} s; private trace folders left: "
        f"{len(r['trace_folders_left'])}",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--traces", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args()
    result = asyncio.run(soak(args.traces, args.burst))
    print(json.dumps(result, indent=1) if args.json else render(result))
    ok = (
        not result["left_after_shutdown"]
        and not result["trace_folders_left"]
        and not result["lingering_children"]
        and all(v is not None and v <= 10 for v in result["growth_pct"].values())
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
