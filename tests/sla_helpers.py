"""Shared test helpers (importable from any test module: pytest's pythonpath includes tests/)."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from smartsla.terms import Service, Terms, Tier

# AWS EC2 region-level schedule (aws.amazon.com/compute/sla): below 99.99 % 10 %, below 99 % 30 %,
# below 95 % 100 %.
EC2_TIERS = (Tier(below_ppm=999_900, credit_bps=1_000), Tier(below_ppm=990_000, credit_bps=3_000),
             Tier(below_ppm=950_000, credit_bps=10_000))
ETHER = 10**18


def make_terms(roles: dict[str, str], start: int, **overrides: Any) -> Terms:
    """EC2-like terms: one service, 3 hourly periods, 1 ether fee, 3 ether collateral."""
    fields: dict[str, Any] = dict(
        provider=roles["provider"], customer=roles["customer"], oracle=roles["oracle"], start=start,
        period_length=3600, period_count=3, fee_per_period=ETHER, collateral=3 * ETHER,
        credit_cap_bps=10_000, termination_ppm=900_000,
        services=(Service(name="compute", objective_ppm=999_900, tiers=EC2_TIERS),),
    )
    if "oracles" in overrides:
        fields.pop("oracle")
    fields.update(overrides)
    return Terms(**fields)


# A report's evidence root: any non-zero 32 bytes satisfies the contract (it refuses zero:
# MissingEvidence); the tests of the evidence itself build real roots with oracle.evidence.
EVIDENCE_ROOT = bytes(Web3.keccak(text="smartsla test evidence"))
