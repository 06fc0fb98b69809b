"""Batched settlement is what an operator gets by following the README (seventh session, N7-1):
`smartsla deploy` and `scripts/deploy.py` record a SettlementBatch beside the factory, and a daemon
whose config names neither settles through it. A lone due period goes through the agreement's own
entry point, which costs less than a batch of one. `batch_contract: false` keeps one transaction
per period; a factory of the operator's own choosing is not paired with another's batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from batch_helpers import ETHER, daemon_config, funded_agreement, measure_period_up
from sla_helpers import EVIDENCE_ROOT

from oracle.config import ChainConfig, ConfigError, OracleConfig
from oracle.daemon import Daemon
from oracle.sli import PeriodFigure
from oracle.store import Store
from oracle.submitter import Submitter
from smartsla import deployments
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory


@pytest.fixture(autouse=True)
def _own_deployments_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTSLA_DEPLOYMENTS", str(tmp_path / "deployments.json"))


def _deployed(chain: Chain) -> tuple[Factory, Any]:
    """What `smartsla deploy` leaves: a factory and a batch contract, both recorded for the chain id."""
    deployer = chain.accounts[0]
    factory = Factory.deploy(chain, deployer)
    batch, _ = chain.deploy(deployments.SETTLEMENT_BATCH, deployer)
    deployments.record(chain.chain_id, "AgreementFactory", factory.address)
    deployments.record(chain.chain_id, deployments.SETTLEMENT_BATCH, batch.address)
    return factory, batch


def _pass(chain: Chain, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chain_config: dict[str, Any],
          agreements: list[Agreement], key: str, start: int) -> tuple[Daemon, list[dict[str, Any]]]:
    """One report pass of a daemon over `agreements` (period 0 measured all up); returns the daemon
    and the oracle's transactions that pass sent (oldest first)."""
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", key)
    config = daemon_config(url, tmp_path / "o.db", agreements, **chain_config)
    daemon = Daemon(config)
    daemon.prepare(wait_for_chain_s=5)
    measure_period_up(daemon.store, agreements, start)
    chain.mine_at(start + 11)
    first = chain.w3.eth.block_number + 1
    daemon.report_due_periods()
    oracle = daemon.account.address
    sent = [tx for n in range(first, chain.w3.eth.block_number + 1)
            for tx in chain.w3.eth.get_block(n, full_transactions=True)["transactions"] if tx["from"] == oracle]
    return daemon, sent


def test_an_unconfigured_daemon_settles_through_the_recorded_batch(anvil, tmp_path: Path, monkeypatch) -> None:
    """Failed before: the README's path (deploy, then a config naming neither the factory nor a
    batch) sent one transaction per period, and nothing recorded a batch contract to name."""
    chain = Chain.connect(anvil.url)
    factory, batch = _deployed(chain)
    oracle, key = chain.new_account(fund_from=chain.accounts[0], amount=ETHER)
    start = chain.now() + 100
    agreements = [funded_agreement(chain, factory, oracle, start, 10) for _ in range(3)]

    daemon, sent = _pass(chain, anvil.url, tmp_path, monkeypatch, {}, agreements, key, start)

    assert daemon.batch is not None and daemon.batch.address == batch.address
    assert [tx["to"] for tx in sent] == [batch.address]  # three periods, one transaction
    assert [ag.snapshot().settled_periods for ag in agreements] == [1, 1, 1]
    assert [len(ag.settlements()) for ag in agreements] == [1, 1, 1]


def test_false_keeps_one_transaction_per_period(anvil, tmp_path: Path, monkeypatch) -> None:
    chain = Chain.connect(anvil.url)
    factory, _ = _deployed(chain)
    oracle, key = chain.new_account(fund_from=chain.accounts[0], amount=ETHER)
    start = chain.now() + 100
    agreements = [funded_agreement(chain, factory, oracle, start, 10) for _ in range(2)]

    daemon, sent = _pass(chain, anvil.url, tmp_path, monkeypatch, {"batch_contract": False}, agreements, key, start)

    assert daemon.batch is None
    assert sorted(tx["to"] for tx in sent) == sorted(ag.address for ag in agreements)
    assert [ag.snapshot().settled_periods for ag in agreements] == [1, 1]


