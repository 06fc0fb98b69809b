"""Which committee peer reports a member may send: exactly those the contract accepts (Review 6, Z7-1).

A member packs every report it collected into one `settleCompact` (or batch item, or a
multi-level `settleWithReports`), and the contract refuses the whole set for one bad report. So
a report from a peer is kept only if it passes, here and before anything is hashed, every check
the contract makes of one report (Agreement._compactSigner, CorporateAgreement.settleWithReports,
OpenZeppelin's ECDSA.recover), otherwise one lying member stalls every settlement of an honest
quorum. The checks, in order:

* the fields fit the compact calldata (smartsla.compact_reports.pack): period in 2 bytes, every
  value and the measured share in 4, the deadline in 8, a 32-byte root, a 65-byte signature; one
  value per service of the terms (WrongNumberOfValues / MalformedReports otherwise);
* the measured share at most 100 % (MeasuredShareAboveOneHundredPercent) and each availability
  value at most 100 % (ValueAboveOneHundredPercent): such a report is a lie, and over an even
  count of reports it can move the median past the bound and revert the set;
* a non-zero evidence root (MissingEvidence);
* the signature as ECDSA.recover takes it: v 27 or 28, s in the lower half of the curve order
  (the high-s twin is refused with ECDSAInvalidSignatureS), r and s non-zero;
* the deadline at least DEADLINE_MARGIN_S after the chain's latest block and the local clock
  (the contract compares it with the including block's time: ReportExpired);
* a signer that is a committee member.

`refusal_culprit` is the defence in depth: when the chain still refuses a set with an error that
names one report (ReportExpired(i), NotACommitteeMember(signer), DuplicateSigner(signer),
ECDSAInvalidSignatureS(s), or an unindexed signature/evidence error matched by the checks above),
the submitter drops that report and tries without it, rather than sending the same set forever.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from web3 import Web3

from smartsla.compact_reports import MAX_PERIOD
from smartsla.errors import ContractReverted
from smartsla.reports import SignedReport, recover_signer
from smartsla.terms import Kind
from smartsla.units import PPM

# secp256k1's group order; OpenZeppelin's ECDSA refuses s above half of it (malleability).
CURVE_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# A report is kept only if still valid this long after the chain's latest block: the transaction
# that carries it is included later (fee cap, turns, a slow block), and the contract compares the
# deadline with that block's time. An honest deadline is a period's end plus 30 days.
DEADLINE_MARGIN_S = 600


class UnusableReport(ValueError):
    """A peer report the contract would refuse; the message says why."""


def static_problem(report: SignedReport, services: int, ppm_bounded: Sequence[bool] = ()) -> str | None:
    """Why the contract refuses `report` whatever the time or committee (None if it does not)."""
    if not 0 <= report.period <= MAX_PERIOD:
        return f"period {report.period} does not fit two bytes"
    if len(report.values_ppm) != services:
        return f"{len(report.values_ppm)} values for {services} services"
    for j, value in enumerate(report.values_ppm):
        if not 0 <= value < 2**32:
            return f"value {j} ({value}) does not fit four bytes"
        if j < len(ppm_bounded) and ppm_bounded[j] and value > PPM:
            return f"value {j} ({value}) above 100 %"
    if not 0 <= report.measured_ppm <= PPM:
        return f"measured share {report.measured_ppm} outside 0..100 %"
    if not 0 <= report.deadline < 2**64:
        return f"deadline {report.deadline} does not fit eight bytes"
    if len(report.evidence_root) != 32 or not any(report.evidence_root):
        return "no evidence root (zero or not 32 bytes)"
    sig = bytes(report.signature)
    if len(sig) != 65:
        return f"signature of {len(sig)} bytes (65 needed)"
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v not in (27, 28):
        return f"signature v {v} (27 or 28 needed)"
    if not 0 < s <= CURVE_N // 2:
        return "signature s zero or in the upper half of the curve order (malleable twin)"
    if not 0 < r < CURVE_N:
        return "signature r out of range"
    return None


def accepted_signer(report: SignedReport, *, services: int, committee: Collection[str], not_before: float,
                    ppm_bounded: Sequence[bool] = ()) -> str:
    """The committee member who signed `report`, if the contract accepts it in a set sent at
    `not_before` (chain time plus margin); UnusableReport naming the first rule it breaks."""
    problem = static_problem(report, services, ppm_bounded)
    if problem is None and report.deadline < not_before:
        problem = f"deadline {report.deadline} passed or too close (before {int(not_before)})"
    if problem is not None:
        raise UnusableReport(problem)
    try:
        signer = Web3.to_checksum_address(recover_signer(report))
    except Exception as exc:  # noqa: BLE001 - eth_keys / eth_abi raise several kinds; none may escape
        raise UnusableReport(f"signature does not recover: {exc}") from exc
    if signer not in {Web3.to_checksum_address(m) for m in committee}:
        raise UnusableReport(f"signed by {signer}, not a committee member")
    return signer


def ppm_bounds(terms: Any) -> tuple[bool, ...]:
    """Per service of `terms`, whether its reported value is a share (at most 100 %)."""
    return tuple(getattr(s, "kind", Kind.availability) is Kind.availability for s in terms.services)


def refusal_culprit(error: ContractReverted, reports: Sequence[SignedReport], own: str,
                    services: int) -> SignedReport | None:
    """The one report (never this member's own, `own`) that `error`, the contract's refusal of the
    set `reports`, names; None when it names none (the set is not at fault, or it is ours)."""
    args = error.args_
    found: SignedReport | None = None
    if error.name == "ReportExpired" and args and isinstance(args[0], int) and 0 <= args[0] < len(reports):
        found = reports[args[0]]
    elif error.name in ("NotACommitteeMember", "DuplicateSigner") and args:
        named = [r for r in reports if Web3.to_checksum_address(r.signer) == Web3.to_checksum_address(str(args[0]))]
        found = named[-1] if named else None
    elif error.name == "ECDSAInvalidSignatureS" and args:
        s = args[0] if isinstance(args[0], bytes) else bytes(32)
        found = next((r for r in reports if bytes(r.signature)[32:64] == s), None)
    elif error.name in ("ECDSAInvalidSignature", "ECDSAInvalidSignatureLength", "MissingEvidence"):
        found = next((r for r in reports if Web3.to_checksum_address(r.signer) != Web3.to_checksum_address(own)
                      and static_problem(r, services) is not None), None)
    if found is None or Web3.to_checksum_address(found.signer) == Web3.to_checksum_address(own):
        return None
    return found
