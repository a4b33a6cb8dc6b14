"""Proof that the CPU oracle (`tests/oracle.py`) tells the truth: its per-line shapes are compared with what
forward hooks see on the same real run, on two tiny models written to a temporary folder, and its loading
rules (no module-level training, example calls, directives, partial records on a failing forward) are
checked on their own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))

import oracle

CNN = '''\
"""A tiny CNN: a multi-line statement, an AugAssign, a helper function and a return."""

import torch
import torch.nn.functional as F
from torch import nn


def squash(t: torch.Tensor) -> torch.Tensor:
    flat = torch.flatten(t, 1)
    return flat


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # CONV
        x = self.pool(
            F.relu(x),
        )  # POOL
        x += 1.0  # AUG
        scale = x.amax(); x = x / scale  # SEMI
        h = squash(x)  # SQUASH
        logits = self.fc(h)  # FC
        return logits  # RET


def train(model: nn.Module) -> None:
    with open(MARKER, "w") as handle:
        handle.write("trained")


MARKER = "MARKER_PATH"
model = TinyCNN()
train(model)

if __name__ == "__main__":
    net = TinyCNN()  # MAIN-NET
    images = torch.randn(2, 3, 8, 8)  # MAIN-IMAGES
    out = net(images)  # MAIN-CALL
    train(net)
'''

BLOCK = '''\
"""A block imported by the LSTM model."""

import torch
from torch import nn


class Proj(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(self.fc(x))  # PROJ
        return y
'''

LSTM = '''\
"""An LSTM model: a tuple target, a block from a sibling file used twice with two shapes, a loop."""

import torch
from block import Proj
from torch import nn


# shapelens: init(vocab=50), ids=int64(3, 7)
class Tagger(nn.Module):
    def __init__(self, vocab: int, dim: int = 12) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, 16, batch_first=True)
        self.up = Proj(16, 24)
        self.down = Proj(24, 6)
        self.mix = nn.ModuleList(nn.Linear(6, 6) for _ in range(3))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self.embed(ids)  # EMB
        out, (h_n, c_n) = self.lstm(emb)  # LSTM
        z = self.down(self.up(out))  # UPDOWN
        for layer in self.mix:
            z = layer(z)  # MIX
        return z
'''


def _line(path: Path, marker: str) -> int:
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise LookupError(marker)


def _statement_start(path: Path, marker: str) -> int:
    """The first line of the statement whose last line carries `# marker` (for multi-line statements)."""
    import ast

    end = _line(path, marker)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.stmt) and not hasattr(node, "body") and node.end_lineno == end:
            return node.lineno
    raise LookupError(marker)


def _hook_outputs(model: nn.Module, inputs: dict[str, list[Any]] | None = None) -> dict[str, list[Any]]:
    """Every submodule's outputs (and, into `inputs`, its first positional inputs), call by call."""
    seen: dict[str, list[Any]] = {}

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            seen.setdefault(name, []).append(output)
            if inputs is not None:
                inputs.setdefault(name, []).append(args[0])

        return record

    for name, module in model.named_modules():
        if name:
            module.register_forward_hook(hook(name))
    return seen


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


