#!/usr/bin/env bash
# Rewrite requirements.lock from the working .venv (after changing pyproject.toml's dependencies
# and installing them): the exact versions scripts/setup.sh installs, as package-lock.json for Node.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Exact versions of every Python package in the tested environment (.venv), like package-lock.json"
  echo "# for Node. scripts/setup.sh installs with \`-c requirements.lock\` (constraints: pins what gets installed,"
  echo "# installs nothing by itself). pyproject.toml keeps compatible ranges for users of the library."
  echo "# Regenerate with scripts/lock.sh; tests/test_packaging.py checks it satisfies every declared range."
  .venv/bin/python -m pip freeze --exclude-editable --disable-pip-version-check | grep -v -e '^-e ' -e ' @ file:'
} > requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages"
