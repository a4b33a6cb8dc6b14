"""The user-reported shape-bug scripts (tests/fixtures/scripts/user_bugs, #10): how many bugs are flagged where a
real CPU run raises, how many on the raising layer's constructor only, and how many error findings the correct
twins get.

    .venv/bin/python bench/user_bug_scripts.py [FOLDER]

Each script runs for real first (`runpy`, in a temporary copy) for its crash line; then the folder is checked as
`shapelens check --format json` does. "At the line": an error finding there, or an SL1xx whose related place
("meets its input here") is there.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
FOLDER = HERE / "tests" / "fixtures" / "scripts" / "user_bugs"


def crash_line(path: Path) -> int | None:
    try:
        runpy.run_path(str(path), run_name="__main__")
    except Exception as err:  # the bug
        return [f.lineno for f in traceback.extract_tb(err.__traceback__) if f.filename == str(path)][-1]
    return None


def main(folder: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "user_bugs"
        shutil.copytree(folder, copy)
        crashes = {p.name: crash_line(p) for p in sorted(copy.glob("*.py"))}
        shapelens = Path(sys.executable).parent / "shapelens"
        out = subprocess.run([str(shapelens), "check", str(copy), "--format", "json"], capture_output=True, text=True)
        files = {os.path.basename(f["path"]): f for f in json.loads(out.stdout)["files"]}
    at_line = on_constructor = twin_errors = 0
    bugs = [name for name in crashes if not name.endswith("_ok.py")]
    for name in bugs:
        errors = [d for d in files.get(name, {}).get("diagnostics", []) if d["severity"] == "error"]
        line = crashes[name]
        here = [d for d in errors if d["line"] == line or any(r.get("line") == line for r in d.get("related", []))]
        layer = [d for d in errors if d["code"].startswith("SL1")]
        at_line += bool(here)
        on_constructor += bool(layer) and not here
        print(f"{name:28} crash line {line}: {[(d['code'], d['line']) for d in errors]}")
    for name in crashes:
        if name.endswith("_ok.py"):
            errors = [d for d in files.get(name, {}).get("diagnostics", []) if d["severity"] == "error"]
            twin_errors += len(errors)
            if errors:
                print(f"{name:28} clean on CPU: {[(d['code'], d['line']) for d in errors]}")
    print(f"\n{len(bugs)} bug scripts: {at_line} flagged at the crash line, {on_constructor} only on the raising "
          f"layer's constructor, {len(bugs) - at_line - on_constructor} not flagged; {twin_errors} error findings "
          f"on the {len(crashes) - len(bugs)} correct twins")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER)
