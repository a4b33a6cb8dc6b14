"""The on-disk results cache (analysis/results_cache.py): an entry comes back exactly as stored, and never once
anything it depends on changed — the traced text, a project file the trace entered, an option, the torch
version, the interpreter. No torch and no trace here: the reports are made by hand."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest
from shapelens.analysis import results_cache
from shapelens.analysis.results_cache import CacheKey, ResultsCache
from shapelens.core.findings import Edit, FileReport, Finding, Fix, Hint, LayerCall, LayerInfo, Severity, Span
from shapelens.core.options import Options

MODEL = "from blocks import Block\n\nclass Net(Block):\n    pass\n"
BLOCKS = "import torch\n\nclass Block(torch.nn.Module):\n    pass\n"


def _reports(model: Path, blocks: Path) -> dict[str, FileReport]:
    span = Span(str(model), 3, 1, 3, 10)
    fix = Fix("use 120", (Edit(span, "120"),), safe=True)
    return {
        str(model): FileReport(
            str(model),
            hints=[Hint(str(model), 3, 3, 10, "x", [(8, 3, None)], "float32", "meta", "Conv2d")],
            findings=[Finding("SL101", Severity.ERROR, span, "Linear expects 120", fixes=(fix,))],
            traced=["Net"],
            mode="meta",
        ),
        str(blocks): FileReport(
            str(blocks),
            layers=[
                LayerInfo(
                    "fc",
                    "Linear",
                    Span(str(blocks), 3, 1, 3, 5),
                    10,
                    40,
                    None,
                    [LayerCall(3, str(blocks), [(1, 2)], [(1, 3)])],
                )
            ],
        ),
    }


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path, ResultsCache]:
    model, blocks = tmp_path / "model.py", tmp_path / "blocks.py"
    model.write_text(MODEL)
    blocks.write_text(BLOCKS)
    return model, blocks, ResultsCache(str(tmp_path / "cache"))


def _key(model: Path, **changes: object) -> CacheKey:
    key = CacheKey(str(model), MODEL, str(model.parent), Options(), sys.executable, "2.13.0+cpu")
    return dataclasses.replace(key, **changes)  # type: ignore[arg-type]


def test_an_entry_comes_back_equal(project: tuple[Path, Path, ResultsCache]) -> None:
    model, blocks, cache = project
    reports = _reports(model, blocks)
    assert cache.store(_key(model), reports, [str(model), str(blocks)])
    assert cache.load(_key(model)) == reports  # tuples (shapes, fixes) and enums decoded as they were


def test_an_edit_in_an_imported_file_invalidates(project: tuple[Path, Path, ResultsCache]) -> None:
    model, blocks, cache = project
    cache.store(_key(model), _reports(model, blocks), [str(model), str(blocks)])
    blocks.write_text(BLOCKS.replace("pass", "size = 3"))
    assert cache.load(_key(model)) is None
    blocks.write_text(BLOCKS)  # the text the trace entered, again: valid again
    assert cache.load(_key(model)) is not None
    blocks.unlink()
    assert cache.load(_key(model)) is None


def test_an_imported_file_with_no_report_still_counts(project: tuple[Path, Path, ResultsCache]) -> None:
    """The trace entered blocks.py but recorded nothing there: its text is part of the entry all the same."""
    model, blocks, cache = project
    only_model = {str(model): _reports(model, blocks)[str(model)]}
    cache.store(_key(model), only_model, [str(model), str(blocks)])
    assert cache.load(_key(model)) == only_model
    blocks.write_text(BLOCKS + "\nX = 1\n")
    assert cache.load(_key(model)) is None


@pytest.mark.parametrize(
    "change",
    [
        {"text": MODEL + "\n# an edit\n"},
        {"options": Options(device="cpu")},
        {"options": Options(timeout=3.0)},
        {"options": Options(flops=True)},
        {"torch": "2.14.0"},
        {"python": "/opt/other/bin/python"},
        {"root": "/somewhere/else"},
    ],
    ids=["text", "device", "timeout", "flops", "torch-version", "interpreter", "root"],
)
def test_what_the_key_covers_invalidates(project: tuple[Path, Path, ResultsCache], change: dict[str, object]) -> None:
    model, blocks, cache = project
    cache.store(_key(model), _reports(model, blocks), [str(blocks)])
    assert cache.load(_key(model)) is not None
    assert cache.load(_key(model, **change)) is None


def test_no_torch_version_means_no_cache(project: tuple[Path, Path, ResultsCache]) -> None:
    model, blocks, cache = project
    assert not cache.store(_key(model, torch=None), _reports(model, blocks), [])
    assert cache.load(_key(model, torch=None)) is None


def test_the_torch_version_is_read_without_importing_torch() -> None:
    code = (
        "import sys; from shapelens.analysis import results_cache as c; "
        "v = c.torch_version(sys.executable); print(v, 'torch' in sys.modules)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import importlib.metadata

    assert out == [importlib.metadata.version("torch"), "False"]


def test_another_interpreters_torch_from_its_dist_info(tmp_path: Path) -> None:
    python = tmp_path / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    (tmp_path / "env" / "lib" / "python3.12" / "site-packages" / "torch-2.9.1.dist-info").mkdir(parents=True)
    results_cache.torch_version.cache_clear()
    assert results_cache.torch_version(str(python)) == "2.9.1"
    assert results_cache.torch_version(str(tmp_path / "none" / "bin" / "python")) is None


def test_a_damaged_entry_is_a_miss(project: tuple[Path, Path, ResultsCache]) -> None:
    model, blocks, cache = project
    key = _key(model)
    cache.store(key, _reports(model, blocks), [])
    digest = key.digest()
    assert digest is not None
    entry = Path(cache.folder) / digest[:2] / f"{digest}.json"
    entry.write_text(json.dumps({"key": digest, "entered": {}, "reports": {"x": {"hints": [{"bad": 1}]}}}))
    assert cache.load(key) is None
    entry.write_text("{not json")
    assert cache.load(key) is None


def test_the_cache_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SHAPELENS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert results_cache.cache_dir() == os.path.join(str(tmp_path), "shapelens")
    monkeypatch.setenv("SHAPELENS_CACHE_DIR", str(tmp_path / "mine"))
    assert results_cache.cache_dir() == str(tmp_path / "mine")
