"""Unit tests of the server's pure parts: UTF-16 columns, labels, settings validation, result shifting."""

from __future__ import annotations

import sys

from lsprotocol import types
from shapelens.analysis import outline as outline_mod
from shapelens.core.findings import (
    Edit,
    FileReport,
    Finding,
    Fix,
    Hint,
    LayerCall,
    LayerInfo,
    Related,
    Severity,
    Span,
    merge_hints,
)
from shapelens.lsp import convert, render
from shapelens.lsp.settings import Settings, parse_settings
from shapelens.lsp.shift import Change, shift_report

# -- columns -----------------------------------------------------------------------------------------------


def test_utf16_columns_count_astral_characters_twice() -> None:
    line = 'y = f("🙂é") + x'  # 🙂 is outside the BMP: 2 UTF-16 units, 4 UTF-8 bytes
    end = len(line)
    assert convert.char_to_unit(line, end) == end + 1
    assert convert.char_to_unit(line, end, convert.UTF8) == len(line.encode("utf-8"))
    assert convert.char_to_unit(line, end, convert.UTF32) == end
    for char in range(len(line) + 1):
        assert convert.unit_to_char(line, convert.char_to_unit(line, char)) == char


def test_position_clamps_into_the_document() -> None:
    text = convert.Text.of("ab\r\ncd🙂\n")
    assert text.lines == ["ab", "cd🙂", ""]
    assert text.position(2, 4) == types.Position(1, 4)  # after the emoji: 2 + 2 units
    assert text.position(2, 99) == types.Position(1, 4)  # past the end of the line
    assert text.position(9, 1) == types.Position(2, 0)  # past the last line


def test_diagnostic_carries_code_link_related_and_fix() -> None:
    span = Span("/m.py", 2, 5, 2, 8)
    fix = Fix("Set it", (Edit(Span("/m.py", 2, 5, 2, 8), "576"),), safe=True)
    related = Related(Span("/m.py", 3, 1, 3, 6), "fc1 met its input here")
    finding = Finding("SL101", Severity.ERROR, span, "bad", fixes=(fix,), related=(related,))
    text = convert.Text.of("x\nab🙂dxxx\nz = 1\n")
    diag = convert.diagnostic(finding, lambda p: text, lambda p: "file://" + p, 7)
    assert diag.code == "SL101" and diag.source == "shapelens"
    assert diag.code_description is not None and diag.code_description.href.endswith("#sl101-linear-in-features")
    assert diag.range == types.Range(types.Position(1, 5), types.Position(1, 8))  # after the 2-unit emoji
    assert diag.related_information and diag.related_information[0].message == related.message
    data = diag.data
    assert data is not None and data["version"] == 7
    assert data["fixes"][0]["edits"][0]["newText"] == "576"


# -- labels ------------------------------------------------------------------------------------------------


def _hint(target: str, *shapes: tuple[int | None, ...], dtype: str = "float32", line: int = 1) -> Hint:
    return Hint("/m.py", line, line, 20, target, list(shapes), dtype, "meta", producer="Conv2d")


def test_labels() -> None:
    assert render.line_label([_hint("x", (8, 16, 14, 14))]) == "[8, 16, 14, 14]"
    assert render.line_label([_hint("ids", (8, 20), dtype="int64")]) == "int64[8, 20]"
    assert render.line_label([_hint("ids", (8, 20), dtype="int64")], show_dtype=False) == "[8, 20]"
    two = [_hint("output", (5, 30, 48)), _hint("h_n", (2, 5, 48))]
    assert render.line_label(two) == "output [5, 30, 48] · h_n [2, 5, 48]"
    assert render.line_label([_hint("x", (2, None))]) == "[2, ?]"
    # `return self.cls(h), (self.box(h), h.mean(1)), None`: the tuple as the code returns it, tensors only
    returned = [_hint("return[0]", (2, 4)), _hint("return[1][0]", (2, 2)), _hint("return[1][1]", (2,))]
    assert render.line_label(returned) == "([2, 4], ([2, 2], [2]))"
    assert render.line_label([_hint("return[1]", (2, 4))]) == "([2, 4])"  # return None, x: one tensor, still a tuple
    assert render.variable_markdown(returned[1]).startswith("```python\n(return) [1][0]: Tensor[2, 2]")
    many = _hint("x", (1,), (2,), (3,), (4,))
    assert render.shapes_label(many) == "[1] | [2] | … +2"


def test_layer_label_and_markdown() -> None:
    layer = LayerInfo(
        "fc1",
        "Linear",
        Span("/m.py", 3, 20, 3, 40),
        params=69240,
        param_bytes=276960,
        flops=553920,
        calls=[LayerCall(9, "/m.py", [(4, 576)], [(4, 120)])],
        model="LeNet",
    )
    assert render.layer_label([layer]) == "[4, 576] → [4, 120]"
    assert render.display_name("features.3") == "features[3]"
    assert render.display_name("layer1.0.conv1") == "layer1[0].conv1"
    md = render.layer_markdown([layer])
    assert "69,240" in md and "270.5 KiB" in md and "553.9 KFLOPs" in md and "nn.Linear" in md
    drop = LayerInfo("drop", "Dropout", layer.span, 0, 0, 0, extra={"p": 0.5, "training": False})
    md = render.layer_markdown([drop])
    assert "1/(1-0.5) = 2" in md and "identity" in md and "**eval** mode" in md and "never changes a shape" in md


def test_hints_of_two_traces_merge_per_statement_and_target() -> None:
    block_alone = _hint("out", (2, 16, 16, 16))
    from_model = _hint("out", (2, 16, 32, 32), (2, 16, 16, 16))
    (merged,) = merge_hints([block_alone, from_model])
    assert merged.shapes == [(2, 16, 16, 16), (2, 16, 32, 32)]
    assert block_alone.shapes == [(2, 16, 16, 16)]  # the inputs are not changed


