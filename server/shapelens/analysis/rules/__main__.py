"""`python -m shapelens.analysis.rules` prints docs/rules.md."""

from shapelens.analysis.rules import render_markdown

print(render_markdown(), end="")
