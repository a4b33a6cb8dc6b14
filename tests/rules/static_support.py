"""Helpers for the static rules' tests (tests/rules/test_<family>.py): parse a snippet, run the static
rules on it, pick a rule's one finding, apply its fix."""

from __future__ import annotations

import ast
import textwrap

from shapelens.analysis.edits import apply_fixes
from shapelens.analysis.rules import static_findings
from shapelens.core.findings import Finding
from shapelens.core.source import Source, parse

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


def source_of(code: str, path: str = "m.py") -> Source:
    parsed = parse(path, textwrap.dedent(code))
    assert isinstance(parsed, Source), parsed
    return parsed


def check(code: str, path: str = "m.py") -> list[Finding]:
    return static_findings(source_of(code, path))


def codes(code: str) -> list[str]:
    return [f.code for f in check(code)]


def only(code: str, rule: str) -> Finding:
    found = [f for f in check(code) if f.code == rule]
    assert len(found) == 1, found
    return found[0]


def fixed(code: str, finding: Finding) -> str:
    """The text after applying the finding's first fix; it must parse."""
    text, applied = apply_fixes(textwrap.dedent(code), finding.fixes[:1])
    assert applied == 1
    ast.parse(text)
    return text


def line_of(code: str, needle: str) -> int:
    """The 1-based line of the first line of `code` containing `needle`."""
    return next(n for n, line in enumerate(code.splitlines(), 1) if needle in line)


def model(init: str, forward: str) -> str:
    """A module class with the given `__init__` and `forward` bodies (dedented, one level each)."""
    init_body = textwrap.indent(textwrap.dedent(init).strip("\n"), " " * 8)
    forward_body = textwrap.indent(textwrap.dedent(forward).strip("\n"), " " * 8)
    return (
        f"{HEADER}\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        f"{init_body}\n\n    def forward(self, x):\n{forward_body}\n"
    )
