"""Jupyter notebooks as one program: the code cells of a notebook, in order, joined into one virtual Python
source that the engine analyses like a file (a model defined in one cell and called in another is traced as
one program), and the results mapped back to the cells they belong to.

- Markdown and raw cells are left out; IPython magics (`%time x`, `!pip install`, `files = !ls`, `x?`) are
  blanked line by line (an indented one becomes `pass`, so its block still parses); a cell magic other than
  the few that run their body as Python (`%%time`, `%%capture`, ...) blanks the whole cell.
- A cell that still does not parse is left out of the program and gets its own SL000, so one broken cell
  does not cost the others their shapes.
- Each virtual line maps to (cell, line in the cell); columns are unchanged (magics only blank whole lines).
  `split_report` moves a report's hints, findings (with their related places and fixes) and layers into one
  report per code cell, keyed by a path the caller chooses for each cell (`cell N` in the CLI, the cell's
  document in the editor).
- `write_cells` puts new cell texts back into the notebook's JSON, keeping outputs, metadata, key order and
  the indentation the file was written with (Jupyter writes indent 1).

Cells are numbered from 1 by their position in the notebook's `cells` list, markdown cells counted, so
cell N is `cells[N - 1]` and the N-th cell from the top in Jupyter and VS Code.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from shapelens.analysis.rules.scripts import SL011
from shapelens.core.findings import (
    Edit,
    FileReport,
    Finding,
    Fix,
    Hint,
    LayerCall,
    LayerInfo,
    Related,
    Severity,
    Span,
)
from shapelens.core.source import LINE_BREAK, Source, parse, split_lines

NOTEBOOK_SUFFIX = ".ipynb"
CELL_MARK = ":cell "  # a CLI cell path: "/abs/nb.ipynb:cell 3"

# Cell magics whose body is ordinary Python run as is; any other (%%bash, %%writefile, %%html) is not Python.
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
# A line magic or shell escape, alone or assigned (`files = !ls`, `t = %timeit -o f()`), or a help query.
_MAGIC_LINE = re.compile(r"^\s*(?:[%!]|[\w.]+\s*=\s*[%!])|^\s*[\w.]+\?\??\s*$|^\s*\?")


class NotebookError(ValueError):
    """The file is not a notebook we can read (not JSON, or no `cells` list)."""


@dataclass(frozen=True)
class CodeCell:
    index: int  # 0-based position in the notebook's cells (cell N in messages is index + 1)
    text: str  # the cell's source as written


@dataclass
class Notebook:
    """The code cells of one notebook as one program."""

    path: str  # the notebook's absolute path: the virtual source's path in reports
    cells: list[CodeCell]
    cell_path: Callable[[int], str]  # cell index -> the path its report is keyed by
    virtual: str = ""
    line_map: list[tuple[int, int]] = field(default_factory=list)  # virtual line - 1 -> (cell index, line)
    broken: dict[int, Finding] = field(default_factory=dict)  # cell index -> its SL000, in cell coordinates

    def locate(self, line: int) -> tuple[int, int] | None:
        """The (cell index, 1-based line in the cell) of a 1-based virtual line."""
        return self.line_map[line - 1] if 1 <= line <= len(self.line_map) else None

    def cell_text(self, index: int) -> str | None:
        return next((c.text for c in self.cells if c.index == index), None)


def is_notebook(path: str) -> bool:
    return path.lower().endswith(NOTEBOOK_SUFFIX)


def cli_cell_path(path: str, index: int) -> str:
    """The path a cell's report carries in `shapelens check`: `nb.ipynb:cell 3` reads as ruff prints it."""
    return f"{path}{CELL_MARK}{index + 1}"


def parse_cell_path(path: str) -> tuple[str, int] | None:
    """(notebook path, cell index) of a `cli_cell_path`; None for any other path."""
    head, mark, number = path.rpartition(CELL_MARK)
    if not mark or not is_notebook(head) or not number.isdigit():
        return None
    return head, int(number) - 1


# -- reading ------------------------------------------------------------------------------------------------


def load_json(text: str) -> dict[str, object]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise NotebookError(f"not a notebook: its JSON does not parse ({err.msg}, line {err.lineno})") from err
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        raise NotebookError("not a notebook: no `cells` list in its JSON")
    return document


def code_cells(document: dict[str, object]) -> list[CodeCell]:
    """The notebook's code cells; none for a notebook whose kernel is not Python's (an R or Julia notebook's
    cells would each be a syntax error)."""
    cells = document["cells"]
    assert isinstance(cells, list)
    if language(document) not in (None, "python"):
        return []
    out = []
    for index, cell in enumerate(cells):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            out.append(CodeCell(index, _joined(cell.get("source", ""))))
    return out


