"""Brownie (eth-brownie 1.22.2, in .venv-brownie) drives the same contracts and scripts.

* scripts/brownie-setup.sh makes the environment (when missing) and registers the solc front
  end and the `ganache-local` network;
* `brownie compile` produces the very bytecode and ABI of smartsla/artifacts;
* `brownie test` runs tests/brownie on an Anvil that Brownie launches;
* `brownie run scripts/deploy.py` and `scripts/brownie_lifecycle.py` deploy the factory and open
  an agreement on a Ganache started by smartsla.localnode, and smartsla's own library and CLI
  then find both through the one deployments.json, settle and withdraw.

Every Brownie command runs with HOME in a temporary folder: Brownie keeps its networks and
registries in ~/.brownie, so the test neither depends on nor changes the user's, and the
`ganache-local` network can point at this test's Ganache port.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from node_helpers import node_fixture
from sla_helpers import EC2_TIERS, ETHER, EVIDENCE_ROOT, make_terms
from web3 import Web3

from smartsla import artifacts, compiler, deployments
from smartsla.chain import Chain
from smartsla.client import Factory, Status
from smartsla.localnode import LocalNode

pytestmark = pytest.mark.brownie

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-brownie"
BROWNIE = VENV / "bin" / "brownie"
SETUP = ROOT / "scripts" / "brownie-setup.sh"
BUILD = ROOT / "build" / "brownie" / "contracts"
ANVIL_DIR = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin"
SMARTSLA_CLI = Path(sys.executable).parent / "smartsla"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SETUP_TIMEOUT_S = 600  # a first setup installs eth-brownie and its pins from PyPI (~40 s here)
RUN_TIMEOUT_S = 300


def run(cmd: list[str], env: dict[str, str], timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    proc.stdout, proc.stderr = ANSI.sub("", proc.stdout), ANSI.sub("", proc.stderr)
    return proc


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-4000:]}"


ganache = node_fixture("ganache", scope="module")


@pytest.fixture(scope="module")
def brownie_env(tmp_path_factory: pytest.TempPathFactory, ganache: LocalNode) -> dict[str, str]:
    """The environment of every Brownie command, after scripts/brownie-setup.sh ran in it."""
    home = tmp_path_factory.mktemp("brownie-home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SMARTSLA_") and k not in ("SOLCX_BINARY_PATH", "VIRTUAL_ENV", "PYTHONPATH")}
    env.update(HOME=str(home), PATH=f"{ANVIL_DIR}{os.pathsep}{env.get('PATH', '')}",
               BROWNIE_GANACHE_URL=ganache.url)
    proc = run(["bash", SETUP], env, timeout=SETUP_TIMEOUT_S)
    assert proc.returncode == 0, f"scripts/brownie-setup.sh failed\n{output(proc)}"
    assert f"network ganache-local -> {ganache.url}" in proc.stdout
    assert "solc 0.8.30" in proc.stdout
    return env


def test_setup_is_idempotent_and_registers_the_network(brownie_env: dict[str, str], ganache: LocalNode) -> None:
    proc = run(["bash", SETUP], brownie_env)  # second time: nothing to install, the network is modified
    assert proc.returncode == 0, output(proc)
    proc = run([BROWNIE, "networks", "list", "true"], brownie_env)
    assert proc.returncode == 0, output(proc)
    listing = proc.stdout
    block = listing[listing.index("id: ganache-local"):][:200]  # a development network: Brownie attaches
    assert "cmd: ganache" in block and f"host: {ganache.url}" in block
    assert listing.count("id: ganache-local") == 1
    # The compiler is ours, in the environment's own py-solc-x folder: nothing in ~/.solcx.
    entry = VENV / "solcx" / "solc-v0.8.30"
    assert entry.is_file() and os.access(entry, os.X_OK)
    assert not (Path(brownie_env["HOME"]) / ".solcx").exists()


def test_brownie_compiles_the_same_bytecode(brownie_env: dict[str, str]) -> None:
    # Brownie recompiles what changed since its last build (source hashes, compiler settings): a
    # clean clone compiles everything (~20-40 s with the WebAssembly compiler).
    proc = run([BROWNIE, "compile"], brownie_env)
    assert proc.returncode == 0, output(proc)
    for name in compiler.SHIPPED_CONTRACTS:
        built = json.loads((BUILD / f"{name}.json").read_text())
        ours = artifacts.load(name)
        assert "0x" + built["bytecode"] == ours["bytecode"], f"{name}: creation code differs"
        assert "0x" + built["deployedBytecode"] == ours["deployedBytecode"], f"{name}: runtime code differs"
        assert built["abi"] == ours["abi"], f"{name}: ABI differs"
        assert built["compiler"]["evm_version"] == compiler.EVM_VERSION
        assert built["compiler"]["optimizer"] == {"enabled": True, "runs": compiler.OPTIMIZER_RUNS}
        assert built["compiler"]["version"].startswith("0.8.30+")


def test_brownie_suite_passes_on_anvil(brownie_env: dict[str, str]) -> None:
    proc = run([BROWNIE, "test"], brownie_env)
    assert proc.returncode == 0, output(proc)
    launched = re.search(r"Launching 'anvil [^']*--port (\d+)[^']*'", proc.stdout)
    assert launched, output(proc)
    assert "--hardfork shanghai" in launched.group(0)
    summary = re.search(r"=+ (.*\bin [\d.]+s.*) =+", proc.stdout)
    assert summary, output(proc)
    passed = re.search(r"(\d+) passed", summary.group(1))
    assert passed and int(passed.group(1)) >= 15, output(proc)
    assert not re.search(r"failed|error|skipped", summary.group(1)), output(proc)


def test_brownie_deploys_to_ganache_for_smartsla(brownie_env: dict[str, str], ganache: LocalNode,
                                                 tmp_path: Path) -> None:
    record = tmp_path / "deployments.json"
    record.write_text(json.dumps({"1": {"AgreementFactory": "0x" + "11" * 20}}))  # other chains are kept
    env = {**brownie_env, "SMARTSLA_DEPLOYMENTS": str(record)}

    proc = run([BROWNIE, "run", "scripts/deploy.py", "--network", "ganache-local"], env)
    assert proc.returncode == 0, output(proc)
    address = deployments.lookup(1337, path=record)
    assert address is not None and address == Web3.to_checksum_address(address)
    assert f"AgreementFactory deployed at {address} on chain 1337" in proc.stdout
    assert deployments.lookup(1, path=record) == "0x" + "11" * 20
    assert "Traceback" not in proc.stdout + proc.stderr

    chain = Chain.connect(ganache.url)
    factory = Factory(chain, address)
    code = chain.w3.eth.get_code(Web3.to_checksum_address(address))
    assert len(code) == len(bytes.fromhex(artifacts.load("AgreementFactory")["deployedBytecode"][2:]))
    assert len(chain.w3.eth.get_code(factory.contract.functions.implementation().call())) > 0

    # Brownie opens and funds an agreement on the recorded factory ...
    proc = run([BROWNIE, "run", "scripts/brownie_lifecycle.py", "--network", "ganache-local"], env)
    assert proc.returncode == 0, output(proc)
    accounts = chain.accounts  # Ganache's unlocked accounts: Brownie's accounts[0..]
    roles = {"provider": accounts[1], "customer": accounts[2], "oracle": accounts[3]}
    [agreement] = factory.agreements_of_provider(roles["provider"])
    assert agreement.address in proc.stdout
    assert agreement.snapshot().status == Status.Active
    terms = agreement.terms  # the tuple Brownie encoded reads back as smartsla's terms
    assert (terms.customer, terms.oracles, terms.quorum) == (roles["customer"], (roles["oracle"],), 1)
    assert terms.services[0].name == "compute" and terms.services[0].tiers == EC2_TIERS
    assert (terms.period_count, terms.fee_per_period, terms.collateral) == (3, ETHER, 3 * ETHER)

    # ... which smartsla settles and pays out: 99.5 % is below 99.99 %, a 10 % credit.
    chain.mine_at(terms.period_end(0) + 1)
    settlement = agreement.settle(0, [995_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    assert settlement.credit_paid == ETHER // 10
    assert agreement.withdraw(roles["customer"]) == ETHER // 10

    # smartsla creates its own agreement on the factory Brownie deployed, and its CLI finds both
    # through the same deployments.json.
    mine = factory.create_agreement(make_terms(roles, chain.now() + 60), roles["provider"])
    cli = subprocess.run([str(SMARTSLA_CLI), "agreements", "--provider", roles["provider"], "--rpc-url", ganache.url],
                         env={**os.environ, "SMARTSLA_DEPLOYMENTS": str(record), "COLUMNS": "200"},
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert cli.returncode == 0, cli.stderr
    assert agreement.address in cli.stdout and mine.address in cli.stdout
