"""The oracle daemon's test rig, shared by the daemon's end-to-end tests (test_daemon,
test_running_metrics, test_forecast_from_daemon): a scheduled HTTP service, an Anvil chain that
keeps its state across a restart, the World on it (factory, funded oracle key, daemon runner).

A test module gets the fixtures by importing them: `from daemon_helpers import anvil, world, service`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from node_helpers import start_or_skip
from service_helpers import ScheduledService

from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.terms import Service, Terms, Tier

EC2 = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=990_000, credit_bps=3_000),
       Tier(threshold=950_000, credit_bps=10_000))
ETHER = 10**18


def lead(seconds: float) -> float:
    """A short lead before a term starts (the daemon must be measuring by then), stretched by how
    busy the machine is: a daemon's start-up (a Python process importing web3, a first chain call)
    takes a few seconds on an idle core and several times that when every core has a queue (a
    parallel full run beside other work). The 1-minute load average per core beyond 2 is the
    factor. Leads of 30 s or more have room already. Periods and every assertion stay as they are:
    a busy machine makes the test longer, not laxer."""
    if seconds >= 30:
        return seconds
    per_core = os.getloadavg()[0] / len(os.sched_getaffinity(0))
    return seconds * max(1.0, per_core / 2)


@pytest.fixture
def service() -> Iterator[ScheduledService]:
    s = ScheduledService(down_status=500)  # as a server error
    yield s
    s.close()


@pytest.fixture
def anvil(tmp_path: Path):
    node = start_or_skip("anvil", extra_args=("--state", str(tmp_path / "anvil-state.json")))
    yield node
    node.stop()


class World:
    """Chain, factory, a funded oracle key, and a helper to run the daemon."""

    def __init__(self, url: str, tmp: Path):
        self.url, self.tmp = url, tmp
        self.chain = Chain.connect(url)
        a = self.chain.accounts
        self.deployer, self.provider, self.customer = a[0], a[1], a[2]
        self.factory = Factory.deploy(self.chain, self.deployer)
        self.oracle, self.oracle_key = self.chain.new_account(fund_from=self.deployer, amount=ETHER)
        self.started: list[subprocess.Popen] = []  # every daemon start(): killed at teardown

    def agreement(self, *, period_length: int, period_count: int, start_in: float = 8.0,
                  services: tuple[Service, ...] = (Service(name="web", objective=999_900, tiers=EC2),),
                  **options: object):
        start = int(time.time() + lead(start_in)) + 1
        options.setdefault("oracles", (self.oracle,))
        options.setdefault("slice_seconds", 1)  # the on-chain slice must divide these short periods
        terms = Terms(provider=self.provider, customer=self.customer, start=start,
                      period_length=period_length, period_count=period_count, fee_per_period=ETHER,
                      collateral=period_count * ETHER, termination_ppm=0, services=services, **options)
        ag = self.factory.create_agreement(terms, self.deployer)
        ag.deposit_fees(self.customer)
        ag.deposit_collateral(self.provider)
        return ag

    def config(self, agreement: str, service_url: str, **extra: object) -> Path:
        cfg = {
            "chain": {"rpc_url": self.url, "factory": self.factory.address, "timeout_s": 2},
            "key": {"env": "SMARTSLA_ORACLE_KEY"},
            "store": f"sqlite:///{self.tmp / 'oracle.db'}",
            "slice_seconds": 1,
            "grace_s": 1,
            "report_check_s": 0.5,
            "listen": "127.0.0.1:0",
            "agreements": [{"address": agreement}],
            "services": {"web": {"http": {"url": service_url, "timeout_s": 0.25}, "interval_s": 0.25}},
        }
        cfg.update(extra)
        path = self.tmp / "oracle.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start(self, config: Path, crash_at: str | None = None, nice: int = 0) -> subprocess.Popen:
        """The daemon as a subprocess. `nice` > 0 runs it at a lower CPU priority than the test's
        own target servers (threads of the pytest worker), for tests that saturate the daemon on
        purpose: the targets must stay healthy, so a late answer is the daemon's doing, not theirs."""
        env = dict(os.environ, SMARTSLA_ORACLE_KEY=self.oracle_key)
        env.pop("SMARTSLA_ORACLE_CRASH_AT", None)
        if crash_at:
            env["SMARTSLA_ORACLE_CRASH_AT"] = crash_at
        log = open(self.tmp / "oracle.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "oracle", "--config", str(config)], env=env,
                                stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)
        self.started.append(proc)
        return proc

    def wait_ready(self, before: float) -> None:
        """Wait for the daemon to listen; it must be measuring before the agreement starts, or
        the first slices would have no data (counted as down) and the figures would be off."""
        deadline = time.time() + 30
        while '"msg": "listening"' not in self.log_text():
            if time.time() > deadline:
                pytest.fail(f"the oracle did not start within 30 s:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)
        assert time.time() < before - 0.5, "the oracle started too late for this test's schedule"

    def log_text(self) -> str:
        return (self.tmp / "oracle.log").read_text(errors="replace")


@pytest.fixture
def world(anvil, tmp_path: Path) -> Iterator[World]:
    """A failed assertion must not leave its daemon running: an orphan retries its dead chain
    every 50 ms and steals the CPU that later timing-bound tests of the same run need."""
    w = World(anvil.url, tmp_path)
    yield w
    for proc in w.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; oracle log tail:\n{log()[-3000:]}")


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


