"""Model sources the LSP tests open, and the CPU truth to compare the server's hints with.

Expected shapes never come from the server's engine: `tests/oracle.py` runs the same file for real on CPU
tensors (per statement), and `layer_io` records what each layer received and returned with forward hooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import oracle
import torch
from harness import label
from torch import nn

# LeNet for 32x32 inputs with 3x3 kernels: 32 -> 30 -> 15 -> 13 -> 6, so fc1 receives 16 * 6 * 6 = 576
# features, but it was sized for LeNet-5's 5x5 kernels (16 * 5 * 5 = 400). The seed question, verbatim.
LENET = '''\
"""LeNet with a hand-sized first Linear layer."""

import torch
import torch.nn.functional as F
from torch import nn


# shapelens: x=(4, 3, 32, 32)
class LeNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=3)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=3)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.drop = nn.Dropout(p=0.25)
        self.fc2 = nn.Linear(120, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.drop(x)
        return self.fc2(x)
'''

# An embedding model: int64 inputs (dtype labels) and a statement binding several tensors.
TAGGER = '''\
"""A small LSTM tagger over token ids."""

import torch
from torch import nn


# shapelens: ids=int64(8, 20)
class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.lstm = nn.LSTM(32, 48, batch_first=True)
        self.head = nn.Linear(48, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = ids.argsort(dim=1)
        emb = self.embed(ids)
        out, (h_n, c_n) = self.lstm(emb)
        return self.head(out)
'''

# forward never returns: the trace must time out while the editor keeps answering.
HANGING = '''\
"""A model whose forward never finishes."""

import torch
from torch import nn


# shapelens: x=(2, 8)
class Forever(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        while True:
            y = y + 1
        return y
'''


def batch_model(batch: int) -> str:
    """A CNN whose batch size lives in its directive: the stress test edits it hundreds of times."""
    return f"""\
import torch
from torch import nn


# shapelens: x=({batch}, 3, 16, 16)
class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 14 * 14, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = torch.flatten(h, 1)
        return self.fc(h)
"""


def cpu_truth(path: Path, class_name: str) -> oracle.OracleRun:
    """The model's forward run for real on CPU; records stop at a failing line."""
    return oracle.run_on_cpu(str(path), class_name, directive=oracle.directive_for(str(path), class_name))


def expected_labels(run: oracle.OracleRun, path: Path) -> dict[int, str]:
    """0-based line -> the label an editor should show there, from the CPU records of `path`."""
    by_anchor: dict[tuple[int, int], list[oracle.Record]] = {}
    real = str(path.resolve())
    for record in run.records:
        if record.file == real:
            by_anchor.setdefault((record.end_line, record.end_column), []).append(record)
    out: dict[int, str] = {}
    for (end_line, _), records in by_anchor.items():
        parts = []
        for record in records:
            shapes = " | ".join(label(s, d) for s, d in zip(record.shapes, record.dtypes, strict=True))
            parts.append(shapes if len(records) == 1 else f"{record.target} {shapes}")
        out[end_line - 1] = " · ".join(parts)
    return out


def layer_io(
    model: nn.Module, inputs: dict[str, Any]
) -> dict[str, tuple[list[tuple[int, ...]], list[tuple[int, ...]]]]:
    """Each leaf layer's input and output shapes on a real CPU forward, recorded with forward hooks."""
    seen: dict[str, tuple[list[tuple[int, ...]], list[tuple[int, ...]]]] = {}

    def shapes(value: Any) -> list[tuple[int, ...]]:
        if isinstance(value, torch.Tensor):
            return [tuple(value.shape)]
        if isinstance(value, Iterable) and not isinstance(value, str):
            return [s for v in value for s in shapes(v)]
        return []

    handles = []
    for name, module in model.named_modules():
        if name and not list(module.children()):

            def hook(mod: nn.Module, args: Any, output: Any, name: str = name) -> None:
                seen.setdefault(name, (shapes(args), shapes(output)))

            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def directive_inputs(path: Path, class_name: str) -> dict[str, Any]:
    _, _, inputs = oracle.parse_directive(oracle.directive_for(str(path), class_name))
    return inputs
