"""Opening a training script in the editor traces its model and runs nothing else: the log file that only
`train()` writes keeps its bytes, and a shell command whose result only an unrelated def reads never runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Session, hint_at, position_of
from pytest_lsp import LanguageClient
from test_top_level_reach import RESULTS, TRAINING_SCRIPT

pytestmark = pytest.mark.timeout(120)


async def test_opening_a_training_script_truncates_nothing(client: LanguageClient, tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_bytes(RESULTS)
    s = Session(client, tmp_path)
    await s.start({"debounceMs": 0})
    doc = s.open("model.py", TRAINING_SCRIPT)
    await s.wait_traced(doc)
    line = position_of(doc.text, "return self.fc(x)").line
    assert "[3, 2]" in hint_at(await s.inlay_hints(doc), line)
    assert (tmp_path / "results.csv").read_bytes() == RESULTS
    assert not (tmp_path / "SENTINEL").exists()
    assert s.diagnostics(doc, doc.version) == []  # no refused write or os.system either: they never ran
