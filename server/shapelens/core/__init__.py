"""The ground floor: what every part of Shapelens may import, and which imports nothing of ours.

The vocabulary (`findings`: findings, hints, layers, fixes, spans), the one line model, file reader and
parser (`source`), statement and name helpers over the AST (`syntax`), the analysis options (`options`).
Everything here runs in both processes: the editor's (no torch) and the trace worker's.
"""
