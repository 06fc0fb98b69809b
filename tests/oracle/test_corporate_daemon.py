"""The oracle daemon serves a multi-level agreement end to end, all real: the example's three
corporate services as local HTTP servers (one with an outage), Anvil, the daemon as a subprocess,
the parties' deposits and withdrawals through the command line. One report and one settlement
transaction per period; a SIGKILL around the report's broadcast repeats nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import daemon_helpers
import httpx
import pytest
import yaml
from cli_helpers import invoke
from daemon_helpers import World, lead, stop, wait_until
from service_helpers import ScheduledService

from oracle.store import Store
from smartsla.chain import Chain
from smartsla.corporate import Corporate, load_corporate_spec
from smartsla.multilevel import read_state

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

anvil, world = daemon_helpers.anvil, daemon_helpers.world

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multi-level-corporate.yaml"
PERIOD_S = 6


@pytest.fixture
def services():
    made = {name: ScheduledService(down_status=500) for name in ("email", "erp", "vpn")}
    yield made
    for s in made.values():
        s.close()


def _corporate(world: World, tmp_path: Path, count: int, committee: tuple[str, ...] = (),
               start_in: int = 10) -> tuple[Corporate, Path]:
    """The example on Anvil's accounts, `count` periods of PERIOD_S from `start_in` s ahead, funded;
    reported by `committee` (all of them: quorum = its size) or by the world's oracle alone."""
    a = world.chain.accounts
    data = yaml.safe_load(EXAMPLE.read_text())
    body = data["spec"]
    body["parties"] = {"provider": world.provider, "organisation": world.customer}
    if committee:
        del body["oracle"]
        body["oracles"] = {"members": list(committee), "quorum": len(committee)}
    else:
        body["oracle"] = world.oracle
    for dep, payout in zip(body["departments"], a[5:8], strict=True):
        dep["payout"] = payout
    for service in body["services"]:  # the agreed slice divides these short periods
        service["slo"]["timeSliceWindow"] = "1s"
    body["timeWindow"] = {"start": dt.datetime.fromtimestamp(int(time.time() + lead(start_in)), dt.UTC).isoformat(),
                          "duration": f"{PERIOD_S}s", "count": count}
    path = tmp_path / "corporate.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    corporate = Corporate.deploy(world.chain, load_corporate_spec(path).to_terms(), world.deployer)
    for who in (world.customer, world.provider):
        code, _, err = invoke("corporate", "deposit", corporate.address, "--rpc-url", world.url, "--from", who)
        assert code == 0, err
    return corporate, path


def _config(world: World, address: str, services: dict[str, ScheduledService]) -> Path:
    probes = {n: {"http": {"url": s.url, "timeout_s": 0.25}, "interval_s": 0.25} for n, s in services.items()}
    return world.config(address, services["email"].url, services=probes)