def test_a_factory_of_the_operators_choosing_is_not_paired_with_the_recorded_batch(anvil, tmp_path: Path,
                                                                                     monkeypatch) -> None:
    chain = Chain.connect(anvil.url)
    _deployed(chain)
    own = Factory.deploy(chain, chain.accounts[0])  # not the recorded one
    oracle, key = chain.new_account(fund_from=chain.accounts[0], amount=ETHER)
    start = chain.now() + 100
    agreements = [funded_agreement(chain, own, oracle, start, 10) for _ in range(2)]

    daemon, sent = _pass(chain, anvil.url, tmp_path, monkeypatch, {"factory": own.address}, agreements, key, start)

    assert daemon.batch is None
    assert sorted(tx["to"] for tx in sent) == sorted(ag.address for ag in agreements)


def test_a_recorded_batch_without_code_stops_the_daemon_naming_the_record(anvil, tmp_path: Path,
                                                                          monkeypatch) -> None:
    """A deployments file from a chain since restarted: the daemon says where the address came from."""
    chain = Chain.connect(anvil.url)
    factory, _ = _deployed(chain)
    deployments.record(chain.chain_id, deployments.SETTLEMENT_BATCH, "0x" + "22" * 20)
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", "0x" + "33" * 32)
    config = OracleConfig.model_validate({"chain": {"rpc_url": anvil.url}, "key": {"env": "SMARTSLA_ORACLE_KEY"},
                                          "store": f"sqlite:///{tmp_path / 'o.db'}", "listen": "127.0.0.1:0",
                                          "discover": True})
    with pytest.raises(ConfigError) as info:
        Daemon(config).prepare(wait_for_chain_s=5)
    message = str(info.value)
    assert "chain.batch_contract (unset; recorded in" in message and "no contract at" in message


def test_a_lone_due_period_goes_through_the_agreement_not_a_batch_of_one(anvil, tmp_path: Path) -> None:
    """Failed before: a batch of one paid the batch's call and a signature check for nothing
    (57,952 gas against 47,269 for `settle`, bench/batch_gas.py)."""
    chain = Chain.connect(anvil.url)
    factory, batch = _deployed(chain)
    oracle, key = chain.new_account(fund_from=chain.accounts[0], amount=ETHER)
    start = chain.now() + 100
    ag = funded_agreement(chain, factory, oracle, start, 10)
    sub = Submitter(chain, chain.w3.eth.account.from_key(key), Store.open(f"sqlite:///{tmp_path / 'o.db'}"),
                    receipt_wait_s=5)
    chain.mine_at(start + 11)
    figures = {"web": PeriodFigure(value_ppm=1_000_000, good_slices=10, total_slices=10, excluded_slices=0,
                                   maintenance_slices=0, missing_slices=0, slice_seconds=1)}

    outcome = sub.process_batch(batch, [(ag, 0, figures, EVIDENCE_ROOT)])[(ag.address, 0)]

    assert outcome.state == "confirmed", outcome
    tx = chain.w3.eth.get_transaction(outcome.tx_hash)  # type: ignore[arg-type]
    assert tx["to"] == ag.address
    assert len(ag.settlements()) == 1


def test_the_setting_takes_an_address_false_or_nothing() -> None:
    from pydantic import ValidationError

    assert ChainConfig.model_validate({}).batch_contract is None
    assert ChainConfig.model_validate({"batch_contract": False}).batch_contract is False
    with pytest.raises(ValidationError, match="batch_contract"):
        ChainConfig.model_validate({"batch_contract": True})
