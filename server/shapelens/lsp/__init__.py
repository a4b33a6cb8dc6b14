"""The language server (`shapelens serve`): protocol glue over `analysis.check`, no shape logic of its own.

`server.py` holds state and handlers, `convert.py` turns findings/hints/layers into LSP objects (UTF-16
columns), `settings.py` validates `shapelens.*`, `shift.py` keeps stale results in place while typing (what the
cursor is on comes from `analysis.outline` and `analysis.bindings`).
"""
