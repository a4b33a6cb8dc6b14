"""A file's outline, for what the cursor is on: the word, whether it is `self.<attr>`, the enclosing class and
function, where each assignment's value starts, and which `self.<attr> = <call>` assignment built each layer.

Only positions are computed here (from the stdlib `ast` via `core.source.parse`, which already speaks
character columns); shapes and layers come from the analysis reports. The language server calls it for hover
(`bindings.py` then says which binding or layer a word means).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from shapelens.core.source import Source, parse

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


@dataclass(frozen=True)
class Word:
    text: str
    start: int  # 0-based character columns
    end: int
    self_attr: bool  # written as `self.<text>`


def word_at(line: str, char: int) -> Word | None:
    """The identifier under (or just before) a 0-based character column."""
    for match in _WORD.finditer(line):
        if match.start() <= char <= match.end():
            before = line[: match.start()].rstrip()
            self_attr = before.endswith(".") and before[:-1].rstrip().endswith("self")
            return Word(match.group(), match.start(), match.end(), self_attr)
    return None


@dataclass
class Outline:
    """Classes and functions with their 1-based line ranges, and the attribute each constructor call
    is assigned to: `(line, col, end_line, end_col)` of the call -> (class name, attribute)."""

    classes: list[tuple[str, int, int]] = field(default_factory=list)
    functions: list[tuple[str, int, int]] = field(default_factory=list)
    attributes: dict[tuple[int, int, int, int], tuple[str, str]] = field(default_factory=dict)
    # statement's first line -> where its value starts (1-based line, 1-based column): a name after that
    # point is a use of the previous binding, not the one this statement makes
    values: dict[int, tuple[int, int]] = field(default_factory=dict)

    def in_value(self, line: int, column: int) -> int | None:
        """The first line of the nearest assignment at or above `line` if (line, column) lies in its value."""
        starts = [first for first in self.values if first <= line]
        if not starts:
            return None
        first = max(starts)
        return first if self.values[first] <= (line, column) else None

    def enclosing_class(self, line: int) -> str | None:
        inside = [c for c in self.classes if c[1] <= line <= c[2]]
        return max(inside, key=lambda c: c[1])[0] if inside else None

    def enclosing_function(self, line: int) -> tuple[int, int] | None:
        inside = [f for f in self.functions if f[1] <= line <= f[2]]
        if not inside:
            return None
        best = max(inside, key=lambda f: f[1])
        return best[1], best[2]


def _key(node: ast.AST) -> tuple[int, int, int, int]:
    return (
        node.lineno,  # type: ignore[attr-defined]
        node.col_offset + 1,  # type: ignore[attr-defined]
        node.end_lineno or node.lineno,  # type: ignore[attr-defined]
        (node.end_col_offset or 0) + 1,  # type: ignore[attr-defined]
    )


def outline(path: str, text: str) -> Outline | None:
    """The file's outline, or None when it does not parse (mid-edit)."""
    parsed = parse(path, text)
    if not isinstance(parsed, Source):
        return None
    out = Outline()
    for node in ast.walk(parsed.tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and node.value is not None:
            out.values[node.lineno] = (node.value.lineno, node.value.col_offset + 1)
        if isinstance(node, ast.ClassDef):
            out.classes.append((node.name, node.lineno, node.end_lineno or node.lineno))
            for inner in ast.walk(node):
                value: ast.expr | None = None
                targets: list[ast.expr] = []
                if isinstance(inner, ast.Assign):
                    targets, value = list(inner.targets), inner.value
                elif isinstance(inner, ast.AnnAssign):
                    targets, value = [inner.target], inner.value
                if not isinstance(value, ast.Call):
                    continue
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        # ast.walk visits an outer class first, so a nested class overwrites: innermost wins
                        out.attributes[_key(value)] = (node.name, target.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.functions.append((node.name, node.lineno, node.end_lineno or node.lineno))
    return out
