"""Library models (issue #9 item 6): how long a trace of a transformers model takes, cold and warm.

- user file: a GPT-2 built from a small config with an example call (`model = GPT2LMHeadModel(GPT2Config(
  n_layer=2, ...)); logits = model(input_ids=ids).logits`): the first trace after the worker started (the
  child imports transformers), then the same file again (the worker has imported what the first child did);
- site-packages files: `transformers/models/{gpt2,llama,bert}/modeling_*.py` checked as they are, each once
  warm, with the models that got shapes and their inputs.

Run: `.venv/bin/python bench/library_models.py`. Numbers, not a test (the machine is shared: print the load).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from shapelens.analysis.engine import analyze
from shapelens.analysis.worker_client import TraceWorker
from shapelens.core.options import Options

USER = textwrap.dedent("""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2))
    ids = torch.randint(0, 100, (2, 16))
    logits = model(input_ids=ids).logits
""")


def timed(worker: TraceWorker, path: str, text: str) -> tuple[float, dict]:  # type: ignore[type-arg]
    started = time.perf_counter()
    reports = analyze(path, text, Options(), worker)
    return time.perf_counter() - started, reports


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    worker = TraceWorker()
    worker.ensure_started()
    print(f"worker start: {time.perf_counter() - started:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "gpt2_user.py")
        Path(path).write_text(USER)
        for label in ("cold (child imports transformers)", "warm", "warm"):
            seconds, reports = timed(worker, path, USER)
            hints = {h.target: h.shape for h in reports[path].hints}
            print(f"user file, {label}: {seconds:.2f} s  logits={hints.get('logits')}")
    spec = importlib.util.find_spec("transformers")
    assert spec is not None and spec.origin is not None
    for name in sys.argv[1:] or ["gpt2", "llama", "bert"]:
        site = Path(spec.origin).parent / "models" / name / f"modeling_{name}.py"
        seconds, reports = timed(worker, str(site), site.read_text())
        report = reports[str(site)]
        shaped = [m.name for m in report.models if m.inputs]
        print(
            f"{site.name}: {seconds:.2f} s, {len(report.hints)} hints, models with inputs {len(shaped)}/"
            f"{len(report.models)}: {', '.join(shaped)}; findings {[f.code for f in report.findings]}"
        )
    worker.close()


if __name__ == "__main__":
    main()