def language(document: dict[str, object]) -> str | None:
    """The notebook's language as Jupyter records it (`language_info.name`, else the kernelspec's), lower case."""
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        return None
    for key in ("language_info", "kernelspec"):
        entry = metadata.get(key)
        name = entry.get("name" if key == "language_info" else "language") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            return name.lower()
    return None


def load_cell_text(text: str, index: int) -> str:
    """The source of the notebook's cell at `index` (0-based); raises NotebookError when there is none."""
    cells = load_json(text)["cells"]
    assert isinstance(cells, list)
    if not 0 <= index < len(cells) or not isinstance(cells[index], dict):
        raise NotebookError(f"the notebook has no cell {index + 1}")
    return _joined(cells[index].get("source", ""))


def _joined(source: object) -> str:
    if isinstance(source, list):
        return "".join(str(part) for part in source)
    return source if isinstance(source, str) else ""


def build(path: str, cells: Iterable[CodeCell], cell_path: Callable[[int], str]) -> Notebook:
    """The virtual source of the code cells, its line map, and the SL000 of each cell that does not parse."""
    notebook = Notebook(path, list(cells), cell_path)
    pieces: list[str] = []
    for cell in notebook.cells:
        lines = python_lines(cell.text)
        text = "".join(line + "\n" for line in lines)
        parsed = parse(cell_path(cell.index), text)
        problem = parsed if not isinstance(parsed, Source) else _compile_problem(cell_path(cell.index), text, lines)
        if problem is not None:
            notebook.broken[cell.index] = problem
            continue  # left out of the program: the other cells keep their shapes
        for number, line in enumerate(lines, start=1):
            pieces.append(line + "\n")
            notebook.line_map.append((cell.index, number))
    notebook.virtual = "".join(pieces)
    return notebook


def _compile_problem(path: str, text: str, lines: list[str]) -> Finding | None:
    """What compiling the cell finds that parsing does not: a top-level `await` (valid in IPython's event
    loop, so SL011 information: the cell cannot be part of a plain program), or an error Jupyter would raise
    too (`return` outside a function: SL000)."""
    try:
        compile(text, path, "exec", dont_inherit=True)
    except SyntaxError as err:
        line = min(max(err.lineno or 1, 1), max(len(lines), 1))
        span = Span(path, line, 1, line, len(lines[line - 1]) + 1 if lines else 1)
        try:
            compile(text, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError:
            return Finding("SL000", Severity.ERROR, span, f"cell does not compile: {err.msg}")
        message = "cell not traced: its top-level `await` runs only in IPython's event loop, not in a plain program"
        return SL011.finding(span, message)
    except (ValueError, RecursionError, MemoryError):
        return None  # parse() already said what it could
    return None


def python_lines(text: str) -> list[str]:
    """A cell's lines with IPython's own syntax blanked (same count, same columns elsewhere)."""
    lines = split_lines(text)
    if lines and lines[-1] == "":
        lines.pop()  # the cell's final line break ends its last line; it does not start another
    if lines and lines[0].startswith("%%"):
        name = lines[0][2:].split(maxsplit=1)[0] if lines[0][2:].strip() else ""
        if name not in _PYTHON_CELL_MAGICS:
            return ["" for _ in lines]
        lines = ["", *lines[1:]]
    out = []
    for line in lines:
        if _MAGIC_LINE.match(line) and not _is_python(line):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}pass" if indent else "")
        else:
            out.append(line)
    return out


def _is_python(line: str) -> bool:
    """`x = a % b` style lines the magic pattern could take for IPython's: only a line that does not compile
    alone as Python is a magic (an indented line is judged without its indent)."""
    try:
        compile(line.strip(), "<cell>", "exec")
    except SyntaxError:
        return False
    return True


def read(path: str, text: str, cell_path: Callable[[int], str]) -> Notebook:
    """A notebook file's text as a `Notebook`; raises NotebookError when it is not one."""
    return build(path, code_cells(load_json(text)), cell_path)


# -- results back to cells ----------------------------------------------------------------------------------