def test_daemon_settles_two_periods_and_two_departments_withdraw(world: World, services, tmp_path: Path):
    corporate, path = _corporate(world, tmp_path, count=2)
    terms = corporate.terms
    assert terms is not None
    s = terms.start
    services["erp"].down = [(s + 1.5, s + 2.5)]  # period 0: erp down in slices 1 and 2 of 6
    proc = world.start(_config(world, corporate.address, services))
    try:
        world.wait_ready(s)
        port = json.loads(next(line for line in world.log_text().splitlines() if '"msg": "listening"' in line))["port"]
        gauge = f'smartsla_oracle_period_value_ppm{{agreement="{corporate.address}",service="erp"}}'
        # the gauge follows the running period: up to 20 s after the period starts (the daemon
        # may be listening well before it, and a loaded machine refreshes later)
        wait_until(lambda: gauge in httpx.get(f"http://127.0.0.1:{port}/metrics").text, s + 20 - time.time(),
                   "the running-period gauge of a corporate service", world.log_text)
        wait_until(lambda: read_state(corporate, terms).settled_periods == 2, 45, "both periods settled",
                   world.log_text)
        # The evidence behind period 0's report is served as for an Agreement.
        bundle = httpx.get(f"http://127.0.0.1:{port}/evidence/{corporate.address}/0").json()
        assert [r["name"] for r in bundle["services"]] == ["email", "erp", "vpn"]
        wait_until(lambda: '"msg": "agreement finished"' in world.log_text(), 10, "the daemon to stop serving it",
                   world.log_text)
    finally:
        assert stop(proc) == 0, world.log_text()[-2000:]
    f = corporate.contract.functions
    first, second = f.reportedValues(0).call(), f.reportedValues(1).call()
    assert first[0] == first[2] == 1_000_000 and 600_000 < first[1] < 900_000, first  # slices 1-2 of 6 down
    assert second == [1_000_000] * 3
    state = read_state(corporate, terms)
    expected = [terms.department_credit(i, first)[1] for i in range(3)]
    assert [d.credits_paid for d in state.departments] == expected
    assert expected[0] > 0 and expected[1] == 0 and expected[2] > 0  # sales does not use erp
    # One report and one settlement per period: nothing sent twice, nothing reverted.
    assert world.chain.w3.eth.get_transaction_count(world.oracle) == 4
    # Two departments withdraw through the command line; their payout addresses receive it.
    for i in (0, 2):
        payout = terms.departments[i].payout
        before = world.chain.balance(payout)
        code, out, err = invoke("corporate", "withdraw", corporate.address, "--rpc-url", world.url,
                                "--spec", str(path), "--from", payout)
        assert code == 0, err
        assert ("finance" if i == 0 else "engineering") in out
        assert expected[i] - 10**16 < world.chain.balance(payout) - before <= expected[i]



def test_with_a_confirmation_depth_of_two_every_report_ends_confirmed(world: World, services, tmp_path: Path):
    """R-1 (docs/security.md): with `chain.confirmations` above 1 the pass that sends a report
    leaves it 'submitted' (not deep enough yet), and the next pass starts from the chain's count
    of reported periods, which already includes it: the store kept it 'submitted' forever (both
    periods failed so on the old code). Each must end 'confirmed' once reported that deep."""
    corporate, _ = _corporate(world, tmp_path, count=2)
    terms = corporate.terms
    assert terms is not None
    config = _config(world, corporate.address, services)
    data = yaml.safe_load(config.read_text())
    data["chain"]["confirmations"] = 2
    config.write_text(yaml.safe_dump(data))
    proc = world.start(config)
    try:
        world.wait_ready(terms.start)
        wait_until(lambda: '"msg": "agreement finished"' in world.log_text(), 60, "the daemon to finish the agreement",
                   world.log_text)
    finally:
        assert stop(proc) == 0, world.log_text()[-2000:]
    assert read_state(corporate, terms).settled_periods == 2
    with Store.open(f"sqlite:///{world.tmp / 'oracle.db'}") as store:
        states = [getattr(store.report(corporate.address, p), "state", None) for p in range(2)]
    assert states == ["confirmed", "confirmed"], world.log_text()[-2000:]
    # One report and one settlement per period: waiting for the depth repeats nothing.
    assert world.chain.w3.eth.get_transaction_count(world.oracle) == 4


@pytest.mark.parametrize("crash_at", ["before-broadcast", "after-broadcast", "settle-before-broadcast"])
def test_sigkill_around_the_report_then_restart_reports_and_settles_once(world: World, services, tmp_path: Path,
                                                                        crash_at: str):
    """Killed with the report's (or the settlement's) transaction recorded but not sent, or sent:
    the restart follows the recorded transaction up (rebroadcasts it) or finds it on-chain."""
    corporate, _ = _corporate(world, tmp_path, count=1)
    terms = corporate.terms
    assert terms is not None
    config = _config(world, corporate.address, services)
    proc = world.start(config, crash_at=crash_at)
    world.wait_ready(terms.start)
    assert proc.wait(timeout=40) == -signal.SIGKILL, world.log_text()[-2000:]
    chain = Chain.connect(world.url)
    assert corporate.status().reported_periods == (0 if crash_at == "before-broadcast" else 1)
    assert corporate.contract.functions.settledPeriodsOf(0).call() == 0
    proc = world.start(config)
    try:
        wait_until(lambda: read_state(corporate, terms).settled_periods == 1, 40, "the settlement", world.log_text)
        time.sleep(2)  # give a wrong second transaction the time to show up
    finally:
        stop(proc)
    # The report (sent once, or its recorded transaction broadcast again) and one settlement.
    assert chain.w3.eth.get_transaction_count(world.oracle) == 2
    if crash_at.endswith("before-broadcast"):  # the recorded transaction itself, not a new one
        assert "broadcasting it again" in world.log_text()


