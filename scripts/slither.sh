#!/usr/bin/env bash
# Static analysis of contracts/ with Slither, in its own virtualenv (.venv-slither, from the pinned
# requirements-slither.txt; Slither brings web3 7, the project's .venv has web3 8).
#
# Slither builds the contracts through Forge (node_modules/@foundry-rs/forge, profile `slither`
# of foundry.toml: our solc front end in standard-JSON mode, output under build/slither), so it
# analyses exactly what Forge tests. Library code (node_modules), test tokens (contracts/test) and
# the Forge tests are filtered out.
#
# Exit status: 0 when no high or medium finding and no untriaged low finding is left; 1 when
# there is one (listed); 2 when the analysis could not run or analysed no contract. Low and
# informational findings are triaged in docs/slither-triage.md (table rows `| detector | where |`);
# an untriaged informational finding is reported but does not fail.
#
#   scripts/slither.sh              # analyse, print the summary and the verdict
#   SLITHER_ARGS="--print cfg" scripts/slither.sh   # extra arguments for the detector run
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-slither
PYTHON=${PYTHON:-python3}
OUT=build/slither
mkdir -p "$OUT"

# 1. The environment: created once, rebuilt when requirements-slither.txt changes.
if [ ! -x "$VENV/bin/slither" ] || ! cmp -s requirements-slither.txt "$VENV/.requirements"; then
  echo "slither.sh: creating $VENV from requirements-slither.txt" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-slither.txt \
      >"$OUT/pip.log" 2>&1; then
    echo "slither.sh: installing requirements-slither.txt failed:" >&2
    tail -n 20 "$OUT/pip.log" >&2
    rm -rf "$VENV"
    exit 2
  fi
  cp requirements-slither.txt "$VENV/.requirements"
fi

# 2. Forge on PATH (the native binary from node_modules, as crytic-compile calls `forge`).
forge_bin=$(ls -d node_modules/@foundry-rs/forge-*/bin 2>/dev/null | head -n 1 || true)
if [ -z "$forge_bin" ] || [ ! -x "$forge_bin/forge" ]; then
  echo "slither.sh: node_modules/@foundry-rs/forge-<platform>/bin/forge is missing: run npm ci" >&2
  exit 2
fi
export PATH="$PWD/$forge_bin:$PATH"
export FOUNDRY_PROFILE=slither

FILTER='node_modules|contracts/test|tests/forge'

# 3. Detectors, as JSON. Slither exits 255 whenever it finds anything: judge the JSON instead.
rm -f "$OUT/report.json"
set +e
"$VENV/bin/slither" . --compile-force-framework foundry --filter-paths "$FILTER" \
  --json "$OUT/report.json" ${SLITHER_ARGS:-} >"$OUT/detectors.log" 2>&1
status=$?
set -e
if [ ! -s "$OUT/report.json" ]; then
  echo "slither.sh: Slither produced no report (exit $status); its log:" >&2
  tail -n 40 "$OUT/detectors.log" >&2
  exit 2
fi

# 4. What was analysed (reusing the build): proof that the contracts were really read.
"$VENV/bin/slither" . --compile-force-framework foundry --foundry-ignore-compile --foundry-out-directory build/slither/out --filter-paths "$FILTER" \
  --print human-summary --json "$OUT/summary.json" --json-types printers >"$OUT/summary.log" 2>&1 || true

# 5. The verdict.
exec "$VENV/bin/python" - "$OUT/report.json" "$OUT/summary.json" docs/slither-triage.md <<'PY'
import json
import re
import sys
from pathlib import Path

report_path, summary_path, triage_path = sys.argv[1:4]
report = json.loads(Path(report_path).read_text())
if not report.get("success", False):
    print(f"slither.sh: Slither failed: {report.get('error')}", file=sys.stderr)
    sys.exit(2)

contracts = []
try:
    summary = json.loads(Path(summary_path).read_text())
    for printer in summary["results"]["printers"]:
        for element in printer.get("additional_fields", {}).get("contracts", {}).get("elements", []):
            contracts.append(element["name"])
except (OSError, KeyError, ValueError):
    pass
if not contracts:
    print("slither.sh: Slither analysed no contract of ours (see build/slither/*.log)", file=sys.stderr)
    sys.exit(2)
print(f"Slither analysed: {', '.join(sorted(contracts))}")


def where(element):
    """Contract.function[.variable] of a finding's first element, stable across line moves."""
    names = [element.get("name", "?")]
    parent = element.get("type_specific_fields", {}).get("parent")
    while parent:
        names.append(parent.get("name", "?"))
        parent = parent.get("type_specific_fields", {}).get("parent")
    return ".".join(reversed(names))


triaged = {}
if Path(triage_path).exists():
    for line in Path(triage_path).read_text().splitlines():
        m = re.match(r"^\|\s*`([a-z0-9-]+)`\s*\|\s*`([^`]+)`\s*\|", line)
        if m:
            triaged[(m.group(1), m.group(2))] = line

findings = report.get("results", {}).get("detectors", [])
by_impact = {}
failing, untriaged_info = [], []
for f in findings:
    impact = f["impact"]
    by_impact[impact] = by_impact.get(impact, 0) + 1
    first = f["elements"][0] if f["elements"] else {}
    loc = where(first) if first else "?"
    sm = first.get("source_mapping", {})
    lines = sm.get("lines") or [0]
    at = f"{sm.get('filename_relative', '?')}:{lines[0]}"
    entry = f"[{impact}] {f['check']} `{loc}` at {at}: {f['description'].strip().splitlines()[0]}"
    is_triaged = (f["check"], loc) in triaged
    if impact in ("High", "Medium") or (impact == "Low" and not is_triaged):
        failing.append(entry)
    elif not is_triaged:
        untriaged_info.append(entry)

order = ["High", "Medium", "Low", "Informational", "Optimization"]
print("Slither findings: " + ", ".join(f"{k} {by_impact.get(k, 0)}" for k in order))
for entry in untriaged_info:
    print(f"  not triaged (informational, does not fail): {entry}")
if failing:
    print("FAIL: high/medium findings, or low findings not triaged in docs/slither-triage.md:")
    for entry in failing:
        print(f"  {entry}")
    sys.exit(1)
print("OK: no high or medium finding, every low finding triaged in docs/slither-triage.md")
PY
