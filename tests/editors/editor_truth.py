"""What the editors must show for the test model, computed by running it for real on CPU with torch (never
typed by hand): the shape each `forward` line binds (tests/oracle.py) and what each layer built in
`__init__` receives and returns (forward hooks), keyed by the line where its hint goes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from oracle import directive_for, load_module, parse_directive, run_on_cpu
from torch import nn

CLASS = "ConvNet"
MODEL_FILE = "convnet.py"
WRONG = re.compile(r"nn\.Linear\((\d+ \* \d+ \* \d+), (\d+)\)")


def label(shape: tuple[int, ...] | torch.Size) -> str:
    """A shape as the hints print it: `[2, 576]`."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass
class Truth:
    line_hints: dict[int, str]  # hint line (1-based, the statement's last line) -> "[2, 576]"
    layer_hints: dict[int, str]  # constructor's last line -> "[2, 576] → [2, 120]"
    failed_at: int | None  # the line whose forward raised (the wrong Linear), None when it ran through
    error: str  # what it raised

    def names(self) -> dict[int, str]:
        return {**self.layer_hints, **self.line_hints}


def layer_lines(path: Path, class_name: str) -> dict[str, int]:
    """`self.X = Call(...)` in `__init__` -> {"X": last line}; entries of an `nn.Sequential(...)` call too
    ("features.0", ...), each at its own last line."""
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    found: dict[str, int] = {}
    for stmt in init.body:
        if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
            continue
        target = stmt.targets[0]
        if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)):
            continue
        call = stmt.value
        found[target.attr] = call.end_lineno or call.lineno
        if isinstance(call.func, ast.Attribute) and call.func.attr == "Sequential":
            for index, arg in enumerate(call.args):
                found[f"{target.attr}.{index}"] = arg.end_lineno or arg.lineno
    return found


def cpu_truth(path: Path, class_name: str = CLASS) -> Truth:
    """Runs the model in `path` on CPU: line shapes from the oracle, layer shapes from forward hooks."""
    directive = directive_for(str(path), class_name)
    run = run_on_cpu(str(path), class_name, directive=directive)
    line_hints = {r.end_line: label(r.shapes[0]) for r in run.records if r.function == "forward"}

    module = load_module(str(path))
    args, kwargs, inputs = parse_directive(directive, module.__dict__)
    torch.manual_seed(0)
    model: nn.Module = getattr(module, class_name)(*args, **kwargs)
    seen: dict[str, str] = {}

    def hook(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def record(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            seen.setdefault(name, f"{label(inputs[0].shape)} → {label(output.shape)}")

        return record

    for name, sub in model.named_modules():
        if name:
            sub.register_forward_hook(hook(name))
    failed_at, error = None, ""
    with torch.no_grad():
        try:
            model(**{k: torch.randn(v.shape) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()})
        except Exception as err:  # the wrong Linear: keep what ran before it
            error = str(err)
    if run.error is not None:
        error = str(run.error)
        failed_at = max((r.end_line for r in run.records if r.function == "forward"), default=0) + 1
    lines = layer_lines(path, class_name)
    layer_hints = {lines[name]: text for name, text in seen.items() if name in lines}
    return Truth(line_hints, layer_hints, failed_at, error)


def fixed_source(source: str, features: tuple[int, ...]) -> tuple[str, str]:
    """The model with fc1 sized from the CPU run's feature map ([N, C, H, W] -> `C * H * W`), and that
    expression."""
    expression = " * ".join(str(d) for d in features[1:])
    fixed, count = WRONG.subn(lambda m: f"nn.Linear({expression}, {m.group(2)})", source, count=1)
    assert count == 1, "the test model lost its hand-sized nn.Linear"
    return fixed, expression


@dataclass
class Expected:
    before: Truth  # the model as written (fc1 wrong: the CPU run stops at fc1)
    after: Truth  # the model with the fix applied
    flat_features: int  # what fc1 really receives: C * H * W
    fix_expression: str  # "16 * 6 * 6"
    wrong_expression: str  # "16 * 5 * 5"
    fc1_line: int
    dropout_line: int
    fixed_source: str


def expected(model_file: Path, scratch: Path) -> Expected:
    source = model_file.read_text()
    before = cpu_truth(model_file)
    assert before.failed_at is not None, "the test model must really fail on CPU at its wrong Linear"
    module = load_module(str(model_file))
    directive = directive_for(str(model_file), CLASS)
    args, kwargs, inputs = parse_directive(directive, module.__dict__)
    model = getattr(module, CLASS)(*args, **kwargs)
    with torch.no_grad():
        features = tuple(model.features(*[torch.randn(v.shape) for v in inputs.values()]).shape)
    fixed, expression = fixed_source(source, features)
    scratch.mkdir(parents=True, exist_ok=True)
    fixed_file = scratch / model_file.name
    fixed_file.write_text(fixed)
    after = cpu_truth(fixed_file)
    assert after.failed_at is None, f"the fixed model must run on CPU: {after.error}"
    match = WRONG.search(source)
    assert match is not None
    lines = source.splitlines()
    fc1_line = next(i for i, text in enumerate(lines, 1) if "self.fc1 = nn.Linear(" in text)
    dropout_line = next(i for i, text in enumerate(lines, 1) if "nn.Dropout(" in text)
    flat = 1
    for d in features[1:]:
        flat *= d
    return Expected(before, after, flat, expression, match.group(1), fc1_line, dropout_line, fixed)
