"""Shared set-up of the batch settlement tests: funded single-service agreements on one oracle,
and a daemon configuration that probes nothing real (samples are written into its store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oracle.config import OracleConfig
from oracle.probes import Sample
from oracle.store import Store
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.terms import Service, Terms, Tier

ETHER = 10**18
TIERS = (Tier(threshold=999_900, credit_bps=1_000),)


def funded_agreement(chain: Chain, factory: Factory, oracle: str, start: int, period_length: int) -> Agreement:
    """Two periods of `period_length` s from `start`, one service 'web' in 1-s slices, `oracle`
    alone; created by account 0, fees from the customer (2), collateral from the provider (1)."""
    a = chain.accounts
    terms = Terms(provider=a[1], customer=a[2], start=start, period_length=period_length, period_count=2,
                  fee_per_period=ETHER, collateral=2 * ETHER, termination_ppm=0,
                  services=(Service(name="web", objective=999_900, tiers=TIERS),), oracles=(oracle,),
                  slice_seconds=1)
    ag = factory.create_agreement(terms, a[0])
    ag.deposit_fees(a[2])
    ag.deposit_collateral(a[1])
    return ag


def daemon_config(url: str, store: Path, agreements: list[Agreement], **chain: Any) -> OracleConfig:
    """A daemon for `agreements` keyed by $SMARTSLA_ORACLE_KEY, reporting as soon as a period ends
    (grace 0), its probe pointed at the discard port (the tests write its samples themselves)."""
    return OracleConfig.model_validate({
        "chain": {"rpc_url": url, "timeout_s": 2, **chain},
        "key": {"env": "SMARTSLA_ORACLE_KEY"}, "store": f"sqlite:///{store}",
        "slice_seconds": 1, "grace_s": 0, "listen": "127.0.0.1:0",
        "agreements": [{"address": ag.address} for ag in agreements],
        "services": {"web": {"tcp": {"host": "127.0.0.1", "port": 9, "timeout_s": 0.25}, "interval_s": 0.5}},
    })


def batch_set_up(chain: Chain) -> tuple[Factory, Any, str, str]:
    """A factory and a SettlementBatch deployed by account 0, and a fresh oracle key funded for
    gas: (factory, batch contract, oracle address, oracle key)."""
    deployer = chain.accounts[0]
    factory = Factory.deploy(chain, deployer)
    batch, _ = chain.deploy("SettlementBatch", deployer)
    oracle, key = chain.new_account(fund_from=deployer, amount=ETHER)
    return factory, batch, oracle, key


def measure_period_up(store: Store, agreements: list[Agreement], start: int, seconds: int = 10) -> None:
    """Every 1-s slice of the period starting at `start` measured up (one sample 0.1 s into each)."""
    for ag in agreements:
        store.add_samples(ag.address, [Sample("web", start + t + 0.1, True, 1.0, "") for t in range(seconds)])
