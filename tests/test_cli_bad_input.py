"""Bad input to `shapelens check` gets a clear finding and loses nothing: a file Python's parser cannot nest
that deep, a Windows editor's BOM, a huge data file, nonsense timeouts, and files in a folder that cannot be
read (the others keep their findings)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from engine_support import write
from test_cli import MODEL, check


def files_of(stdout: str) -> dict[str, dict[str, object]]:
    return {f["path"]: f for f in json.loads(stdout)["files"]}


def test_an_expression_too_deep_for_the_parser_is_sl000(tmp_path: Path) -> None:
    terms = " +\n    ".join(["1"] * 100_000)
    (tmp_path / "deep.py").write_text(f"import torch\nx = ({terms})\n")
    result = check("deep.py", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [diagnostic] = files_of(result.stdout)["deep.py"]["diagnostics"]
    assert diagnostic["code"] == "SL000" and "nested too deeply" in diagnostic["message"]


def test_a_utf8_bom_is_accepted_and_kept_by_fix(tmp_path: Path) -> None:
    write(tmp_path, "mlp.py", MODEL)
    source = "\ufeff" + (tmp_path / "mlp.py").read_text()
    broken = source.replace("nn.Linear(20, 5)", "nn.Linear(21, 5)")
    (tmp_path / "mlp.py").write_text(broken, encoding="utf-8")
    result = check("mlp.py", "--format", "json", cwd=tmp_path)
    [diagnostic] = files_of(result.stdout)["mlp.py"]["diagnostics"]
    assert diagnostic["code"] == "SL101"  # traced, not SL000 "invalid non-printable character U+FEFF"
    check("mlp.py", "--fix", cwd=tmp_path)
    assert (tmp_path / "mlp.py").read_text(encoding="utf-8") == source  # fixed, BOM kept
    fixed = check("mlp.py", cwd=tmp_path)
    assert fixed.returncode == 0 and "# h: [2, 5]" in fixed.stdout


def test_a_ten_megabyte_line_is_one_information_finding_at_once(tmp_path: Path) -> None:
    (tmp_path / "data.py").write_text("WEIGHTS = [" + ", ".join(["0.5"] * 2_000_000) + "]\n")
    write(tmp_path, "mlp.py", MODEL)
    started = time.monotonic()
    result = check(".", "--format", "json", cwd=tmp_path)
    assert time.monotonic() - started < 30  # 117 s before; the trace of mlp.py is most of what is left
    assert result.returncode == 0, result.stderr
    files = files_of(result.stdout)
    [diagnostic] = files["data.py"]["diagnostics"]
    assert diagnostic["code"] == "SL006" and diagnostic["severity"] == "information"
    assert "10,000,011 characters" in diagnostic["message"]
    assert [h["shape"] for h in files["mlp.py"]["hints"]] == [[2, 5], [2, 5]]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "ten", "1e308", "3601"])
def test_a_timeout_that_no_trace_can_use_is_a_usage_error(tmp_path: Path, value: str) -> None:
    write(tmp_path, "mlp.py", MODEL)
    result = check(f"--timeout={value}", "mlp.py", cwd=tmp_path)
    assert result.returncode == 2 and "--timeout" in result.stderr and "Traceback" not in result.stderr


def test_unreadable_files_are_reported_and_the_others_still_checked(tmp_path: Path) -> None:
    write(tmp_path, "mlp.py", MODEL)
    os.symlink("loop.py", tmp_path / "loop.py")  # a symbolic link to itself
    os.mkfifo(tmp_path / "fifo.py")  # reading it would block forever
    (tmp_path / "latin.py").write_bytes(b'x = "\xff"\n')
    result = check(".", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    files = files_of(result.stdout)
    assert [h["shape"] for h in files["mlp.py"]["hints"]] == [[2, 5], [2, 5]]
    for name, reason in (("loop.py", "symbolic links"), ("fifo.py", "not a regular file"), ("latin.py", "UTF-8")):
        [diagnostic] = files[name]["diagnostics"]
        assert diagnostic["code"] == "SL007" and reason in diagnostic["message"], diagnostic


def test_a_reader_that_leaves_early_ends_the_check_quietly(tmp_path: Path) -> None:
    # `shapelens check model.py | head -1`: the reader closes the pipe before the summary line; no traceback
    import subprocess
    import sys

    write(tmp_path, "mlp.py", MODEL)
    with subprocess.Popen(
        [sys.executable, "-m", "shapelens.cli", "check", "mlp.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # as `head -1` does
        errors = process.stderr.read()
        code = process.wait(timeout=120)
    assert first.startswith("── mlp.py")
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert code == 0
