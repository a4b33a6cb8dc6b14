"""Scripts with the shape bugs users most often report (#10 'held-out user scripts'), each beside its correct twin
(`tests/fixtures/scripts/user_bugs/`, our own code written for the patterns of public questions: a Linear after a
flatten sized for other images, one-hot targets for CrossEntropyLoss, an LSTM without batch_first fed [B, T, F],
numpy images kept [N, H, W, C], `torch.cat` along the wrong dim, a matmul by a transposed weight, BCELoss with
[N] targets for [N, 1] outputs, a `view` that does not divide, a model called on one unbatched sample, a
`view(-1, ...)` that folds the batch so the loss sees another batch size).

Each bug script is flagged where a real CPU run raises (SL001 at that line, or SL1xx on the wrong layer's
constructor when the layer is what raised: the layer is what to change) and nowhere else; each twin has no
error and its hints are the CPU run's shapes.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import oracle
import pytest
from engine_support import Analyse
from shapelens.core.findings import FileReport
from test_scripts import assert_hints_match_cpu

BUGS = Path(__file__).parent / "fixtures" / "scripts" / "user_bugs"
NAMES = sorted(p.stem for p in BUGS.glob("*.py") if not p.stem.endswith("_ok"))


def crash_line(path: Path) -> int:
    """The line of `path` where its CPU run raises (the innermost frame in the file)."""
    _, failures = oracle.run_script_on_cpu(str(path))
    assert failures, f"{path.name}: the CPU run raises"
    error = failures[min(failures)]  # what needs its names fails after it
    return [f.lineno for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)][-1]


def errors(report: FileReport) -> list[tuple[str, int]]:
    return sorted((f.code, f.span.line) for f in report.findings if f.severity.value == "error")


def test_there_are_ten_bug_patterns_each_with_its_twin() -> None:
    assert len(NAMES) == 10
    assert all((BUGS / f"{name}_ok.py").exists() for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_a_user_shape_bug_is_flagged_where_the_cpu_run_raises(analyse: Analyse, tmp_path: Path, name: str) -> None:
    source = (BUGS / f"{name}.py").read_text()
    [report] = analyse(source, name=f"{name}.py").values()
    line = crash_line(tmp_path / f"{name}.py")
    found = errors(report)
    assert len(found) == 1, found  # one bug, one finding
    [finding] = [f for f in report.findings if f.severity.value == "error"]
    layer = finding.code.startswith("SL1")
    text = source.splitlines()
    if layer:  # on the constructor of the layer that raised: the line the CPU run's call reaches it from
        assert "nn." in text[finding.span.line - 1], (finding, line)
        assert [r.span.line for r in finding.related] == [line], (finding, line)  # "meets its input here"
    else:
        assert finding.span.line == line, (finding, line)
    assert_hints_match_cpu(report, tmp_path / f"{name}.py")


@pytest.mark.parametrize("name", NAMES)
def test_the_correct_twin_has_no_error_and_its_hints_are_the_cpu_shapes(
    analyse: Analyse, tmp_path: Path, name: str
) -> None:
    [report] = analyse((BUGS / f"{name}_ok.py").read_text(), name=f"{name}_ok.py").values()
    _, failures = oracle.run_script_on_cpu(str(tmp_path / f"{name}_ok.py"))
    assert failures == {}, "the twin runs clean on CPU"
    assert errors(report) == []
    assert not [f for f in report.findings if f.code == "SL011"], report.findings
    assert report.hints
    assert_hints_match_cpu(report, tmp_path / f"{name}_ok.py")


@pytest.mark.parametrize(
    ("name", "advice"), [("numpy_hwc", ".permute(0, 3, 1, 2)"), ("unbatched_sample", ".unsqueeze(0)")]
)
def test_a_layer_fed_a_wrong_layout_says_so_and_its_size_fix_is_not_safe(
    analyse: Analyse, name: str, advice: str
) -> None:
    # the layer's own size is right: `--fix` must not "repair" Conv2d(3, ...) into Conv2d(32, ...)
    [report] = analyse((BUGS / f"{name}.py").read_text(), name=f"{name}.py").values()
    [finding] = [f for f in report.findings if f.severity.value == "error"]
    assert advice in finding.message
    assert finding.fixes and not any(fix.safe for fix in finding.fixes)
