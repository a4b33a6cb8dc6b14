"""Notebook document sync (`notebookDocument/didOpen`, `didChange`, `didClose`): the Python code cells of a
notebook analysed as one program (`analysis.notebook`: a model defined in one cell and called in another is
traced as one), and the results kept per cell document (`vscode-notebook-cell:` uris), so that the usual
inlay hint, hover and code action handlers answer for a cell with cell-local positions.

Each cell is an open document of `Documents` (its path is `path_of(cell uri)`); its static report is the
cell's share of the whole program's static report. A trace runs for the notebook, after the same debounce as
a file (adapted to the notebook's own trace cost), one at a time through the shared worker, an edit of any cell
superseding (or killing) the running one; its result is stored under the notebook's own path with one report
per cell, and in the on-disk results cache: a notebook opened again shows its last results at once, marked
cached, until its fresh trace replaces them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.workspace import Workspace

from shapelens.analysis import notebook as nb
from shapelens.analysis import results_cache
from shapelens.analysis.engine import analyze, static_report
from shapelens.core.findings import FileReport
from shapelens.lsp.documents import path_of
from shapelens.lsp.results import CACHED_NOTE, TraceResult
from shapelens.lsp.scheduler import COSTS_KEPT, Scheduler
from shapelens.lsp.shift import Change
from shapelens.lsp.static_checks import STATIC_INTERVAL_S
from shapelens.lsp.threads import in_thread

log = logging.getLogger("shapelens.lsp")

PYTHON = "python"
# What the server asks for: the Python cells of Jupyter notebooks (VS Code's `jupyter-notebook` type).
SYNC_OPTIONS = types.NotebookDocumentSyncOptions(
    notebook_selector=[
        types.NotebookDocumentFilterWithCells(cells=[types.NotebookCellLanguage(PYTHON)], notebook="jupyter-notebook")
    ],
    save=False,
)


@dataclass
class NotebookState:
    uri: str
    path: str  # the notebook file's absolute path: the traced program's path in reports
    cells: list[str]  # the uris of its Python code cells, in order
    task: asyncio.Task[None] | None = None
    in_trace: bool = False
    static_pending: bool = False  # a coalesced static check is due


class NotebookScheduler(Scheduler):
    """The scheduler of files, plus notebooks: a cell asked to be traced (`shapelens.traceNow` on a cell, new
    settings re-tracing every document) traces its whole notebook instead of the cell alone."""

    def __init__(self, *args: Any, workspace: Callable[[], Workspace], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.notebooks: dict[str, NotebookState] = {}

    # -- sync ------------------------------------------------------------------------------------------

    def notebook_opened(self, uri: str) -> None:
        state = self.notebooks.setdefault(uri, NotebookState(uri, path_of(uri), []))
        self._sync_cells(state)
        self.refresh_static(state)
        if self.results.get(state.path) is None and self.config.settings.trusted:
            self.show_cached_notebook(state)
        self.schedule_notebook(state, 0.0)

    def notebook_changed(self, params: types.DidChangeNotebookDocumentParams) -> None:
        uri = params.notebook_document.uri
        state = self.notebooks.get(uri)
        if state is None:
            self.notebook_opened(uri)
            return
        cells = params.change.cells
        if cells is not None:
            for content in cells.text_content or []:
                for change in content.changes:
                    if isinstance(change, types.TextDocumentContentChangePartial):
                        self.results.shift(path_of(content.document.uri), Change(change.range, change.text))
            if cells.structure is not None:
                self._clear(c.uri for c in cells.structure.did_close or [])
        self._sync_cells(state)
        self._static_soon(state)
        self.schedule_notebook(state, self.debounce_s(uri))  # the notebook's own trace cost, as for a file

    def notebook_closed(self, uri: str, cell_uris: list[str]) -> None:
        state = self.notebooks.pop(uri, None)
        if state is None:
            return
        if state.task is not None and not state.in_trace:
            state.task.cancel()
        self.host.cancel_trace_of(uri)
        cells = [*state.cells, *cell_uris]
        # a module the notebook's trace entered: its hints and findings from this notebook go too
        others = self.results.drop(state.path) - {state.path} - {path_of(c) for c in cells}
        self._clear(cells)
        self.diagnostics.publish_paths(others)

    def _sync_cells(self, state: NotebookState) -> None:
        """The notebook's Python code cells, in order, as open documents; cells gone are cleared."""
        document = self._workspace_notebook(state.uri)
        cells = [] if document is None else [c.document for c in document.cells if self._is_python(c)]
        self._clear(uri for uri in state.cells if uri not in cells)
        state.cells = cells
        for uri in cells:
            self.docs.add(uri)

    def _is_python(self, cell: types.NotebookCell) -> bool:
        if cell.kind != types.NotebookCellKind.Code:
            return False
        try:
            return self.workspace().get_text_document(cell.document).language_id in (PYTHON, None)
        except Exception:
            return False

    def _workspace_notebook(self, uri: str) -> types.NotebookDocument | None:
        return self.workspace().get_notebook_document(notebook_uri=uri)

    def _clear(self, uris: Iterable[str]) -> None:
        """Cells that left: their diagnostics cleared, then forgotten."""
        for uri in list(uris):
            state = self.docs.get(uri)
            if state is None:
                continue
            state.static = None
            self.diagnostics.send(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
            self.diagnostics.published.discard(uri)
            self.docs.pop(uri)

    def notebook_of(self, cell_uri: str) -> NotebookState | None:
        return next((s for s in self.notebooks.values() if cell_uri in s.cells), None)

    # -- the program -----------------------------------------------------------------------------------

    def program(self, state: NotebookState) -> tuple[nb.Notebook, dict[str, int | None]]:
        """The notebook's code cells as one program, and the version of each cell it was built from."""
        cells = []
        versions: dict[str, int | None] = {}
        for index, uri in enumerate(state.cells):
            cells.append(nb.CodeCell(index, self.docs.source(uri) or ""))
            versions[path_of(uri)] = self.docs.version(uri)
        return nb.build(state.path, cells, lambda index: path_of(state.cells[index])), versions

    def _static_soon(self, state: NotebookState) -> None:
        """After an edit: the static checks at most every STATIC_INTERVAL_S during a burst of keystrokes (the
        whole program is checked each time), as for a file."""
        if state.static_pending:
            return
        state.static_pending = True

        def run() -> None:
            state.static_pending = False
            if self.notebooks.get(state.uri) is state:
                self.refresh_static(state)

        asyncio.get_running_loop().call_later(STATIC_INTERVAL_S, run)

    def refresh_static(self, state: NotebookState) -> None:
        """The static findings of the whole program, each cell given its share, published per cell."""
        program, versions = self.program(state)
        try:
            report = static_report(state.path, program.virtual)
        except Exception as err:
            log.error("static checks failed on %s", state.path, exc_info=err)
            report = FileReport(state.path)
        for path, cell_report in nb.split_report(program, report).items():
            cell = self.docs.get(self.docs.uri_of(path))
            if cell is not None and path in versions:
                cell.static, cell.static_version = cell_report, versions[path]
                self.diagnostics.publish(path)

    # -- the trace -------------------------------------------------------------------------------------

    def schedule(self, uri: str, delay_s: float) -> asyncio.Task[None] | None:
        notebook = self.notebook_of(uri)
        if notebook is not None:
            return self.schedule_notebook(notebook, delay_s)
        return super().schedule(uri, delay_s)

    def traced_path(self, uri: str) -> str:
        notebook = self.notebook_of(uri)
        return notebook.path if notebook is not None else super().traced_path(uri)

    def schedule_notebook(self, state: NotebookState, delay_s: float) -> asyncio.Task[None] | None:
        if not self.config.settings.trusted or self.shutting_down:
            return None
        if state.task is not None and not state.in_trace:
            state.task.cancel()  # still waiting out the debounce: superseded
        self.host.cancel_trace_of(state.uri)  # tracing an older text: kill it, the newer one follows
        state.task = asyncio.ensure_future(self._notebook_debounced(state, delay_s))
        return state.task

    def shutdown(self) -> None:
        for state in self.notebooks.values():
            if state.task is not None and not state.task.done():
                state.task.cancel()
        super().shutdown()

    async def _notebook_debounced(self, state: NotebookState, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        await self.config.ready.wait()
        async with self.host.lock:
            if self.notebooks.get(state.uri) is not state or state.task is not asyncio.current_task():
                return  # closed, or a newer request is queued behind us
            state.in_trace = True
            try:
                traced = await self._trace_notebook(state)
                if traced is not None:
                    await self._enrich_notebook(state, *traced)
            finally:
                state.in_trace = False

    async def _trace_notebook(
        self, state: NotebookState
    ) -> tuple[nb.Notebook, dict[str, int | None], TraceResult] | None:
        """Trace the notebook's program and publish per cell; what was traced when the results are fresh."""
        if not self.config.settings.trusted or self.shutting_down:
            return None
        program, versions = self.program(state)
        worker = await self.host.ensure()
        if worker is None or self._versions(state) != versions:
            return None
        epoch = self.epoch
        options = self.config.settings.options()
        root = self.docs.root_for(state.path)
        document = self._workspace_notebook(state.uri)
        version = document.version if document is not None else None
        outcome, found, elapsed = await self._run_trace(
            state.uri,
            version,
            state.path,
            lambda: (  # with the static findings, which are published per cell already
                analyze(state.path, program.virtual, options, worker, root),
                static_report(state.path, program.virtual).findings,
            ),
        )
        reports, static = found or ({}, [])
        fresh = (
            outcome == "done"
            and epoch == self.epoch
            and self.config.settings.trusted
            and self.notebooks.get(state.uri) is state
            and self._versions(state) == versions
        )
        result: TraceResult | None = None
        if fresh and worker is not None:
            for report in reports.values():  # the static findings are published per cell already
                report.findings = [f for f in report.findings if f not in static]
            result = TraceResult(version, self._per_cell(state, program, reports), frozenset(), versions)
            self.diagnostics.publish_paths(self.results.store(state.path, result) - {state.path})
            self.notify.refresh_inlay_hints()
            self.costs.setdefault(state.uri, deque(maxlen=COSTS_KEPT)).append(elapsed / 1000)
            key = results_cache.CacheKey(
                state.path, program.virtual, root, options, worker.python, results_cache.torch_version(worker.python)
            )
            self.spawn(self._store_in_cache(key, reports, list(worker.entered)))
        self._traced(state.uri, state.path, version, outcome, elapsed, fresh)
        return (program, versions, result) if result is not None else None

    @staticmethod
    def _per_cell(state: NotebookState, program: nb.Notebook, reports: dict[str, FileReport]) -> dict[str, FileReport]:
        """The program's reports as one per cell (a module the notebook imports keeps its own)."""
        per_cell: dict[str, FileReport] = {}
        for path, report in reports.items():
            if path != state.path:
                per_cell[path] = report
            else:
                per_cell.update(nb.split_report(program, report, with_broken=False))
        return per_cell

    def show_cached_notebook(self, state: NotebookState) -> None:
        """The notebook's last results from the on-disk cache, published per cell at once and marked cached
        until its fresh trace replaces them (as `show_cached` does for a file; the key is the cells' program)."""
        program, versions = self.program(state)
        settings = self.config.settings
        python = settings.interpreter
        key = results_cache.CacheKey(
            state.path,
            program.virtual,
            self.docs.root_for(state.path),
            settings.options(),
            python,
            results_cache.torch_version(python),
        )
        try:
            reports = self.cache.load(key)
        except Exception:  # the cache is an optimisation: never a reason to fail an open
            log.exception("results cache: reading the entry of %s failed", state.path)
            return
        if reports is None:
            return
        document = self._workspace_notebook(state.uri)
        version = document.version if document is not None else None
        result = TraceResult(version, self._per_cell(state, program, reports), frozenset(), versions, cached=True)
        self.diagnostics.publish_paths(self.results.store(state.path, result) - {state.path})
        self.notify.refresh_inlay_hints()
        self.notify.status("idle", f"{os.path.basename(state.path)}: {CACHED_NOTE}", uri=state.uri)
        log.info("results cache: showing the last results of %s until its trace confirms them", state.path)

    async def _enrich_notebook(
        self, state: NotebookState, program: nb.Notebook, versions: dict[str, int | None], result: TraceResult
    ) -> None:
        """The same program again with the flop counter and, when the hints show them, the symbolic pass (as
        `Scheduler._enrich` does for a file: the hints and diagnostics are out already, and an edit meanwhile
        kills it like any trace)."""
        worker = self.host.worker
        if worker is None or self.results.get(state.path) is not result or self._versions(state) != versions:
            return
        settings = self.config.settings
        symbolic = settings.symbolic == "on"
        options = dataclasses.replace(settings.options(), flops=True, symbolic=symbolic)
        root = self.docs.root_for(state.path)
        self.host.running = (state.uri, result.version)
        try:
            reports, static = await in_thread(
                lambda: (
                    analyze(state.path, program.virtual, options, worker, root),
                    static_report(state.path, program.virtual).findings,
                ),
                "shapelens-enrich",
            )
        except Exception:  # cancelled by an edit, or failed: the hover just shows no FLOPs, the hints numbers
            return
        finally:
            self.host.running = None
        if self.results.get(state.path) is not result or self._versions(state) != versions:
            return
        if symbolic:  # the whole result again, with the named sizes
            for report in reports.values():  # the static findings are published per cell already
                report.findings = [f for f in report.findings if f not in static]
            enriched = dataclasses.replace(result, reports=self._per_cell(state, program, reports))
            self.diagnostics.publish_paths(self.results.store(state.path, enriched) - {state.path})
            self.notify.refresh_inlay_hints()
            return
        result.take_flops(self._per_cell(state, program, reports))

    def _versions(self, state: NotebookState) -> dict[str, int | None]:
        return {path_of(uri): self.docs.version(uri) for uri in state.cells}
