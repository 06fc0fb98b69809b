#!/usr/bin/env bash
# Set up a fresh machine for smartsla: a Python virtualenv with the package and its test tools,
# and the pinned Node tools (solc compiler, OpenZeppelin, Anvil, Ganache) from package-lock.json.
# Idempotent: run it again after pulling.
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per step: what it installs and why. Tools run quietly; their errors still show.
step() { printf '==> %s\n' "$*"; }
PIP=(.venv/bin/python -m pip --quiet --disable-pip-version-check)

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "python venv .venv: an isolated Python for the package and its tools"
  "$PYTHON" -m venv .venv
fi
step "pip (latest): older pips cannot build from pyproject.toml alone"
"${PIP[@]}" install --upgrade pip
step "smartsla, editable, with the dev extra (tester: embedded chain; postgres; compile; test tools), pinned by requirements.lock"
"${PIP[@]}" install -e ".[dev]" -c requirements.lock

if command -v npm >/dev/null 2>&1; then
  step "npm ci: solc, OpenZeppelin, Anvil, Forge and Ganache pinned by package-lock.json (compile, local chains)"
  # --ignore-scripts: the packages' install scripts only fetch binaries we already get as
  # optional dependencies (Anvil) or build optional native speed-ups (Ganache).
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
  # Brownie (unmaintained, pins old versions): its own env .venv-brownie, see README "Brownie".
  step "brownie in .venv-brownie: the Brownie compatibility test (its old pins stay out of .venv)"
  scripts/brownie-setup.sh
else
  echo "npm not found: the compiler, Anvil and Ganache tests will fail (install Node 20+)" >&2
fi

# Servers the oracle tests start on their own ports (tests/oracle): Debian's prometheus and
# postgresql; chromium for the dashboard tests. Installed only when missing; as root only.
apt_missing=()
[ -x /usr/bin/prometheus ] || apt_missing+=(prometheus)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || apt_missing+=(postgresql)
# Debian's chromium for the dashboard's browser tests (tests/web): Playwright drives it through
# executable_path; Playwright's own browser download is never used.
[ -x /usr/bin/chromium ] || apt_missing+=(chromium)
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # Keep the packages' own services (system Prometheus on :9090, the postgresql "main" cluster on
    # :5432) from starting: the tests run their own servers and need nothing running.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    step "apt: ${apt_missing[*]} (servers and the browser the oracle and dashboard tests start)"
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt_missing[@]}"; }
    apt_status=0
    apt_install || { apt-get update -q && apt_install; } || apt_status=$?
    if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    [ "$apt_status" = 0 ] || exit "$apt_status"
  else
    echo "missing ${apt_missing[*]}: the Prometheus/PostgreSQL oracle tests and the browser tests will skip, or fail under CI (run this script as root)" >&2
  fi
fi
echo "smartsla set up: .venv/bin/smartsla --help"
