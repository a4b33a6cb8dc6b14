"""The language server (`shapelens serve`): protocol glue over `analysis`, no shape logic of its own.

State objects: `documents.py` (open documents, texts, versions, static reports), `results.py` (the traces'
results per path), `configuration.py` (the settings in force; `settings.py` declares them once),
`worker_host.py` (the trace worker), `scheduler.py` and `static_checks.py` (when and how documents are traced
and checked), `diagnostics.py` (publishing), `notify.py` (status and messages to the client). One module per
feature: `sync.py`, `hints.py`, `hover.py`, `code_actions.py`, `commands.py`, `reconfigure.py`; `server.py`
holds the handlers, a few lines each. `convert.py` turns findings/hints/layers into LSP objects (UTF-16
columns), `render.py` their labels and Markdown, `shift.py` keeps stale results in place while typing. What
the cursor is on comes from `analysis.outline` and `analysis.bindings`.
"""
