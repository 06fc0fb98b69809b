"""The sender never stalls silently (F8-1): with a batch contract, on Anvil mining on demand (as
bench/fleet_sim.py runs it), a base fee above the operator's cap blocks sending loudly (an ERROR
log, the smartsla_oracle_sending_blocked gauge, /healthz's "sending") and the batch goes out as
soon as the fee falls; a batch stuck below the base fee is replaced (same nonce, bumped fees), or,
when the cap forbids that, is reported blocked until the fee falls. Each period settles once.

On a chain that mines on demand no block comes while our only transaction waits below the base
fee, so the base fee never falls by itself: without the replacement the period would wait forever
(and the customer get the fees back at expiry)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from sla_helpers import EVIDENCE_ROOT
from sqlalchemy import select

from oracle.metrics import OracleMetrics
from oracle.sli import PeriodFigure
from oracle.store import Store
from oracle.submitter import Submitter
from oracle.transactions import ATTEMPTS, GWEI, TxManager
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.terms import Service, Terms, Tier

ETHER = 10**18
TIERS = (Tier(threshold=999_900, credit_bps=1_000),)
FIGURES = {"web": PeriodFigure(value_ppm=1_000_000, good_slices=10, total_slices=10, excluded_slices=0,
                               maintenance_slices=0, missing_slices=0, slice_seconds=1)}


class Rig:
    def __init__(self, url: str, tmp: Path, cap_gwei: float, agreements: int = 3):
        self.chain = Chain.connect(url)
        self.w3 = self.chain.w3
        a = self.chain.accounts
        factory = Factory.deploy(self.chain, a[0])
        self.batch, _ = self.chain.deploy("SettlementBatch", a[0])
        self.oracle, key = self.chain.new_account(fund_from=a[0], amount=ETHER)
        start = self.chain.now() + 100
        self.ags: list[Agreement] = []
        for _ in range(agreements):
            terms = Terms(provider=a[1], customer=a[2], start=start, period_length=1000, period_count=1,
                          fee_per_period=ETHER // 100, collateral=ETHER // 100, termination_ppm=0,
                          services=(Service(name="web", objective=999_900, tiers=TIERS),), oracles=(self.oracle,),
                          slice_seconds=1)
            ag = factory.create_agreement(terms, a[0])
            ag.deposit_fees(a[2])
            ag.deposit_collateral(a[1])
            self.ags.append(ag)
        self.chain.mine_at(start + 1001)
        account = self.w3.eth.account.from_key(key)
        self.store = Store.open(f"sqlite:///{tmp / 'o.db'}")
        self.tx = TxManager(self.w3, account, self.store.engine, max_fee_gwei=cap_gwei)
        self.metrics = OracleMetrics()
        self.metrics.bind_sender(self.tx)
        self.sub = Submitter(self.chain, account, self.store, metrics=self.metrics, tx=self.tx, receipt_wait_s=1)

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        assert "error" not in response, response
        return response.get("result")

    def items(self) -> list[Any]:
        return [(ag, 0, FIGURES, EVIDENCE_ROOT) for ag in self.ags]

    def gauge(self, name: str) -> float:
        for line in generate_latest(self.metrics.registry).decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not exported")

    def nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(self.oracle, "latest"))

    def attempts(self) -> list[Any]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(select(ATTEMPTS).order_by(ATTEMPTS.c.created_at)).mappings())

    def settle_all(self, tries: int = 10) -> None:
        for _ in range(tries):  # the daemon's passes, one after another
            outcomes = self.sub.process_batch(self.batch, self.items())
            if all(o.state == "confirmed" for o in outcomes.values()):
                return
        pytest.fail(f"not all confirmed: {outcomes}")


def test_base_fee_above_the_cap_blocks_sending_loudly_then_the_batch_goes_out(anvil, tmp_path: Path, caplog):
    rig = Rig(anvil.url, tmp_path, cap_gwei=20.0)
    rig.rpc("anvil_setNextBlockBaseFeePerGas", hex(80 * GWEI))
    rig.rpc("evm_mine")
    nonce0 = rig.nonce()
    with caplog.at_level(logging.WARNING, logger="oracle.transactions"):
        outcomes = rig.sub.process_batch(rig.batch, rig.items())
    assert all(o.state == "signed" and "cap" in o.detail for o in outcomes.values()), outcomes
    assert rig.attempts() == []
    assert rig.tx.blocked is not None and rig.tx.blocked.reason == "fee_cap"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "sending blocked" in r.getMessage()]
    assert errors, "the blocked sender must log an ERROR"
    assert rig.gauge("smartsla_oracle_sending_blocked") == 1.0
    assert rig.gauge("smartsla_oracle_base_fee_gwei") >= 20.0
    assert rig.gauge("smartsla_oracle_fee_cap_gwei") == 20.0
    # The fee falls: the next pass sends, everything settles once, the block is lifted.
    rig.rpc("anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    rig.rpc("evm_mine")
    rig.settle_all()
    assert rig.tx.blocked is None and rig.gauge("smartsla_oracle_sending_blocked") == 0.0
    assert [len(ag.settlements()) for ag in rig.ags] == [1] * len(rig.ags)
    assert rig.nonce() == nonce0 + 1  # one batch


def test_a_batch_stuck_below_the_base_fee_is_replaced_on_a_chain_mining_on_demand(anvil, tmp_path: Path):
    rig = Rig(anvil.url, tmp_path, cap_gwei=500.0)
    nonce0 = rig.nonce()
    rig.rpc("evm_setAutomine", False)
    first = rig.sub.process_batch(rig.batch, rig.items())
    assert {o.state for o in first.values()} == {"submitted"}, first
    # The base fee jumps above what the batch offers before it is mined; then the node mines on
    # demand again, and nothing else arrives: only a replacement can get the batch in.
    rig.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
    rig.rpc("evm_mine")
    rig.rpc("evm_setAutomine", True)
    assert [ag.snapshot().settled_periods for ag in rig.ags] == [0] * len(rig.ags)
    rig.settle_all()
    attempts = rig.attempts()
    assert len(attempts) >= 2, "the stuck batch was never replaced"
    assert {a["nonce"] for a in attempts} == {nonce0}
    assert attempts[-1]["max_fee"] > 100 * GWEI > attempts[0]["max_fee"]
    assert rig.gauge("smartsla_oracle_tx_replacements") >= 1
    assert [len(ag.settlements()) for ag in rig.ags] == [1] * len(rig.ags)
    assert rig.nonce() == nonce0 + 1


def test_a_stuck_batch_the_cap_forbids_replacing_is_reported_until_the_fee_falls(anvil, tmp_path: Path):
    rig = Rig(anvil.url, tmp_path, cap_gwei=50.0)
    nonce0 = rig.nonce()
    rig.rpc("evm_setAutomine", False)
    rig.sub.process_batch(rig.batch, rig.items())
    rig.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
    rig.rpc("evm_mine")
    rig.rpc("evm_setAutomine", True)
    outcomes = rig.sub.process_batch(rig.batch, rig.items())
    assert {o.state for o in outcomes.values()} == {"submitted"}, outcomes
    assert rig.tx.blocked is not None, "a batch stuck below the base fee must be reported"
    assert rig.gauge("smartsla_oracle_sending_blocked") == 1.0
    assert rig.nonce() == nonce0
    # The fee falls (a block mined by someone else): the batch is mined, the block lifted.
    rig.rpc("anvil_setNextBlockBaseFeePerGas", hex(GWEI))
    rig.rpc("evm_mine")
    rig.settle_all()
    assert rig.tx.blocked is None
    assert [len(ag.settlements()) for ag in rig.ags] == [1] * len(rig.ags)
    assert rig.nonce() == nonce0 + 1
