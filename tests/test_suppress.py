"""`# shapelens: ignore[...]` comments, as `check` and the editor honour them, and the edit that writes one."""

from __future__ import annotations

import pytest
from shapelens.analysis.edits import apply_edits
from shapelens.analysis.engine import static_report
from shapelens.analysis.suppress import filter_findings, suppressed_codes, suppression_edit
from shapelens.core.findings import Finding, Severity, Span


def finding(code: str, line: int) -> Finding:
    return Finding(code, Severity.WARNING, Span("m.py", line, 1, line, 5), "message")


TEXT = """\
a = 1  # shapelens: ignore[SL201]
b = 2  # shapelens: ignore[sl201, SL101]
c = 3  # shapelens: ignore
d = 4  # type: ignore  # shapelens: ignore[SL204] because it is on purpose
e = '# shapelens: ignore'
f = 6  # shapelens: ignore[]
"""


@pytest.mark.parametrize(
    ("code", "line", "kept"),
    [
        ("SL201", 1, False),
        ("SL202", 1, True),  # another code on that line stays
        ("SL201", 2, False),  # codes are case-insensitive
        ("SL101", 2, False),
        ("SL204", 2, True),
        ("SL001", 3, False),  # bare: every code
        ("SL204", 4, False),  # after another tool's comment, with a reason after it
        ("SL201", 5, True),  # in a string, not a comment
        ("SL201", 6, True),  # an empty list suppresses nothing
    ],
)
def test_filter_findings(code: str, line: int, kept: bool) -> None:
    assert (filter_findings(TEXT, [finding(code, line)]) != []) is kept


def test_only_the_first_line_of_the_range_counts() -> None:
    multi = Finding("SL201", Severity.WARNING, Span("m.py", 2, 1, 3, 5), "message")
    text = "x = 1\ny = f(\n    z)  # shapelens: ignore\n"
    assert filter_findings(text, [multi]) == [multi]
    assert filter_findings("x = 1\ny = f(  # shapelens: ignore\n    z)\n", [multi]) == []


def test_a_file_without_directives_is_not_tokenized() -> None:
    assert suppressed_codes("x = 1\n") == {}
    broken = "x = (  # shapelens: ignore[SL201]\n"  # does not tokenize: read textually
    assert suppressed_codes(broken) == {1: {"SL201"}}


def test_check_honours_suppression_end_to_end() -> None:
    source = """\
import torch.nn as nn

head = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.GELU())
tail = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.GELU())  # shapelens: ignore[SL201]
"""
    report = static_report("m.py", source)
    assert [(f.code, f.span.line) for f in report.findings] == [("SL201", 3)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x = self.drop(x)", "x = self.drop(x)  # shapelens: ignore[SL201]"),
        ("x = self.drop(x)   ", "x = self.drop(x)  # shapelens: ignore[SL201]"),  # trailing blanks go
        ("x = f(x)  # why", "x = f(x)  # why # shapelens: ignore[SL201]"),
        ("x = f(x)  # shapelens: ignore[SL101]", "x = f(x)  # shapelens: ignore[SL101, SL201]"),
        ("x = f(x)  # shapelens: ignore[SL201]", "x = f(x)  # shapelens: ignore[SL201]"),  # already there
        ("x = f(x)  # shapelens: ignore", "x = f(x)  # shapelens: ignore"),  # already all
        ("x = f(x) + \\", "x = f(x) + \\"),  # a comment would break the continuation: nothing written
    ],
)
def test_suppression_edit(line: str, expected: str) -> None:
    text = f"import torch\n{line}\ny = 2\n"
    edit = suppression_edit(text, "m.py", 2, "SL201")
    new, _ = apply_edits(text, [edit])
    assert new == f"import torch\n{expected}\ny = 2\n"


def test_suppression_edit_result_is_honoured_and_keeps_crlf() -> None:
    text = "a = 1\r\nb = 2\r\n"
    new, applied = apply_edits(text, [suppression_edit(text, "m.py", 2, "SL204")])
    assert applied == 1
    assert new == "a = 1\r\nb = 2  # shapelens: ignore[SL204]\r\n"
    assert filter_findings(new, [finding("SL204", 2)]) == []


def test_suppression_edit_inside_a_triple_quoted_string_writes_nothing() -> None:
    text = 'x = """\nnot code\n"""\n'
    edit = suppression_edit(text, "m.py", 1, "SL201")
    assert edit.new_text == ""
