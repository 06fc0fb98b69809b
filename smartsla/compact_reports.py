"""The compact calldata of signed reports (contracts/libraries/CompactReports.sol, issue 15).

`Agreement.settleCompact(bytes)` takes one period's signed reports packed tightly instead of
ABI-encoded, and `SettlementBatch.settleMany(bytes)` takes many such buffers back to back, each
behind its agreement's address and its length. The contract checks that a buffer is exactly as
long as its report count and the terms' service count make it, so a buffer built here with the
wrong number of values is refused (MalformedReports), never read short.

Layout (big-endian, no padding): period (2 bytes), report count (1), then per report
measuredPpm (4), evidenceRoot (32), deadline (8), signature r (32) s (32) v (1), and one 4-byte
value per service. A batch item: agreement (20), payload length (2), payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from web3 import Web3

from .reports import SignedReport

HEADER_LENGTH = 3
REPORT_FIXED_LENGTH = 109
VALUE_LENGTH = 4
ITEM_HEAD_LENGTH = 22
MAX_PERIOD = 0xFFFF
MAX_REPORTS = 0xFF
MAX_PAYLOAD = 0xFFFF


def report_length(services: int) -> int:
    """Bytes of one report of an agreement with `services` services."""
    return REPORT_FIXED_LENGTH + VALUE_LENGTH * services


def pack(period: int, reports: Sequence[SignedReport]) -> bytes:
    """`reports` of `period` as `Agreement.settleCompact` reads them. ValueError names every
    field that cannot be packed (a period beyond two bytes, more than 255 reports, a signature
    other than 65 bytes, a value or measured share beyond four bytes, a deadline beyond eight);
    the value count is not checked here: the contract compares it with the terms."""
    problems = []
    if not 0 <= period <= MAX_PERIOD:
        problems.append(f"period {period} does not fit two bytes")
    if len(reports) > MAX_REPORTS:
        problems.append(f"{len(reports)} reports (at most {MAX_REPORTS})")
    out = bytearray(period.to_bytes(2, "big") if 0 <= period <= MAX_PERIOD else b"\0\0")
    out.append(min(len(reports), MAX_REPORTS))
    for i, r in enumerate(reports):
        if len(r.signature) != 65:
            problems.append(f"report {i}: signature of {len(r.signature)} bytes (65 needed)")
        if len(r.evidence_root) != 32:
            problems.append(f"report {i}: evidence root of {len(r.evidence_root)} bytes (32 needed)")
        if not 0 <= r.deadline < 2**64:
            problems.append(f"report {i}: deadline {r.deadline} does not fit eight bytes")
        numbers = [("measured share", r.measured_ppm)] + [(f"value {j}", v) for j, v in enumerate(r.values_ppm)]
        for name, value in numbers:
            if not 0 <= value < 2**32:
                problems.append(f"report {i}: {name} {value} does not fit four bytes")
        if problems:
            continue
        out += r.measured_ppm.to_bytes(4, "big") + bytes(r.evidence_root) + r.deadline.to_bytes(8, "big")
        out += bytes(r.signature)
        out += b"".join(v.to_bytes(4, "big") for v in r.values_ppm)
    if problems:
        raise ValueError("cannot pack the reports: " + "; ".join(problems))
    return bytes(out)


def pack_batch(items: Iterable[tuple[str, bytes]]) -> bytes:
    """(agreement address, `pack` output) items as `SettlementBatch.settleMany` reads them."""
    out = bytearray()
    for address, payload in items:
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"a payload of {len(payload)} bytes for {address} (at most {MAX_PAYLOAD})")
        out += bytes.fromhex(Web3.to_checksum_address(address)[2:]) + len(payload).to_bytes(2, "big") + payload
    return bytes(out)
