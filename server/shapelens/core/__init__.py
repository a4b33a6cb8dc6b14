"""The ground floor: what every part of Shapelens may import, and which imports nothing of ours.

The vocabulary (`findings`: findings, hints, layers, fixes, spans, and their one merge), the one line model,
file reader and parser (`source`), statement and name helpers over the AST (`syntax`), the analysis options
(`options`), the one table of PyTorch facts (`torch_facts`), and the typed messages between the editor's
process and the trace worker (`wire`). Everything here runs in both processes: the editor's (no torch) and
the worker's.
"""
