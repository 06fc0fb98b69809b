"""Batch settlement: one SettlementBatch transaction settles many agreements; an item that reverts
reverts nothing else, is reported by its error's name, and only it is sent again."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_helpers import ETHER, batch_set_up, daemon_config, measure_period_up
from batch_helpers import funded_agreement as make
from sla_helpers import EVIDENCE_ROOT
from web3.logs import DISCARD

from oracle.sli import PeriodFigure
from oracle.store import Store
from oracle.submitter import Submitter
from smartsla.chain import REVERTS, Chain, _revert_data
from smartsla.client import Factory
from smartsla.errors import decode_revert

FIGURES = {"web": PeriodFigure(value_ppm=999_000, good_slices=999, total_slices=1000, excluded_slices=0,
                               maintenance_slices=0, missing_slices=0, slice_seconds=1)}


def test_one_failing_item_does_not_stop_the_others_and_alone_is_retried(anvil, tmp_path: Path):
    chain = Chain.connect(anvil.url)
    factory, batch, oracle, key = batch_set_up(chain)
    account = chain.w3.eth.account.from_key(key)
    start = chain.now() + 100
    # Nine agreements whose period 0 ends at start+1000; the late one's ends at start+2000.
    agreements = [make(chain, factory, oracle, start, 1000) for _ in range(9)]
    late = make(chain, factory, oracle, start, 2000)
    agreements.insert(4, late)
    sub = Submitter(chain, account, Store.open(f"sqlite:///{tmp_path / 'o.db'}"), receipt_wait_s=5)
    chain.mine_at(start + 1001)
    nonce0 = chain.w3.eth.get_transaction_count(oracle)

    outcomes = sub.process_batch(batch, [(ag, 0, FIGURES, EVIDENCE_ROOT) for ag in agreements])

    assert outcomes[(late.address, 0)].state == "submitted"
    assert "PeriodNotEnded" in outcomes[(late.address, 0)].detail
    assert [outcomes[(ag.address, 0)].state for ag in agreements if ag is not late] == ["confirmed"] * 9
    assert [ag.snapshot().settled_periods for ag in agreements] == [0 if ag is late else 1 for ag in agreements]
    assert chain.w3.eth.get_transaction_count(oracle) == nonce0 + 1  # one transaction for ten items

    chain.mine_at(start + 2001)
    again = sub.process_batch(batch, [(ag, 0, FIGURES, EVIDENCE_ROOT) for ag in agreements])

    assert all(o.state == "confirmed" for o in again.values()), again
    assert chain.w3.eth.get_transaction_count(oracle) == nonce0 + 2
    retry = chain.w3.eth.get_transaction_receipt(again[(late.address, 0)].tx_hash)
    settled_in_retry = late.contract.events.PeriodSettled().process_receipt(retry, errors=DISCARD)
    assert [e["address"] for e in settled_in_retry] == [late.address]  # only the failed one
    for ag in agreements:
        assert len(ag.settlements()) == 1  # every period settled exactly once


def test_batch_refuses_an_empty_or_oversized_list(anvil):
    chain = Chain.connect(anvil.url)
    batch, _ = chain.deploy("SettlementBatch", chain.accounts[0])
    with pytest.raises(REVERTS) as info:
        batch.functions.settleMany(b"").call()
    assert decode_revert(_revert_data(info.value)).name == "BadBatchSize"


def test_daemon_batches_what_is_due_into_one_transaction(anvil, tmp_path: Path, monkeypatch):
    from oracle.daemon import Daemon

    chain = Chain.connect(anvil.url)
    factory, batch, oracle, key = batch_set_up(chain)
    start = chain.now() + 100
    agreements = [make(chain, factory, oracle, start, 10) for _ in range(4)]
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", key)
    config = daemon_config(anvil.url, tmp_path / "o.db", agreements, factory=factory.address,
                           batch_contract=batch.address, batch_size=3)
    daemon = Daemon(config)
    daemon.prepare(wait_for_chain_s=5)
    measure_period_up(daemon.store, agreements, start)  # every slice of period 0 measured up
    chain.mine_at(start + 11)
    nonce0 = chain.w3.eth.get_transaction_count(oracle)
    daemon.report_due_periods()
    # Four due periods, batches of at most three: two transactions, every period settled once.
    assert chain.w3.eth.get_transaction_count(oracle) == nonce0 + 2
    assert [ag.snapshot().settled_periods for ag in agreements] == [1, 1, 1, 1]
    assert [daemon.store.report(ag.address, 0).state for ag in agreements] == ["confirmed"] * 4
    daemon.report_due_periods()  # nothing more is due: nothing is sent
    assert chain.w3.eth.get_transaction_count(oracle) == nonce0 + 2


def test_batch_settings_are_checked():
    from pydantic import ValidationError

    from oracle.config import ChainConfig

    with pytest.raises(ValidationError) as info:
        ChainConfig.model_validate({"batch_contract": "0x123", "batch_size": 500, "max_fee_gwei": 0})
    text = str(info.value)
    assert "batch_contract" in text and "not an Ethereum address" in text
    assert "batch_size" in text and "max_fee_gwei" in text


def test_a_full_batch_is_sent_before_the_rest_of_the_pass_is_computed(anvil, tmp_path: Path, monkeypatch):
    """At 10,000 agreements ending together the pass computes evidence for minutes: a batch that
    waits for the whole pass delays every settlement by it (bench/fleet_sim.py). The first full
    batch must be on-chain before the evidence of the agreements after it is computed."""
    from oracle.daemon import Daemon

    chain = Chain.connect(anvil.url)
    factory, batch, oracle, key = batch_set_up(chain)
    start = chain.now() + 100
    agreements = [make(chain, factory, oracle, start, 10) for _ in range(4)]
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", key)
    config = daemon_config(anvil.url, tmp_path / "o.db", agreements, factory=factory.address,
                           batch_contract=batch.address, batch_size=2)
    daemon = Daemon(config)
    daemon.prepare(wait_for_chain_s=5)
    measure_period_up(daemon.store, agreements, start)
    chain.mine_at(start + 11)
    nonce0 = chain.w3.eth.get_transaction_count(oracle)
    sent_before: list[int] = []  # oracle transactions mined when each agreement's evidence is computed
    real_evidence = daemon.evidence

    def spying_evidence(served, period, **kw):  # the real computation; only the chain's nonce is read
        sent_before.append(chain.w3.eth.get_transaction_count(oracle) - nonce0)
        return real_evidence(served, period, **kw)

    monkeypatch.setattr(daemon, "evidence", spying_evidence)
    daemon.report_due_periods()
    assert sent_before == [0, 0, 1, 1]  # batch 1 (agreements 0, 1) went out before agreement 2's evidence
    assert chain.w3.eth.get_transaction_count(oracle) == nonce0 + 2
    assert [ag.snapshot().settled_periods for ag in agreements] == [1, 1, 1, 1]


def test_a_batch_that_settles_nothing_confirms_nothing(anvil, tmp_path: Path):
    """The batch is only a transport: an item counts as settled by its agreement's PeriodSettled,
    not by the batch's silence. Failed before: sent to an address without code (a mined
    transaction, no ItemFailed) every item was marked 'confirmed' though no period was settled,
    and the daemon never sent them again (seventh session, N7-2)."""
    chain = Chain.connect(anvil.url)
    deployer = chain.accounts[0]
    factory = Factory.deploy(chain, deployer)
    oracle, key = chain.new_account(fund_from=deployer, amount=ETHER)
    start = chain.now() + 100
    agreements = [make(chain, factory, oracle, start, 1000) for _ in range(2)]
    hollow = chain.contract("SettlementBatch", chain.new_account()[0])  # no code: takes anything, settles nothing
    sub = Submitter(chain, chain.w3.eth.account.from_key(key), Store.open(f"sqlite:///{tmp_path / 'o.db'}"),
                    receipt_wait_s=5)
    chain.mine_at(start + 1001)

    outcomes = sub.process_batch(hollow, [(ag, 0, FIGURES, EVIDENCE_ROOT) for ag in agreements])

    assert [outcomes[(ag.address, 0)].state for ag in agreements] == ["submitted"] * 2, outcomes
    assert [sub.store.report(ag.address, 0).state for ag in agreements] == ["submitted"] * 2
    assert [ag.snapshot().settled_periods for ag in agreements] == [0, 0]
    # and through a real batch on the next pass, each period settles once
    batch, _ = chain.deploy("SettlementBatch", deployer)
    again = sub.process_batch(batch, [(ag, 0, FIGURES, EVIDENCE_ROOT) for ag in agreements])
    assert [again[(ag.address, 0)].state for ag in agreements] == ["confirmed"] * 2, again
    assert [len(ag.settlements()) for ag in agreements] == [1, 1]
