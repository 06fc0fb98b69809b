"""A committee peer's report that the compact calldata cannot carry (issue 15): skipped by
`Submitter._collect` like any unusable peer report, instead of stopping the submission. Real HTTP
server on 127.0.0.1 as the peer, real embedded chain and SQLite store."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from sla_helpers import EVIDENCE_ROOT

from oracle.store import Store
from oracle.submitter import Submitter
from smartsla.reports import sign_report


def _serve(body: dict[str, Any]) -> tuple[HTTPServer, str]:
    class Peer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Peer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_a_peer_report_with_a_64_byte_signature_is_skipped(chain, factory, roles, terms_for, tmp_path: Path):
    members = [chain.new_account(fund_from=roles["deployer"]) for _ in range(2)]
    ag = factory.create_agreement(terms_for(oracles=[a for a, _ in members], quorum=1), roles["deployer"])
    deadline = chain.now() + 3_600
    own = sign_report(members[0][1], chain.chain_id, ag.address, 0, [999_000], 1_000_000, EVIDENCE_ROOT, deadline)
    peer = sign_report(members[1][1], chain.chain_id, ag.address, 0, [999_000], 1_000_000, EVIDENCE_ROOT, deadline)
    offered = {"signer": peer.signer, "values": [999_000], "measured_ppm": 1_000_000,
               "evidence_root": "0x" + EVIDENCE_ROOT.hex(), "deadline": deadline,
               "signature": "0x" + peer.signature[:64].hex()}  # EIP-2098 length: not packable
    server, url = _serve(offered)
    try:
        account = chain.w3.eth.account.from_key(members[0][1])
        sub = Submitter(chain, account, Store.open(f"sqlite:///{tmp_path / 'o.db'}"), peers=[url],
                        clock=lambda: deadline - 100)
        assert sub._collect(ag, 0, own) == [own]  # the peer's report skipped, nothing raised
        offered["signature"] = "0x" + peer.signature.hex()
        assert sub._collect(ag, 0, own) == [own, peer]  # the same report, 65 bytes: counted
    finally:
        server.shutdown()
