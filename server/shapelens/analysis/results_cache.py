"""The results cache on disk: what the last trace of a file found, so a file opened again (or the server
restarted) shows its hints and findings at once, marked as cached until the fresh trace confirms them.

An entry is found by a key over everything the editor knows before a trace: the traced file's path and text,
the project root, the options, the interpreter and the torch version it has (read from the installed
package's metadata, never by importing torch here), and this package's own code. It is valid only while the
texts of the project files the trace entered (an imported `blocks.py`) still hash as they did: an edit there,
open in the editor or on disk, makes the entry a miss. The editor's process writes entries (atomically, a
temporary file renamed into place), never the trace child, whose sandbox allows no such write.

Why `shapelens check` does not use it: a trace's result also depends on what the key cannot see — files the
model's top level reads (a JSON config), other installed libraries (transformers' version), environment
variables. The editor shows an entry only as "cached — confirming" and traces anyway; a CI run has no such
second look, so it always traces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shapelens.core.findings import FileReport
from shapelens.core.options import Options
from shapelens.core.wire import from_wire, to_wire

FORMAT = 1  # bump when the entry layout changes
Read = Callable[[str], str | None]  # a project file's current text (the open document's, else the disk's)


def cache_dir() -> str:
    """$SHAPELENS_CACHE_DIR, else $XDG_CACHE_HOME/shapelens, else ~/.cache/shapelens."""
    explicit = os.environ.get("SHAPELENS_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "shapelens")


@functools.lru_cache(maxsize=8)
def torch_version(python: str) -> str | None:
    """The torch version installed for `python`, from its package metadata (importing torch takes seconds).
    For this very interpreter, importlib.metadata; for another one, its environment's `torch-*.dist-info`."""
    if os.path.realpath(python) == os.path.realpath(sys.executable) or python == sys.executable:
        try:
            return importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return None
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    for pattern in ("lib/python*/site-packages/torch-*.dist-info", "Lib/site-packages/torch-*.dist-info"):
        found = sorted(glob.glob(os.path.join(prefix, pattern)))
        if found:
            return os.path.basename(found[-1])[len("torch-") : -len(".dist-info")]
    return None


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """This package's own code (names, sizes, modification times): a changed rule or trace makes old
    entries misses, even without a new version number."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    stat = os.stat(path)
                    digest.update(f"{os.path.relpath(path, root)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything known before a trace that its result depends on."""

    path: str
    text: str
    root: str
    options: Options
    python: str
    torch: str | None

    def digest(self) -> str | None:
        """None when the torch version is unknown: no entry can be trusted to match then."""
        if self.torch is None:
            return None
        parts = {
            "format": FORMAT,
            "code": code_fingerprint(),
            "path": os.path.abspath(self.path),
            "text": text_hash(self.text),
            "root": os.path.abspath(self.root),
            "options": dataclasses.asdict(self.options),
            "python": self.python,
            "torch": self.torch,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def disk_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


class ResultsCache:
    """Entries under `folder` (default `cache_dir()/results`), one JSON file per key."""

    def __init__(self, folder: str | None = None) -> None:
        self.folder = folder or os.path.join(cache_dir(), "results")

    def _file(self, digest: str) -> str:
        return os.path.join(self.folder, digest[:2], digest + ".json")

    def load(self, key: CacheKey, read: Read = disk_text) -> dict[str, FileReport] | None:
        """The reports stored for `key`, or None: no entry, or a project file the trace entered changed."""
        digest = key.digest()
        if digest is None:
            return None
        try:
            with open(self._file(digest), encoding="utf-8") as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            return None
        try:
            if entry.get("key") != digest:
                return None
            for path, expected in entry["entered"].items():
                text = key.text if path == os.path.abspath(key.path) else read(path)
                if text is None or text_hash(text) != expected:
                    return None  # an imported file changed (or is gone): this result is stale
            return {path: from_wire(FileReport, report) for path, report in entry["reports"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            return None  # an entry of another layout: a miss, never an error

    def store(
        self, key: CacheKey, reports: dict[str, FileReport], entered: Iterable[str], read: Read = disk_text
    ) -> bool:
        """Keep `reports` for `key`, valid while the files in `entered` (and `reports`) keep their texts.
        False when it could not (no torch version, a file gone, a read-only cache folder)."""
        digest = key.digest()
        if digest is None:
            return False
        hashes: dict[str, str] = {}
        for path in sorted(set(entered) | set(reports) | {os.path.abspath(key.path)}):
            text = key.text if path == os.path.abspath(key.path) else read(path)
            if text is None:
                return False
            hashes[path] = text_hash(text)
        entry = {"key": digest, "entered": hashes, "reports": {p: to_wire(r) for p, r in reports.items()}}
        target = self._file(digest)
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".entry-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle)
            os.replace(temporary, target)  # readers see the old entry or the new one, never half of one
        except OSError:
            return False
        return True
