"""Against real local nodes from node_modules: Anvil (native binary) and Ganache (Node).

Each node is started once per module by smartsla.localnode on a free port of 127.0.0.1. The
lifecycle test checks the chain against the reference model in smartsla.credit, and compares
what each party received with the Withdrawn events and balances net of gas.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from node_helpers import node_fixture, start_or_skip
from sla_helpers import EC2_TIERS, ETHER, EVIDENCE_ROOT, make_terms
from web3 import Web3
from web3.logs import DISCARD

from oracle.contract_probe import batch_problem
from oracle.sli import PeriodFigure
from oracle.store import Store
from oracle.submitter import Submitter
from smartsla import artifacts, deployments, localnode
from smartsla.chain import REVERTS, Chain, _revert_data
from smartsla.client import Agreement, Factory, Status
from smartsla.credit import Books, tier_credit_bps
from smartsla.errors import ChainUnavailable, ContractReverted, decode_revert
from smartsla.localnode import LocalNode, NodeError, NodeToolMissing, start_node
from smartsla.terms import Service, Tier

ROOT = Path(__file__).resolve().parent.parent
# The dev chains' deterministic accounts (Anvil: the "test test ... junk" mnemonic; Ganache:
# --wallet.deterministic, the "myth like bonus ..." mnemonic), in the order the nodes list them.
ANVIL_KEYS = ("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
              "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
              "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
              "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6")
GANACHE_KEYS = ("0x4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d",
                "0x6cbed15c793ce57650b9877cf6fa156fbef513c4e6134f022a85b1ffdd59b2a1",
                "0x6370fd033278c143179d81c5526140625662b8daa446c22ee2d73db3707e620c",
                "0x646f1ce2fdad0e6deeeb5c7e8e5543bdde65e86029e2fd9fc169899c440a7913")
S3_TIERS = (Tier(threshold=999_000, credit_bps=1_000), Tier(threshold=990_000, credit_bps=2_500),
            Tier(threshold=950_000, credit_bps=10_000))


anvil = node_fixture("anvil", scope="module")
ganache = node_fixture("ganache", scope="module")


def _roles(chain: Chain) -> dict[str, str]:
    a = chain.accounts
    return {"deployer": a[0], "provider": a[1], "customer": a[2], "oracle": a[3], "stranger": a[4]}


def _withdraw(chain: Chain, agreement: Agreement, party: str) -> tuple[int, int]:
    """Withdraw as `party`; returns (amount in the Withdrawn event, balance change + gas paid)."""
    before = chain.balance(party)
    result = chain.transact(agreement.contract.functions.withdraw(), party, action="withdraw")
    amount = agreement.contract.events.Withdrawn().process_receipt(result.receipt, errors=DISCARD)[0]["args"]["amount"]
    gas_cost = result.receipt["gasUsed"] * result.receipt["effectiveGasPrice"]
    return amount, chain.balance(party) - before + gas_cost


# Measured values per period (compute, storage), chosen to hit every tier of both schedules;
# the last period's credit exceeds the collateral left, so CollateralExhausted caps it.
PERIOD_VALUES = [
    (1_000_000, 999_500),  # both meet their objectives
    (999_500, 985_000),  # compute below 99.99 % (10 %), storage below 99 % (25 %)
    (960_000, 995_000),  # compute below 99 % (30 %), storage below 99.9 % (10 %)
    (940_000, 920_000),  # both below 95 % (100 %)
]


def run_lifecycle(url: str) -> None:
    chain = Chain.connect(url)
    roles = _roles(chain)
    factory = Factory.deploy(chain, roles["deployer"])
    services = (Service(name="compute", objective=999_900, weight_bps=6_000, tiers=EC2_TIERS),
                Service(name="storage", objective=999_000, weight_bps=4_000, tiers=S3_TIERS))
    terms = make_terms(roles, chain.now() + 60, period_count=len(PERIOD_VALUES), collateral=6 * ETHER // 5,
                       services=services)
    agreement = factory.create_agreement(terms, roles["deployer"])
    assert agreement.terms == terms  # the terms round-trip through the clone's code
    assert factory.agreement(agreement.address).terms == terms

    books = Books(terms)
    agreement.deposit_fees(roles["customer"])
    books.deposit_fees()
    assert agreement.snapshot().status is Status.Pending
    agreement.deposit_collateral(roles["provider"])
    books.deposit_collateral()
    assert agreement.snapshot().status is Status.Active
    assert agreement.balance() == terms.total_fees + terms.collateral == books.held

    tiers_hit: set[tuple[int, int]] = set()
    exhausted = False
    for period, values in enumerate(PERIOD_VALUES):
        chain.mine_at(terms.period_end(period))
        settled = agreement.settle(period, list(values), 1_000_000, EVIDENCE_ROOT, roles["oracle"])
        expected = books.settle(list(values))
        assert settled.period == period
        assert settled.service_credits == expected.service_credits
        assert settled.credit_paid == expected.paid_credit
        assert settled.fee_earned == terms.fee_per_period
        assert not settled.disaster
        snap = agreement.snapshot()
        assert snap.held == books.held == agreement.balance()
        assert (snap.owed_to_customer, snap.owed_to_provider) == (books.owed["customer"], books.owed["provider"])
        exhausted = exhausted or expected.shortfall > 0
        for i, service in enumerate(terms.services):
            tiers_hit.add((i, tier_credit_bps(service, values[i])))
    assert tiers_hit == {(0, 0), (0, 1_000), (0, 3_000), (0, 10_000), (1, 0), (1, 1_000), (1, 2_500), (1, 10_000)}
    assert exhausted, "the last period should exceed the collateral left"
    assert agreement.snapshot().status is Status.Ended

    for party in ("customer", "provider"):
        amount, received = _withdraw(chain, agreement, roles[party])
        assert amount == received == books.withdraw(party) > 0
    # Customer got every credit paid (all the collateral, here); provider every fee.
    assert books.withdrawn["customer"] == terms.collateral
    assert books.withdrawn["provider"] == terms.total_fees
    assert agreement.balance() == 0
    assert agreement.snapshot().held == 0


@pytest.mark.anvil
def test_lifecycle_on_anvil(anvil: LocalNode) -> None:
    run_lifecycle(anvil.url)


@pytest.mark.ganache
def test_lifecycle_on_ganache(ganache: LocalNode) -> None:
    run_lifecycle(ganache.url)


@pytest.mark.anvil
def test_nodes_report_their_chain_ids(anvil: LocalNode) -> None:
    assert Chain.connect(anvil.url).chain_id == anvil.chain_id == 31337
    assert anvil.url.startswith("http://127.0.0.1:")


@pytest.mark.ganache
def test_ganache_chain_id_and_deterministic_accounts(ganache: LocalNode) -> None:
    chain = Chain.connect(ganache.url)
    assert chain.chain_id == ganache.chain_id == 1337
    assert chain.accounts[0] == "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"  # --wallet.deterministic


# ------------------------------------------------------------------------- scripts/deploy.py


def _run_deploy(url: str, deployments_file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("SMARTSLA_PRIVATE_KEY", "SMARTSLA_RPC_URL")}
    environ.update(SMARTSLA_DEPLOYMENTS=str(deployments_file), **env)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "deploy.py"), "--rpc-url", url], env=environ,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def _assert_is_factory(chain: Chain, address: str) -> None:
    code = chain.w3.eth.get_code(Web3.to_checksum_address(address))
    # Same length as the compiled runtime code (immutables differ in value, not in size).
    assert len(code) == len(bytes.fromhex(artifacts.load("AgreementFactory")["deployedBytecode"].removeprefix("0x")))
    factory = Factory(chain, address)
    implementation = factory.contract.functions.implementation().call()
    assert len(chain.w3.eth.get_code(implementation)) > 0


@pytest.mark.anvil
def test_deploy_script_records_factory(anvil: LocalNode, tmp_path: Path) -> None:
    path = tmp_path / "deployments.json"
    proc = _run_deploy(anvil.url, path)
    assert proc.returncode == 0, proc.stderr
    address = deployments.lookup(31337, path=path)
    assert address is not None
    assert address in proc.stdout and str(path) in proc.stdout
    chain = Chain.connect(anvil.url)
    _assert_is_factory(chain, address)
    # and the SettlementBatch the oracle finds beside it (its start-up probe: the compact interface)
    batch = deployments.lookup(31337, deployments.SETTLEMENT_BATCH, path=path)
    assert batch is not None
    assert batch_problem(chain.contract(deployments.SETTLEMENT_BATCH, batch), chain.accounts[0]) is None


@pytest.mark.anvil
def test_deploy_script_with_private_key(anvil: LocalNode, tmp_path: Path) -> None:
    chain = Chain.connect(anvil.url)
    account = Account.create()
    fund = chain.w3.eth.send_transaction({"from": chain.accounts[0], "to": account.address, "value": ETHER})
    chain.w3.eth.wait_for_transaction_receipt(fund)
    path = tmp_path / "deployments.json"
    path.write_text(json.dumps({"1": {"AgreementFactory": "0x" + "11" * 20}}))  # other chains are kept
    proc = _run_deploy(anvil.url, path, SMARTSLA_PRIVATE_KEY=account.key.to_0x_hex())
    assert proc.returncode == 0, proc.stderr
    address = deployments.lookup(31337, path=path)
    # A contract's address follows from its creator and nonce: the key's first transaction.
    expected = to_checksum_address(keccak(rlp.encode([bytes.fromhex(account.address[2:]), 0]))[12:])
    assert address == expected
    _assert_is_factory(chain, address)
    assert deployments.lookup(1, path=path) == "0x" + "11" * 20


@pytest.mark.anvil
def test_deploy_main_without_arguments_reads_the_environment(anvil: LocalNode, tmp_path: Path) -> None:
    """What `brownie run scripts/deploy.py` does: import the module and call main() with sys.argv its own."""
    path = tmp_path / "deployments.json"
    code = ("import sys; sys.argv = ['brownie', 'run', 'scripts/deploy.py', '--network', 'x']; "
            "from scripts.deploy import main; main()")
    environ = {k: v for k, v in os.environ.items() if k != "SMARTSLA_PRIVATE_KEY"}
    environ.update(SMARTSLA_DEPLOYMENTS=str(path), SMARTSLA_RPC_URL=anvil.url, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    _assert_is_factory(Chain.connect(anvil.url), deployments.lookup(31337, path=path))  # type: ignore[arg-type]


def test_deploy_script_reports_unreachable_chain(tmp_path: Path) -> None:
    port = localnode.free_port()
    proc = _run_deploy(f"http://127.0.0.1:{port}", tmp_path / "deployments.json")
    assert proc.returncode == 1
    assert f"no chain answers at http://127.0.0.1:{port}" in proc.stderr
    assert not (tmp_path / "deployments.json").exists()


# ------------------------------------------------------------------------- stopping


@pytest.mark.anvil
def test_stopped_node_is_unavailable_and_its_pid_is_gone() -> None:
    node = start_or_skip("anvil")
    url, pid = node.url, node.pid
    assert localnode.pid_alive(pid)
    Chain.connect(url)
    assert node.stop() is True
    assert not localnode.pid_alive(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie: the PID is free
    with pytest.raises(ChainUnavailable, match=f"no chain answers at {url}"):
        Chain.connect(url)
    assert node.stop() is False  # idempotent


@pytest.mark.ganache
def test_ganache_stops_on_sigterm() -> None:
    node = start_or_skip("ganache")
    began = time.monotonic()
    assert node.stop(timeout_s=10) is True
    assert time.monotonic() - began < 5, "Ganache needed SIGKILL"
    assert not localnode.pid_alive(node.pid)
    assert not localnode.answers(node.url)


def test_kill_pid_falls_back_to_sigkill() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
           "time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        began = time.monotonic()
        # kill_pid polls; our own child would linger as a zombie until reaped, which pid_alive counts as dead.
        assert localnode.kill_pid(proc.pid, timeout_s=0.3) is True
        assert 0.3 <= time.monotonic() - began < 5
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.anvil
def test_chain_script_start_status_stop(tmp_path: Path) -> None:
    port = localnode.free_port()
    script = [sys.executable, str(ROOT / "scripts" / "chain.py"), "--state-dir", str(tmp_path)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*script, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)

    started = run("start", "anvil", "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        url = f"http://127.0.0.1:{port}"
        assert started.stdout.strip().splitlines()[-1] == url
        state = json.loads((tmp_path / "anvil.json").read_text())
        pid = state["pid"]
        assert localnode.pid_alive(pid) and state["url"] == url
        assert Chain.connect(url).chain_id == 31337  # outlived the command that started it

        status = run("status", "anvil")
        assert status.returncode == 0 and f"running at {url}, pid {pid}" in status.stdout

        again = run("start", "anvil")  # idempotent: reports the running node
        assert again.returncode == 0 and "already running" in again.stdout

        stopped = run("stop", "anvil")
        assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout
        assert not localnode.pid_alive(pid)
        assert not (tmp_path / "anvil.json").exists()
        assert not localnode.answers(url)
        assert run("status", "anvil").returncode == 3
        assert "not running" in run("stop", "anvil").stdout
    finally:
        localnode.stop_node("anvil", tmp_path)


# ------------------------------------------------------------------------- start errors


@pytest.mark.anvil
def test_port_in_use_is_refused(anvil: LocalNode) -> None:
    with pytest.raises(NodeError, match=f"port {anvil.port} .* already in use"):
        start_node("anvil", anvil.port)


@pytest.mark.anvil
def test_second_node_of_a_kind_in_one_state_dir_is_refused(tmp_path: Path) -> None:
    with start_node("anvil", state_dir=tmp_path) as node:
        assert json.loads((tmp_path / "anvil.json").read_text())["pid"] == node.pid
        assert localnode.find_node("anvil", tmp_path).pid == node.pid  # type: ignore[union-attr]
        with pytest.raises(NodeError, match="already running"):
            start_node("anvil", state_dir=tmp_path)
    assert not (tmp_path / "anvil.json").exists()
    assert (tmp_path / "anvil.log").exists()


@pytest.mark.anvil
def test_failed_start_shows_the_log_tail() -> None:
    with pytest.raises(NodeError, match="exited with code") as info:
        start_node("anvil", hardfork="no-such-hardfork")
    assert "Last lines of" in str(info.value)
    assert "hardfork" in str(info.value).lower()


def test_missing_node_modules_says_npm_ci(tmp_path: Path) -> None:
    for kind in localnode.KINDS:
        with pytest.raises(NodeToolMissing, match="npm ci"):
            start_node(kind, node_modules=tmp_path / "node_modules")
    (tmp_path / "node_modules").mkdir()
    with pytest.raises(NodeToolMissing, match="npm ci"):
        start_node("anvil", node_modules=tmp_path / "node_modules")


def test_unknown_kind() -> None:
    with pytest.raises(NodeError, match="unknown node kind"):
        start_node("hardhat")


# ------------------------------------------------------------------------- reverts and idle chains
# Issue 10, finding 8: Ganache (and Anvil without --block-time) mine only on demand, so a chain
# left idle keeps the timestamp of its last transaction; and Ganache nests the revert data of
# eth_estimateGas in an object, which the decoder used to miss ("Reverted()").


# Periods of a few seconds need slices of one second (the terms' default slice is 60 s).
SHORT_SLICES = {"slice_seconds": 1}
SETTLE_EXTRA = (1_000_000, EVIDENCE_ROOT)  # the measured share of the period, its evidence root


def _active_agreement(chain: Chain, period_length: int, start_in_s: int = 3) -> tuple[Agreement, dict[str, str]]:
    """A funded one-service agreement whose only period starts `start_in_s` seconds from now (wall
    clock, which a freshly mined block on a dev chain follows)."""
    roles = _roles(chain)
    factory = Factory.deploy(chain, roles["deployer"])
    start = max(int(time.time()), chain.now()) + start_in_s
    terms = make_terms(roles, start, period_length=period_length, period_count=1, **SHORT_SLICES)
    agreement = factory.create_agreement(terms, roles["deployer"])
    agreement.deposit_fees(roles["customer"])
    agreement.deposit_collateral(roles["provider"])
    assert agreement.snapshot().status is Status.Active
    return agreement, roles


@pytest.mark.parametrize("kind", ["embedded", pytest.param("anvil", marks=pytest.mark.anvil),
                                  pytest.param("ganache", marks=pytest.mark.ganache)])
def test_every_chain_names_the_custom_error_with_its_arguments(kind: str, request: pytest.FixtureRequest) -> None:
    url = "embedded" if kind == "embedded" else request.getfixturevalue(kind).url
    chain = Chain.connect(url)
    agreement, roles = _active_agreement(chain, period_length=3600, start_in_s=60)
    end = agreement.terms.period_end(0)
    with pytest.raises(ContractReverted) as caught:  # a transaction: estimateGas is what fails
        agreement.settle(0, [1_000_000], *SETTLE_EXTRA, roles["oracle"])
    assert caught.value.name == "PeriodNotEnded"
    assert caught.value.args_ == (0, end)
    assert str(caught.value).startswith(f"PeriodNotEnded(0, {end})")
    with pytest.raises(REVERTS) as raw:  # an eth_call
        agreement.contract.functions.settle(0, [1_000_000], *SETTLE_EXTRA).call({"from": roles["oracle"]})
    assert decode_revert(_revert_data(raw.value)).args_ == (0, end)


def _fresh_node(kind: str, request: pytest.FixtureRequest) -> LocalNode:
    """A node of its own: the module's nodes have travelled in time (mine_at), and these tests
    need a chain whose next block follows the wall clock, as a freshly started one does."""
    node = start_or_skip(kind)
    request.addfinalizer(node.stop)
    return node


def _figure(value_ppm: int) -> PeriodFigure:
    """A fully measured figure."""
    fields = {"value_ppm": value_ppm, "good_slices": value_ppm // 10_000, "total_slices": 100,
              "excluded_slices": 0, "maintenance_slices": 0, "missing_slices": 0, "slice_seconds": 1}
    return PeriodFigure(**fields)


def _submitter(chain: Chain, roles: dict[str, str], tmp_path: Path, **kwargs: object) -> tuple[Submitter, Store]:
    store = Store.open(str(tmp_path / "oracle.db"))
    key = ANVIL_KEYS[3] if chain.chain_id == 31337 else GANACHE_KEYS[3]
    account = Account.from_key(key)
    assert account.address == roles["oracle"]
    return Submitter(chain, account, store, **kwargs), store  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [pytest.param("anvil", marks=pytest.mark.anvil),
                                  pytest.param("ganache", marks=pytest.mark.ganache)])
def test_oracle_settles_on_an_idle_chain_that_mines_on_demand(kind: str, request: pytest.FixtureRequest,
                                                               tmp_path: Path) -> None:
    """Nobody sends a transaction after the period ends: the chain's latest block is older than
    the period's end, yet the oracle must settle (and not log `Reverted()` forever)."""
    node = _fresh_node(kind, request)
    chain = Chain.connect(node.url)
    agreement, roles = _active_agreement(chain, period_length=4)
    end = agreement.terms.period_end(0)
    submitter, store = _submitter(chain, roles, tmp_path)
    assert end - time.time() < 30, "the chain's clock should follow the wall clock"
    while time.time() < end + 1:
        time.sleep(0.2)
    assert chain.now() < end, "the chain should still be idle at a block before the period's end"
    outcome = submitter.process(agreement, 0, {"compute": _figure(999_000)}, EVIDENCE_ROOT)
    assert outcome.state == "confirmed", outcome
    assert agreement.snapshot().settled_periods == 1
    assert [s.values_ppm for s in agreement.settlements()] == [(999_000,)]
    assert store.report(agreement.address, 0).state == "confirmed"


