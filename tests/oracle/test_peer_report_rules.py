"""oracle.peer_reports (Z7-1): a peer report is kept only under the contract's own rules, and a
refusal of the chain that names one report identifies it. No chain needed: the rules are pure."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account

from oracle.peer_reports import (
    CURVE_N,
    UnusableReport,
    accepted_signer,
    refusal_culprit,
    static_problem,
)
from smartsla.errors import ContractReverted
from smartsla.reports import SignedReport, sign_report

AGREEMENT = "0x" + "ab" * 20
ROOT = b"\x11" * 32
DEADLINE = 2_000_000_000
KEYS = ["0x" + f"{i + 1:064x}" for i in range(3)]
MEMBERS = [Account.from_key(k).address for k in KEYS]


def _signed(i: int = 0, values: tuple[int, ...] = (999_000,), root: bytes = ROOT,
            deadline: int = DEADLINE) -> SignedReport:
    return sign_report(KEYS[i], 31337, AGREEMENT, 0, list(values), 1_000_000, root, deadline)


def _high_s(r: SignedReport) -> SignedReport:
    sig = bytes(r.signature)
    s = int.from_bytes(sig[32:64], "big")
    return replace(r, signature=sig[:32] + (CURVE_N - s).to_bytes(32, "big") + bytes([55 - sig[64]]))


def test_an_honest_report_passes_and_names_its_signer() -> None:
    r = _signed(1)
    assert static_problem(r, 1, (True,)) is None
    assert accepted_signer(r, services=1, committee=MEMBERS, not_before=DEADLINE) == MEMBERS[1]


@pytest.mark.parametrize(("make", "why"), [
    (lambda: replace(_signed(), signature=_signed().signature[:64]), "65 needed"),
    (lambda: replace(_signed(), signature=_signed().signature[:64] + bytes([_signed().signature[64] - 27])), "v "),
    (lambda: _high_s(_signed()), "upper half"),
    (lambda: _signed(root=b"\0" * 32), "evidence root"),
    (lambda: replace(_signed(), values_ppm=(2**32,)), "four bytes"),
    (lambda: replace(_signed(), values_ppm=(1_000_001,)), "above 100 %"),
    (lambda: replace(_signed(), values_ppm=(1, 2)), "2 values for 1 services"),
    (lambda: replace(_signed(), measured_ppm=1_000_001), "measured share"),
    (lambda: replace(_signed(), deadline=2**64), "eight bytes"),
    (lambda: replace(_signed(), period=0x10000), "two bytes"),
])
def test_what_the_contract_refuses_is_refused_before_hashing(make, why: str) -> None:
    with pytest.raises(UnusableReport, match=why):
        accepted_signer(make(), services=1, committee=MEMBERS, not_before=0, ppm_bounded=(True,))


def test_a_latency_value_above_one_million_is_a_value_not_a_share() -> None:
    r = _signed(values=(1_500_000,))
    assert accepted_signer(r, services=1, committee=MEMBERS, not_before=0, ppm_bounded=(False,)) == MEMBERS[0]


def test_deadline_before_the_chain_time_plus_margin_and_outsiders_are_refused() -> None:
    with pytest.raises(UnusableReport, match="deadline"):
        accepted_signer(_signed(), services=1, committee=MEMBERS, not_before=DEADLINE + 1)
    with pytest.raises(UnusableReport, match="not a committee member"):
        accepted_signer(_signed(2), services=1, committee=MEMBERS[:2], not_before=0)
    # a signature over other fields recovers someone else: not a member either
    with pytest.raises(UnusableReport, match="not a committee member"):
        accepted_signer(replace(_signed(), values_ppm=(1,)), services=1, committee=MEMBERS, not_before=0)


def test_a_refusal_naming_one_report_finds_it_and_never_our_own() -> None:
    own, a, b = _signed(0), _signed(1), _signed(2)
    reports = [own, a, b]
    assert refusal_culprit(ContractReverted("ReportExpired", (2, DEADLINE)), reports, own.signer, 1) is b
    assert refusal_culprit(ContractReverted("ReportExpired", (0, DEADLINE)), reports, own.signer, 1) is None
    assert refusal_culprit(ContractReverted("ReportExpired", (7, DEADLINE)), reports, own.signer, 1) is None
    assert refusal_culprit(ContractReverted("NotACommitteeMember", (a.signer,)), reports, own.signer, 1) is a
    assert refusal_culprit(ContractReverted("DuplicateSigner", (own.signer,)), reports, own.signer, 1) is None
    twin = _high_s(a)
    named = ContractReverted("ECDSAInvalidSignatureS", (bytes(twin.signature)[32:64],))
    assert refusal_culprit(named, [own, twin, b], own.signer, 1) is twin
    zero = replace(_signed(2, root=b"\0" * 32))
    assert refusal_culprit(ContractReverted("MissingEvidence"), [own, a, zero], own.signer, 1) is zero
    # errors about the period or the set, not one report: nothing to drop
    assert refusal_culprit(ContractReverted("PeriodNotEnded", (0, 1)), reports, own.signer, 1) is None
    assert refusal_culprit(ContractReverted("MissingEvidence"), reports, own.signer, 1) is None
