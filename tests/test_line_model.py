"""One line model and character columns everywhere: a form feed does not start a line (Python's tokenizer
agrees, `str.splitlines` does not), and a non-ASCII name before a layer call neither breaks the trace nor
moves its finding or fix (`co_positions` and `ast` give UTF-8 byte columns; the house uses characters)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine_support import Analyse

FORM_FEED = """\
import torch
from torch import nn
\f

# shapelens: x=(2, 8)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        h = self.fc(x)
        return h
"""


def test_a_form_feed_does_not_shift_the_annotated_source(tmp_path: Path) -> None:
    (tmp_path / "ff.py").write_text(FORM_FEED)
    result = subprocess.run(
        [sys.executable, "-m", "shapelens.cli", "check", "ff.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    shown = {line.split("│")[0].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert shown["12"].startswith("  12 │         h = self.fc(x)") and shown["12"].endswith("# h: [2, 4]")
    assert shown["13"].startswith("  13 │         return h") and shown["13"].endswith("# return: [2, 4]")


NON_ASCII = """\
import torch
from torch import nn


# shapelens: x=(2, 8)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.größe_schätzer = nn.Linear(8, 4); self.ü = nn.Linear(5, 2)

    def forward(self, x):
        größe = self.größe_schätzer(x)
        return self.ü(größe)
"""


def test_non_ascii_names_before_a_layer_call(analyse: Analyse, tmp_path: Path) -> None:
    [report] = analyse(NON_ASCII).values()
    assert [(h.target, h.shape) for h in report.hints] == [("größe", (2, 4)), ("return", (2, 2))]
    [finding] = report.findings
    line = NON_ASCII.splitlines()[8]
    assert finding.code == "SL101" and finding.span.line == 9
    assert line[finding.span.column - 1 : finding.span.end_column - 1] == "5"  # the second layer's in_features
    edit = finding.fixes[0].edits[0]
    assert (edit.span.column, edit.new_text) == (line.index("nn.Linear(5") + len("nn.Linear(") + 1, "4")
