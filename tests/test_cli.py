"""`shapelens check` as a user (or CI) runs it: exit codes, the text and JSON faces, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine_support import write

MODEL = """
    import torch
    from torch import nn


    # shapelens: x=(2, 20)
    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 5)

        def forward(self, x):
            h = self.fc(x)
            return h.softmax(-1)
"""


def check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shapelens.cli", "check", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_text_format_shows_the_source_with_shapes(tmp_path: Path) -> None:
    write(tmp_path, "mlp.py", MODEL)
    result = check("mlp.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "h = self.fc(x)" in result.stdout and "# h: [2, 5]" in result.stdout
    assert result.stdout.rstrip().endswith("No findings.")


def test_syntax_error_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", "import torch\nx = (\n")
    write(tmp_path, "mlp.py", MODEL)
    result = check(".", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1
    files = {f["path"]: f for f in json.loads(result.stdout)["files"]}
    [diagnostic] = files["broken.py"]["diagnostics"]
    assert diagnostic["code"] == "SL000" and diagnostic["severity"] == "error"
    assert [h["shape"] for h in files["mlp.py"]["hints"]] == [[2, 5], [2, 5]]  # the good file is still checked


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert check("missing.py", cwd=tmp_path).returncode == 2
    bad = check("--timeout", "-1", ".", cwd=tmp_path)
    assert bad.returncode == 2 and "positive" in bad.stderr


def test_cuda_without_a_gpu_says_so_and_traces_on_meta(tmp_path: Path) -> None:
    import torch

    write(tmp_path, "mlp.py", MODEL)
    result = check("mlp.py", "--device", "cuda", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0
    hints = json.loads(result.stdout)["files"][0]["hints"]
    assert [h["shape"] for h in hints] == [[2, 5], [2, 5]]
    if not torch.cuda.is_available():
        assert "no CUDA device here" in result.stderr
