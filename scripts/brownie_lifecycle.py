"""Brownie script: open an agreement on the factory recorded in deployments.json, and fund it.

    .venv-brownie/bin/brownie run scripts/deploy.py --network ganache-local            # the factory
    .venv-brownie/bin/brownie run scripts/brownie_lifecycle.py --network ganache-local # an agreement

Creates an agreement with the AWS EC2 region-level credit schedule (below 99.99 %: 10 %, below
99 %: 30 %, below 95 %: 100 %) on the factory that deployments.json ($SMARTSLA_DEPLOYMENTS
honoured) records for the network's chain id, deploying and recording one first if there is
none. Brownie's accounts 1, 2 and 3 are provider, customer and oracle (with a Ganache from
`scripts/chain.py start ganache`, the node's deterministic unlocked accounts). Then the customer
prepays three hourly periods (1 ether each) and the provider deposits 3 ether of collateral: the
agreement is Active. What follows is the smartsla tools' job, e.g.
`.venv/bin/smartsla agreements --provider <provider> --rpc-url <url>` and the oracle, which
settle each period after it ends. Runs under Brownie only (its environment cannot import smartsla).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ETHER = 10**18
PERIOD_SECONDS = 3600
PERIODS = 3
EC2_TIERS = [(999_900, 1_000), (990_000, 3_000), (950_000, 10_000)]
ZERO_ADDRESS = "0x" + "00" * 20


def service_id(name: str) -> str:
    """A service name as the contract's bytes32 id, as smartsla.terms writes it (UTF-8, zero-padded)."""
    return "0x" + name.encode().ljust(32, b"\0").hex()


def recorded_factory(chain_id: int) -> str | None:
    path = Path(os.environ.get("SMARTSLA_DEPLOYMENTS") or Path.cwd() / "deployments.json")
    if not path.exists():
        return None
    return json.loads(path.read_text()).get(str(chain_id), {}).get("AgreementFactory")


def main() -> Any:
    from brownie import accounts, chain, network, project

    from scripts.deploy import deploy_with_brownie

    warnings.filterwarnings("ignore", r"rpc\.\w+ should not be called directly", FutureWarning)  # Brownie's own

    if not network.is_connected():
        raise RuntimeError("run this with `brownie run scripts/brownie_lifecycle.py --network <id>`")
    loaded = project.get_loaded_projects()[0]
    address = recorded_factory(chain.id)
    if address is None or not len(network.web3.eth.get_code(address)):
        address, path, _ = deploy_with_brownie()
        print(f"AgreementFactory deployed at {address}, recorded in {path}")
    # persist=False: Brownie 1.22.2 fails to add contracts to its own registry on live networks.
    factory = loaded.AgreementFactory.at(address, persist=False)
    provider, customer, oracle = accounts[1], accounts[2], accounts[3]
    terms = (
        provider.address, customer.address, [oracle.address], 1, ZERO_ADDRESS, chain.time() + 60, PERIOD_SECONDS,
        PERIODS, ETHER, PERIODS * ETHER, 10_000, 900_000,
        [(service_id("compute"), 999_900, 10_000, EC2_TIERS)],
    )
    tx = factory.createAgreement(terms, {"from": provider})
    agreement = loaded.Agreement.at(tx.events["AgreementCreated"]["agreement"], persist=False)
    agreement.depositFees({"from": customer, "value": PERIODS * ETHER})
    agreement.depositCollateral({"from": provider, "value": PERIODS * ETHER})
    status = agreement.snapshot().dict()["status"]
    print(f"Agreement {agreement.address} on factory {factory.address} (chain {chain.id}): status {status} "
          f"(1 = Active); provider {provider.address}, customer {customer.address}, oracle {oracle.address}")
    return agreement
