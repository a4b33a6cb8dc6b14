"""End to end: `shapelens check examples/ --format json` in a subprocess, judged against the truth.

- Every hint the engine emits for a correct example must be what a real CPU run of the same model bound at
  that statement (`tests/oracle.py`: same first line, target, shape and dtype; the label placed at the
  statement's `end_line` and end `column`),
  and every statement the CPU run saw in a traced function must have its hints. For an example with a
  deliberate shape bug, the lines the CPU run reached before the failure are checked the same way; hints
  after it (where the engine continues past the mismatch) have no CPU truth and are not judged.
- The findings per example are exactly the expected ones (code, severity, line, and for layer mismatches
  the column range of the constructor argument); no other error, warning or information.
- Module-level `train(model)` and a `__main__` training loop never run (their marker file stays absent).
- `--fix` on a copy of the SL101 example removes the finding, and the fixed file runs on CPU.
- Exit status: 0 without error findings, 1 with any, 2 for a missing path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import oracle

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
MARKER_ENV = "SHAPELENS_EXAMPLE_MARKER"
REPORTED = ("error", "warning", "information")  # severities that must all be expected ("hint" is free)


def shapelens_command() -> list[str]:
    cli = REPO / ".venv" / "bin" / "shapelens"
    if cli.exists():
        return [str(cli)]
    return [sys.executable, "-m", "shapelens.cli"]


def run_check(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shapelens_command(), "check", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


# -- what each example should produce ------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """One finding: `code` with `severity` on the (unique) line containing one of `anchors`; with `arg`, its
    range must be exactly that text inside the constructor call that follows `call`."""

    code: str
    severity: str
    anchors: tuple[str, ...]
    call: str | None = None
    arg: str | None = None


EXPECTED: dict[str, list[Expect]] = {
    "lenet_flatten.py": [
        Expect("SL101", "error", ("self.fc1 = nn.Linear(16 * 5 * 5, 120)",), "nn.Linear(", "16 * 5 * 5")
    ],
    "conv1d_sensor.py": [
        Expect(
            "SL101",
            "error",
            ("self.classifier = nn.Linear(",),
            "nn.Linear(",
            "64 * (window // 2 - kernel_size + 1)",
        )
    ],
    "dropout_order.py": [
        # statement order: the finding may sit on the dropout or on the activation it precedes
        Expect("SL201", "warning", ("h = self.drop(h)", "h = self.act(h)")),
        Expect("SL201", "warning", ("h = F.gelu(self.drop(self.proj(x)))",)),
        Expect("SL201", "information", ("nn.Dropout(0.5),", "nn.ReLU(),")),
    ],
    "dropout_keeps_shape.py": [],
    "masked_tokens.py": [],
    "functional_dropout.py": [Expect("SL202", "warning", ("pooled = F.dropout(pooled, p=0.3)",))],
    "runtime_resize.py": [
        Expect("SL204", "warning", ("self.classifier.in_features = x.shape[1]",)),
        Expect("SL101", "error", ("self.classifier = nn.Linear(1, num_classes)",), "nn.Linear(", "1"),
    ],
    "lstm_stack.py": [
        Expect("SL104", "error", ("self.decoder = nn.LSTM(hidden, hidden",), "nn.LSTM(", "hidden"),
    ],
    "lstm_tagger.py": [],
    "lstm_packed.py": [],
    "transformer_block.py": [],
    "unet.py": [],
    "blocks.py": [],
    "uses_blocks.py": [],
    "train_at_import.py": [],
    "train_main.py": [],
    "sequential_mnist.py": [
        # the Linear after it is right for 8 channels: no cascaded SL101 from a substituted 16-channel output
        Expect("SL103", "error", ("nn.BatchNorm2d(16),",), "nn.BatchNorm2d(", "16"),
    ],
    "dropout_variants.py": [
        # on the layer's constructor or on the forward line where it met the tensor
        Expect("SL203", "warning", ("self.drop = nn.Dropout2d(0.2)", "h = self.drop(h)")),
        Expect("SL203", "warning", ("self.drop = nn.AlphaDropout(0.1)", "h = self.drop(self.act(self.fc1(x)))")),
    ],
}

# Examples whose input comes from an example call, not a directive: the statements that call needs.
EXAMPLE_CALLS: dict[str, list[str]] = {
    "train_at_import.py": ["model = ChurnMLP(num_features=20)", "logits = model(torch.randn(64, 20))"],
    "train_main.py": ["net = DigitNet()", "images = torch.randn(16, 1, 28, 28)", "logits = net(images)"],
    "lstm_packed.py": [
        "encoder = PackedEncoder(vocab_size=500)",
        "ids = torch.randint(1, 500, (4, 12))",
        "lengths = torch.tensor([12, 9, 7, 3])",
        "logits = encoder(ids, lengths)",
    ],
}


# Statements of each example's top level that the CPU run of its script must not run (they write or print):
# shapelens skips a print and a write up front, and the sandbox refuses the marker write inside `train`.
SCRIPT_SKIPS: dict[str, list[str]] = {
    # `train(model)` is stepped into: the refused write is all it leaves out (its loop has shapes)
    "train_at_import.py": ["with open(MARKER", "print("],
    "train_main.py": ["print(", "with open(MARKER"],
}


def lines_starting(path: Path, text: str) -> list[int]:
    return [n for n, line in enumerate(path.read_text().splitlines(), start=1) if line.strip().startswith(text)]


def line_of(path: Path, text: str) -> int:
    """The one line of `path` that starts with `text` (a test-table mistake if there are none or several)."""
    lines = path.read_text().splitlines()
    found = [n for n, line in enumerate(lines, start=1) if line.strip().startswith(text)]
    assert len(found) == 1, f"{path.name}: {text!r} is on lines {found}, want exactly one"
    return found[0]


# -- the engine's answer (one run over the folder) and the truth --------------------------------------


@dataclass
class CheckRun:
    proc: subprocess.CompletedProcess[str]
    document: dict[str, Any]
    marker: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # realpath -> merged file entry


@pytest.fixture(scope="session")
def check_run(tmp_path_factory: pytest.TempPathFactory) -> CheckRun:
    marker = tmp_path_factory.mktemp("marker") / "trained.txt"
    proc = run_check("examples/", "--format", "json", env={MARKER_ENV: str(marker)})
    assert proc.returncode in (0, 1), f"shapelens check crashed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    try:
        document = json.loads(proc.stdout)
    except json.JSONDecodeError as err:  # e.g. user code printed into our stdout
        pytest.fail(f"stdout is not the JSON document ({err}):\n{proc.stdout[:2000]}\n{proc.stderr[-3000:]}")
    run = CheckRun(proc, document, marker)
    for entry in document["files"]:
        real = os.path.realpath(REPO / entry["path"])
        merged = run.files.setdefault(real, {"hints": [], "diagnostics": []})
        merged["hints"] += entry["hints"]
        merged["diagnostics"] += entry["diagnostics"]
    return run


@dataclass
class Truth:
    """The union of the CPU runs of every model traced from the examples, keyed like the JSON hints."""

    records: dict[tuple[str, int, str], list[oracle.Record]] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)  # file -> "Model: error" of runs that raised

    def shapes(self, key: tuple[str, int, str]) -> set[tuple[tuple[int, ...], str]]:
        return {(s, d) for r in self.records.get(key, []) for s, d in zip(r.shapes, r.dtypes, strict=True)}


def oracle_runs() -> Iterator[tuple[str, str, oracle.OracleRun]]:
    """(example file name, model, CPU run) for every model the engine should trace in examples/."""
    for name in sorted(EXPECTED):
        path = EXAMPLES / name
        if name in EXAMPLE_CALLS:
            lines = [line_of(path, statement) for statement in EXAMPLE_CALLS[name]]
            yield name, "example call", oracle.run_on_cpu(str(path), example_lines=lines, root=str(EXAMPLES))
            continue
        for class_name, directive in oracle.directives_in_file(str(path)).items():
            run = oracle.run_on_cpu(str(path), class_name, directive=directive, root=str(EXAMPLES))
            yield name, class_name, run
    for name in sorted(EXPECTED):  # each file's top level, run as a script (#10)
        path = EXAMPLES / name
        skip = [line for text in SCRIPT_SKIPS.get(name, []) for line in lines_starting(path, text)]
        run, _ = oracle.run_script_on_cpu(str(path), skip_lines=skip, root=str(EXAMPLES))
        yield name, "script", run


@pytest.fixture(scope="session")
def truth(tmp_path_factory: pytest.TempPathFactory) -> Truth:
    marker = tmp_path_factory.mktemp("oracle-marker") / "trained.txt"
    os.environ[MARKER_ENV] = str(marker)  # the oracle loads the files too; it must not train either
    try:
        result = Truth()
        for name, model, run in oracle_runs():
            for record in run.records:
                result.records.setdefault((record.file, record.line, record.target), []).append(record)
            if run.error is not None:
                file = os.path.realpath(EXAMPLES / name)
                result.failed.setdefault(file, []).append(f"{model}: {run.error}")
        assert not marker.exists(), "the oracle ran an example's training code"
        return result
    finally:
        del os.environ[MARKER_ENV]


# -- tests ---------------------------------------------------------------------------------------------


def test_check_exits_1_and_emits_the_json_contract(check_run: CheckRun) -> None:
    assert check_run.proc.returncode == 1, "the SL101/SL104 examples are errors: exit status 1"
    assert check_run.document["version"] == 2
    for entry in check_run.document["files"]:
        assert set(entry) >= {"path", "hints", "diagnostics"}
        for hint in entry["hints"]:
            assert set(hint) >= {"line", "column", "end_line", "target", "shape", "dtype", "label"}
        for diagnostic in entry["diagnostics"]:
            assert set(diagnostic) >= {
                "line",
                "column",
                "end_line",
                "end_column",
                "code",
                "severity",
                "message",
            }
            assert diagnostic["severity"] in ("error", "warning", "information", "hint")
            for fix in diagnostic.get("fixes", []):
                assert set(fix) >= {"title", "safe", "edits"}
    outside = [
        e["path"] for e in check_run.document["files"] if not (REPO / e["path"]).resolve().is_relative_to(EXAMPLES)
    ]
    assert not outside, f"reports for files outside examples/ (the trace entered no such project file): {outside}"
    missing = [n for n in EXPECTED if os.path.realpath(EXAMPLES / n) not in check_run.files]
    assert not missing, f"no report for {missing}"


def test_every_example_is_in_the_expectation_table() -> None:
    on_disk = {p.name for p in EXAMPLES.glob("*.py") if p.name != "broken_syntax.py"}
    assert on_disk == set(EXPECTED), "add new examples to EXPECTED (and examples/README.md)"


def test_training_code_did_not_run(check_run: CheckRun) -> None:
    assert not check_run.marker.exists(), f"training ran under shapelens: {check_run.marker.read_text()!r}"
    for printed in ("training ChurnMLP", "epoch 0:"):  # what the training code prints
        assert printed not in check_run.proc.stdout and printed not in check_run.proc.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hints_match_a_cpu_run(name: str, check_run: CheckRun, truth: Truth) -> None:
    file = os.path.realpath(EXAMPLES / name)
    hints = check_run.files.get(file, {"hints": []})["hints"]
    failed = truth.failed.get(file)
    problems: list[str] = []

    # 1. every hint is what the CPU run bound there (an unknown dimension, `None`, must say why)
    got: dict[tuple[str, int, str], set[tuple[Shape, str]]] = {}
    for hint in hints:
        key = (file, hint["line"], hint["target"])
        shape: Shape = tuple(hint["shape"])
        got.setdefault(key, set()).add((shape, hint["dtype"]))
        expected = truth.records.get(key)
        if expected is None:
            if not failed:  # after a deliberate failure the CPU run has no truth to compare with
                problems.append(f"line {hint['line']} {hint['target']}: hint {list(shape)}, CPU run: no tensor")
            continue
        if not any(fits(shape, hint["dtype"], cpu) for cpu in truth.shapes(key)):
            cpu = sorted(truth.shapes(key))
            problems.append(f"line {hint['line']} {hint['target']}: got {list(shape)} {hint['dtype']}, CPU run: {cpu}")
        if None in shape and not hint.get("unknown"):
            problems.append(f"line {hint['line']} {hint['target']}: {list(shape)} has an unknown dimension, no reason")
        ends = {(r.end_line, r.end_column) for r in expected}
        if (hint.get("end_line"), hint["column"]) not in ends:
            problems.append(
                f"line {hint['line']} {hint['target']}: label at {hint.get('end_line')}:{hint['column']}, "
                f"statement ends at {sorted(ends)}"
            )
        if hint["label"] != oracle_label(shape, hint["dtype"]):
            problems.append(f"line {hint['line']} {hint['target']}: label {hint['label']!r} for {list(shape)}")

    # 2. every statement the CPU run saw in a function has its hints (all its shapes)
    for key, records in sorted(truth.records.items()):
        if key[0] != file or key[2] == "_" or all(r.function == "<module>" for r in records):
            continue
        want = truth.shapes(key)
        if key not in got:
            problems.append(f"line {key[1]} {key[2]}: no hint, CPU run: {sorted(want)}")
        elif not failed and not all(any(fits(s, d, cpu) for s, d in got[key]) for cpu in want):
            problems.append(f"line {key[1]} {key[2]}: hints {sorted(got[key], key=str)}, CPU run: {sorted(want)}")
    assert not problems, f"{name} (CPU run failed: {failed})\n" + "\n".join(problems)


Shape = tuple[int | None, ...]


def fits(shape: Shape, dtype: str, cpu: tuple[tuple[int, ...], str]) -> bool:
    """A hint fits a CPU shape: same dtype and rank, every known dimension equal (None: unknown, not guessed)."""
    cpu_shape, cpu_dtype = cpu
    return (
        dtype == cpu_dtype
        and len(shape) == len(cpu_shape)
        and all(d is None or d == c for d, c in zip(shape, cpu_shape, strict=True))
    )


def oracle_label(shape: Shape, dtype: str) -> str:
    return f"{'' if dtype == 'float32' else dtype}[{', '.join('?' if d is None else str(d) for d in shape)}]"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings_are_exactly_the_expected_ones(name: str, check_run: CheckRun) -> None:
    path = EXAMPLES / name
    diagnostics = [d for d in check_run.files.get(os.path.realpath(path), {"diagnostics": []})["diagnostics"]]
    reported = [d for d in diagnostics if d["severity"] in REPORTED]
    unmatched = list(reported)
    problems: list[str] = []
    for expect in EXPECTED[name]:
        lines = {line_of(path, anchor) for anchor in expect.anchors}
        hits = [d for d in unmatched if d["code"] == expect.code and d["line"] in lines]
        if len(hits) != 1:
            problems.append(f"want one {expect.code} on line {sorted(lines)}, got {[_brief(d) for d in hits]}")
            continue
        hit = hits[0]
        unmatched.remove(hit)
        if hit["severity"] != expect.severity:
            problems.append(f"{_brief(hit)}: severity {hit['severity']}, want {expect.severity}")
        if expect.arg is not None and expect.call is not None:
            line = next(iter(lines))
            text = path.read_text().splitlines()[line - 1]
            column = text.index(expect.arg, text.index(expect.call) + len(expect.call)) + 1
            want = (line, column, line, column + len(expect.arg))
            span = (hit["line"], hit["column"], hit["end_line"], hit["end_column"])
            if span != want:
                problems.append(f"{_brief(hit)}: range {span}, want the argument {expect.arg!r} at {want}")
    problems += [f"unexpected {_brief(d)}" for d in unmatched]
    assert not problems, f"{name}:\n" + "\n".join(problems)


def _brief(diagnostic: dict[str, Any]) -> str:
    return (
        f"{diagnostic['code']} {diagnostic['severity']} at {diagnostic['line']}:{diagnostic['column']} "
        f"{diagnostic['message'][:120]!r}"
    )


def test_correct_examples_exit_0() -> None:
    correct = [
        str(EXAMPLES / n) for n, expects in sorted(EXPECTED.items()) if not any(e.severity == "error" for e in expects)
    ]
    proc = run_check(*correct)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_text_format_is_ruff_style() -> None:
    path = EXAMPLES / "lenet_flatten.py"
    proc = run_check(str(path.relative_to(REPO)))
    assert proc.returncode == 1
    line = line_of(path, "self.fc1 = nn.Linear(16 * 5 * 5, 120)")
    text = path.read_text().splitlines()[line - 1]
    column = text.index("16 * 5 * 5") + 1
    assert f"examples/lenet_flatten.py:{line}:{column}: SL101" in proc.stdout


def test_missing_path_exits_2(tmp_path: Path) -> None:
    proc = run_check(str(tmp_path / "no_such_model.py"))
    assert proc.returncode == 2
    assert "no_such_model.py" in proc.stderr


# Examples whose findings carry a safe fix, and what must be gone once `--fix` applied them all.
SAFE_FIXES: dict[str, set[str]] = {
    "lenet_flatten.py": {"SL101"},
    "conv1d_sensor.py": {"SL101"},
    "runtime_resize.py": {"SL101"},  # SL204 stays: it has no safe fix
    "lstm_stack.py": {"SL104"},
    "functional_dropout.py": {"SL202"},
    "sequential_mnist.py": {"SL103"},
}


@dataclass
class FixRun:
    folder: Path
    fix: subprocess.CompletedProcess[str]
    again: subprocess.CompletedProcess[str]
    diagnostics: dict[str, list[dict[str, Any]]]  # file name -> diagnostics after the fix


@pytest.fixture(scope="session")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> FixRun:
    """Copies of the examples with safe fixes, `check --fix` once over them, then checked again."""
    folder = tmp_path_factory.mktemp("fixed")
    for name in SAFE_FIXES:
        shutil.copy(EXAMPLES / name, folder / name)
    fix = run_check(".", "--fix", cwd=folder)
    assert fix.returncode in (0, 1), fix.stderr[-3000:]
    again = run_check(".", "--format", "json", cwd=folder)
    diagnostics = {Path(f["path"]).name: f["diagnostics"] for f in json.loads(again.stdout)["files"]}
    return FixRun(folder, fix, again, diagnostics)


def test_fix_rewrites_in_features_as_the_traced_product(fixed: FixRun) -> None:
    text = (fixed.folder / "lenet_flatten.py").read_text()
    original = (EXAMPLES / "lenet_flatten.py").read_text()
    assert text == original.replace("nn.Linear(16 * 5 * 5, 120)", "nn.Linear(16 * 6 * 6, 120)")
    assert "lenet_flatten.py" in fixed.fix.stderr  # --fix says what it changed


@pytest.mark.parametrize("name", sorted(SAFE_FIXES))
def test_safe_fixes_give_a_model_that_runs(name: str, fixed: FixRun) -> None:
    """A fix marked safe must be right: after `--fix`, no error is left, the fixed codes are gone, and every
    model of the file runs on CPU (a wrong "safe" fix, e.g. one derived from a cascaded mismatch, fails here)."""
    copy = fixed.folder / name
    assert copy.read_text() != (EXAMPLES / name).read_text(), f"--fix changed nothing in {name}"
    diagnostics = fixed.diagnostics.get(name, [])
    left = [_brief(d) for d in diagnostics if d["code"] in SAFE_FIXES[name] or d["severity"] == "error"]
    assert not left, f"after --fix:\n{copy.read_text()}\nstill: {left}"

    directives = oracle.directives_in_file(str(copy))
    runs = [oracle.run_on_cpu(str(copy), cls, directive=d) for cls, d in directives.items()]
    if not directives:  # module-level models: run the file's assignments (the example calls)
        runs = [oracle.run_on_cpu(str(copy), example_lines=_module_assignments(copy))]
    for run in runs:
        assert run.error is None, f"the fixed {name} does not run on CPU: {run.error}\n{copy.read_text()}"


def test_fixed_copies_exit_0(fixed: FixRun) -> None:
    errors = [f"{n}: {_brief(d)}" for n, ds in fixed.diagnostics.items() for d in ds if d["severity"] == "error"]
    assert not errors, errors
    assert fixed.again.returncode == 0


def _module_assignments(path: Path) -> list[int]:
    import ast

    return [s.lineno for s in ast.parse(path.read_text()).body if isinstance(s, ast.Assign)]