def split_report(notebook: Notebook, report: FileReport, with_broken: bool = True) -> dict[str, FileReport]:
    """The virtual source's report as one report per code cell (every code cell has one, empty or not, so a
    cell's old diagnostics clear). Places in other files (a module the notebook imports) stay as they are.
    `with_broken`: add the SL000 of each cell left out of the program (the static share of the report)."""
    mapper = _Mapper(notebook)
    reports = {notebook.cell_path(c.index): FileReport(notebook.cell_path(c.index)) for c in notebook.cells}
    first = notebook.cell_path(notebook.cells[0].index) if notebook.cells else notebook.path

    def report_of(path: str) -> FileReport:
        return reports.setdefault(path, FileReport(path))

    for hint in report.hints:
        moved = mapper.hint(hint)
        if moved is not None:
            report_of(moved.path).hints.append(moved)
    for finding in report.findings:
        mapped = mapper.finding(finding)
        report_of(mapped.span.path if mapped.span.path != notebook.path else first).findings.append(mapped)
    for layer in report.layers:
        moved_layer = mapper.layer(layer)
        report_of(moved_layer.span.path).layers.append(moved_layer)
    for model in report.models:
        where = notebook.locate(model.line)
        if where is not None:
            report_of(notebook.cell_path(where[0])).models.append(replace(model, line=where[1]))
    for index, finding in notebook.broken.items() if with_broken else ():
        report_of(notebook.cell_path(index)).findings.append(finding)
    for cell_report in reports.values():
        cell_report.traced = list(report.traced)
        cell_report.mode = report.mode
    return reports


class _Mapper:
    def __init__(self, notebook: Notebook) -> None:
        self.nb = notebook
        self.lines = {c.index: python_lines(c.text) for c in notebook.cells}

    def span(self, span: Span) -> Span:
        if span.path != self.nb.path:
            return span
        start = self.nb.locate(span.line) or self.nb.locate(min(max(span.line, 1), len(self.nb.line_map)))
        if start is None:
            return span  # an empty program: nothing to map to
        cell, line = start
        end = self.nb.locate(span.end_line)
        if end is None or end[0] != cell or (end[1], span.end_column) < (line, span.column):
            last = len(self.lines[cell])
            end_line, end_column = last, len(self.lines[cell][last - 1]) + 1 if last else 1
        else:
            end_line, end_column = end[1], span.end_column
        return Span(self.nb.cell_path(cell), line, span.column, end_line, end_column)

    def hint(self, hint: Hint) -> Hint | None:
        if hint.path != self.nb.path:
            return hint
        first, anchor = self.nb.locate(hint.line), self.nb.locate(hint.end_line)
        if first is None or anchor is None or first[0] != anchor[0]:
            return None
        return replace(hint, path=self.nb.cell_path(first[0]), line=first[1], end_line=anchor[1])

    def finding(self, finding: Finding) -> Finding:
        fixes = tuple(
            Fix(fix.title, tuple(Edit(self.span(e.span), e.new_text) for e in fix.edits), fix.safe)
            for fix in finding.fixes
        )
        related = tuple(Related(self.span(r.span), r.message) for r in finding.related)
        return replace(finding, span=self.span(finding.span), fixes=fixes, related=related)

    def layer(self, layer: LayerInfo) -> LayerInfo:
        span = self.span(layer.span)
        calls = []
        for call in layer.calls:
            where = self.nb.locate(call.line) if call.path == self.nb.path else None
            if where is not None:
                calls.append(LayerCall(where[1], self.nb.cell_path(where[0]), call.inputs, call.outputs))
            elif call.path != self.nb.path:
                calls.append(call)
        return replace(layer, span=span, calls=calls)


# -- writing ------------------------------------------------------------------------------------------------


def write_cells(text: str, new_sources: dict[int, str]) -> str:
    """The notebook's JSON text with the cells at the given indices holding new sources; everything else
    (outputs, metadata, key order, non-ASCII text, the indentation and final newline) as it was written."""
    document = load_json(text)
    cells = document["cells"]
    assert isinstance(cells, list)
    for index, source in new_sources.items():
        cell = cells[index]
        # Jupyter stores a source as a list of lines, each keeping its line break; keep the form found.
        cell["source"] = _lines_keeping_ends(source) if isinstance(cell.get("source"), list) else source
    body = json.dumps(document, indent=_indent_of(text), ensure_ascii=_ascii_only(text))
    return body + ("\n" if text.endswith("\n") else "")


def _lines_keeping_ends(text: str) -> list[str]:
    out: list[str] = []
    cursor = 0
    for match in LINE_BREAK.finditer(text):
        out.append(text[cursor : match.end()])
        cursor = match.end()
    if cursor < len(text):
        out.append(text[cursor:])
    return out


def _indent_of(text: str) -> int | None:
    match = re.search(r"^\{\s*?\n( +)\"", text)
    return len(match.group(1)) if match else (None if "\n" not in text.strip() else 1)


def _ascii_only(text: str) -> bool:
    """Was the file written with `\\uXXXX` escapes (Python's json default) rather than raw characters?"""
    return text.isascii() and "\\u" in text
