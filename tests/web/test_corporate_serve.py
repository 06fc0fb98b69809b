"""`smartsla serve --corporate ADDRESS` as a real process against Anvil: the multi-level agreement
is indexed by the background thread, and the unsigned deposit it hands out is accepted by Anvil."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from corporate_web_helpers import EXAMPLE
from web_helpers import free_port, run_cli

from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.corporate import Corporate, load_corporate_spec
from smartsla.localnode import LocalNode

ROOT = Path(__file__).resolve().parents[2]


def test_serve_refuses_a_bad_corporate_address(tmp_path: Path) -> None:
    code, out = run_cli("serve", "--rpc-url", "http://127.0.0.1:9", "--db", str(tmp_path / "i.db"),
                        "--corporate", "0x1234")
    assert code == 2 and "--corporate is not an Ethereum address" in out, out


@pytest.mark.anvil
def test_serve_indexes_a_corporate_agreement_and_its_deposit_is_accepted(anvil: LocalNode, tmp_path: Path) -> None:
    chain = Chain.connect(anvil.url)
    a = chain.accounts
    data = yaml.safe_load(EXAMPLE.read_text())
    body = data["spec"]
    body["parties"] = {"provider": a[1], "organisation": a[2]}
    body["oracle"] = a[3]
    for dep, payout in zip(body["departments"], a[5:8], strict=True):
        dep["payout"] = payout
    body["timeWindow"]["start"] = dt.datetime.fromtimestamp(chain.now() + 600, dt.UTC).isoformat()
    body["timeWindow"]["count"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    corporate = Corporate.deploy(chain, load_corporate_spec(tmp_path / "c.yaml").to_terms(), a[0])
    factory = Factory.deploy(chain, a[0])  # serve follows a factory too
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "smartsla", "serve", "--rpc-url", anvil.url, "--factory",
                             factory.address, "--db", str(tmp_path / "index.db"), "--port", str(port), "--poll",
                             "0.2", "--corporate", corporate.address], cwd=ROOT, env={**os.environ, "COLUMNS": "200"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                got = httpx.get(f"{base}/api/corporate/{corporate.address}", timeout=2)
                if got.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not index the corporate agreement"
            time.sleep(0.2)
        assert got.json()["status"] == "Pending" and not got.json()["fees_deposited"]
        r = httpx.post(f"{base}/api/corporate/{corporate.address}/tx/deposit-fees", json={"from": a[2]}, timeout=10)
        assert r.status_code == 200, r.text
        tx = r.json()["transactions"][0]
        assert int(tx["value"], 16) == corporate.chain.call(corporate.contract.functions.totalFees())
        sent = chain.w3.eth.send_transaction({k: (int(v, 16) if k in ("value", "gas", "chainId") else v)
                                              for k, v in tx.items()})  # Anvil signs for its account
        assert chain.w3.eth.wait_for_transaction_receipt(sent)["status"] == 1
        deadline = time.monotonic() + 20
        while not httpx.get(f"{base}/api/corporate/{corporate.address}", timeout=5).json()["fees_deposited"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        page = httpx.get(f"{base}/corporate/{corporate.address}", timeout=5)
        assert page.status_code == 200 and "Provider: deposit the pool" in page.text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
