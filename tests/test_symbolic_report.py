"""The symbolic pass's account (#13) as the faces receive it: what the trace child reports beside each shape
(`Record.symbolic`, `TracedInput.symbolic`, `TargetResult.dims`/`accepts`, `Mismatch.symbolic`) reaches the
report's hints and models and the SL101 message unchanged — labels as the trace wrote them, never parsed here.

The trace results are built by hand first, then one real trace shows the faces get what they show (the editor's
end-to-end test is tests/lsp/test_symbolic_faces.py).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from engine_support import Analyse
from shapelens.analysis.plan import build_plan
from shapelens.analysis.trace_report import reports_from_trace
from shapelens.core.findings import FileReport, Hint, merge_hints
from shapelens.core.options import Options
from shapelens.core.source import Source, parse
from shapelens.core.symbolic import evaluate_shape
from shapelens.core.wire import Mismatch, Record, Site, Status, TargetResult, TracedInput, TraceResult

LENET = """\
from torch import nn


# shapelens: x=(4, 3, 32, 32)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)

    def forward(self, x):
        x = self.conv(x)
        return self.fc1(x.flatten(1))
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _source(tmp_path: Path) -> Source:
    path = tmp_path / "model.py"
    path.write_text(LENET, encoding="utf-8")
    source = parse(str(path), textwrap.dedent(LENET))
    assert isinstance(source, Source)
    return source


def _record(path: str, line: int, target: str, shapes: list[list[int | None]], symbolic: list) -> Record:  # type: ignore[type-arg]
    return Record(path, line, line, 30, target, shapes, "float32", "meta", symbolic=symbolic)


def _report(tmp_path: Path, target: TargetResult) -> FileReport:
    source = _source(tmp_path)
    plan = build_plan(source, str(tmp_path), Options())
    return reports_from_trace(source, plan, TraceResult([target], []), {source.path: source.text})[source.path]


def test_hints_models_and_mismatches_carry_the_symbolic_account(tmp_path: Path) -> None:
    path = str(tmp_path / "model.py")
    conv, ret = line_of(LENET, "x = self.conv(x)"), line_of(LENET, "return self.fc1")
    fc1 = line_of(LENET, "nn.Linear(16 * 5 * 5, 120)")
    column = LENET.splitlines()[fc1 - 1].index("nn.Linear")
    said = "fc1 expects 400 = 16·5·5 features; it gets 16·(H/4 - 3)², which is 400 only for H = 32"
    mismatch = Mismatch(
        "SL101", "Linear", Site(path, fc1, column, fc1, column + len("nn.Linear(16 * 5 * 5, 120)")),
        "in_features", 400, 12544, [16, 28, 28], [path, ret], [4, 12544], symbolic=said,
    )  # fmt: skip
    target = TargetResult(
        "Net",
        Status.OK,
        "meta",
        records=[_record(path, conv, "x", [[4, 16, 28, 28]], [["B", 16, "H - 4", "W - 4"]])],
        mismatches=[mismatch],
        inputs=[TracedInput("x", [4, 3, 32, 32], "float32", symbolic=["B", 3, "H", "W"])],
        dims={"B": 4, "H": 32, "W": 32},
        accepts="x: [B, 3, H, W] with 16·(H - 4)·(W - 4) = 400",
    )
    report = _report(tmp_path, target)
    [hint] = report.hints
    assert hint.shapes == [(4, 16, 28, 28)] and hint.symbolic == [("B", 16, "H - 4", "W - 4")]
    [model] = report.models
    assert model.dims == {"B": 4, "H": 32, "W": 32}
    assert model.accepts == "x: [B, 3, H, W] with 16·(H - 4)·(W - 4) = 400"
    assert [(i.name, i.shape, i.symbolic) for i in model.inputs] == [("x", (4, 3, 32, 32), ("B", 3, "H", "W"))]
    [finding] = report.findings
    assert finding.code == "SL101"
    assert finding.message.startswith("Linear(in_features=400) receives [4, 12544]: ")
    assert finding.message.endswith(f" — {said}")  # the symbolic view after the numbers, as the trace said it


def test_without_the_symbolic_pass_nothing_changes(tmp_path: Path) -> None:
    path = str(tmp_path / "model.py")
    conv = line_of(LENET, "x = self.conv(x)")
    target = TargetResult(
        "Net",
        Status.OK,
        "meta",
        records=[_record(path, conv, "x", [[4, 16, 28, 28]], [])],
        inputs=[TracedInput("x", [4, 3, 32, 32], "float32")],
    )
    report = _report(tmp_path, target)
    assert [h.symbolic for h in report.hints] == [[]]
    [model] = report.models
    assert model.dims == {} and model.accepts is None and model.inputs[0].symbolic is None


def test_merged_hints_keep_each_shape_beside_its_symbolic_form() -> None:
    def hint(shape: tuple[int, ...], form: tuple[int | str, ...] | None) -> Hint:
        return Hint("/m.py", 3, 3, 9, "y", [shape], "float32", "meta", symbolic=[] if form is None else [form])

    # a block two models reached: one traced with the symbolic pass, one without, one at another batch
    merged = merge_hints([hint((4, 16), ("B", 16)), hint((2, 16), None), hint((8, 16), ("B", 16))])
    [one] = merged
    assert one.shapes == [(4, 16), (2, 16), (8, 16)]
    assert one.symbolic == [("B", 16), None, ("B", 16)]
    assert [one.symbolic_of(i) for i in range(4)] == [("B", 16), None, ("B", 16), None]
    [plain] = merge_hints([hint((4, 16), None), hint((2, 16), None)])
    assert plain.symbolic == []


# -- through the real trace ------------------------------------------------------------------------------


def test_the_real_trace_fills_what_the_faces_show(analyse: Analyse, tmp_path: Path) -> None:
    reports = analyse(LENET, symbolic=True)  # as `check --format json` (version 2) and the editor ask for it
    report = reports[str(tmp_path / "model.py")]
    [model] = report.models
    assert model.dims.get("B") == 4 and model.accepts and model.accepts.startswith("x: [B, 3, H, W]")
    assert [i.symbolic for i in model.inputs] == [("B", 3, "H", "W")]
    [hint] = [h for h in report.hints if h.line == line_of(LENET, "x = self.conv(x)")]
    [form] = hint.symbolic
    assert form is not None and form[:2] == ("B", 16)
    assert evaluate_shape(form, model.dims) == hint.shape == (4, 16, 28, 28)
    [finding] = [f for f in report.findings if f.code == "SL101"]
    assert " — fc1 expects 400" in finding.message, finding.message
