"""`textDocument/codeAction`: each fresh finding's fixes and a suppression comment as quick fixes, and every
safe fix together as `source.fixAll.shapelens`."""

from __future__ import annotations

import logging
from collections.abc import Callable

from lsprotocol import types

from shapelens.analysis import edits as edits_mod
from shapelens.analysis import suppress
from shapelens.core.findings import Finding
from shapelens.core.source import split_lines
from shapelens.lsp import convert
from shapelens.lsp.documents import Documents, path_of
from shapelens.lsp.results import Results
from shapelens.lsp.static_checks import SYNTAX_ERROR

log = logging.getLogger("shapelens.lsp")

FIX_ALL_KIND = "source.fixAll.shapelens"


def code_actions(docs: Documents, results: Results, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri = params.text_document.uri
    source = docs.source(uri)
    if source is None:
        return []
    path = path_of(uri)
    only = params.context.only
    kinds = [convert.enum_value(k) for k in only] if only is not None else None
    current = results.findings_for(path)
    actions: list[types.CodeAction] = []
    if kinds is None or any(k.startswith("quickfix") for k in kinds):
        actions += quick_fixes(docs, params, source, current)
    if kinds is None or any(FIX_ALL_KIND.startswith(k) for k in kinds):
        fix_all = fix_all_action(docs, [(f, fresh) for f, _, fresh in current])
        if fix_all is not None:
            actions.append(fix_all)
    return actions


def quick_fixes(
    docs: Documents,
    params: types.CodeActionParams,
    source: str,
    current: list[tuple[Finding, int | None, bool]],
) -> list[types.CodeAction]:
    """The fixes of the findings on the requested lines (only those made for the current text), and one
    "ignore this code on this line" per line and code."""
    uri = params.text_document.uri
    path = path_of(uri)
    text = convert.Text.of(source, docs.encoding)
    first = params.range.start.line + 1
    last = params.range.end.line + 1
    text_for = docs.texts()
    actions: list[types.CodeAction] = []
    suppressed: set[tuple[int, str]] = set()
    for finding, _, fresh in current:
        if not (first <= finding.span.line <= last or finding.span.line <= first <= finding.span.end_line):
            continue
        diag = _matching_diagnostic(docs, params, finding, text, text_for)
        if fresh:
            for fix in finding.fixes:
                actions.append(
                    types.CodeAction(
                        title=fix.title,
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=[diag],
                        is_preferred=fix.safe,
                        edit=types.WorkspaceEdit(changes=convert.fix_edits(fix, text_for, docs.uri_of)),
                    )
                )
        key = (finding.span.line, finding.code)
        if key in suppressed or finding.code == SYNTAX_ERROR:
            continue
        suppressed.add(key)
        try:
            edit = suppress.suppression_edit(source, path, finding.span.line, finding.code)
        except Exception:
            log.exception("no suppression edit for %s", finding.code)
            continue
        actions.append(
            types.CodeAction(
                title=f"Ignore {finding.code} on this line (# shapelens: ignore[{finding.code}])",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diag],
                edit=types.WorkspaceEdit(changes={uri: [convert.text_edit(edit.span, edit.new_text, text_for)]}),
            )
        )
    return actions


def _matching_diagnostic(
    docs: Documents,
    params: types.CodeActionParams,
    finding: Finding,
    text: convert.Text,
    text_for: Callable[[str], convert.Text | None],
) -> types.Diagnostic:
    wanted = text.range(finding.span)
    for diag in params.context.diagnostics:
        if diag.source == convert.SOURCE and diag.code == finding.code and diag.range == wanted:
            return diag
    return convert.diagnostic(finding, text_for, docs.uri_of, None)


def fix_all_action(docs: Documents, findings: list[tuple[Finding, bool]]) -> types.CodeAction | None:
    """Every safe fix made for the current text, each whole or not at all, applied together
    (`source.fixAll.shapelens`): the same `apply_safe_fixes` as `shapelens check --fix`."""
    texts: dict[str, str | None] = {}

    def text_of(path: str) -> str | None:
        if path not in texts:
            texts[path] = docs.source(docs.uri_of(path))
        return texts[path]

    fixed = edits_mod.apply_safe_fixes([finding for finding, fresh in findings if fresh], text_of)
    changes: dict[str, list[types.TextEdit]] = {}
    for path, (new_text, _) in fixed.items():
        old = texts.get(path)
        if old is None:  # not read: apply_safe_fixes changes only files whose text it had
            continue
        changes[docs.uri_of(path)] = [minimal_edit(old, new_text, docs.encoding)]
    if not changes:
        return None
    return types.CodeAction(
        title="Shapelens: apply all safe fixes",
        kind=FIX_ALL_KIND,
        edit=types.WorkspaceEdit(changes=changes),
    )


def minimal_edit(old: str, new: str, encoding: str) -> types.TextEdit:
    """One edit replacing only the part that differs (a whole-document replace would move the cursor)."""
    start = 0
    limit = min(len(old), len(new))
    while start < limit and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old -= 1
        end_new -= 1
    text = convert.Text.of(old, encoding)

    def position(offset: int) -> types.Position:
        before = old[:offset]
        line = convert.count_line_breaks(before)
        column = len(split_lines(before)[-1])
        return types.Position(line, convert.char_to_unit(text.lines[line], column, encoding))

    return types.TextEdit(types.Range(position(start), position(end_old)), new[start:end_new])
