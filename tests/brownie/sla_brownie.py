"""Constants and the terms builder shared by the Brownie suite (imported by conftest and tests)."""

from __future__ import annotations

from typing import Any

ETHER = 10**18
PERIOD = 3600
# A report's evidence root (any non-zero 32 bytes; the contract refuses zero: MissingEvidence).
EVIDENCE_ROOT = "0x" + "e1" * 32
ZERO_ADDRESS = "0x" + "00" * 20
# AWS EC2, region level (aws.amazon.com/compute/sla): below 99.99 % 10 %, below 99 % 30 %, below 95 % 100 %.
EC2_TIERS = [(999_900, 1_000), (990_000, 3_000), (950_000, 10_000)]
TERMS_FIELDS = ("provider", "customer", "oracles", "quorum", "asset", "start", "periodLength", "periodCount",
                "feePerPeriod", "collateral", "creditCapBps", "terminationPpm", "services")



def service_id(name: str) -> str:
    """A service name as the contract's bytes32 id, as smartsla.terms writes it (UTF-8, zero-padded)."""
    return "0x" + name.encode().ljust(32, b"\0").hex()


def make_terms(roles: dict[str, Any], start: int, **overrides: Any) -> tuple:
    """The Terms struct (contracts/SlaTypes.sol) as the tuple Brownie encodes: EC2-like, one
    service, 3 hourly periods, 1 ether fee per period, 3 ether collateral, one oracle (quorum 1)."""
    fields: dict[str, Any] = {
        "provider": roles["provider"].address, "customer": roles["customer"].address,
        "oracles": [roles["oracle"].address], "quorum": 1, "asset": ZERO_ADDRESS, "start": start,
        "periodLength": PERIOD, "periodCount": 3, "feePerPeriod": ETHER, "collateral": 3 * ETHER,
        "creditCapBps": 10_000, "terminationPpm": 900_000,
        "services": [(service_id("compute"), 999_900, 10_000, EC2_TIERS)],
    }
    unknown = set(overrides) - set(fields)
    if unknown:
        raise TypeError(f"unknown terms fields {sorted(unknown)}")
    fields.update(overrides)
    return tuple(fields[name] for name in TERMS_FIELDS)


def typed_error(name: str, *args: Any) -> str:
    """A custom error as Brownie 1.22 shows it in `revert_msg` and matches in `brownie.reverts`:
    "Name: arg, arg" (decoded from the errors of the compiled ABIs; addresses in lower case, and
    "Name: " with nothing after it for an error without arguments)."""
    shown = [str(getattr(a, "address", a)).lower() if _is_address(a) else str(a) for a in args]
    return f"{name}: {', '.join(shown)}"


def _is_address(value: Any) -> bool:
    value = getattr(value, "address", value)
    return isinstance(value, str) and value.startswith("0x") and len(value) == 42
