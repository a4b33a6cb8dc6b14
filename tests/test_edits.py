"""apply_edits / apply_fixes: what `shapelens check --fix` and the editor's "fix all" do to a file's text."""

from __future__ import annotations

from shapelens.analysis.edits import apply_edits, apply_fixes
from shapelens.core.findings import Edit, Fix, Span


def edit(line: int, col: int, end_line: int, end_col: int, text: str) -> Edit:
    return Edit(Span("m.py", line, col, end_line, end_col), text)


def test_replacement_insertion_and_deletion_on_one_line() -> None:
    text = "x = F.dropout(x, p=0.5)\n"
    new, applied = apply_edits(
        text,
        [
            edit(1, 23, 1, 23, ", training=self.training"),  # insertion before `)`
            edit(1, 1, 1, 2, "y"),  # replacement
        ],
    )
    assert new == "y = F.dropout(x, p=0.5, training=self.training)\n"
    assert applied == 2


def test_multi_line_edit_and_columns_are_characters_not_bytes() -> None:
    text = "a = 'é'  # ü\nb = 2\nc = 3\n"
    # replace from after `'é'` on line 1 up to `b` on line 2; columns count characters
    new, applied = apply_edits(text, [edit(1, 8, 2, 1, "\n")])
    assert new == "a = 'é'\nb = 2\nc = 3\n"
    assert applied == 1
    # the non-ASCII character itself is one column
    new, _ = apply_edits(text, [edit(1, 6, 1, 7, "e")])
    assert new.startswith("a = 'e'")


def test_overlapping_edit_is_skipped_and_not_counted() -> None:
    text = "abcdef\n"
    new, applied = apply_edits(text, [edit(1, 2, 1, 5, "X"), edit(1, 4, 1, 6, "Y"), edit(1, 6, 1, 7, "Z")])
    assert new == "aXeZ\n"  # the second overlaps the first (given first) and is skipped; touching is fine
    assert applied == 2


def test_exact_duplicates_count_once() -> None:
    text = "f(x)\n"
    insert = edit(1, 4, 1, 4, ", training=self.training")
    new, applied = apply_edits(text, [insert, insert])
    assert new == "f(x, training=self.training)\n"
    assert applied == 1


def test_insertions_at_the_same_place_keep_their_order() -> None:
    new, applied = apply_edits("ab\n", [edit(1, 2, 1, 2, "1"), edit(1, 2, 1, 2, "2")])
    assert (new, applied) == ("a12b\n", 2)


def test_crlf_and_positions_past_the_end_of_a_line_clamp_to_that_line() -> None:
    text = "x = 1\r\ny = 2\r\n"
    new, _ = apply_edits(text, [edit(1, 99, 1, 99, "  # c")])
    assert new == "x = 1  # c\r\ny = 2\r\n"
    new, _ = apply_edits(text, [edit(3, 1, 3, 1, "z = 3\n")])  # the empty last line
    assert new == text + "z = 3\n"
    new, _ = apply_edits(text, [edit(9, 1, 9, 1, "!")])  # past the end of the file: append
    assert new == text + "!"


def test_edits_given_out_of_order_apply_by_position() -> None:
    text = "one\ntwo\nthree\n"
    new, applied = apply_edits(text, [edit(3, 1, 3, 6, "3"), edit(1, 1, 1, 4, "1")])
    assert (new, applied) == ("1\ntwo\n3\n", 2)


def test_no_edits_returns_the_text_unchanged() -> None:
    assert apply_edits("x\n", []) == ("x\n", 0)


def test_fixes_apply_whole_or_not_at_all() -> None:
    text = "nn.Sequential(nn.Dropout(0.1), nn.GELU())\n"
    swap = Fix(
        "swap",
        (edit(1, 15, 1, 30, "nn.GELU()"), edit(1, 32, 1, 41, "nn.Dropout(0.1)")),
        safe=False,
    )
    competing = Fix("other", (edit(1, 32, 1, 41, "nn.Tanh()"),), safe=True)
    new, applied = apply_fixes(text, [swap, competing])
    assert new == "nn.Sequential(nn.GELU(), nn.Dropout(0.1))\n"
    assert applied == 1
    # the other way round: the single-edit fix wins and the swap is dropped entirely, never half-applied
    new, applied = apply_fixes(text, [competing, swap])
    assert new == "nn.Sequential(nn.Dropout(0.1), nn.Tanh())\n"
    assert applied == 1


def test_apply_safe_fixes_takes_each_findings_first_safe_fix_whole_in_every_file_it_edits() -> None:
    from shapelens.analysis.edits import apply_safe_fixes
    from shapelens.core.findings import Finding, Severity

    def in_file(path: str, line: int, col: int, end_col: int, text: str) -> Edit:
        return Edit(Span(path, line, col, line, end_col), text)

    texts = {"a.py": "fc = nn.Linear(16, 4)\n", "b.py": "W = 16\n", "locked.py": "x = 1\n"}
    unsafe = Fix("LazyLinear", (in_file("a.py", 1, 6, 22, "nn.LazyLinear(4)"),), safe=False)
    two_files = Fix("in_features 8", (in_file("a.py", 1, 16, 18, "8"), in_file("b.py", 1, 5, 7, "8")), safe=True)
    overlapping = Fix("in_features 9", (in_file("a.py", 1, 16, 18, "9"),), safe=True)  # loses to the first
    elsewhere = Fix("x", (in_file("locked.py", 1, 5, 6, "2"),), safe=True)
    span = Span("a.py", 1, 1, 1, 2)
    findings = [
        Finding("SL101", Severity.ERROR, span, "m", fixes=(unsafe, two_files)),
        Finding("SL101", Severity.ERROR, span, "m", fixes=(overlapping,)),
        Finding("SL101", Severity.ERROR, span, "m", fixes=(elsewhere,)),
        Finding("SL201", Severity.WARNING, span, "no safe fix", fixes=(unsafe,)),
    ]
    changed = apply_safe_fixes(findings, lambda path: None if path == "locked.py" else texts[path])
    assert changed == {"a.py": ("fc = nn.Linear(8, 4)\n", 1), "b.py": ("W = 8\n", 1)}
