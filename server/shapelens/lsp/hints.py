"""`textDocument/inlayHint`: the traced shapes of the statements in the range (with named free sizes,
`[B, 6, H/2, W/2]`, unless `shapelens.inlayHints.symbolic` is off), and what each layer received and returned
next to its constructor."""

from __future__ import annotations

from lsprotocol import types

from shapelens.lsp import convert
from shapelens.lsp.documents import Documents, path_of
from shapelens.lsp.results import Results
from shapelens.lsp.settings import Settings


def inlay_hints(
    docs: Documents, results: Results, settings: Settings, uri: str, rng: types.Range
) -> list[types.InlayHint]:
    if not settings.inlay_hints_enabled or not settings.trusted:
        return []
    path = path_of(uri)
    source = docs.source(uri)
    if source is None:
        return []
    return convert.inlay_hints(
        results.hints_for(path),
        results.layers_for(path),
        convert.Text.of(source, docs.encoding),
        rng,
        layer_shapes=settings.layer_shapes,
        show_dtype=settings.show_dtype,
        symbolic=settings.symbolic == "on",
    )