def test_inlay_hints_group_statements_and_respect_the_range() -> None:
    text = convert.Text.of("a\n" * 10)
    hints = [_hint("out", (5, 30, 48), line=2), _hint("h_n", (2, 5, 48), line=2), _hint("y", (3,), line=6)]
    hints[0].end_column = hints[1].end_column = hints[2].end_column = 2
    out = convert.inlay_hints(hints, [], text)
    assert [h.label for h in out] == ["out [5, 30, 48] · h_n [2, 5, 48]", "[3]"]
    rng = types.Range(types.Position(4, 0), types.Position(9, 0))
    assert [h.label for h in convert.inlay_hints(hints, [], text, rng)] == ["[3]"]


# -- hover targets -----------------------------------------------------------------------------------------


def test_word_at_and_outline() -> None:
    word = outline_mod.word_at("        x = self.fc1(x)", 18)
    assert word == outline_mod.Word("fc1", 17, 20, True)
    assert outline_mod.word_at("   ", 1) is None
    src = (
        "class A:\n    def __init__(self):\n        self.fc = nn.Linear(2, 3)\n"
        "    def forward(self, x):\n        return x\n"
    )
    found = outline_mod.outline("/m.py", src)
    assert found is not None
    assert found.attributes[(3, 19, 3, 34)] == ("A", "fc")
    assert found.enclosing_class(5) == "A"
    assert found.enclosing_function(5) == (4, 5)
    assert outline_mod.outline("/m.py", "def (") is None
    code = outline_mod.outline("/m.py", "x = f(\n    x)\ny = 1\n")
    assert code is not None
    assert code.in_value(1, 1) is None and code.in_value(1, 5) == 1 and code.in_value(2, 5) == 1
    assert code.in_value(3, 1) is None


# -- settings ----------------------------------------------------------------------------------------------


def test_settings_shapes_and_bad_values() -> None:
    settings, warnings = parse_settings({"inlayHints": {"showDtype": False}, "debounceMs": 50})
    assert not settings.show_dtype and settings.debounce_ms == 50 and not warnings
    settings, warnings = parse_settings({"shapelens.device": "cpu", "shapelens.inlayHints.enabled": "false"})
    assert settings.device == "cpu" and not settings.inlay_hints_enabled
    settings, warnings = parse_settings(
        {"shapelens": {"trusted": False, "traceTimeout": 3, "inlayHints": {"layerShapes": False}}}
    )
    assert not settings.trusted and settings.trace_timeout == 3.0 and not settings.layer_shapes and not warnings
    settings, warnings = parse_settings(
        {
            "device": "tpu",
            "traceTimeout": -1,
            "debounceMs": "soon",
            "trusted": 1,
            "interpreter": "/no/such/python",
        },
        Settings(device="cpu", trusted=False),
    )
    # every bad value falls back to its default, not to the previous value; a bad trust value to untrusted
    assert settings == Settings(trusted=False)
    assert len(warnings) == 5 and sum("using the default" in w for w in warnings) == 4
    assert any("shapelens.trusted" in w and "using the safe value False" in w for w in warnings)
    for huge in (1e308, "1e308", 3601):  # the child's timer overflowed on such values: every model failed
        settings, warnings = parse_settings({"traceTimeout": huge}, Settings(trace_timeout=5))
        assert settings.trace_timeout == 10.0 and "at most 3600" in warnings[0]
    settings, warnings = parse_settings({"interpreter": sys.executable, "other": {"x": 1}})
    assert settings.interpreter == sys.executable and not warnings
    assert parse_settings(["nope"])[1]


# -- shifting stale results --------------------------------------------------------------------------------


def test_shift_moves_results_below_an_edit_and_drops_deleted_ones() -> None:
    path = "/m.py"
    report = FileReport(
        path,
        hints=[_hint("a", (1,), line=2), _hint("b", (2,), line=5)],
        findings=[Finding("SL101", Severity.ERROR, Span(path, 5, 3, 5, 9), "m")],
        layers=[LayerInfo("fc", "Linear", Span(path, 6, 10, 6, 30), 0, 0, None, [LayerCall(5, path, [], [])])],
    )
    # two lines inserted at the start of line 3
    change = Change(types.Range(types.Position(2, 0), types.Position(2, 0)), "one\ntwo\n")
    moved = shift_report(report, path, change)
    assert [h.end_line for h in moved.hints] == [2, 7]
    assert moved.findings[0].span.line == 7 and moved.layers[0].span.line == 8
    assert moved.layers[0].calls[0].line == 7
    # delete lines 4-5 (0-based 3..5): the hint and the finding on line 5 go, the layer moves up
    change = Change(types.Range(types.Position(3, 0), types.Position(5, 0)), "")
    moved = shift_report(report, path, change)
    assert [h.target for h in moved.hints] == ["a"]
    assert moved.findings == [] and moved.layers[0].span.line == 4
    # Enter at the end of a statement: its hint stays on its line
    change = Change(types.Range(types.Position(1, 19), types.Position(1, 19)), "\n    ")
    moved = shift_report(report, path, change)
    assert moved.hints[0].end_line == 2 and moved.hints[1].end_line == 6
    # typing at the end of the statement: the hint follows the text
    change = Change(types.Range(types.Position(1, 19), types.Position(1, 19)), "  # ok")
    moved = shift_report(report, path, change)
    assert (moved.hints[0].end_line, moved.hints[0].end_column) == (2, 26)
