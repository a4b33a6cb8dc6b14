"""`textDocument/hover`: on a layer (its attribute or its constructor call) what it received and returned,
on a model's class name what it was traced with and where that input came from, on a name the shape of the
binding that reaches it (`analysis.bindings` says which)."""

from __future__ import annotations

from lsprotocol import types

from shapelens.analysis.bindings import hint_for_word, layers_by_attribute
from shapelens.analysis.outline import word_at
from shapelens.lsp import convert, render
from shapelens.lsp.documents import Documents, path_of
from shapelens.lsp.results import CACHED_NOTE, Results
from shapelens.lsp.settings import Settings


def hover(
    docs: Documents, results: Results, settings: Settings, uri: str, position: types.Position
) -> types.Hover | None:
    source = docs.source(uri)
    if source is None or not settings.trusted:
        return None
    path = path_of(uri)
    text = convert.Text.of(source, docs.encoding)
    if not 0 <= position.line < len(text.lines):
        return None
    char = text.char_column(position)
    line = position.line + 1
    word = word_at(text.lines[position.line], char)
    layers = results.layers_for(path)
    outline = docs.outline(uri, source)
    markdown: str | None = None
    if word is not None and word.self_attr:
        found = layers_by_attribute(layers, outline, word.text, line)
        if found:
            markdown = render.layer_markdown(found)
    if markdown is None:
        inside = [x for x in layers if convert.contains(x.span, line, char + 1)]
        if inside:
            # The innermost call: a Sequential's span contains its entries' spans.
            inner = min(inside, key=lambda x: (x.span.end_line - x.span.line, x.span.end_column - x.span.column))
            group = [x for x in inside if x.span == inner.span]
            markdown = render.layer_markdown(group)
    if markdown is None and word is not None and text.lines[position.line].lstrip().startswith("class "):
        model = next((m for _, _, r in results.reports_for(path) for m in r.models if m.name == word.text), None)
        if model is not None:
            markdown = render.model_markdown(model)
    if markdown is None and word is not None:
        hint = hint_for_word(results.hints_for(path), outline, word, line)
        if hint is not None:
            markdown = render.variable_markdown(hint)
    if markdown is None:
        return None
    if results.cached_for(path):  # shown from the results cache: the fresh trace has not confirmed it yet
        markdown = f"*{CACHED_NOTE}*\n\n{markdown}"
    content = types.MarkupContent(types.MarkupKind.Markdown, markdown)
    if word is None:
        return types.Hover(content)
    rng = types.Range(
        types.Position(position.line, convert.char_to_unit(text.lines[position.line], word.start, docs.encoding)),
        types.Position(position.line, convert.char_to_unit(text.lines[position.line], word.end, docs.encoding)),
    )
    return types.Hover(content, range=rng)
