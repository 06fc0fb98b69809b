"""Shared fixtures: a fresh embedded chain per test, the factory, a terms builder, and local dev
chains (`anvil`, `ganache`: a fresh node per test, from node_helpers.node_fixture; a module that
wants one node for all its tests declares `anvil = node_fixture("anvil", scope="module")`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cpu_helpers import ENABLED as CPU_PROFILE
from cpu_helpers import CpuProfile
from node_helpers import node_fixture
from schedule_helpers import (
    BASE_NICE,
    PRIORITY_NICE,
    PRIORITY_WORKER,
    LongestFirstScheduling,
    is_priority,
    order_longest_first,
    set_priority,
)
from sla_helpers import make_terms
from timeline_helpers import PATH as TIMELINE_PATH
from timeline_helpers import Timeline

from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.terms import Terms

anvil = node_fixture("anvil")
ganache = node_fixture("ganache")


@pytest.fixture
def chain() -> Chain:
    return Chain.connect("embedded")


@pytest.fixture
def roles(chain: Chain) -> dict[str, str]:
    a = chain.accounts
    return {"deployer": a[0], "provider": a[1], "customer": a[2], "oracle": a[3], "stranger": a[4]}


@pytest.fixture
def factory(chain: Chain, roles: dict[str, str]) -> Factory:
    return Factory.deploy(chain, roles["deployer"])


@pytest.fixture
def terms_for(chain: Chain, roles: dict[str, str]) -> Callable[..., Terms]:
    """Build terms starting a minute after the chain's current time (deposits close at the start),
    with overrides."""
    return lambda **overrides: make_terms(roles, chain.now() + 60, **overrides)


# ---------------------------------------------------------------------------- the fast inner loop
# `pytest -m "not slow"`: unit tests, the embedded chain, the API and the CLI in process. Marked
# here, in one place: whatever needs an external program (Forge, Slither, Brownie, a real Anvil or
# Ganache, Node's compiler, a browser, Prometheus, a wheel installed in a fresh venv) and the long
# property and end-to-end modules.
SLOW_MARKERS = ("forge", "slither", "brownie", "anvil", "ganache", "node", "browser")
SLOW_FIXTURES = ("anvil", "ganache", "prometheus_binary", "installed_smartsla")
SLOW_MODULES = ("test_operator_e2e.py", "test_daemon.py", "test_running_metrics.py",
                "test_forecast_from_daemon.py", "test_fleet.py", "test_properties.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if (item.path.name in SLOW_MODULES or any(item.get_closest_marker(m) for m in SLOW_MARKERS)
                or any(f in getattr(item, "fixturenames", ()) for f in SLOW_FIXTURES)):
            item.add_marker(pytest.mark.slow)
    if hasattr(config, "workerinput"):  # an xdist worker: the order is the schedule (schedule_helpers)
        order_longest_first(items)


# ---------------------------------------------------------------------------- the parallel schedule
def pytest_configure(config: pytest.Config) -> None:
    if CPU_PROFILE:  # SMARTSLA_CPU_PROFILE=1: CPU seconds per test and module (cpu_helpers)
        config.pluginmanager.register(CpuProfile(), "smartsla-cpu-profile")
    if TIMELINE_PATH:  # SMARTSLA_TIMELINE=FILE: when each test ran, on which worker (timeline_helpers)
        worker = getattr(config, "workerinput", {}).get("workerid", "main")
        config.pluginmanager.register(Timeline(Path(TIMELINE_PATH), worker), "smartsla-timeline")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """PRIORITY_WORKER runs the timing-bound tests first, above the other workers where allowed,
    then the rest at the run's priority (schedule_helpers, "CPU priority")."""
    worker = getattr(item.config, "workerinput", None)
    if worker and worker["workercount"] > 1 and worker["workerid"] == PRIORITY_WORKER:
        set_priority(PRIORITY_NICE if is_priority(item.nodeid) else BASE_NICE)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): three workers more than cores. Most long tests wait on
    wall-clock time (real periods, daemons, nodes): with one worker per core the cores sat idle
    (the full run 16-17 min on 2 cores); on 2 cores, 4 workers used 89 % of the CPU (445 s) and 5
    used 97 % (413 s), all tests green. More workers starved the timing-bound tests when they ran at
    the same priority as everything else: they run first, on a worker of higher priority
    (schedule_helpers, "CPU priority"). Forge and Slither run niced (test_static_and_invariants)."""
    return len(os.sched_getaffinity(0)) + 3


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LongestFirstScheduling | None:
    """Longest first, modules whole (schedule_helpers); an explicit `--dist` other than load wins."""
    return LongestFirstScheduling(config, log) if config.getoption("dist") == "load" else None


# One line at the end of a run: the time spent per group (top-level test folder, and the slow
# suites apart), summed over setup, call and teardown of every test (CPU-side seconds across
# workers, not wall time: with -n the groups overlap).
_GROUP_SECONDS: dict[str, float] = {}
_GROUP_TESTS: dict[str, set[str]] = {}


def _group(report: pytest.TestReport) -> str:
    parts = report.nodeid.split("::", 1)[0].split("/")
    folder = parts[1] if len(parts) > 2 and parts[0] == "tests" else "tests"
    return f"{folder} (slow)" if "slow" in report.keywords else folder


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    group = _group(report)
    _GROUP_SECONDS[group] = _GROUP_SECONDS.get(group, 0.0) + report.duration
    _GROUP_TESTS.setdefault(group, set()).add(report.nodeid)


_STARTED = time.monotonic()  # at import: before collection, which the wall time includes


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _GROUP_SECONDS:
        return
    workers = getattr(terminalreporter.config.option, "numprocesses", None)  # -n auto: resolved by then
    parts = [f"{g} {s:.0f} s/{len(_GROUP_TESTS[g])}" for g, s in sorted(_GROUP_SECONDS.items(), key=lambda kv: -kv[1])]
    terminalreporter.write_line(
        f"time per group (test seconds summed over {workers or 1} worker(s) / tests): " + ", ".join(parts)
        + f"; wall {time.monotonic() - _STARTED:.0f} s")


@pytest.fixture
def cli_chain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Chain]:
    """Every CLI command run in this process (cli_helpers.invoke) talks to one embedded chain;
    deployments go to tmp_path. One patch point whatever module a command lives in: every command
    connects through Chain.connect."""
    chain = Chain.connect("embedded")
    monkeypatch.setattr(Chain, "connect", classmethod(lambda cls, url, **kwargs: chain))
    monkeypatch.setenv("SMARTSLA_DEPLOYMENTS", str(tmp_path / "deployments.json"))
    yield chain
