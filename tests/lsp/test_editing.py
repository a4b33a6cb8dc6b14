"""Editing: a burst of hundreds of edits traces only the final text and leaves the server responsive;
suppression comments and `source.fixAll.shapelens` from code actions; hints of a block file that another
file's trace entered; UTF-16 positions on a line with a character outside the BMP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import Session, hint_at, label, position_of
from lsprotocol import types
from models import batch_model, cpu_truth, expected_labels
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.timeout(120)

EDITS = 1000


async def test_burst_of_edits_traces_the_last_version(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("small.py", batch_model(2))
    await s.wait_traced(doc)
    after = len(s.statuses)

    # Hundreds of keystrokes without waiting: each rewrites the batch size in the directive.
    for batch in range(3, 3 + EDITS):
        s.replace(doc, f"x=({batch - 1}, 3", f"x=({batch}, 3")
    final = 2 + EDITS
    assert f"x=({final}, 3, 16, 16)" in doc.text

    # Responsive right after the burst: a hover queued behind all those edits answers within 2 s (about
    # 0.1-0.7 s here; each edit costs the server well under a millisecond, and no trace runs for it).
    started = time.perf_counter()
    position = position_of(doc.text, "self.fc(h)", delta=6)
    await s.hover(doc, position.line, position.character)
    assert time.perf_counter() - started < 2.0

    # The trace that follows is of the final text, published with the final version.
    await s.wait_traced(doc, after)
    await s.wait_diagnostics(doc, lambda ds: True)
    doc.path.write_text(doc.text, encoding="utf-8")
    expected = expected_labels(cpu_truth(doc.path, "Small"), doc.path)
    hints = await s.inlay_hints(doc)
    for line, want in expected.items():
        assert want in hint_at(hints, line), (line, hint_at(hints, line))
    assert f"[{final}, 7]" in expected.values()
    # Superseded versions were never traced to the end: at most a couple of traces started for the burst.
    traces = [st for st in s.statuses[after:] if st["state"] == "tracing"]
    assert 1 <= len(traces) <= 3, len(traces)


SUPPRESS_MODEL = """\
import torch
import torch.nn.functional as F
from torch import nn


# shapelens: x=(2, 8)
class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.dropout(self.fc(x), p=0.5)
        return F.dropout(h, p=0.1)
"""


async def test_suppression_and_fix_all(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("net.py", SUPPRESS_MODEL)
    diagnostics = await s.wait_diagnostics(doc, lambda ds: sum(d.code == "SL202" for d in ds) == 2)

    # "Ignore on this line": the comment is written and the finding goes away (the CLI honours it too).
    first = min((d for d in diagnostics if d.code == "SL202"), key=lambda d: d.range.start.line)
    actions = await s.code_actions(doc, first.range, [first])
    ignore = next(a for a in actions if "ignore[SL202]" in a.title)
    assert ignore.edit is not None and ignore.edit.changes is not None
    s.edit(doc, list(ignore.edit.changes[doc.uri]))
    assert "# shapelens: ignore[SL202]" in doc.text.split("\n")[first.range.start.line]
    diagnostics = await s.wait_diagnostics(doc, lambda ds: sum(d.code == "SL202" for d in ds) == 1)

    # source.fixAll.shapelens: every safe fix at once.
    whole = types.Range(types.Position(0, 0), types.Position(len(doc.text.split("\n")), 0))
    actions = await s.code_actions(doc, whole, [], only=["source.fixAll.shapelens"])
    (fix_all,) = actions
    assert fix_all.kind == "source.fixAll.shapelens"
    assert fix_all.edit is not None and fix_all.edit.changes is not None
    s.edit(doc, list(fix_all.edit.changes[doc.uri]))
    assert "return F.dropout(h, p=0.1, training=self.training)" in doc.text
    await s.wait_diagnostics(doc, lambda ds: not any(d.code == "SL202" for d in ds))


BLOCKS = """\
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.pool(y)
"""

USES_BLOCKS = """\
import torch
from torch import nn

from blocks import Block


# shapelens: x=(2, 3, 32, 32)
class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b1 = Block(3)
        self.b2 = Block(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b1(x)
        return self.b2(x)
"""


async def test_hints_in_a_block_file_entered_by_another_files_trace(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    s.write("blocks.py", BLOCKS)
    doc = s.open("net.py", USES_BLOCKS)
    await s.wait_traced(doc)
    truth = cpu_truth(doc.path, "Net")
    assert truth.error is None
    blocks = s.open("blocks.py")
    hints = await s.inlay_hints(blocks)
    expected = expected_labels(truth, blocks.path)
    line = position_of(blocks.text, "y = self.conv(x)").line
    # the block ran twice with different shapes: both are shown
    assert expected[line] == " | ".join(label(sh) for sh in truth.shapes()[(str(blocks.path.resolve()), line + 1, "y")])
    for number, want in expected.items():
        assert want in hint_at(hints, number), (number, hint_at(hints, number))
    hover = await s.hover(blocks, line, 8)
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "2 shapes" in hover.contents.value


UNICODE = """\
import torch
from torch import nn


# shapelens: x=(2, 8)
class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x) if "🙂 é" else self.fc(x)
        return y
"""


async def test_positions_are_utf16(client: LanguageClient, tmp_path: Path) -> None:
    s = Session(client, tmp_path)
    await s.start()
    doc = s.open("uni.py", UNICODE)
    await s.wait_traced(doc)
    line_text = next(t for t in doc.text.split("\n") if "🙂" in t)
    line = doc.text.split("\n").index(line_text)
    hints = [h for h in await s.inlay_hints(doc) if h.position.line == line]
    assert len(hints) == 1
    # the statement ends at the end of the line: 🙂 counts as two UTF-16 units
    assert hints[0].position.character == len(line_text.encode("utf-16-le")) // 2 == len(line_text) + 1
    # hover on the `fc` after the emoji: the server reads the UTF-16 column and answers in UTF-16
    fc = line_text.rindex("fc")
    units = len(line_text[:fc].encode("utf-16-le")) // 2
    assert units == fc + 1
    hover = await s.hover(doc, line, units + 1)
    assert hover is not None and hover.range is not None
    assert (hover.range.start.character, hover.range.end.character) == (units, units + 2)
    assert isinstance(hover.contents, types.MarkupContent) and "nn.Linear" in hover.contents.value
