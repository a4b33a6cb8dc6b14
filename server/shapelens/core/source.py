"""The one line model, file reader and parser of the house: lines as Python counts them, parsing with the
findings that say why not (SL000, SL006), and AST nodes as `Span`s (1-based lines and character columns,
ends exclusive)."""

from __future__ import annotations

import ast
import errno
import os
import re
import stat
from dataclasses import dataclass
from functools import cached_property

from shapelens.core.findings import Finding, Severity, Span


@dataclass
class Source:
    path: str
    text: str
    tree: ast.Module

    @cached_property
    def lines(self) -> list[str]:
        return split_lines(self.text)

    def segment(self, node: ast.AST) -> str:
        return segment(self.lines, node)

    def span(self, node: ast.AST) -> Span:
        return span_of(self.path, node)


def read_source(path: str) -> str:
    """A file's text, the one way every part of the house reads a project file: UTF-8 (a BOM is kept, `parse`
    accepts it). Raises OSError for what cannot be read (a FIFO or a device is refused rather than read:
    reading one can block forever) and UnicodeDecodeError for what is not UTF-8."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", path)
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def read_source_or_empty(path: str) -> str:
    """`read_source`, or "" where the file cannot be read (callers for which a missing text only means
    fewer details: another project file's suppression comments, a line shown in a message)."""
    try:
        return read_source(path)
    except (OSError, UnicodeDecodeError):
        return ""


LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line for Python's tokenizer, and for LSP


def split_lines(text: str) -> list[str]:
    """The file's lines as Python counts them: only \\n, \\r\\n and \\r end a line. `str.splitlines` also
    splits at a form feed (and \\v, \\x1c, U+2028, ...), which would shift every line after it against `ast`."""
    return LINE_BREAK.split(text)


def line_starts(text: str) -> list[int]:
    """The offset at which each line starts (index 0 is line 1)."""
    return [0] + [match.end() for match in LINE_BREAK.finditer(text)]


def segment(lines: list[str], node: ast.AST) -> str:
    """The node's source text. Columns are characters here (see `_to_character_columns`), so this slices
    lines itself: `ast.get_source_segment` expects UTF-8 byte offsets, and fails on a non-ASCII line."""
    first, last = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
    start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
    if first == last:
        return lines[first - 1][start:end]
    return "\n".join([lines[first - 1][start:], *lines[first : last - 1], lines[last - 1][:end]])


def span_of(path: str, node: ast.AST) -> Span:
    """The node's range. `ast` columns are UTF-8 byte offsets; callers get character columns (see below)."""
    return Span(
        path,
        node.lineno,  # type: ignore[attr-defined]
        node.col_offset + 1,  # type: ignore[attr-defined]
        node.end_lineno or node.lineno,  # type: ignore[attr-defined]
        (node.end_col_offset or 0) + 1,  # type: ignore[attr-defined]
    )


# Past these sizes a file is data, not a model, and parsing it would hold the editor for seconds (a 10 MB
# one-line paste took 24 s): it gets one SL006 finding and no other work.
MAX_CHARS = 1_000_000
MAX_LINE_CHARS = 20_000
BOM = "\ufeff"


def too_large(path: str, text: str) -> Finding | None:
    """The SL006 finding for a file over the size or line-length limit, else None (cheap: no parsing)."""
    if len(text) > MAX_CHARS:
        why = f"it has {len(text):,} characters (the limit is {MAX_CHARS:,})"
    else:
        longest = max(split_lines(text), key=len)
        if len(longest) <= MAX_LINE_CHARS:
            return None
        why = f"a line has {len(longest):,} characters (the limit is {MAX_LINE_CHARS:,})"
    return Finding("SL006", Severity.INFORMATION, Span(path, 1, 1, 1, 1), f"file not analysed: {why}")


def parse(path: str, text: str) -> Source | Finding:
    """The parsed file, or the finding that says why not: SL000 where Python cannot compile it (a syntax
    error, or an expression nested too deep for its parser), SL006 where it is too large to analyse.

    A leading UTF-8 BOM (Windows editors write one) is accepted, as Python accepts it in a file: the text
    keeps it, and columns on line 1 count it."""
    large = too_large(path, text)
    if large is not None:
        return large
    bom = text.startswith(BOM)
    try:
        tree = ast.parse(text[1:] if bom else text, filename=path)
    except SyntaxError as err:
        line = err.lineno or 1
        col = err.offset or 1
        span = Span(path, line, col, err.end_lineno or line, max(err.end_offset or col + 1, col + 1))
        return Finding("SL000", Severity.ERROR, span, f"file does not parse: {err.msg}")
    except (RecursionError, MemoryError) as err:
        message = f"file does not parse: it is nested too deeply for Python's parser ({type(err).__name__})"
        return Finding("SL000", Severity.ERROR, Span(path, 1, 1, 1, 2), message)
    _to_character_columns(text[1:] if bom else text, tree)
    if bom:
        _shift_first_line(tree)
    return Source(path, text, tree)


def _shift_first_line(tree: ast.AST) -> None:
    """Columns on line 1 count the BOM that was left out of the parse."""
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) == 1:
            node.col_offset += 1  # type: ignore[attr-defined]
        if getattr(node, "end_lineno", None) == 1 and getattr(node, "end_col_offset", None) is not None:
            node.end_col_offset += 1  # type: ignore[attr-defined]


def _to_character_columns(text: str, tree: ast.AST) -> None:
    """`ast` reports UTF-8 byte columns; convert them to character columns in place, once, so every span
    in the house is in characters (the LSP layer then converts characters to UTF-16 units)."""
    if text.isascii():
        return
    lines = split_lines(text)
    # byte offset → character offset, built once per non-ASCII line (ASCII lines need no change)
    tables: dict[int, list[int]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.isascii():
            table = []
            for index, char in enumerate(line):
                table += [index] * len(char.encode("utf-8"))
            table.append(len(line))
            tables[number] = table
    for node in ast.walk(tree):
        for line_attr, col_attr in (("lineno", "col_offset"), ("end_lineno", "end_col_offset")):
            columns = tables.get(getattr(node, line_attr, None) or 0)
            col = getattr(node, col_attr, None)
            if columns is not None and col is not None:
                setattr(node, col_attr, columns[min(col, len(columns) - 1)])
