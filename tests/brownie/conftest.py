"""Fixtures of the Brownie suite, run by `.venv-brownie/bin/brownie test` (see README, "Brownie").

Meaningful only under Brownie: the main suite (`.venv/bin/python -m pytest`, web3 8, no Brownie)
never collects this folder, and if it is pointed here anyway it finds nothing to collect.

Under Brownie, before Brownie launches its development chain (Anvil), this conftest:
* puts node_modules' Anvil (the native binary) first on PATH, so that no other install is needed;
* gives the chain a free port of 127.0.0.1 (or $SMARTSLA_BROWNIE_PORT). Brownie's own default
  is 8545, and when anything already answers there Brownie *attaches* to it instead of starting
  a chain: the tests would run against somebody else's node;
* runs it at the shanghai hardfork, like every chain of the project.
(brownie-config.yaml cannot say this: Brownie 1.22.2 fails to load `cmd_settings` from it.)
The contract containers (``AgreementFactory``, ``Agreement``, ``TestToken``), ``accounts`` and
``chain`` are Brownie's own fixtures.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from sla_brownie import ETHER, make_terms

try:
    from brownie._config import CONFIG
except ImportError:  # not under Brownie: nothing here can run
    CONFIG = None
    collect_ignore_glob = ["*.py"]

ROOT = Path(__file__).resolve().parents[2]
ANVIL_DIR = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin"
PORT_ENV = "SMARTSLA_BROWNIE_PORT"
EVM_VERSION = "shanghai"  # what the project compiles for and Ganache 7.9 runs (smartsla/compiler.py)

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Runs after Brownie read its options and before it connects (at the end of collection)."""
    if CONFIG is None:
        return
    network_id = CONFIG.argv["network"] or CONFIG.settings["networks"]["default"]
    network = CONFIG.networks.get(network_id)
    if not network or "cmd" not in network:
        return  # a live network: Brownie attaches to it as configured
    if network["cmd"].split()[0] == "anvil" and (ANVIL_DIR / "anvil").is_file():
        os.environ["PATH"] = f"{ANVIL_DIR}{os.pathsep}{os.environ.get('PATH', '')}"
    if not isinstance(network.get("cmd_settings"), dict):
        network["cmd_settings"] = {}
    network["cmd_settings"]["port"] = int(os.environ.get(PORT_ENV) or _free_port())
    network["cmd_settings"].setdefault("evm_version", EVM_VERSION)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def isolation(fn_isolation: Any) -> None:
    """Every test starts from the chain state after the module's fixtures (Brownie snapshots)."""


@pytest.fixture(scope="module")
def roles(accounts: Any) -> dict[str, Any]:
    return {"deployer": accounts[0], "provider": accounts[1], "customer": accounts[2], "oracle": accounts[3],
            "stranger": accounts[4]}


@pytest.fixture(scope="module")
def factory(AgreementFactory: Any, roles: dict[str, Any]) -> Any:  # noqa: N803 (Brownie's fixture name)
    return AgreementFactory.deploy({"from": roles["deployer"]})


@pytest.fixture
def create(factory: Any, Agreement: Any, roles: dict[str, Any], chain: Any) -> Any:  # noqa: N803
    """create(**overrides) -> (agreement, terms tuple): an agreement starting in a minute, made by the provider."""

    def _create(**overrides: Any) -> tuple[Any, tuple]:
        # a minute ahead: deposits close at the start
        terms = make_terms(roles, overrides.pop("start", chain.time() + 60), **overrides)
        tx = factory.createAgreement(terms, {"from": roles["provider"]})
        return Agreement.at(tx.events["AgreementCreated"]["agreement"]), terms

    return _create


@pytest.fixture
def active(create: Any, roles: dict[str, Any]) -> tuple[Any, tuple]:
    """An EC2 agreement with fees and collateral deposited (status Active)."""
    agreement, terms = create()
    agreement.depositFees({"from": roles["customer"], "value": 3 * ETHER})
    agreement.depositCollateral({"from": roles["provider"], "value": 3 * ETHER})
    return agreement, terms
