"""`smartsla maintenance declare`, `dispute`, `finalize`, `satisfaction`: signed with key files,
against a real Anvil."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cli_helpers import invoke
from eth_account import Account
from sla_helpers import EC2_TIERS, EVIDENCE_ROOT, make_terms
from web_helpers import PASSWORD, party_with_keystore, run_cli

from oracle import evidence as ev
from smartsla import keystore
from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.localnode import LocalNode
from smartsla.terms import Service, Tier


@pytest.mark.anvil
def test_maintenance_dispute_satisfaction_and_finalize_from_the_command_line(anvil: LocalNode, tmp_path: Path):
    chain = Chain.connect(anvil.url)
    a = chain.accounts
    customer, customer_ks = party_with_keystore(chain, tmp_path, "customer")
    provider, provider_ks = party_with_keystore(chain, tmp_path, "provider")
    services = (Service(name="compute", objective=999_900, weight_bps=8_000, tiers=EC2_TIERS),
                Service(name="csat", kind="satisfaction", objective=800_000, weight_bps=2_000,
                        tiers=(Tier(threshold=800_000, credit_bps=5_000),)))
    terms = make_terms({"provider": provider, "customer": customer, "oracle": a[3]}, chain.now() + 60,
                       services=services, dispute_window=600, arbiter=a[4], maintenance_notice=300,
                       maintenance_budget=3_600)
    factory = Factory.deploy(chain, a[0])
    ag = factory.create_agreement(terms, a[0])
    ag.deposit_fees(customer)
    ag.deposit_collateral(provider)
    env = {"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD}
    common = ["--rpc-url", anvil.url, "--factory", factory.address]
    now = terms.start  # excluded windows cover whole one-minute slices from the start

    code, out = run_cli("maintenance", "declare", ag.address, "--start", str(now + 900), "--end", str(now + 1_200),
                     "--keystore", str(provider_ks), *common, env=env)
    assert code == 0 and "with notice: excluded" in out, out
    code, out = run_cli("maintenance", "declare", ag.address, "--start", "2027-13-01", "--end", "x",
                     "--keystore", str(provider_ks), *common, env=env)
    assert code == 2 and "not a time" in out
    code, out = run_cli("maintenance", "declare", ag.address, "--start", str(now + 900), "--end", str(now + 1_000),
                     "--keystore", str(customer_ks), *common, env=env)
    assert code == 1 and "Unauthorized" in out and "may not do this" in out, out  # the contract's answer

    code, out = run_cli("satisfaction", ag.address, "0", "55%", "--keystore", str(customer_ks), *common, env=env)
    assert code == 0 and "55.0000%" in out, out
    chain.mine_at(terms.period_end(0))
    settled = ag.settle(0, [1_000_000, 0], 1_000_000, EVIDENCE_ROOT, a[3])
    assert settled.values_ppm == (1_000_000, 550_000) and settled.credit_paid > 0

    evidence = tmp_path / "evidence.txt"
    evidence.write_text("our monitoring says otherwise")
    code, out = run_cli("dispute", ag.address, "0", "--evidence", str(evidence), "--keystore", str(provider_ks),
                     *common, env=env)
    assert code == 0 and "disputed" in out, out
    code, out = run_cli("finalize", ag.address, "0", "--keystore", str(customer_ks), *common, env=env)
    assert code == 1 and "DisputeWindowOpen" in out
    chain.mine_at(chain.now() + 1_300)
    code, out = run_cli("finalize", ag.address, "0", "--keystore", str(customer_ks), *common, env=env)
    assert code == 0 and "payable" in out, out
    assert ag.snapshot().owed_to_customer == settled.credit_paid


def test_a_party_disputes_with_its_own_evidence_bundle(cli_chain: Chain, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    """`smartsla dispute --evidence BUNDLE` commits the bundle's Merkle root (what `verify` and
    `arbiter review` check a dispute against), not the file's SHA-256; a bundle of another period
    is refused, naming it, and nothing is sent."""
    chain = cli_chain
    a = chain.accounts
    customer, customer_ks = party_with_keystore(chain, tmp_path, "customer")
    terms = make_terms({"provider": a[1], "customer": customer, "oracle": a[3]}, chain.now() + 60,
                       dispute_window=600, arbiter=a[4], slice_seconds=60)
    factory = Factory.deploy(chain, a[0])
    ag = factory.create_agreement(terms, a[0])
    ag.deposit_fees(customer)
    ag.deposit_collateral(a[1])
    chain.mine_at(terms.period_end(0))
    ag.settle(0, [1_000_000], 1_000_000, EVIDENCE_ROOT, a[3])
    monkeypatch.setenv("SMARTSLA_KEYSTORE_PASSWORD", PASSWORD)

    def bundle_file(period: int) -> Path:
        n = terms.period_length // 60
        record = ev.build_record(chain_id=chain.chain_id, agreement=ag.address, period=period,
                                 start=terms.period_start(period), end=terms.period_end(period), slice_seconds=60,
                                 index=0, name="compute", kind="availability",
                                 slices={i: (i not in (10, 11, 12), None) for i in range(n)})
        path = tmp_path / f"mine-{period}.json"
        path.write_text(ev.dumps_bundle(ev.Bundle(oracle=customer, records=(record,))))
        return path

    def disputes() -> list[bytes]:  # the evidence of each Disputed event (its only non-indexed field)
        topic = chain.w3.keccak(text="Disputed(uint256,address,bytes32)")
        return [bytes(e["data"])[-32:] for e in chain.w3.eth.get_logs({"address": ag.address, "fromBlock": 0})
                if e["topics"][0] == topic]

    common = ["--keystore", str(customer_ks), "--rpc-url", "embedded", "--factory", factory.address]
    code, _, err = invoke("dispute", ag.address, "0", "--evidence", str(bundle_file(1)), *common)
    assert code == 2 and "it is for period 1, not 0" in err, err
    assert disputes() == []  # nothing was sent
    mine = bundle_file(0)
    root = ev.parse_bundle(mine.read_text()).root
    code, out, err = invoke("dispute", ag.address, "0", "--evidence", str(mine), *common)
    assert code == 0 and f"evidence bundle root 0x{root.hex()}" in out, out + err
    assert disputes() == [root]


# ---------------------------------------------------------------------------- smartsla deposit (finding 11)
def _pending_agreement(chain: Chain, tmp_path: Path, asset: str | None = None, start_in_s: int = 600):
    a = chain.accounts
    customer, customer_ks = party_with_keystore(chain, tmp_path, "customer")
    provider, provider_ks = party_with_keystore(chain, tmp_path, "provider")
    extra = {"asset": asset} if asset else {}
    start = max(int(time.time()), chain.now()) + start_in_s
    terms = make_terms({"provider": provider, "customer": customer, "oracle": a[3]}, start, **extra)
    factory = Factory.deploy(chain, a[0])
    ag = factory.create_agreement(terms, a[0])
    common = ["--rpc-url", chain.url, "--factory", factory.address]
    return ag, customer_ks, provider_ks, common


@pytest.mark.anvil
def test_deposit_fees_and_collateral_in_eth_with_key_files(anvil: LocalNode, tmp_path: Path) -> None:
    chain = Chain.connect(anvil.url)
    ag, customer_ks, provider_ks, common = _pending_agreement(chain, tmp_path)
    terms = ag.terms
    env = {"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD}
    stranger = tmp_path / "stranger.json"
    keystore.create(stranger, PASSWORD, Account.create().key, kdf="pbkdf2", iterations=2)

    code, out = run_cli("deposit", ag.address, "--keystore", str(stranger), *common, env=env)
    assert code == 2 and "neither the customer" in out, out
    code, out = run_cli("deposit", ag.address, "--what", "collateral", "--keystore", str(customer_ks), *common, env=env)
    assert code == 1 and "Unauthorized" in out and "may not do this" in out, out  # the contract's answer
    code, out = run_cli("deposit", ag.address, "--what", "bond", "--keystore", str(customer_ks), *common, env=env)
    assert code == 2 and "'fees' or 'collateral'" in out, out
    assert not ag.snapshot().fees_deposited and not ag.snapshot().collateral_deposited

    before = chain.balance(ag.address)
    code, out = run_cli("deposit", ag.address, "--keystore", str(customer_ks), *common, env=env)
    assert code == 0, out
    assert "deposited 3.0000 ETH of fees" in out and "Pending" in out and "waiting for the provider" in out
    assert chain.balance(ag.address) - before == terms.total_fees
    code, out = run_cli("deposit", ag.address, "--keystore", str(customer_ks), *common, env=env)
    assert code == 1 and "AlreadyDeposited" in out and "deposit is already in" in out, out
    assert chain.balance(ag.address) - before == terms.total_fees  # nothing sent twice

    code, out = run_cli("deposit", ag.address, "--what", "collateral", "--keystore", str(provider_ks), *common, env=env)
    assert code == 0 and "deposited 3.0000 ETH of collateral" in out and "Active" in out, out
    assert chain.balance(ag.address) - before == terms.total_fees + terms.collateral
    code, out = run_cli("deposit", ag.address, "--keystore", str(provider_ks), *common, env=env)
    assert code == 1 and "WrongStatus(Active)" in out and "Not allowed in the agreement's Active status" in out, out


@pytest.mark.anvil
def test_deposit_in_an_erc20_approves_exactly_the_amount(anvil: LocalNode, tmp_path: Path) -> None:
    chain = Chain.connect(anvil.url)
    a = chain.accounts
    token, _ = chain.deploy("TestToken", a[0])
    ag, customer_ks, provider_ks, common = _pending_agreement(chain, tmp_path, asset=token.address)
    terms = ag.terms
    env = {"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD}
    chain.transact(token.functions.mint(terms.customer, terms.total_fees - 1), a[0])
    code, out = run_cli("deposit", ag.address, "--keystore", str(customer_ks), *common, env=env)
    assert code == 1 and "holds only 2.999999999999999999 SLAT" in out and "are 3.0000 SLAT" in out, out
    assert token.functions.allowance(terms.customer, ag.address).call() == 0  # nothing approved on a refusal

    chain.transact(token.functions.mint(terms.customer, 1 + 5 * 10**18), a[0])  # 5 SLAT more than needed
    chain.transact(token.functions.mint(terms.provider, terms.collateral), a[0])
    code, out = run_cli("deposit", ag.address, "--keystore", str(customer_ks), *common, env=env)
    assert code == 0 and "deposited 3.0000 SLAT of fees" in out, out
    code, out = run_cli("deposit", ag.address, "--keystore", str(provider_ks), *common, env=env)
    assert code == 0 and "Active" in out, out
    assert token.functions.balanceOf(ag.address).call() == terms.total_fees + terms.collateral
    assert token.functions.balanceOf(terms.customer).call() == 5 * 10**18
    # Only what was needed was approved, and it was all used: no allowance left behind.
    assert token.functions.allowance(terms.customer, ag.address).call() == 0
    assert token.functions.allowance(terms.provider, ag.address).call() == 0


@pytest.mark.anvil
def test_deposit_after_the_term_started_is_refused(anvil: LocalNode, tmp_path: Path) -> None:
    chain = Chain.connect(anvil.url)
    ag, customer_ks, _, common = _pending_agreement(chain, tmp_path, start_in_s=2)
    while time.time() < ag.terms.start + 0.5:
        time.sleep(0.1)
    code, out = run_cli("deposit", ag.address, "--keystore", str(customer_ks), *common,
                     env={"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD})
    assert code == 1 and "TermStarted" in out and "Deposits close when the term starts" in out, out
    assert not ag.snapshot().fees_deposited and chain.balance(ag.address) == 0


@pytest.mark.anvil
def test_withdraw_to_another_address(anvil: LocalNode, tmp_path: Path) -> None:
    chain = Chain.connect(anvil.url)
    ag, customer_ks, provider_ks, common = _pending_agreement(chain, tmp_path, start_in_s=3)
    env = {"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD}
    assert run_cli("deposit", ag.address, "--keystore", str(customer_ks), *common, env=env)[0] == 0
    assert run_cli("deposit", ag.address, "--keystore", str(provider_ks), *common, env=env)[0] == 0
    code, out = run_cli("withdraw", ag.address, "--to", "0x" + "00" * 20, "--keystore", str(customer_ks), *common,
                     env=env)
    assert code == 2 and "zero address" in out
    chain.mine_at(ag.terms.period_end(0))
    ag.settle(0, [940_000], 1_000_000, EVIDENCE_ROOT, chain.accounts[3])  # below 95 %: a 100 % credit of 1 ETH
    cold = Account.create().address
    code, out = run_cli("withdraw", ag.address, "--to", cold, "--keystore", str(customer_ks), *common, env=env)
    assert code == 0 and f"paid to {cold}" in out, out
    assert chain.balance(cold) == 10**18
    assert ag.snapshot().owed_to_customer == 0
