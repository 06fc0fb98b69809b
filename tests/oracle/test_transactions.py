"""Real-network faults on Anvil with a block time: a base-fee spike, a dropped transaction and a
3-block reorg. In each, the period settles exactly once: one PeriodSettled event and one nonce of
the oracle's account used. Mining is paused around the fault so the schedule is deterministic."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from node_helpers import node_fixture
from sla_helpers import EVIDENCE_ROOT
from sqlalchemy import select

from oracle.sli import PeriodFigure
from oracle.store import Store
from oracle.submitter import Submitter
from oracle.transactions import ATTEMPTS, GWEI, Fees, TxManager, bumped
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.terms import Service, Terms, Tier

ETHER = 10**18
TIERS = (Tier(threshold=999_900, credit_bps=1_000),)


anvil = node_fixture("anvil", block_time=1)


class Rig:
    def __init__(self, url: str, tmp: Path, confirmations: int = 1, max_fee_gwei: float = 500.0):
        self.chain = Chain.connect(url)
        self.w3 = self.chain.w3
        # Set-up transactions are mined at once (a block per second would make it take ~10 s);
        # the faults are played with the block time back on (resume_mining).
        self.rpc("evm_setAutomine", True)
        a = self.chain.accounts
        self.deployer, self.provider, self.customer = a[0], a[1], a[2]
        self.factory = Factory.deploy(self.chain, self.deployer)
        address, key = self.chain.new_account(fund_from=self.deployer, amount=ETHER)
        self.oracle = address
        self.account = self.w3.eth.account.from_key(key)
        self.store = Store.open(f"sqlite:///{tmp / 'oracle.db'}")
        self.tx = TxManager(self.w3, self.account, self.store.engine, max_fee_gwei=max_fee_gwei,
                            confirmations=confirmations)
        self.sub = Submitter(self.chain, self.account, self.store, tx=self.tx, receipt_wait_s=0.5)

    def agreement(self, wait: bool = True) -> Agreement:
        start = int(time.time()) + 4
        terms = Terms(provider=self.provider, customer=self.customer, start=start, period_length=2,
                      period_count=1, fee_per_period=ETHER, collateral=ETHER, termination_ppm=0,
                      services=(Service(name="web", objective=999_900, tiers=TIERS),),
                      oracles=(self.oracle,), slice_seconds=1)
        ag = self.factory.create_agreement(terms, self.deployer)
        ag.deposit_fees(self.customer)
        ag.deposit_collateral(self.provider)
        if wait:
            self.chain.mine_at(terms.period_end(0) + 1)  # time travel rather than wait
        self.resume_mining()
        return ag

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))
        assert "error" not in response, response
        return response.get("result")

    def pause_mining(self) -> None:
        self.rpc("evm_setIntervalMining", 0)

    def resume_mining(self) -> None:
        self.rpc("evm_setIntervalMining", 1)

    def nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.oracle, "latest"))

    def attempts(self) -> list[Any]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(select(ATTEMPTS).order_by(ATTEMPTS.c.created_at)).mappings())

    def settle_until_confirmed(self, ag: Agreement, timeout: float = 20.0) -> list[str]:
        details = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            outcome = self.sub.process(ag, 0, FIGURES, EVIDENCE_ROOT)
            details.append(outcome.detail)
            if outcome.state == "confirmed":
                return details
            time.sleep(0.3)
        pytest.fail(f"period 0 not confirmed within {timeout}s: {details[-5:]}")


FIGURES = {"web": PeriodFigure(value_ppm=1_000_000, good_slices=2, total_slices=2, excluded_slices=0,
                               maintenance_slices=0, missing_slices=0, slice_seconds=1)}


def test_fee_bump_is_at_least_ten_percent_and_never_above_the_cap():
    old = Fees(max_fee=10 * GWEI, priority_fee=GWEI)
    new = bumped(old, Fees(max_fee=5 * GWEI, priority_fee=GWEI), cap_wei=100 * GWEI)
    assert new is not None and new.max_fee >= 11 * GWEI and new.priority_fee >= 1.1 * GWEI
    # The network asks more than +12.5 %: follow the network.
    assert bumped(old, Fees(max_fee=40 * GWEI, priority_fee=2 * GWEI), cap_wei=100 * GWEI) == Fees(40 * GWEI, 2 * GWEI)
    assert bumped(old, Fees(max_fee=5 * GWEI, priority_fee=GWEI), cap_wei=11 * GWEI) is None


def test_base_fee_spike_replaces_the_stuck_transaction_with_the_same_nonce(anvil, tmp_path: Path):
    rig = Rig(anvil.url, tmp_path)
    ag = rig.agreement()
    nonce_before = rig.nonce()
    rig.pause_mining()
    first = rig.sub.process(ag, 0, FIGURES, EVIDENCE_ROOT)
    assert first.state == "submitted", first
    # The next block's base fee jumps far above what the transaction offers: it cannot be mined.
    rig.rpc("anvil_setNextBlockBaseFeePerGas", hex(50 * GWEI))
    rig.rpc("evm_mine")
    assert rig.w3.eth.get_transaction_receipt  # the node is alive
    assert ag.snapshot().settled_periods == 0
    rig.resume_mining()
    rig.settle_until_confirmed(ag)
    attempts = rig.attempts()
    assert len(attempts) >= 2, "the stuck transaction was never replaced"
    assert {a["nonce"] for a in attempts} == {nonce_before}
    assert attempts[-1]["max_fee"] >= attempts[0]["max_fee"] * 1.1
    assert all(a["max_fee"] <= 500 * GWEI for a in attempts)
    assert len(ag.settlements()) == 1
    assert rig.nonce() == nonce_before + 1


def test_spike_above_the_cap_sends_nothing_until_fees_fall(anvil, tmp_path: Path):
    rig = Rig(anvil.url, tmp_path, max_fee_gwei=20.0)
    ag = rig.agreement()
    nonce_before = rig.nonce()
    rig.pause_mining()
    rig.rpc("anvil_setNextBlockBaseFeePerGas", hex(80 * GWEI))
    rig.rpc("evm_mine")
    outcome = rig.sub.process(ag, 0, FIGURES, EVIDENCE_ROOT)
    assert outcome.state == "signed" and "cap" in outcome.detail, outcome
    assert rig.attempts() == []
    rig.rpc("anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    rig.rpc("evm_mine")
    rig.resume_mining()
    rig.settle_until_confirmed(ag)
    assert len(ag.settlements()) == 1 and rig.nonce() == nonce_before + 1


def test_dropped_transaction_is_broadcast_again(anvil, tmp_path: Path):
    rig = Rig(anvil.url, tmp_path)
    ag = rig.agreement()
    nonce_before = rig.nonce()
    rig.pause_mining()
    first = rig.sub.process(ag, 0, FIGURES, EVIDENCE_ROOT)
    assert first.state == "submitted", first
    rig.rpc("anvil_dropTransaction", first.tx_hash)
    rig.rpc("evm_mine")
    assert ag.snapshot().settled_periods == 0
    rig.resume_mining()
    rig.settle_until_confirmed(ag)
    assert len(ag.settlements()) == 1
    assert rig.nonce() == nonce_before + 1


def test_settlement_reorganised_out_is_sent_again_and_counts_only_once_deep(anvil, tmp_path: Path):
    rig = Rig(anvil.url, tmp_path, confirmations=3)
    ag = rig.agreement()
    for _ in range(4):  # the reorg must not reach back to the time-travel block (time never goes back)
        rig.rpc("evm_mine")
    nonce_before = rig.nonce()
    rig.pause_mining()
    first = rig.sub.process(ag, 0, FIGURES, EVIDENCE_ROOT)
    assert first.state == "submitted", first
    rig.rpc("evm_mine")
    rig.rpc("evm_mine")
    assert ag.snapshot().settled_periods == 1  # mined, two blocks deep: not yet confirmed
    outcome = rig.sub.process(ag, 0, FIGURES, EVIDENCE_ROOT)
    assert outcome.state == "submitted" and "confirmations" in outcome.detail, outcome
    # A 3-block reorg takes the settlement out of the chain (no transaction re-included).
    rig.rpc("anvil_reorg", 3, [])
    assert ag.snapshot().settled_periods == 0
    rig.resume_mining()
    rig.settle_until_confirmed(ag)
    assert rig.store.report(ag.address, 0).state == "confirmed"
    assert len(ag.settlements()) == 1
    assert rig.nonce() == nonce_before + 1


def test_many_in_flight_from_one_key_and_a_dropped_one_in_the_middle(anvil, tmp_path: Path):
    rig = Rig(anvil.url, tmp_path)
    ags = [rig.agreement(wait=False) for _ in range(3)]
    rig.rpc("evm_setAutomine", True)
    rig.chain.mine_at(max(ag.terms.period_end(0) for ag in ags) + 1)
    rig.resume_mining()
    nonce_before = rig.nonce()
    rig.pause_mining()
    sent = [rig.sub.process(ag, 0, FIGURES, EVIDENCE_ROOT) for ag in ags]
    assert [o.state for o in sent] == ["submitted"] * 3
    assert sorted(a["nonce"] for a in rig.attempts()) == [nonce_before, nonce_before + 1, nonce_before + 2]
    # The middle one is dropped: the third cannot be mined until its nonce's gap is filled.
    rig.rpc("anvil_dropTransaction", sent[1].tx_hash)
    rig.rpc("evm_mine")
    assert [ag.snapshot().settled_periods for ag in ags] == [1, 0, 0]
    rig.resume_mining()
    for ag in ags:
        rig.settle_until_confirmed(ag)
    assert [len(ag.settlements()) for ag in ags] == [1, 1, 1]
    assert rig.nonce() == nonce_before + 3