@pytest.fixture()
def cnn_file(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "trained.txt"
    path = tmp_path / "cnn.py"
    path.write_text(CNN.replace("MARKER_PATH", str(marker)))
    return path, marker


@pytest.fixture()
def lstm_file(tmp_path: Path) -> Path:
    (tmp_path / "block.py").write_text(BLOCK)
    path = tmp_path / "tagger.py"
    path.write_text(LSTM)
    return path


def test_cnn_lines_match_forward_hooks(cnn_file: tuple[Path, Path]) -> None:
    path, marker = cnn_file
    run = oracle.run_on_cpu(str(path), "TinyCNN", inputs={"x": (2, 3, 8, 8)})
    assert run.error is None and run.model is not None
    assert not marker.exists(), "loading the file ran the module-level train(model)"

    # The same real run, seen by forward hooks on a second model built and called the same way.
    module = oracle.load_module(str(path))
    model = module.TinyCNN()
    model.load_state_dict(run.model.state_dict())
    seen_in: dict[str, list[Any]] = {}
    seen = _hook_outputs(model, seen_in)
    x = torch.randn(2, 3, 8, 8)
    output = model(x)

    file = os.path.realpath(path)
    shapes = run.shapes()
    assert shapes[(file, _line(path, "CONV"), "x")] == [_shape(seen["conv"][0])] == [(2, 8, 6, 6)]
    pool_line = _statement_start(path, "POOL")
    assert pool_line == _line(path, "POOL") - 2  # keyed by the statement's first line
    assert shapes[(file, pool_line, "x")] == [_shape(seen["pool"][0])] == [(2, 8, 3, 3)]
    assert shapes[(file, _line(path, "AUG"), "x")] == [_shape(seen["pool"][0])]
    # Two statements on one line: one line event for both, each keeps its own targets and end column.
    semi = _line(path, "SEMI")
    semi_text = path.read_text().splitlines()[semi - 1]
    assert shapes[(file, semi, "scale")] == [()]
    assert shapes[(file, semi, "x")] == [_shape(seen["pool"][0])]
    by_end = run.by_end_line()
    assert by_end[(file, semi, "scale")].end_column == semi_text.index(";") + 1
    assert by_end[(file, semi, "x")].end_column == semi_text.index("  # SEMI") + 1
    # `squash` is a project function called from forward: its lines are recorded as well.
    assert shapes[(file, _line(path, "SQUASH"), "h")] == [_shape(seen_in["fc"][0])] == [(2, 72)]
    flat_line = next(k[1] for k in shapes if k[2] == "flat")
    assert shapes[(file, flat_line, "flat")] == [(2, 72)]
    assert shapes[(file, _line(path, "FC"), "logits")] == [_shape(seen["fc"][0])] == [(2, 5)]
    assert shapes[(file, _line(path, "RET"), "return")] == [_shape(output)] == [_shape(run.output)]

    # Where the engine's JSON hint goes: the statement's last line, just after its last character.
    pool = run.by_end_line()[(file, _line(path, "POOL"), "x")]
    assert (pool.line, pool.end_line, pool.end_column) == (pool_line, pool_line + 2, 10)
    fc = run.by_end_line()[(file, _line(path, "FC"), "logits")]
    assert fc.end_column == len("        logits = self.fc(h)") + 1
    assert fc.dtypes == ["float32"] and fc.function == "forward"
    # Nothing outside the traced run: no `__init__` line, no module-level line.
    assert {r.function for r in run.records} == {"forward", "squash"}


def test_lstm_tuple_targets_blocks_and_loops_match_hooks(lstm_file: Path) -> None:
    path = lstm_file
    directive = oracle.directive_for(str(path), "Tagger")
    assert directive == "init(vocab=50), ids=int64(3, 7)"
    run = oracle.run_on_cpu(str(path), "Tagger", directive=directive)
    assert run.error is None and run.model is not None

    module = oracle.load_module(str(path))
    model = module.Tagger(vocab=50)
    model.load_state_dict(run.model.state_dict())
    seen = _hook_outputs(model)
    model(torch.randint(0, 50, (3, 7)))

    file = os.path.realpath(path)
    block = os.path.realpath(path.parent / "block.py")
    shapes = run.shapes()
    lstm_line = _line(path, "LSTM")
    out, (h_n, c_n) = seen["lstm"][0]
    assert shapes[(file, _line(path, "EMB"), "emb")] == [_shape(seen["embed"][0])] == [(3, 7, 12)]
    assert shapes[(file, lstm_line, "out")] == [_shape(out)] == [(3, 7, 16)]
    assert shapes[(file, lstm_line, "h_n")] == [_shape(h_n)] == [(1, 3, 16)]
    assert shapes[(file, lstm_line, "c_n")] == [_shape(c_n)]
    records = {(r.file, r.line, r.target): r for r in run.records}
    assert records[(file, _line(path, "EMB"), "emb")].dtypes == ["float32"]
    # The block from the sibling file ran twice with two shapes: both kept, in the order first seen.
    assert shapes[(block, _line(path.parent / "block.py", "PROJ"), "y")] == [
        _shape(seen["up"][0]),
        _shape(seen["down"][0]),
    ]
    assert [_shape(t) for t in seen["up"] + seen["down"]] == [(3, 7, 24), (3, 7, 6)]
    assert shapes[(file, _line(path, "UPDOWN"), "z")] == [_shape(seen["down"][0])]
    # A loop body that runs three times with one shape gives one shape.
    assert shapes[(file, _line(path, "MIX"), "z")] == [_shape(seen["mix.2"][0])] == [(3, 7, 6)]


def test_example_call_under_main_and_build_expression(cnn_file: tuple[Path, Path]) -> None:
    path, marker = cnn_file
    lines = [_line(path, "MAIN-NET"), _line(path, "MAIN-IMAGES"), _line(path, "MAIN-CALL")]
    run = oracle.run_on_cpu(str(path), example_lines=lines)
    assert run.error is None
    assert not marker.exists(), "the __main__ block's train(net) ran"
    file = os.path.realpath(path)
    shapes = run.shapes()
    assert shapes[(file, _line(path, "MAIN-IMAGES"), "images")] == [(2, 3, 8, 8)]
    assert shapes[(file, _line(path, "MAIN-CALL"), "out")] == [(2, 5)]
    assert shapes[(file, _line(path, "FC"), "logits")] == [(2, 5)]

    built = oracle.cpu_line_shapes(str(path), build="TinyCNN()", inputs=["torch.randn(4, 3, 8, 8)"])
    assert built[(file, _line(path, "RET"), "return")] == [(4, 5)]
    assert not marker.exists()


def test_failing_forward_keeps_the_lines_before_it(cnn_file: tuple[Path, Path]) -> None:
    path, _ = cnn_file
    # 10x10 images give 8 * 4 * 4 features, not the 8 * 3 * 3 that `fc` declares.
    run = oracle.run_on_cpu(str(path), "TinyCNN", inputs={"x": (2, 3, 10, 10)})
    assert isinstance(run.error, RuntimeError) and "mat1 and mat2" in str(run.error)
    file = os.path.realpath(path)
    shapes = run.shapes()
    assert shapes[(file, _line(path, "SQUASH"), "h")] == [(2, 128)]
    assert (file, _line(path, "FC"), "logits") not in shapes  # the failing statement bound nothing
    with pytest.raises(RuntimeError):
        oracle.cpu_line_shapes(str(path), "TinyCNN", inputs={"x": (2, 3, 10, 10)})


def test_parse_directive() -> None:
    args, kwargs, inputs = oracle.parse_directive("init(10, hidden=2 * 8), x=(8, 3, 4), ids=int64(2, 5), flag=True")
    assert (args, kwargs) == ([10], {"hidden": 16})
    assert inputs["x"].shape == (8, 3, 4) and inputs["x"].dtype == torch.float32
    assert inputs["ids"].shape == (2, 5) and inputs["ids"].dtype == torch.int64
    assert inputs["flag"] is True
    with pytest.raises(ValueError):
        oracle.parse_directive("(8, 3)")


def test_sibling_imports_are_fresh_per_project(tmp_path: Path) -> None:
    """Two projects with a `block.py` each: every run records its own sibling, never a cached one."""
    runs = []
    for name, width in (("one", 24), ("two", 40)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "block.py").write_text(BLOCK)
        (folder / "tagger.py").write_text(
            LSTM.replace("Proj(16, 24)", f"Proj(16, {width})").replace("Proj(24,", f"Proj({width},")
        )
        runs.append(
            (
                folder,
                width,
                oracle.run_on_cpu(str(folder / "tagger.py"), "Tagger", directive="init(vocab=50), ids=int64(3, 7)"),
            )
        )
    for folder, width, run in runs:
        assert run.error is None
        block = os.path.realpath(folder / "block.py")
        proj_line = _line(folder / "block.py", "PROJ")
        assert run.shapes()[(block, proj_line, "y")] == [(3, 7, width), (3, 7, 6)]
    assert "block" not in sys.modules
