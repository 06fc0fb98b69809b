"""Z7-1's defence in depth: should a peer report pass oracle.peer_reports' checks and still be
refused by the chain (a rule the checks missed; simulated here by a lax check), the submitter
drops the report the refusal names and settles with the rest, instead of sending the same set on
every pass. Real HTTP peers on 127.0.0.1, real embedded chain, SQLite store."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from sla_helpers import EVIDENCE_ROOT
from web3 import Web3

import oracle.submitter as submitter_module
from oracle.peer_reports import CURVE_N
from oracle.sli import PeriodFigure
from oracle.store import Store
from oracle.submitter import REPORT_VALIDITY_S, Submitter
from smartsla.reports import SignedReport, recover_signer, sign_report
from smartsla.terms import Service, Tier

SERVICES = (Service(name="web", objective=999_000, weight_bps=10_000,
                    tiers=(Tier(threshold=999_000, credit_bps=1_000),)),)
FIGURES = {"web": PeriodFigure(value_ppm=999_000, good_slices=1000, total_slices=1000, excluded_slices=0,
                               maintenance_slices=0, missing_slices=0, slice_seconds=1)}


def _json(report: SignedReport, **changes: Any) -> dict[str, Any]:
    doc = {"values": list(report.values_ppm), "measured_ppm": report.measured_ppm,
           "evidence_root": "0x" + bytes(report.evidence_root).hex(), "deadline": report.deadline,
           "signer": report.signer, "signature": "0x" + bytes(report.signature).hex()}
    return doc | changes


def _lax(report: SignedReport, **_: Any) -> str:
    """A check that only recovers the signer (what the daemon did before Z7-1's fix)."""
    return Web3.to_checksum_address(recover_signer(report))


@pytest.mark.parametrize("kind", ["expired", "high s", "zero evidence root"])
def test_a_report_the_chain_refuses_by_name_is_dropped_and_the_rest_settles(
        chain, factory, roles, terms_for, http_server, tmp_path: Path, monkeypatch, kind: str) -> None:
    monkeypatch.setattr(submitter_module, "accepted_signer", _lax)
    members = [chain.new_account(fund_from=roles["deployer"]) for _ in range(4)]
    terms = terms_for(oracles=[a for a, _ in members], quorum=3, services=SERVICES)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0) + 1)
    deadline = terms.period_end(0) + REPORT_VALIDITY_S

    def signed(i: int, root: bytes = EVIDENCE_ROOT, until: int = deadline) -> SignedReport:
        return sign_report(members[i][1], chain.chain_id, ag.address, 0, [999_000], 1_000_000, root, until)

    if kind == "expired":
        liar = _json(signed(3, until=chain.now() - 1))
    elif kind == "zero evidence root":
        liar = _json(signed(3, root=b"\0" * 32))
    else:
        sig = bytes(signed(3).signature)
        s = int.from_bytes(sig[32:64], "big")
        liar = _json(signed(3), signature="0x" + (sig[:32] + (CURVE_N - s).to_bytes(32, "big")
                                                   + bytes([55 - sig[64]])).hex())
    served = {f"/m3/reports/{ag.address}/0": liar,
              **{f"/m{i}/reports/{ag.address}/0": _json(signed(i)) for i in (1, 2)}}

    class Peers(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps(served[self.path]).encode() if self.path in served else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with http_server(Peers) as srv:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        sub = Submitter(chain, chain.w3.eth.account.from_key(members[0][1]),
                        Store.open(f"sqlite:///{tmp_path / 'o.db'}"),
                        peers=[f"{base}/m1", f"{base}/m3", f"{base}/m2"], clock=lambda: float(chain.now()),
                        receipt_wait_s=10)
        outcome = sub.process(ag, 0, FIGURES, EVIDENCE_ROOT)
    assert outcome.state in ("confirmed", "submitted") and outcome.tx_hash, outcome  # mined (depth aside)
    assert ag.snapshot().settled_periods == 1
    assert sub.refused_reports == {(ag.address, 0, members[3][0])}
