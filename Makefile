# Shapelens: `make demo` and `make test` work on a fresh machine (they install everything they need).
# torch is always pinned to 2.13.0: this machine serves that CPU wheel locally, and an unpinned torch
# would pull gigabytes of CUDA packages.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: venv dev demo test lint typecheck unit bench rules-doc clean editor-deps vsix

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	touch $@

$(DEV_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q $(TORCH) -e '.[dev]'
	touch $@

venv: $(STAMP)
dev: $(DEV_STAMP)

# The examples hold the seed scenarios' bugs on purpose, so findings (exit 1) are the expected outcome;
# a usage error or a crash (exit 2 and up) still fails the target.
demo: venv
	$(BIN)/shapelens check examples/ || [ $$? -eq 1 ]

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: dev
	$(BIN)/mypy

unit: dev
	$(BIN)/pytest -m "not editor"

test: dev lint typecheck editor-deps vsix
	$(BIN)/pytest

bench: dev
	$(BIN)/python bench/run.py

rules-doc: venv
	$(BIN)/python -m shapelens.analysis.rules > docs/rules.md

# The real-editor tests (tests/editors/) and the .vsix: chromium and libkrb5-dev from apt, Node 24 and
# code-server 4.139.1 under .tools/, playwright and Neovim 0.11 in the venv (pinned, idempotent).
editor-deps: venv
	scripts/editor-deps.sh

# One universal .vsix: the esbuild bundle of client/src plus the server and its pure-Python deps (no torch).
vsix: venv
	scripts/editor-deps.sh node
	scripts/build-vsix.sh

clean:
	rm -rf $(VENV) dist node_modules *.vsix test-artifacts