@pytest.mark.parametrize("kind", [pytest.param("anvil", marks=pytest.mark.anvil),
                                  pytest.param("ganache", marks=pytest.mark.ganache)])
def test_a_reverted_settlement_is_not_counted_and_is_sent_again(kind: str, request: pytest.FixtureRequest,
                                                                tmp_path: Path) -> None:
    """The oracle's clock runs ahead of the chain's: the transaction is mined, reverts
    (PeriodNotEnded), stays 'submitted' with the error named, and is sent again once the period
    has really ended; exactly one settlement."""
    node = _fresh_node(kind, request)
    chain = Chain.connect(node.url)
    agreement, roles = _active_agreement(chain, period_length=6)
    assert agreement.terms.period_end(0) - time.time() < 30, "the chain's clock should follow the wall clock"
    end = agreement.terms.period_end(0)
    skew = 30.0
    submitter, store = _submitter(chain, roles, tmp_path, clock=lambda: time.time() + skew)
    assert time.time() < end
    outcome = submitter.process(agreement, 0, {"compute": _figure(990_000)}, EVIDENCE_ROOT)
    assert outcome.state == "submitted"
    assert "PeriodNotEnded(0, " in outcome.detail
    first = outcome.tx_hash
    assert chain.w3.eth.get_transaction_receipt(first)["status"] == 0
    assert store.report(agreement.address, 0).state == "submitted"
    assert agreement.snapshot().settled_periods == 0
    while time.time() < end + 1:
        time.sleep(0.2)
    outcome = submitter.process(agreement, 0, None)  # signed earlier: no figures needed
    assert outcome.state == "confirmed", outcome
    assert outcome.tx_hash != first
    assert agreement.snapshot().settled_periods == 1
    assert len(agreement.settlements()) == 1
    assert submitter.process(agreement, 0, None).state == "confirmed"  # nothing sent again
    assert len(agreement.settlements()) == 1


@pytest.mark.parametrize("kind", [pytest.param("anvil", marks=pytest.mark.anvil),
                                  pytest.param("ganache", marks=pytest.mark.ganache)])
def test_readme_documents_the_dev_chains_accounts(kind: str, request: pytest.FixtureRequest) -> None:
    """Finding 12: Ganache's accounts were undocumented. The README's table must be what the nodes,
    as scripts/chain.py starts them, really unlock, and each key must be that account's."""
    import re

    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d) \| `(0x[0-9a-fA-F]{40})`<br>key `(0x[0-9a-f]{64})` \| "
                      r"`(0x[0-9a-fA-F]{40})`<br>key `(0x[0-9a-f]{64})` \|$", readme, re.M)
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3]
    column = 1 if kind == "anvil" else 3
    chain = Chain.connect(request.getfixturevalue(kind).url)
    for row, node_account in zip(rows, chain.accounts[:4], strict=True):
        assert row[column] == node_account
        assert Account.from_key(row[column + 1]).address == node_account
    assert tuple(r[column + 1] for r in rows) == (ANVIL_KEYS if kind == "anvil" else GANACHE_KEYS)
