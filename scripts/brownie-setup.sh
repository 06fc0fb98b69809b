#!/usr/bin/env bash
# Create (or bring up to date) .venv-brownie: eth-brownie, pinned in requirements-brownie.txt, in
# an environment of its own, with the project's solc front end registered as py-solc-x's solc and
# a Brownie network for a Ganache started by `scripts/chain.py start ganache --port 8545`.
#
# Brownie is no longer maintained and pins exact, old versions of everything (web3 7, pytest,
# hypothesis, py-solc-x 2.0.5): it never goes into the main .venv. Nothing is downloaded but
# Python packages: no compiler (Brownie would try to fetch solc; it finds ours instead).
# Idempotent: run it again after pulling. Needs Node and node_modules (`npm ci`, see setup.sh).
#
#   scripts/brownie-setup.sh            # then: .venv-brownie/bin/brownie compile / test / run ...
#
# Environment: PYTHON (interpreter for the venv, default python3), BROWNIE_GANACHE_URL (host of
# the `ganache-local` network, default http://127.0.0.1:8545).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv-brownie"
PYTHON=${PYTHON:-python3}
GANACHE_URL=${BROWNIE_GANACHE_URL:-http://127.0.0.1:8545}

# 1. The environment, installed from requirements-brownie.txt (skipped when nothing changed).
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements-brownie.sha256"
want=$(sha256sum requirements-brownie.txt | cut -d' ' -f1)
if [ ! -x "$VENV/bin/brownie" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log=$(mktemp)
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-brownie.txt \
       >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "brownie-setup: pip could not install requirements-brownie.txt into $VENV" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" >"$stamp"
fi

# Brownie creates its build folder (build/brownie, see brownie-config.yaml) without parents.
mkdir -p build/brownie

# 2. The compiler. py-solc-x looks for `solc-v<version>` in its install folder; this environment
# gets a folder of its own ($VENV/solcx, set as SOLCX_BINARY_PATH by a .pth file at interpreter
# start) so that it never touches ~/.solcx and every checkout uses its own front end. The entry
# runs scripts/brownie_solc.py: scripts/solc plus our metadata setting (see that file).
command -v node >/dev/null 2>&1 || { echo "brownie-setup: node is not on PATH (Node 20+ is needed)" >&2; exit 1; }
[ -d node_modules/solc ] || { echo "brownie-setup: node_modules/solc is missing: run npm ci first" >&2; exit 1; }
version=$(node scripts/solc --version | sed -n 's/^Version: \([0-9][0-9.]*\)+.*/\1/p')
[ -n "$version" ] || { echo "brownie-setup: scripts/solc --version printed no version" >&2; exit 1; }
solcx_dir="$VENV/solcx"
mkdir -p "$solcx_dir"
entry="$solcx_dir/solc-v$version"
tmp="$entry.tmp"
printf '#!/bin/sh\n# The project solc front end for py-solc-x (written by scripts/brownie-setup.sh).\nexec %q %q "$@"\n' \
  "$VENV/bin/python" "$ROOT/scripts/brownie_solc.py" >"$tmp"
chmod +x "$tmp"
mv -f "$tmp" "$entry"
"$VENV/bin/python" - "$solcx_dir" <<'EOF'
import os, sys, sysconfig
from pathlib import Path
pth = Path(sysconfig.get_paths()["purelib"]) / "smartsla_solcx.pth"
line = f"import os; os.environ.setdefault('SOLCX_BINARY_PATH', {sys.argv[1]!r})\n"
if not pth.exists() or pth.read_text() != line:  # atomic: a Python starting now reads all or nothing
    tmp = pth.with_name(pth.name + ".tmp")
    tmp.write_text(line)
    os.replace(tmp, pth)
EOF
# Check it the way Brownie will find it.
"$VENV/bin/python" - "$version" <<'EOF'
import sys
import solcx
from packaging.version import Version
want = Version(sys.argv[1])
folder = solcx.get_solcx_install_folder()
if want not in solcx.get_installed_solc_versions():
    sys.exit(f"brownie-setup: py-solc-x does not see solc {want} in {folder}")
solcx.set_solc_version(want, silent=True)
print(f"brownie-setup: solc {solcx.get_solc_version(with_commit_hash=True)} registered with py-solc-x in {folder}")
EOF

# 3. A Brownie network for the project's Ganache (chain id 1337), in Brownie's own data folder
# (~/.brownie). It is a *development* network in Brownie's terms: Brownie attaches to the node
# that answers at the URL (start it first: .venv/bin/python scripts/chain.py start ganache
# --port 8545), keeps no deployment records of its own for it (on a "live" network it would,
# under build/, and fail at the next connect once a restarted Ganache, same chain id, no longer
# has those contracts), and sends transactions with the project's development settings
# (gas_price: auto). Deleted and added again, so that the command stays idempotent.
case "$GANACHE_URL" in
  http://*:[0-9]*|https://*:[0-9]*) ganache_port=${GANACHE_URL##*:} ;;
  *) echo "brownie-setup: BROWNIE_GANACHE_URL must look like http://HOST:PORT, not $GANACHE_URL" >&2; exit 1 ;;
esac
brownie="$VENV/bin/brownie"
"$brownie" networks delete ganache-local >/dev/null 2>&1 || true  # absent the first time
"$brownie" networks add development ganache-local cmd=ganache host="$GANACHE_URL" port="$ganache_port" \
  name="Ganache (smartsla scripts/chain.py)" >/dev/null
echo "brownie-setup: network ganache-local -> $GANACHE_URL (a running Ganache, chain id 1337)"
echo "brownie-setup: ready: $VENV/bin/brownie compile | test | run scripts/deploy.py --network ganache-local"
