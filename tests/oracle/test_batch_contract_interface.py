"""Review 6 (helper Z): the compact settlement changed SettlementBatch's interface
(`settleMany(Item[])` became `settleMany(bytes)`), so every batch contract deployed before it is
incompatible with the daemon that now packs items. The daemon checks only that some code lives at
`chain.batch_contract`: configured with a contract that has no `settleMany(bytes)` (here the
factory, standing for a pre-upgrade SettlementBatch), it must refuse to start naming the field,
not send a batch transaction that reverts on every pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.terms import Service, Terms, Tier

ETHER = 10**18


def test_a_batch_contract_without_the_compact_interface_stops_the_daemon_at_start(anvil, tmp_path: Path,
                                                                                   monkeypatch) -> None:
    from oracle.config import ConfigError, OracleConfig
    from oracle.daemon import Daemon

    chain = Chain.connect(anvil.url)
    deployer = chain.accounts[0]
    factory = Factory.deploy(chain, deployer)
    oracle, key = chain.new_account(fund_from=deployer, amount=ETHER)
    a = chain.accounts
    terms = Terms(provider=a[1], customer=a[2], start=chain.now() + 100, period_length=10, period_count=2,
                  fee_per_period=ETHER, collateral=2 * ETHER, termination_ppm=0,
                  services=(Service(name="web", objective=999_900,
                                    tiers=(Tier(threshold=999_900, credit_bps=1_000),)),),
                  oracles=(oracle,), slice_seconds=1)
    ag = factory.create_agreement(terms, deployer)
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", key)
    config = OracleConfig.model_validate({
        "chain": {"rpc_url": anvil.url, "factory": factory.address, "timeout_s": 2,
                  "batch_contract": factory.address, "batch_size": 3},
        "key": {"env": "SMARTSLA_ORACLE_KEY"}, "store": f"sqlite:///{tmp_path / 'o.db'}",
        "slice_seconds": 1, "grace_s": 0, "listen": "127.0.0.1:0", "agreements": [{"address": ag.address}],
        "services": {"web": {"tcp": {"host": "127.0.0.1", "port": 9, "timeout_s": 0.25}, "interval_s": 0.5}},
    })
    with pytest.raises(ConfigError, match="batch_contract"):
        Daemon(config).prepare(wait_for_chain_s=5)
