"""The project files a trace result points into, parsed once each: the rules that turn a trace into findings
read the source at the places the trace names (a layer's constructor call, a statement's line)."""

from __future__ import annotations

import ast

from shapelens.analysis.names import dotted
from shapelens.core.findings import Span
from shapelens.core.source import Source, parse
from shapelens.core.wire import Site


class Sources:
    """Parsed project files, the edited buffer first (it may be unsaved)."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts
        self.parsed: dict[str, Source | None] = {}

    def get(self, path: str) -> Source | None:
        if path not in self.parsed:
            text = self.texts.get(path)
            if text is None:
                try:
                    with open(path, encoding="utf-8") as handle:
                        text = handle.read()
                except OSError:
                    text = None
            result = parse(path, text) if text is not None else None
            self.parsed[path] = result if isinstance(result, Source) else None
        return self.parsed[path]

    def line_span(self, path: str, line: int) -> Span:
        """The statement text on `line`, without its indentation."""
        source = self.get(path)
        if source is None or not 0 < line <= len(source.lines):
            return Span(path, max(line, 1), 1, max(line, 1), 1)
        text = source.lines[line - 1]
        start = len(text) - len(text.lstrip())
        return Span(path, line, start + 1, line, len(text.rstrip()) + 1)

    def call_at(self, site: Site, type_name: str) -> ast.Call | None:
        source = self.get(site.path)
        if source is None:
            return None
        exact = None
        on_line = None
        for node in ast.walk(source.tree):
            if not isinstance(node, ast.Call):
                continue
            if (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset) == (
                site.line, site.col, site.end_line, site.end_col):  # fmt: skip
                exact = node
            callee = dotted(node.func) or ""
            if node.lineno == site.line and callee.split(".")[-1] == type_name and on_line is None:
                on_line = node
        return exact or on_line
