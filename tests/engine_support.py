"""Helpers the engine tests import (conftest.py holds the fixtures; a module named `conftest` is ambiguous
once tests/lsp has one too)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

from shapelens.core.findings import FileReport

Analyse = Callable[..., dict[str, FileReport]]


def write(folder: Path, name: str, source: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return os.fspath(path)
