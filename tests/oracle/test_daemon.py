"""The oracle daemon end to end, all real: a local HTTP service switched off and on to a known
schedule, an Anvil chain, the daemon as a subprocess. The credit settled on-chain must equal
what the schedule implies; crashes and a chain outage must neither skip nor repeat a report.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import daemon_helpers
import httpx
import pytest
import yaml
from daemon_helpers import EC2, ETHER, World, stop, wait_until
from node_helpers import start_or_skip
from service_helpers import ScheduledService

from oracle.store import Store
from smartsla.client import Status
from smartsla.credit import period_outcome
from smartsla.terms import Service, Terms, Tier
from smartsla.units import PPM

pytestmark = pytest.mark.anvil

# the daemon rig's fixtures (daemon_helpers): a stateful Anvil, the World on it, the scheduled service
anvil, world, service = daemon_helpers.anvil, daemon_helpers.world, daemon_helpers.service

def test_settled_credit_equals_what_the_outage_schedule_implies(world: World, service: ScheduledService):
    ag = world.agreement(period_length=20, period_count=2)
    s = ag.terms.start
    # Period 0: down from 3.5 s to 5.5 s -> slices 3, 4, 5 have failed checks: 17/20 good (85 %).
    # Period 1: down from 22.25 s to 22.75 s -> slice 2 of period 1 is bad: 19/20 good (exactly 95 %).
    service.down = [(s + 3.5, s + 5.5), (s + 22.25, s + 22.75)]
    proc = world.start(world.config(ag.address, service.url))
    try:
        world.wait_ready(ag.terms.start)
        wait_until(lambda: ag.snapshot().status is Status.Ended, 70, "both periods to settle", world.log_text)
    finally:
        assert stop(proc) == 0, world.log_text()[-2000:]
    settlements = ag.settlements()
    assert [x.values_ppm for x in settlements] == [(850_000,), (950_000,)]
    expected = [period_outcome(ag.terms, [v], ag.terms.collateral).paid_credit for v in (850_000, 950_000)]
    assert [x.credit_paid for x in settlements] == expected == [ETHER, 3 * ETHER // 10]
    assert '"msg": "oracle stopped"' in world.log_text()  # SIGTERM: a graceful stop
    # The figures above were read from the sample runs (oracle.sample_runs), kept at the slice length.
    with Store.open(f"sqlite:///{world.tmp / 'oracle.db'}") as store:
        assert store.tracked_gaps(ag.address) == [ag.terms.slice_seconds]


@pytest.mark.parametrize("crash_at", ["before-broadcast", "after-broadcast"])
def test_sigkill_during_submission_then_restart_settles_exactly_once(world: World, service: ScheduledService,
                                                                     crash_at: str):
    ag = world.agreement(period_length=6, period_count=1)
    config = world.config(ag.address, service.url)
    proc = world.start(config, crash_at=crash_at)
    world.wait_ready(ag.terms.start)
    assert proc.wait(timeout=40) == -signal.SIGKILL, world.log_text()[-2000:]
    assert ag.snapshot().settled_periods == (1 if crash_at == "after-broadcast" else 0)
    proc = world.start(config)

    def stored_state() -> tuple[str, ...] | None:
        with sqlite3.connect(world.tmp / "oracle.db") as conn:
            return conn.execute("SELECT state FROM reports WHERE period = 0").fetchone()

    try:
        wait_until(lambda: ag.snapshot().status is Status.Ended, 40, "the settlement", world.log_text)
        # Killed after the broadcast, the chain is Ended before the restarted daemon has even
        # started: give it its report pass (a loaded machine may take seconds) before judging.
        wait_until(lambda: stored_state() == ("confirmed",), 40, "the stored report confirmed",
                   world.log_text)
        time.sleep(2)  # give a wrong second submission the time to show up
    finally:
        stop(proc)
    assert len(ag.settlements()) == 1
    assert ag.settlements()[0].values_ppm == (PPM,)
    # No reverted duplicate either: the oracle sent at most one settle transaction that mined.
    assert world.chain.w3.eth.get_transaction_count(world.oracle) == 1
    # The store agrees with the chain: killed after the broadcast, the report was left
    # 'submitted' and the restarted daemon (starting from the chain's count) never looked at it.
    assert stored_state() == ("confirmed",)


def test_chain_down_for_a_while_then_the_report_still_arrives(world: World, service: ScheduledService,
                                                              anvil, tmp_path: Path):
    ag = world.agreement(period_length=6, period_count=1)
    proc = world.start(world.config(ag.address, service.url))
    try:
        world.wait_ready(ag.terms.start)
        time.sleep(ag.terms.start + 1 - time.time())
        port = int(anvil.url.rsplit(":", 1)[1])
        anvil.stop()  # dumps the chain state to --state
        time.sleep(8)  # the period ends and its grace passes while the chain is down
        restarted = start_or_skip("anvil", port=port, extra_args=("--state", str(tmp_path / "anvil-state.json")))
        try:
            wait_until(lambda: ag.snapshot().status is Status.Ended, 60, "the report after the outage",
                       world.log_text)
            assert ag.settlements()[0].values_ppm == (PPM,)  # probes kept running: the service was up
        finally:
            stop(proc)
            restarted.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "chain error; retrying" in world.log_text()


def test_maintenance_declared_on_chain_with_notice_is_excluded_and_latency_reported(
        world: World, service: ScheduledService):
    services = (Service(name="web", objective=999_900, weight_bps=8_000, tiers=EC2),
                Service(name="web-p95", kind="latency", objective=300, weight_bps=2_000,
                        tiers=(Tier(threshold=300, credit_bps=1_000),)))
    ag = world.agreement(period_length=20, period_count=1, services=services, maintenance_notice=5,
                         maintenance_budget=20)
    s = ag.terms.start
    service.delay_s = 0.03  # every answer takes at least 30 ms
    # Down in slices 3-5, inside maintenance declared well ahead: excluded from good and total.
    # Down in slices 12-13, inside maintenance declared only 3 s ahead: counts as downtime.
    service.down = [(s + 3.5, s + 5.5), (s + 12.5, s + 13.5)]
    ag.declare_maintenance(s + 3, s + 6, world.provider)
    config = world.config(ag.address, service.url)
    cfg = yaml.safe_load(config.read_text())
    cfg["services"]["web-p95"] = {"http": {"url": service.url, "timeout_s": 0.25}, "interval_s": 0.25}
    config.write_text(yaml.safe_dump(cfg))
    proc = world.start(config)
    try:
        world.wait_ready(s)
        time.sleep(max(0.0, s + 9 - time.time()))
        ag.declare_maintenance(s + 12, s + 14, world.provider)
        assert [w.with_notice for w in ag.maintenance_windows()] == [True, False]
        wait_until(lambda: ag.snapshot().status is Status.Ended, 60, "the settlement", world.log_text)
        # The evidence: the latency figure and the exclusion recomputed from the daemon's bundle (issue 12).
        from typer.testing import CliRunner

        from smartsla.cli import app
        port = json.loads(next(line for line in world.log_text().splitlines() if '"msg": "listening"' in line))["port"]
        verified = CliRunner().invoke(app, ["verify", ag.address, "0", "--evidence-url", f"http://127.0.0.1:{port}",
                                            "--rpc-url", world.url, "--factory", world.factory.address],
                                      env={"COLUMNS": "200"})
        assert verified.exit_code == 0, verified.output
        assert "excluded by window #0" in verified.output, verified.output
    finally:
        stop(proc)
    (settled,) = ag.settlements()
    availability, latency_ms = settled.values_ppm
    assert availability == 15 * PPM // 17  # 17 slices count, 2 of them bad
    assert 30 <= latency_ms < 300  # p95 in whole ms, above the server's delay, within the objective
    assert settled.service_credits[1] == 0


def test_bad_configuration_stops_at_start_with_the_field(world: World, service: ScheduledService, tmp_path: Path):
    ag = world.agreement(period_length=60, period_count=1)

    def run(config: Path, key: str | None = None) -> str:
        env = dict(os.environ, SMARTSLA_ORACLE_KEY=key or world.oracle_key)
        done = subprocess.run([sys.executable, "-m", "oracle", "--config", str(config)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        return done.stderr

    good = yaml.safe_load(world.config(ag.address, service.url).read_text())
    bad = tmp_path / "bad.yaml"

    bad.write_text(yaml.safe_dump({**good, "grace_seconds": 3}))
    assert "grace_seconds: Extra inputs are not permitted" in run(bad)

    bad.write_text(yaml.safe_dump({**good, "services": {"web": {"http": {"url": "not a url"}}}}))
    assert "services.web.http.url" in run(bad)

    bad.write_text(yaml.safe_dump({**good, "agreements": [{"address": world.customer}]}))
    err = run(bad)
    assert "agreements[0].address" in err and "was not created by the factory" in err

    # Every problem is listed, each with its field (no "(and N more)").
    bad.write_text(yaml.safe_dump({**good, "grace_seconds": 3, "report_check_s": -1,
                                   "services": {"web": {"http": {"url": "not a url"}}}}))
    err = run(bad)
    assert all(f in err for f in ("grace_seconds", "report_check_s", "services.web.http.url")), err
    assert "more)" not in err

    # A probe for a service the agreement does not have: named, with the agreement's services.
    bad.write_text(yaml.safe_dump({**good, "agreements": [{"address": ag.address, "services": {
        "wbe": {"http": {"url": service.url, "timeout_s": 0.25}, "interval_s": 0.25}}}]}))
    err = run(bad)
    assert "agreements[0].services: wbe not in agreement" in err and "(its services: web)" in err
    bad.write_text(yaml.safe_dump({**good, "services": {**good["services"], "webb": good["services"]["web"]}}))
    assert "services: webb not in any listed agreement" in run(bad)

    # Removed knobs fail with a message naming what replaced them.
    bad.write_text(yaml.safe_dump({**good, "missing_data": "down"}))
    err = run(bad)
    assert "missing_data was removed" in err and "min_measured_ppm" in err
    bad.write_text(yaml.safe_dump({**good, "agreements": [{"address": ag.address,
                                                           "maintenance": [{"start": 1, "end": 2}]}]}))
    err = run(bad)
    assert "agreements.0.maintenance" in err and "declare the window on-chain" in err

    # Timeouts longer than the interval; discover mode without a provider allowlist.
    bad.write_text(yaml.safe_dump({**good, "services": {"web": {"http": {"url": service.url, "timeout_s": 1},
                                                                "interval_s": 0.5}}}))
    assert "services.web.http.timeout_s: 1 s is longer than interval_s (0.5 s)" in run(bad)
    bad.write_text(yaml.safe_dump({**good, "discover": True}))
    assert "discover_providers: discover: true needs the list of providers" in run(bad)

    stranger = "0x" + "42" * 32
    assert "is not a member of the oracle committee" in run(world.config(ag.address, service.url), key=stranger)

    bad.write_text(yaml.safe_dump({**good, "services": {}}))
    assert "no probe configured for web" in run(bad)

    bad.write_text("chain: [unclosed\n")
    assert "not valid YAML" in run(bad)

    disputed = world.agreement(period_length=60, period_count=1, dispute_window=3_600,
                               arbiter=world.chain.accounts[5])
    bad.write_text(yaml.safe_dump({**yaml.safe_load(world.config(disputed.address, service.url).read_text()),
                                   "sample_retention_s": 60}))
    assert "sample_retention_s: 60 s is shorter than the dispute window" in run(bad)


def test_three_daemons_settle_by_median_and_a_wrong_one_changes_nothing(world: World, service: ScheduledService,
                                                                        tmp_path: Path):
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    keys = [(world.oracle, world.oracle_key)] + [world.chain.new_account(fund_from=world.deployer, amount=ETHER)
                                                 for _ in range(2)]
    ag = world.agreement(period_length=6, period_count=1, oracles=tuple(a for a, _ in keys), quorum=3, start_in=12)
    ports = [free_port() for _ in keys]
    procs = []
    for i, (_, key) in enumerate(keys):
        # The third oracle probes a port where nothing listens: it will report 0 % (as a liar would).
        url = service.url if i < 2 else f"http://127.0.0.1:{free_port()}/health"
        cfg = yaml.safe_load(world.config(ag.address, url).read_text())
        cfg.update(store=f"sqlite:///{tmp_path / f'oracle{i}.db'}", listen=f"127.0.0.1:{ports[i]}",
                   peers=[f"http://127.0.0.1:{p}" for j, p in enumerate(ports) if j != i])
        path = tmp_path / f"oracle{i}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = dict(os.environ, SMARTSLA_ORACLE_KEY=key)
        log = open(tmp_path / f"oracle{i}.log", "ab")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen([sys.executable, "-m", "oracle", "--config", str(path)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT))

    def logs() -> str:
        return "\n".join((tmp_path / f"oracle{i}.log").read_text(errors="replace")[-1500:] for i in range(3))

    try:
        wait_until(lambda: logs().count('"msg": "listening"') == 3, 30, "three oracles listening", logs)
        assert time.time() < ag.terms.start - 0.5, "the oracles started too late for this test's schedule"
        wait_until(lambda: ag.snapshot().status is Status.Ended, 60, "the committee settlement", logs)
        metrics = [httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text for port in ports]
        # Anyone can check the settled median against the three daemons' evidence (issue 12).
        from typer.testing import CliRunner

        from smartsla.cli import app
        urls = [arg for port in ports for arg in ("--evidence-url", f"http://127.0.0.1:{port}")]
        verified = CliRunner().invoke(app, ["verify", ag.address, "0", *urls, "--rpc-url", world.url, "--factory",
                                            world.factory.address, "--json"])
        assert verified.exit_code == 0, verified.output
        assert sorted(o["figures"]["0"] for o in json.loads(verified.output)["oracles"]) == [0, PPM, PPM]
    finally:
        for p in procs:
            stop(p)
    # The daemons' own metrics: checks run per service, failures seen by the third one.
    assert all("smartsla_oracle_checks_total{" in m for m in metrics)
    assert 'smartsla_oracle_check_failures_total{agreement="' in metrics[2]
    assert sum("smartsla_oracle_reports_submitted_total 1.0" in m for m in metrics) >= 1
    (settled,) = ag.settlements()
    assert settled.values_ppm == (PPM,)  # the median of (100 %, 100 %, 0 %)
    assert settled.credit_paid == 0
    # The members send in turns (Submitter.turn_delay): one settlement transaction, no reverted twin.
    assert sum(world.chain.w3.eth.get_transaction_count(a) for a, _ in keys) == 1


# ---------------------------------------------------------------- fault injection
# The daemon SIGKILLed at random moments, over and over, while it measures and reports a short
# agreement; after every kill it is restarted at once. What must survive: every sample committed
# before a kill is still in the store afterwards; every period settles exactly once, none is
# skipped; the oracle never sends a settlement twice (its nonce equals the number of periods).
PERIODS = 3
PERIOD_S = 8
MAX_KILLS = 20


def sample_count(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM samples").fetchone()[0]


def test_fault_injection_random_sigkills_lose_nothing_and_repeat_nothing(world: World, service: ScheduledService,
                                                                           tmp_path: Path):
    # Every kill leaves a second or two unmeasured: far below the default minimum share in 5-s
    # periods. This test is about crash safety, so its agreement accepts any measured share.
    rng = random.Random(20261125)
    ag = world.agreement(period_length=PERIOD_S, period_count=PERIODS, start_in=8, min_measured_ppm=1)
    config = world.config(ag.address, service.url)
    db = tmp_path / "oracle.db"
    kills = 0
    seen = 0
    proc = world.start(config)
    try:
        world.wait_ready(ag.terms.start)
        deadline = time.time() + PERIODS * PERIOD_S + 90
        while ag.snapshot().status is not Status.Ended:
            assert time.time() < deadline, f"not settled after {kills} kills:\n{world.log_text()[-3000:]}"
            time.sleep(rng.uniform(0.5, 3.0))
            if ag.snapshot().status is Status.Ended or kills >= MAX_KILLS:
                continue  # enough trials: let it finish
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
            now_count = sample_count(db)
            assert now_count >= seen, f"samples lost across kill {kills}: {seen} -> {now_count}"
            seen = now_count
            proc = world.start(config)
            # Kill again only once the new process measures: a kill during a slow start-up could
            # otherwise leave a whole period unmeasured, which (rightly) never settles.
            measuring_by = time.time() + 15
            while sample_count(db) <= seen and time.time() < measuring_by:
                time.sleep(0.1)
    finally:
        stop(proc)  # also when an assertion fails: never leave a daemon behind
    settled = ag.settlements()
    assert [s.period for s in settled] == list(range(PERIODS))  # each once, none skipped
    nonce = world.chain.w3.eth.get_transaction_count(world.oracle)
    assert nonce == PERIODS, f"{nonce} transactions for {PERIODS} periods"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        states = dict(conn.execute("SELECT period, state FROM reports").fetchall())
    assert states == {p: "confirmed" for p in range(PERIODS)}
    print(f"\nfault injection: {kills} SIGKILLs over {PERIODS} periods; {sample_count(db)} samples kept, "
          f"{len(settled)} settlements, {nonce} transactions, store integrity ok")
    assert kills >= 5


# ---------------------------------------------------------------- measurement (issue 10 / 15)
# Targets probed by one daemon must not affect each other's figures (15.1); configurations whose
# slices cannot all hold a sample are refused (finding 9); a period measured for less than the
# agreement's minimum share gets no report (finding 10).

def five_services() -> tuple[Service, ...]:
    return tuple(Service(name=f"s{i}", objective=999_900, weight_bps=2_000, tiers=EC2) for i in range(5))


@pytest.fixture
def silent_ports() -> Iterator[Callable[[], int]]:
    """Ports that accept TCP connections (kernel backlog) but never answer: hanging targets."""
    socks: list[socket.socket] = []

    def make() -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        socks.append(s)
        return s.getsockname()[1]

    yield make
    for s in socks:
        s.close()


def samples_by_target(db: Path) -> dict[tuple[str, str], list[tuple[float, bool]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT agreement, service, ts, ok FROM samples ORDER BY ts").fetchall()
    out: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for agreement, svc, ts, ok in rows:
        out.setdefault((agreement, svc), []).append((ts, bool(ok)))
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)]


def test_hanging_targets_do_not_delay_or_spoil_other_targets(world: World, service: ScheduledService,
                                                               silent_ports: Callable[[], int], tmp_path: Path):
    # 6 agreements x 5 services = 30 targets; one target of agreements 0, 2 and 4 hangs (10 %).
    interval, timeout = 1.0, 1.0
    ags = [world.agreement(period_length=3_600, period_count=1, start_in=60, services=five_services())
           for _ in range(6)]
    hanging = {(ag.address.lower(), "s4") for ag in ags[0::2]}
    entries = []
    for ag in ags:
        svcs = {}
        for i in range(5):
            url = (f"http://127.0.0.1:{silent_ports()}/health" if (ag.address.lower(), f"s{i}") in hanging
                   else service.url)
            svcs[f"s{i}"] = {"http": {"url": url, "timeout_s": timeout}, "interval_s": interval}
        entries.append({"address": ag.address, "services": svcs})
    config = world.config(ags[0].address, service.url, agreements=entries, services={})
    proc = world.start(config)
    try:
        deadline = time.time() + 30
        while '"msg": "listening"' not in world.log_text():
            assert time.time() < deadline, world.log_text()[-3000:]
            time.sleep(0.1)
        t0 = time.time()
        time.sleep(10)
        t1 = time.time()
    finally:
        stop(proc)
    by_target = samples_by_target(tmp_path / "oracle.db")
    healthy = [(a.address.lower(), f"s{i}") for a in ags for i in range(5)
               if (a.address.lower(), f"s{i}") not in hanging]
    lags: list[float] = []
    for target in healthy:
        samples = [(ts, ok) for ts, ok in by_target.get(target, []) if t0 + 1 <= ts < t1 - 2]
        assert samples, f"{target}: no sample at all"
        assert all(ok for _, ok in samples), f"{target}: a healthy target recorded a failure"
        times = [ts for ts, _ in samples]
        # Lag: how much later than its interval each check came after the previous one.
        lags += [max(0.0, b - a - interval) for a, b in itertools.pairwise(times)]
        # Its figure is what it is alone: every whole second of the window holds a sample.
        seconds = {int(ts) for ts in times}
        window = set(range(int(t0 + 2), int(t1 - 3)))
        assert window <= seconds, f"{target}: seconds without a sample: {sorted(window - seconds)}"
    assert p99(lags) < 1.0, f"lag p99 {p99(lags):.2f} s"
    for target in hanging:
        samples = [(ts, ok) for ts, ok in by_target.get(target, []) if t0 + 1 <= ts < t1 - 2]
        assert not any(ok for _, ok in samples), "a hanging target recorded a success"
        # A hanging target is measured as down in every slice, never "not measured": otherwise a
        # provider could make its service hang instead of refuse, push the measured share below
        # the minimum and escape the credit.
        seconds = {int(ts) for ts, _ in samples}
        window = set(range(int(t0 + 2), int(t1 - 3)))
        assert window <= seconds, f"hanging {target}: seconds not measured: {sorted(window - seconds)}"


def test_overload_is_never_recorded_as_an_outage(world: World, service: ScheduledService, tmp_path: Path):
    # 40 healthy targets at 10 checks/s each (400 checks/s wanted), each answer taking 20 ms, at
    # most one check in flight: the prober can do 50 checks/s at best. Checks it cannot start on
    # time are not measured; no check may fail because the prober, not the target, was slow (a
    # timeout that starts while the check waits for its turn would fail nearly all of them).
    service.delay_s = 0.02
    ags = [world.agreement(period_length=3_600, period_count=1, start_in=60, services=five_services())
           for _ in range(8)]
    entries = [{"address": ag.address,
                "services": {f"s{i}": {"http": {"url": service.url, "timeout_s": 0.1}, "interval_s": 0.1}
                             for i in range(5)}} for ag in ags]
    config = world.config(ags[0].address, service.url, agreements=entries, services={}, max_in_flight=1)
    proc = world.start(config, nice=10)  # the daemon saturates a core; the targets must not starve
    metrics_port = None
    try:
        deadline = time.time() + 30
        while '"msg": "listening"' not in world.log_text():
            assert time.time() < deadline, world.log_text()[-3000:]
            time.sleep(0.1)
        time.sleep(8)
        import json
        for line in world.log_text().splitlines():
            if '"msg": "listening"' in line:
                metrics_port = json.loads(line)["port"]
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    finally:
        stop(proc)
    with sqlite3.connect(tmp_path / "oracle.db") as conn:
        total, failed = conn.execute("SELECT count(*), sum(NOT ok) FROM samples").fetchone()
        reasons = [r for (r,) in conn.execute("SELECT DISTINCT detail FROM samples WHERE NOT ok LIMIT 5")]
    assert total > 100, "the prober measured next to nothing"
    assert failed == 0, f"{failed} of {total} checks of healthy targets recorded as failures: {reasons}"
    skipped = sum(float(line.split()[-1]) for line in metrics.splitlines()
                  if line.startswith("smartsla_oracle_checks_not_measured_total"))
    assert skipped > 0, "the prober was not overloaded: the test proves nothing"


def test_slices_that_cannot_hold_a_sample_are_refused_at_start(world: World, service: ScheduledService,
                                                               tmp_path: Path):
    # Finding 9: slice 1 s, interval 30 s (the default) -> 29 of 30 slices without a sample; a
    # service that never failed read 5 % and the customer got a 100 % credit.
    ag = world.agreement(period_length=60, period_count=1)
    cfg = yaml.safe_load(world.config(ag.address, service.url).read_text())
    cfg["services"]["web"] = {"http": {"url": service.url, "timeout_s": 2}}  # interval_s: default 30
    path = tmp_path / "finding9.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, SMARTSLA_ORACLE_KEY=world.oracle_key)
    try:
        done = subprocess.run([sys.executable, "-m", "oracle", "--config", str(path)], env=env,
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the oracle accepted slices of 1 s probed every 30 s and ran")
    assert done.returncode == 2, done.stderr
    assert "services.web.interval_s: 30 s is longer than the slice length of 1 s" in done.stderr


def test_period_measured_below_the_minimum_gets_no_report(world: World, service: ScheduledService):
    # The oracle is down for most of the only period: it must not report a figure it did not
    # observe (the period takes the contract's dispute/expire path instead).
    minimum = {"min_measured_ppm": 900_000} if "min_measured_ppm" in Terms.model_fields else {}
    ag = world.agreement(period_length=8, period_count=1, start_in=8, **minimum)
    config = world.config(ag.address, service.url)
    proc = world.start(config)
    world.wait_ready(ag.terms.start)
    time.sleep(max(0.0, ag.terms.start + 1 - time.time()))
    stop(proc)  # down from second 1 to second 6 of 8: at most ~40 % measured
    time.sleep(max(0.0, ag.terms.start + 6 - time.time()))
    proc = world.start(config)
    try:
        wait_until(lambda: "not enough of the period measured" in world.log_text(), 40, "the refusal",
                   world.log_text)
        time.sleep(3)  # a wrong report would have time to land
        assert ag.snapshot().settled_periods == 0
        assert ag.settlements() == []
    finally:
        stop(proc)
    with sqlite3.connect(world.tmp / "oracle.db") as conn:
        (measured,) = conn.execute("SELECT measured_ppm FROM period_results WHERE period = 0").fetchone()
    assert measured < 900_000


def test_discover_serves_only_agreements_of_listed_providers(world: World, service: ScheduledService):
    # Finding 7c: anyone can create an agreement naming the oracle; in discover mode the oracle
    # would then spend gas settling it. Only agreements of providers on the allowlist are served.
    ag = world.agreement(period_length=3_600, period_count=1, start_in=60)

    def served(providers: list[str]) -> list[str]:
        cfg = yaml.safe_load(world.config(ag.address, service.url).read_text())
        cfg.update(agreements=[], discover=True, discover_providers=providers, listen="127.0.0.1:0")
        world.tmp.joinpath("discover.yaml").write_text(yaml.safe_dump(cfg))
        (world.tmp / "oracle.log").write_text("")
        proc = world.start(world.tmp / "discover.yaml")
        try:
            deadline = time.time() + 30
            while '"msg": "listening"' not in world.log_text():
                assert time.time() < deadline and proc.poll() is None, world.log_text()[-3000:]
                time.sleep(0.1)
            import json
            port = next(json.loads(line)["port"] for line in world.log_text().splitlines()
                        if '"msg": "listening"' in line)
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["agreements"]
        finally:
            stop(proc)

    assert served([world.customer]) == []  # a stranger's (here: not the listed provider's) agreement
    assert "provider not in discover_providers" in world.log_text()
    assert served([world.provider]) == [ag.address]


def test_check_config_runs_the_daemons_validation_and_lists_every_problem(world: World, service: ScheduledService,
                                                                          monkeypatch: pytest.MonkeyPatch):
    from oracle.config import ConfigError, OracleConfig
    from oracle.daemon import check_config

    ag = world.agreement(period_length=60, period_count=1)
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", world.oracle_key)
    good = yaml.safe_load(world.config(ag.address, service.url).read_text())
    check_config(OracleConfig.model_validate(good))  # fine
    probe = good["services"]["web"]
    bad = {**good, "agreements": [{"address": ag.address, "services": {"wbe": probe}},
                                  {"address": world.customer}]}
    with pytest.raises(ConfigError) as err:
        check_config(OracleConfig.model_validate(bad))
    lines = str(err.value).splitlines()
    assert any("agreements[0].services: wbe not in agreement" in x and "(its services: web)" in x for x in lines)
    assert any(x.startswith("agreements[1].address:") for x in lines), lines


def test_oracle_refuses_to_start_with_a_method_other_than_the_agreements(world: World, service: ScheduledService,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """Issue 12: the measurement method is in the terms. An oracle configured with another latency
    percentile or another slice length must not start (exit 2, naming the field and both values);
    on the old code the percentile was the configuration's alone and the daemon ran."""
    services = (Service(name="web", objective=999_900, weight_bps=5_000, tiers=EC2),
                Service(name="api", kind="latency", objective=300, weight_bps=5_000, latency_percentile=99,
                        tiers=(Tier(threshold=500, credit_bps=1_000),)))
    ag = world.agreement(period_length=60, period_count=1, services=services)
    assert [s.latency_percentile for s in ag.terms.services] == [0, 99]  # read back from the chain
    good = yaml.safe_load(world.config(ag.address, service.url).read_text())
    api = {"http": {"url": service.url, "timeout_s": 0.25}, "interval_s": 0.25}
    env = dict(os.environ, SMARTSLA_ORACLE_KEY=world.oracle_key)

    def refused(cfg: dict, name: str) -> str:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg))
        try:
            done = subprocess.run([sys.executable, "-m", "smartsla", "oracle", "run", "--config", str(path)],
                                  env=env, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the oracle started with {name}: a method other than the agreement's")
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        return done.stderr

    other_percentile = {**good, "services": {**good["services"], "api": {**api, "latency_percentile": 95}}}
    err = refused(other_percentile, "p95.yaml")
    assert "services.api.latency_percentile: 95" in err and "99th percentile" in err, err

    other_slice = {**good, "slice_seconds": 2, "services": {**good["services"], "api": api}}
    err = refused(other_slice, "slice2.yaml")
    assert "slice_seconds: 2 s" in err and "slices of 1 s" in err, err

    # Without a setting of its own the oracle measures the agreement's way.
    from oracle.config import load_config
    from oracle.daemon import Daemon

    path = tmp_path / "follows.yaml"
    path.write_text(yaml.safe_dump({**good, "services": {**good["services"], "api": api}}))
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", world.oracle_key)
    daemon = Daemon(load_config(path))
    daemon.prepare(wait_for_chain_s=5)
    served = daemon.served[ag.address]
    assert served.probes["api"].latency_percentile == 99 and served.slice_seconds == 1
