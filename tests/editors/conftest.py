"""Fixtures of the real-editor tests: the CPU truth of the test model, and the built .vsix (rebuilt when the
sources are newer, so a direct `pytest tests/editors` never exercises stale code)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import editor_tools as tools
import pytest
from editor_truth import MODEL_FILE, Expected, expected


@pytest.fixture(scope="session")
def truth(tmp_path_factory: pytest.TempPathFactory) -> Expected:
    return expected(tools.WORKSPACE / MODEL_FILE, tmp_path_factory.mktemp("fixed"))


@pytest.fixture(scope="session")
def vsix_package() -> Path:
    # Another build, as it is (no staleness check): to show that a test fails on an older client, e.g.
    # SHAPELENS_TEST_VSIX=/tmp/old/shapelens-0.1.0.vsix pytest tests/editors/test_vscode.py -k untrusted
    other = os.environ.get("SHAPELENS_TEST_VSIX")
    if other:
        return tools.require(Path(other), "the .vsix named by SHAPELENS_TEST_VSIX")
    version_file = tools.ROOT / "package.json"
    assert version_file.exists()
    try:
        path = tools.vsix()
        stale = tools.vsix_is_stale(path)
    except pytest.fail.Exception:
        path, stale = None, ["(no .vsix yet)"]
    if stale:
        build = subprocess.run(
            [str(tools.ROOT / "scripts" / "build-vsix.sh")],
            cwd=tools.ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if build.returncode != 0:
            pytest.fail(
                f"the .vsix is stale ({', '.join(stale[:5])}) and `scripts/build-vsix.sh` failed:\n"
                f"{build.stdout[-3000:]}\n{build.stderr[-3000:]}",
                pytrace=False,
            )
        path = tools.vsix()
    assert path is not None
    return path
