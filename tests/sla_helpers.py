"""Shared test helpers (importable from any test module: pytest's pythonpath includes tests/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from web3 import Web3

from smartsla.terms import Service, Terms, Tier

# AWS EC2 region-level schedule (aws.amazon.com/compute/sla): below 99.99 % 10 %, below 99 % 30 %,
# below 95 % 100 %.
EC2_TIERS = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=990_000, credit_bps=3_000),
             Tier(threshold=950_000, credit_bps=10_000))
ETHER = 10**18


def make_terms(roles: dict[str, str], start: int, **overrides: Any) -> Terms:
    """EC2-like terms: one service, 3 hourly periods, 1 ether fee, 3 ether collateral."""
    fields: dict[str, Any] = dict(
        provider=roles["provider"], customer=roles["customer"], oracle=roles["oracle"], start=start,
        period_length=3600, period_count=3, fee_per_period=ETHER, collateral=3 * ETHER,
        credit_cap_bps=10_000, termination_ppm=900_000,
        services=(Service(name="compute", objective=999_900, tiers=EC2_TIERS),),
    )
    if "oracles" in overrides:
        fields.pop("oracle")
    fields.update(overrides)
    return Terms(**fields)


# A report's evidence root: any non-zero 32 bytes satisfies the contract (it refuses zero:
# MissingEvidence); the tests of the evidence itself build real roots with oracle.evidence.
EVIDENCE_ROOT = bytes(Web3.keccak(text="smartsla test evidence"))


# ---------------------------------------------------------------------------- spec files
SPEC = """apiVersion: smartsla/v1
kind: Agreement
metadata: {{name: {name}, structure: service-based}}
spec:
  parties: {{provider: "{provider}", customer: "{customer}"}}
  oracles: {{members: ["{oracle}"], quorum: 1}}
  asset: ETH
  fee: "{fee}"
  collateral: "{collateral}"
  timeWindow: {{start: {start}, duration: {duration}, count: {count}}}
  creditCap: 100%
  services:
    - name: web
      weight: 100%
      slo: {{sli: availability, budgetingMethod: Timeslices, timeSliceWindow: {slice}, objective: 99.99%}}
      credits:
        - {{below: 99.99%, atLeast: 99.0%, credit: 10%}}
        - {{below: 99.0%, atLeast: 95.0%, credit: 30%}}
        - {{below: 95.0%, credit: 100%}}
"""


def write_spec(path: Path, provider: str, customer: str, oracle: str, start: int, *, duration: str = "60s",
               count: int = 3, fee: str = "1.0", collateral: str = "3.0", slice_: str = "1s") -> Path:
    """An EC2-like one-service spec (the README's tiers) starting at unix time `start`."""
    import datetime as dt

    iso = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(SPEC.format(name=path.stem, provider=provider, customer=customer, oracle=oracle, start=iso,
                                duration=duration, count=count, fee=fee, collateral=collateral, slice=slice_))
    return path
