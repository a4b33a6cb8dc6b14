"""Shapelens: PyTorch tensor shapes and shape bugs in the editor, from a trace of the user's own model."""

import os as _os
import sys as _sys

__version__ = "0.1.0"


def _forget_the_current_folder() -> None:
    """`python -m shapelens.cli` started from a workspace puts that folder first on sys.path, so its
    `argparse.py`, `tokenize.py` or `jedi.py` would run in the server the moment we import those. Nothing of
    ours ever imports from the workspace (the trace child adds the project's folders itself), so the folder
    goes, before any of those imports. While `-m` imports this package, `sys.argv[0]` is "-m"."""
    if _sys.argv[:1] not in (["-m"], ["-c"]) or not _sys.path:
        return
    here = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    first = _os.path.abspath(_sys.path[0] or _os.curdir)
    if first == _os.path.abspath(_os.curdir) and first != here:
        del _sys.path[0]


_forget_the_current_folder()