def _daemon(world: World, config: Path, monkeypatch: pytest.MonkeyPatch):
    """The daemon in this process, prepared (every start-up check), not running its loops."""
    from oracle.config import load_config
    from oracle.daemon import Daemon

    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", world.oracle_key)
    daemon = Daemon(load_config(config))
    daemon.prepare(wait_for_chain_s=5)
    return daemon


def test_a_cancelled_agreement_is_dropped_without_a_transaction(world: World, services, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch):
    corporate, _ = _corporate(world, tmp_path, count=2)
    terms = corporate.terms
    assert terms is not None
    # The same terms, but the organisation calls it off before the provider's deposit.
    other = Corporate.deploy(world.chain, terms, world.deployer)
    other.deposit_fees(world.customer)
    other.cancel(world.customer)
    daemon = _daemon(world, _config(world, other.address, services), monkeypatch)
    try:
        world.chain.mine_at(terms.period_end(0) + 2)  # its first period is due: the daemon looks
        daemon.report_due_periods()
        assert daemon.served[other.address].done  # never looked at again
    finally:
        daemon.store.close()
    assert world.chain.w3.eth.get_transaction_count(world.oracle) == 0


def test_an_agreement_naming_another_oracle_is_refused_at_start(world: World, services, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    from oracle.config import ConfigError

    corporate, _ = _corporate(world, tmp_path, count=1)
    stranger, stranger_key = world.chain.new_account(fund_from=world.deployer)
    monkeypatch.setattr(world, "oracle_key", stranger_key)
    with pytest.raises(ConfigError, match=f"key: {stranger} is not a member of the oracle committee of "
                                          f"{corporate.address}"):
        _daemon(world, _config(world, corporate.address, services), monkeypatch)


def test_departments_a_stranger_settled_first_are_skipped_not_a_stuck_period(world: World, services,
                                                                            tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch):
    corporate, _ = _corporate(world, tmp_path, count=2)
    terms = corporate.terms
    assert terms is not None
    daemon = _daemon(world, _config(world, corporate.address, services), monkeypatch)
    try:
        world.chain.mine_at(terms.period_end(0) + 2)
        # Period 0 is reported (by the oracle's key, outside the daemon), then a stranger settles
        # the middle department before the daemon's pass.
        world.chain.add_key(world.oracle_key)
        corporate.report(0, [1_000_000, 990_000, 1_000_000], world.oracle, evidence_root=b"\x01" * 32)
        corporate.settle_department(1, 0, world.chain.accounts[9])
        daemon.report_due_periods()
        assert [corporate.contract.functions.settledPeriodsOf(i).call() for i in range(3)] == [1, 1, 1]
        assert not daemon.served[corporate.address].done  # period 1 is still to come
    finally:
        daemon.store.close()
    # The report above and the daemon's one settlement (which skipped the stranger's department).
    assert world.chain.w3.eth.get_transaction_count(world.oracle) == 2


def test_discover_mode_serves_the_corporate_factorys_agreements_of_listed_providers(
        world: World, services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """In discover mode the daemon also serves the multi-level agreements the recorded
    CorporateAgreementFactory creates, under the same rules as the factory's (finding 7c): this
    oracle in the committee AND the provider in discover_providers."""
    from smartsla import deployments
    from smartsla.corporate import FACTORY_NAME, CorporateFactory

    monkeypatch.setenv("SMARTSLA_DEPLOYMENTS", str(tmp_path / "deployments.json"))
    factory = CorporateFactory.deploy(world.chain, world.deployer)
    deployments.record(world.chain.chain_id, FACTORY_NAME, factory.address)
    corporate, _ = _corporate(world, tmp_path, count=1)  # created through the recorded factory
    stranger = world.chain.accounts[9]
    other_terms = load_corporate_spec(tmp_path / "corporate.yaml").to_terms()
    other = Corporate.deploy(world.chain, replace(other_terms, provider=stranger), world.deployer)
    config = _config(world, corporate.address, services)
    cfg = yaml.safe_load(config.read_text())
    cfg.update(agreements=[], discover=True, discover_providers=[world.provider])
    config.write_text(yaml.safe_dump(cfg))
    daemon = _daemon(world, config, monkeypatch)
    try:
        assert corporate.address in daemon.served and other.address not in daemon.served
    finally:
        daemon.store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_committee_of_three_daemons_reports_once_on_the_median_and_a_liar_moves_nothing(
        world: World, services, tmp_path: Path):
    """U-1: a multi-level agreement whose committee has a quorum above 1 was not served (the daemon
    only reported directly, which the contract refuses: QuorumNotReached). Three members' daemons
    (quorum 3) exchange their signed reports over HTTP, as for Agreement; the third probes ports
    where nothing listens, so it signs 0 % for every service (as a liar would). The period is
    reported once, by one settleWithReports transaction, on the median: the liar changes nothing."""

    keys = [(world.oracle, world.oracle_key)] + [world.chain.new_account(fund_from=world.deployer, amount=10**18)
                                                 for _ in range(2)]
    corporate, _ = _corporate(world, tmp_path, count=1, committee=tuple(a for a, _ in keys), start_in=14)
    terms = corporate.terms
    assert terms is not None and terms.quorum == 3
    first_block = world.chain.w3.eth.block_number + 1
    ports = [_free_port() for _ in keys]
    procs = []
    for i, (_, key) in enumerate(keys):
        probes = {n: {"http": {"url": s.url if i < 2 else f"http://127.0.0.1:{_free_port()}/health",
                               "timeout_s": 0.25}, "interval_s": 0.25} for n, s in services.items()}
        cfg = yaml.safe_load(world.config(corporate.address, services["email"].url, services=probes).read_text())
        cfg.update(store=f"sqlite:///{tmp_path / f'oracle{i}.db'}", listen=f"127.0.0.1:{ports[i]}",
                   peers=[f"http://127.0.0.1:{p}" for j, p in enumerate(ports) if j != i])
        path = tmp_path / f"oracle{i}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = dict(os.environ, SMARTSLA_ORACLE_KEY=key)
        env.pop("SMARTSLA_ORACLE_CRASH_AT", None)
        log = open(tmp_path / f"oracle{i}.log", "ab")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen([sys.executable, "-m", "oracle", "--config", str(path)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT))

    def logs() -> str:
        return "\n".join((tmp_path / f"oracle{i}.log").read_text(errors="replace")[-1500:] for i in range(3))

    try:
        wait_until(lambda: logs().count('"msg": "listening"') == 3, 30, "three oracles listening", logs)
        assert time.time() < terms.start - 0.5, "the oracles started too late for this test's schedule"
        wait_until(lambda: read_state(corporate, terms).settled_periods == 1, 45, "the committee's report and "
                   "the settlement", logs)
        time.sleep(2)  # give a wrong second transaction the time to show up
    finally:
        for p in procs:
            stop(p)
    assert corporate.contract.functions.reportedValues(0).call() == [1_000_000] * 3  # median of (100, 100, 0)
    assert [d.credits_paid for d in read_state(corporate, terms).departments] == [0, 0, 0]
    # Exactly one settleWithReports transaction, and nothing the committee sent reverted.
    w3 = world.chain.w3
    selector = corporate.contract.functions.settleWithReports(0, [])._encode_transaction_data()[:10]
    members = {a for a, _ in keys}
    sent = [tx for n in range(first_block, w3.eth.block_number + 1)
            for tx in w3.eth.get_block(n, full_transactions=True)["transactions"] if tx["from"] in members]
    reports = [tx for tx in sent if tx["to"] == corporate.address and tx["input"].to_0x_hex().startswith(selector)]
    assert len(reports) == 1, sent
    assert len(sent) == 2, sent  # the report and one settlement of every department
    assert all(w3.eth.get_transaction_receipt(tx["hash"])["status"] == 1 for tx in sent)
