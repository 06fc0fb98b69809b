"""The command line added with the web work: encrypted key files, withdraw and terminate signed
with them, and `smartsla serve` as a real process against Anvil."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from node_helpers import node_fixture
from sla_helpers import ETHER, EVIDENCE_ROOT, make_terms
from web_helpers import PASSWORD, free_port, party_with_keystore, run_cli

from smartsla import keystore
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.localnode import LocalNode

ROOT = Path(__file__).resolve().parents[2]


def test_keystore_new_and_import(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    code, out = run_cli("keystore", "new", "--out", str(path), env={"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD})
    assert code == 0, out
    address = keystore.address_of(path)
    assert address and address in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keystore.load(path, PASSWORD).address == address
    code, out = run_cli("keystore", "new", "--out", str(path), env={"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD})
    assert code != 0 and "refusing to overwrite" in out

    account = Account.create()
    imported = tmp_path / "imported.json"
    code, out = run_cli("keystore", "import", "--out", str(imported), "--private-key-env", "MY_KEY",
                     env={"MY_KEY": account.key.to_0x_hex(), "SMARTSLA_KEYSTORE_PASSWORD": PASSWORD})
    assert code == 0 and account.address in out
    assert keystore.load(imported, PASSWORD).key == account.key
    assert account.key.to_0x_hex()[2:] not in imported.read_text()  # encrypted, not in clear
    code, out = run_cli("keystore", "new", "--out", str(tmp_path / "weak.json"),
                     env={"SMARTSLA_KEYSTORE_PASSWORD": "short"})
    assert code != 0 and "at least 8 characters" in out
    code, out = run_cli("keystore", "new", "--out", str(tmp_path / "nopw.json"),
                     env={"SMARTSLA_KEYSTORE_PASSWORD": ""})
    assert code == 2 and "no password" in out


anvil = node_fixture("anvil", scope="module")


@pytest.mark.anvil
def test_withdraw_and_terminate_signed_with_key_files(anvil: LocalNode, tmp_path: Path) -> None:
    chain = Chain.connect(anvil.url)
    a = chain.accounts
    customer, customer_ks = party_with_keystore(chain, tmp_path, "customer")
    provider, provider_ks = party_with_keystore(chain, tmp_path, "provider")
    roles = {"provider": provider, "customer": customer, "oracle": a[3]}
    factory = Factory.deploy(chain, a[0])
    terms = make_terms(roles, chain.now() + 60)
    agreement = factory.create_agreement(terms, a[0])
    agreement.deposit_fees(customer)
    agreement.deposit_collateral(provider)
    chain.mine_at(terms.period_end(0))
    # 80 %: 100 % credit, and below the 90 % disaster threshold
    agreement.settle(0, [800_000], 1_000_000, EVIDENCE_ROOT, a[3])
    env = {"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD}
    common = ["--rpc-url", anvil.url, "--factory", factory.address]

    code, out = run_cli("withdraw", agreement.address, "--keystore", str(customer_ks), *common,
                     env={"SMARTSLA_KEYSTORE_PASSWORD": "wrong password"})
    assert code != 0 and "wrong password" in out
    code, out = run_cli("withdraw", agreement.address, "--keystore", str(customer_ks), *common, env=env)
    assert code == 0, out
    assert "withdrew 1.0000 ETH" in out
    code, out = run_cli("withdraw", agreement.address, "--keystore", str(customer_ks), *common, env=env)
    assert code == 1 and "NothingToWithdraw" in out and "Nothing is owed to" in out, out
    code, out = run_cli("terminate", agreement.address, "--keystore", str(provider_ks), *common, env=env)
    assert code == 1 and "Unauthorized" in out and "may not do this" in out, out  # the contract's answer
    code, out = run_cli("terminate", agreement.address, "--keystore", str(customer_ks), *common, env=env)
    assert code == 0, out
    assert "Terminated" in out and "ETH of fees refunded" in out
    ended = Agreement(chain, agreement.address)
    assert ended.snapshot().status.name == "Terminated"
    # the customer gets the two prepaid fees back but for the seconds of period 1 served (pro rata)
    event = ended.contract.events.Terminated().get_logs(from_block=0)[0]["args"]
    assert event["refundedFees"] + event["feeEarnedByProvider"] == 2 * ETHER
    assert event["feeEarnedByProvider"] < ETHER // 10 and ended.snapshot().owed_to_customer == event["refundedFees"]
    code, out = run_cli("withdraw", agreement.address, "--keystore", str(provider_ks), *common, env=env)
    assert code == 0 and "withdrew" in out


@pytest.mark.anvil
def test_serve_indexes_and_answers(anvil: LocalNode, tmp_path: Path) -> None:
    chain = Chain.connect(anvil.url)
    a = chain.accounts
    roles = {"provider": a[1], "customer": a[2], "oracle": a[3]}
    factory = Factory.deploy(chain, a[0])
    agreement = factory.create_agreement(make_terms(roles, chain.now() + 60), a[0])
    port = free_port()
    env = {**os.environ, "READ_TOKEN": "a-long-enough-read-token", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "smartsla", "serve", "--rpc-url", anvil.url, "--factory",
                             factory.address, "--db", str(tmp_path / "index.db"), "--port", str(port), "--poll",
                             "0.2", "--read-token-env", "READ_TOKEN"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": "Bearer a-long-enough-read-token"}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                health = httpx.get(f"{base}/api/health", timeout=2)
                if health.status_code == 200 and health.json()["agreements"] == 1:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not become healthy"
            time.sleep(0.2)
        assert health.json()["chain_id"] == 31337 and health.json()["indexer_running"]
        assert httpx.get(f"{base}/api/agreements", timeout=5).status_code == 401
        listed = httpx.get(f"{base}/api/agreements", headers=headers, timeout=5).json()
        assert [x["address"] for x in listed["items"]] == [agreement.address]
        # A deposit made now shows up through the running indexer.
        agreement.deposit_fees(roles["customer"])
        deadline = time.monotonic() + 20
        while not httpx.get(f"{base}/api/agreements/{agreement.address}", headers=headers,
                            timeout=5).json()["snapshot"]["fees_deposited"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_serve_refuses_the_embedded_chain(tmp_path: Path) -> None:
    code, out = run_cli("serve", "--rpc-url", "embedded", "--db", str(tmp_path / "i.db"))
    assert code == 2 and "demo --serve" in out


def test_demo_serve_option_is_there() -> None:
    code, out = run_cli("demo", "--help")
    assert code == 0 and "--serve" in out and "--port" in out
