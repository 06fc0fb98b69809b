"""Forge fuzz/invariant tests (tests/forge, profile `ci`) and Slither (scripts/slither.sh), run by pytest.

Both are slow (Forge: a few minutes for 10,000 runs of each invariant; Slither: a minute the first
time, while it builds .venv-slither). Markers `forge` and `slither` select or skip them:
`pytest -m "not forge and not slither"` for a quick run.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from schedule_helpers import background

ROOT = Path(__file__).resolve().parent.parent
CI_MIN_INVARIANT_RUNS = 10_000


def _forge_binary() -> str:
    found = sorted(glob.glob(str(ROOT / "node_modules" / "@foundry-rs" / "forge-*" / "bin" / "forge")))
    if not found:
        pytest.fail("node_modules/@foundry-rs/forge-<platform>/bin/forge is missing: run `npm ci` (scripts/setup.sh)")
    return found[0]


@pytest.mark.forge
def test_forge_fuzz_and_invariants_ci_profile(capsys: pytest.CaptureFixture[str]) -> None:
    env = dict(os.environ, FOUNDRY_PROFILE="ci", NO_COLOR="1")
    started = time.monotonic()
    proc = subprocess.run(
        [_forge_binary(), "test", "--offline"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, preexec_fn=background,
    )
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    log = ROOT / "build" / "forge" / "ci-output.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(output)

    results = [line for line in output.splitlines() if re.match(r"^\[(PASS|FAIL)", line)]
    invariants = re.findall(r"\[PASS\] (invariant_\w+)\(\) \(runs: (\d+), calls: (\d+), reverts: (\d+)\)", output)
    with capsys.disabled():
        print(f"\nforge test (profile ci): {len(results)} tests in {elapsed:.0f} s (full output: {log})")
        for name, runs, calls, reverts in invariants:
            print(f"  {name}: {int(runs):,} runs, {int(calls):,} calls, {reverts} reverts")
        for line in output.splitlines():
            if line.startswith("Ran ") and "test suites" in line:
                print(f"  {line}")

    failed = [line for line in results if line.startswith("[FAIL")]
    assert proc.returncode == 0 and not failed, "forge test failed:\n" + "\n".join(failed or output.splitlines()[-40:])
    assert invariants, "no invariant test ran:\n" + output[-2000:]
    short = [(name, runs) for name, runs, _, _ in invariants if int(runs) < CI_MIN_INVARIANT_RUNS]
    assert not short, f"invariants below {CI_MIN_INVARIANT_RUNS} runs in the ci profile: {short}"
    reverting = [(name, reverts) for name, _, _, reverts in invariants if int(reverts) != 0]
    assert not reverting, f"the handler reverted (it must not: fail_on_revert): {reverting}"


@pytest.mark.slither
def test_slither_finds_no_high_or_medium_and_no_untriaged_low() -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "slither.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1800,
        preexec_fn=background,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"scripts/slither.sh exited {proc.returncode}:\n{output[-6000:]}"
    assert "Slither analysed: " in output and "Agreement" in output, output
