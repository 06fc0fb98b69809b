"""Review 6 (helper Z), a committee member acting alone: the reports a member collects from its
peers (oracle.submitter.Submitter.signed_reports, sent packed to settleCompact or in a batch
item) must be reports the contract accepts. One lying member of five (quorum 3) serves its
report over HTTP with a signature the contract refuses (v 0/1, the high-s twin), over a zero
evidence root, with a value beyond 32 bits, or with a deadline that has passed at the chain's
time although not by the submitter's clock (the contract compares with the block's time). The
honest members' reports are a quorum: the period must settle from what the submitter collected,
and collecting must not raise."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sla_helpers import EVIDENCE_ROOT
from web3 import Web3

from oracle.store import Store
from oracle.submitter import Submitter
from smartsla.reports import sign_report
from smartsla.terms import Service, Tier

SERVICES = (Service(name="web", objective=999_000, weight_bps=10_000,
                    tiers=(Tier(threshold=999_000, credit_bps=1_000),)),)
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _json(report: Any) -> dict[str, Any]:
    return {"values": list(report.values_ppm), "measured_ppm": report.measured_ppm,
            "evidence_root": "0x" + bytes(report.evidence_root).hex(), "deadline": report.deadline,
            "signer": report.signer, "signature": "0x" + bytes(report.signature).hex()}


def _poison(kind: str, key: str, chain_id: int, agreement: str, deadline: int) -> dict[str, Any]:
    """The lying member's report, as its HTTP endpoint serves it."""
    if kind == "zero evidence root":
        return _json(sign_report(key, chain_id, agreement, 0, [999_000], 1_000_000, b"\0" * 32, deadline))
    if kind == "deadline at the chain's time":
        # Ahead of the submitter's wall clock (the filter in _collect), behind the next block.
        return _json(sign_report(key, chain_id, agreement, 0, [999_000], 1_000_000, EVIDENCE_ROOT, deadline))
    if kind == "value beyond 32 bits":
        good = _json(sign_report(key, chain_id, agreement, 0, [999_000], 1_000_000, EVIDENCE_ROOT, deadline))
        return good | {"values": [2**32]}
    doc = _json(sign_report(key, chain_id, agreement, 0, [999_000], 1_000_000, EVIDENCE_ROOT, deadline))
    sig = bytes.fromhex(doc["signature"][2:])
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    # v of 0/1, or the high-s twin: the same signer for ecrecover, refused by OpenZeppelin's ECDSA
    twin = r + (N - s).to_bytes(32, "big") + bytes([55 - v])
    sig = r + sig[32:64] + bytes([v - 27]) if kind == "v of 0/1" else twin
    return doc | {"signature": "0x" + sig.hex()}


@pytest.mark.parametrize("kind", ["v of 0/1", "high s", "zero evidence root", "value beyond 32 bits",
                                  "deadline at the chain's time"])
def test_one_lying_peer_cannot_block_the_honest_quorum(chain, factory, roles, terms_for, http_server,
                                                       tmp_path: Path, kind: str) -> None:
    members = [chain.new_account(fund_from=roles["deployer"]) for _ in range(5)]
    terms = terms_for(oracles=[a for a, _ in members], quorum=3, services=SERVICES)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0))
    deadline = chain.now() + 7 * 86_400
    served = {f"/m{i}/reports/{ag.address}/0": _json(sign_report(members[i][1], chain.chain_id, ag.address, 0,
                                                                  [999_000], 1_000_000, EVIDENCE_ROOT, deadline))
              for i in (1, 2)}
    liar_deadline = chain.now() if kind == "deadline at the chain's time" else deadline
    assert liar_deadline > time.time()  # the chain runs ahead of the wall clock here (mine_at)
    served[f"/m3/reports/{ag.address}/0"] = _poison(kind, members[3][1], chain.chain_id, ag.address, liar_deadline)

    class Peers(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps(served[self.path]).encode() if self.path in served else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    own = sign_report(members[0][1], chain.chain_id, ag.address, 0, [999_000], 1_000_000, EVIDENCE_ROOT, deadline)
    stored = SimpleNamespace(payload={"values": [999_000], "measured_ppm": 1_000_000,
                                      "evidence_root": "0x" + EVIDENCE_ROOT.hex(), "deadline": deadline},
                             signature="0x" + bytes(own.signature).hex())
    with http_server(Peers) as srv:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        sub = Submitter(chain, chain.w3.eth.account.from_key(members[0][1]),
                        Store.open(f"sqlite:///{tmp_path / 'o.db'}"), peers=[f"{base}/m1", f"{base}/m3", f"{base}/m2"])
        reports = sub.signed_reports(ag, 0, stored)  # must not raise on the liar's report
    signers = {Web3.to_checksum_address(r.signer) for r in reports}
    assert {members[i][0] for i in (0, 1, 2)} <= signers, "the honest quorum is collected"
    # What the member sends (settleCompact, packed by the client as the daemon packs it) settles.
    ag.settle_with_reports(0, reports, members[0][0])
    assert ag.snapshot().settled_periods == 1
