"""Prometheus as a data source, against a real Prometheus scraping a target whose metric the test
switches: up for a while, down for a while, up again. One scenario serves every test; it takes about
19 s, 5 of them waiting for Prometheus' first scrape (its discovery hands targets over every 5 s, and
2.42 has no flag for that), and is bounded below 30 s."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import oracle.prometheus as prom
from oracle.metrics import OracleMetrics
from oracle.prometheus import PrometheusError, PrometheusSource
from oracle.running import PROMETHEUS_OVERLAP_SLICES, PROMETHEUS_REFRESH_S, RunningPeriods
from oracle.store import Store
from smartsla.forecast import forecast
from smartsla.terms import Service, Terms, Tier

SLICE = 2  # seconds; two scrapes per slice at the 1 s scrape interval
EXPR = f"min_over_time(smartsla_test_up[{SLICE}s])"  # "up for the whole slice"
UP_1, DOWN, UP_2 = 4.0, 5.0, 3.0  # phase lengths (s)

STATE = {"up": 1.0}


class Target(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = (f"# TYPE smartsla_test_up gauge\nsmartsla_test_up {STATE['up']}\n"
                "# TYPE smartsla_test_ratio gauge\nsmartsla_test_ratio 0.9995\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass(frozen=True)
class Scenario:
    source: PrometheusSource
    started: float  # Prometheus process started: no data before
    ready: float  # first scrape seen; the metric was 1 from before the start
    went_down: float
    came_up: float
    ended: float


@pytest.fixture(scope="module")
def scenario(http_server: Callable[..., contextlib.AbstractContextManager[ThreadingHTTPServer]],
             free_port: Callable[[], int], prometheus_binary: str) -> Iterator[Scenario]:
    STATE["up"] = 1.0
    with http_server(Target) as target, tempfile.TemporaryDirectory(prefix="smartsla-prom-") as tmp:
        port = free_port()
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: target\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{target.server_address[1]}']\n")
        log = open(os.path.join(tmp, "log"), "w")  # noqa: SIM115 (closed below)
        started = time.time()
        proc = subprocess.Popen([prometheus_binary, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            source = PrometheusSource(f"http://127.0.0.1:{port}", timeout=5)
            wait_until(lambda: httpx.get(f"{source.base_url}/api/v1/query",
                                         params={"query": "smartsla_test_up"}).json()["data"]["result"],
                       timeout=8, what="first scrape")  # ~5 s: Prometheus hands targets to scrapers every 5 s
            ready = time.time()
            time.sleep(UP_1)
            STATE["up"] = 0.0
            went_down = time.time()
            time.sleep(DOWN)
            STATE["up"] = 1.0
            came_up = time.time()
            time.sleep(UP_2)
            ended = time.time()
            time.sleep(1.2)  # let the last scrape land
            yield Scenario(source, started, ready, went_down, came_up, ended)
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not seen after {timeout} s")


def test_up_down_up_is_counted_slice_by_slice(scenario: Scenario) -> None:
    s = scenario
    start = math.floor(s.started) - 6 * SLICE  # the first slices are from before Prometheus ran
    end = start + SLICE * math.floor((s.ended - start) / SLICE)
    verdicts = s.source.verdicts(EXPR, start, end, slice_seconds=SLICE)
    fig = s.source.availability(EXPR, start, end, slice_seconds=SLICE)
    n = (end - start) // SLICE
    margin = 0.2
    for i in range(n):
        lo, hi = start + i * SLICE, start + (i + 1) * SLICE
        if hi < s.started:
            assert i not in verdicts, f"slice {i} before Prometheus started has data"
        elif s.ready <= lo and hi <= s.went_down - margin:
            assert verdicts.get(i) is True, f"slice {i} of the first up phase: {verdicts.get(i)}"
        elif s.went_down + margin <= lo and hi <= s.came_up - margin:
            assert verdicts.get(i) is False, f"slice {i} of the down phase: {verdicts.get(i)}"
        elif s.came_up + 1.0 + margin <= lo and hi <= s.ended:
            assert verdicts.get(i) is True, f"slice {i} of the second up phase: {verdicts.get(i)}"
    bad = [i for i, good in verdicts.items() if not good]
    # the 5 s outage covers 2 to 4 two-second slices, depending on where the scrapes fall
    assert 2 <= len(bad) <= 4, verdicts
    assert bad == list(range(bad[0], bad[-1] + 1)), "one contiguous outage"
    assert fig.missing_slices >= 6  # the 12 s before Prometheus started
    assert fig.total_slices + fig.excluded_slices == n
    assert fig.good_slices == sum(verdicts.values())
    assert fig.total_slices == n - fig.missing_slices  # not measured: out of the total
    assert fig.measured_ppm == fig.total_slices * 1_000_000 // n
    assert fig.value_ppm == fig.good_slices * 1_000_000 // fig.total_slices
    assert fig.p50_ms is None


def test_not_measured_and_maintenance_apply_to_prometheus_too(scenario: Scenario) -> None:
    s = scenario
    start = math.floor(s.started) - 6 * SLICE
    end = start + SLICE * math.floor((s.ended - start) / SLICE)
    fig = s.source.availability(EXPR, start, end, slice_seconds=SLICE)
    assert fig.missing_slices >= 3  # before Prometheus started: not measured, not down
    assert fig.measured_ppm < 1_000_000
    assert fig.total_slices + fig.missing_slices == (end - start) // SLICE
    # the outage announced as maintenance: nothing bad is left
    maint = s.source.availability(EXPR, start, end, slice_seconds=SLICE,
                                  maintenance=[(s.went_down - SLICE, s.came_up + 2 * SLICE)])
    assert maint.maintenance_slices > 0
    assert maint.value_ppm == 1_000_000
    assert maint.good_slices == maint.total_slices
    assert "maintenance" in maint.explain() and "excluded" in maint.explain()


def test_ratio_threshold(scenario: Scenario) -> None:
    s = scenario
    start = math.floor(s.ready) + SLICE
    end = start + 3 * SLICE
    expr = f"min_over_time(smartsla_test_ratio[{SLICE}s])"
    at_least = s.source.availability(expr, start, end, slice_seconds=SLICE, threshold=0.999, inclusive=True)
    assert (at_least.good_slices, at_least.total_slices) == (3, 3)
    stricter = s.source.availability(expr, start, end, slice_seconds=SLICE, threshold=0.9999, inclusive=True)
    assert (stricter.good_slices, stricter.total_slices) == (0, 3)


def test_long_periods_are_fetched_in_chunks(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    s = scenario
    start = math.floor(s.started) - 6 * SLICE
    end = start + SLICE * math.floor((s.ended - start) / SLICE)
    whole = s.source.verdicts(EXPR, start, end, slice_seconds=SLICE)
    monkeypatch.setattr(prom, "MAX_POINTS_PER_QUERY", 3)  # force many small query_range calls
    assert s.source.verdicts(EXPR, start, end, slice_seconds=SLICE) == whole


def test_query_errors_raise_instead_of_looking_like_an_outage(scenario: Scenario,
                                                            free_port: Callable[[], int]) -> None:
    with pytest.raises(PrometheusError, match="bad_data"):
        scenario.source.availability("min_over_time(", scenario.started, scenario.ended)
    with pytest.raises(PrometheusError, match="ConnectError"):
        PrometheusSource(f"http://127.0.0.1:{free_port()}").availability("up", 0, 600)


def test_running_period_gauges_of_a_prometheus_sourced_service(scenario: Scenario, tmp_path: Path) -> None:
    """The daemon's running period (oracle.running) for a service measured through Prometheus:
    the query over the elapsed part of the period gives the same counts as the settled figure,
    at most once per PROMETHEUS_REFRESH_S, and an incremental re-query changes nothing."""
    s = scenario
    start = math.floor(s.started) - 6 * SLICE
    now = start + SLICE * math.floor((s.ended - start) / SLICE)
    web = Service(name="web", objective=990_000, tiers=(Tier(threshold=990_000, credit_bps=1_000),
                                                             Tier(threshold=500_000, credit_bps=5_000)))
    terms = Terms(provider="0x" + "22" * 20, customer="0x" + "33" * 20, oracle="0x" + "44" * 20, start=start,
                  period_length=100 * SLICE, period_count=1, fee_per_period=10**18, collateral=0,
                  slice_seconds=SLICE, services=(web,))
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    running = RunningPeriods(store, OracleMetrics().running)
    a = "0x" + "11" * 20
    running.serve_prometheus(a, terms, {"web": (s.source, EXPR, 0.0, False)}, lambda: [])
    windows, seeds = running._inputs(now)  # noqa: SLF001 - the blocking half, run inline
    (f,) = running.refresh(now, windows, seeds)
    fig = s.source.availability(EXPR, start, now, slice_seconds=SLICE)
    assert fig.total_slices > fig.good_slices > 0  # the outage is in there
    assert f.good_s == fig.good_slices * SLICE and f.bad_s == (fig.total_slices - fig.good_slices) * SLICE
    assert f.unmeasured_s == fig.missing_slices * SLICE and f.value_so_far_ppm == fig.value_ppm
    assert f == forecast(terms, 0, 0, now, f.good_s, f.bad_s, 0, f.unmeasured_s)
    assert f.projected_tier == 0 and f.projected_credit == 10**17
    # within the refresh interval: no query at all
    assert running._inputs(now + 1)[1] == {}  # noqa: SLF001
    # after it: an incremental query (the last few slices re-judged) leaves the counts as they were
    running._prom_last[(a, "web")] -= PROMETHEUS_REFRESH_S  # noqa: SLF001 - the interval has passed
    _, again = running._inputs(now)  # noqa: SLF001
    ((verdicts, _),) = again.values()
    assert 0 < len(verdicts) <= PROMETHEUS_OVERLAP_SLICES + 1  # only the last slices are re-queried
    (g,) = running.refresh(now, {}, again)
    assert g == f
    store.close()
