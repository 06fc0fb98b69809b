#!/usr/bin/env bash
# Set up a fresh machine for smartsla: a Python virtualenv with the package and its test tools,
# and the pinned Node tools (solc compiler, OpenZeppelin, Anvil, Ganache) from package-lock.json.
# Idempotent: run it again after pulling.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

if command -v npm >/dev/null 2>&1; then
  # --ignore-scripts: the packages' install scripts only fetch binaries we already get as
  # optional dependencies (Anvil) or build optional native speed-ups (Ganache).
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
else
  echo "npm not found: the compiler, Anvil and Ganache tests will fail (install Node 20+)" >&2
fi
echo "smartsla set up: .venv/bin/smartsla --help"
