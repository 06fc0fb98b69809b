"""The running period on /metrics, and the credit-at-risk alert in a real Prometheus.

All real: an Anvil chain with an agreement, the oracle daemon as a subprocess probing a local
HTTP server, Debian's Prometheus scraping the daemon every second with the rules
`smartsla.rules` generates for that agreement. The service goes down part-way through the
period; the credit-at-risk alert must go to firing while the tier is not yet crossed and before
the period settles. A unit test checks the in-memory tally against the store's own count.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import daemon_helpers
import httpx
import pytest
import yaml
from daemon_helpers import ETHER, World, stop, wait_until
from prometheus_client import generate_latest
from service_helpers import ScheduledService

from oracle.metrics import OracleMetrics, SliceTally
from oracle.probes import Sample
from oracle.running import RunningPeriods
from oracle.sli import count_slices, maintenance_slices
from oracle.store import Store
from smartsla import rules
from smartsla.forecast import forecast, forecast_latency
from smartsla.terms import Kind, Service, Terms, Tier

pytestmark = pytest.mark.anvil

# the daemon rig's fixtures (daemon_helpers): a stateful Anvil, the World on it, the scheduled service
anvil, world, service = daemon_helpers.anvil, daemon_helpers.world, daemon_helpers.service


PERIOD = 60  # s; one-second slices
DOWN_AT = 12  # s into the period the service goes down (and stays down)
TIERS = (Tier(threshold=800_000, credit_bps=1_000), Tier(threshold=500_000, credit_bps=10_000))
ALLOWED_BAD = PERIOD * (1_000_000 - TIERS[0].threshold) // 1_000_000  # 12 s before tier 0


def metric(text: str, name: str, name_of_service: str = "web") -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and f'service="{name_of_service}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_credit_at_risk_fires_in_prometheus_before_the_tier_is_crossed_and_the_period_settles(
        world: World, service: ScheduledService, free_port: Callable[[], int], prometheus_binary: str,
        tmp_path: Path) -> None:
    oracle_port, prom_port = free_port(), free_port()
    agreement = world.agreement(period_length=PERIOD, period_count=1, start_in=10.0,
                                services=(Service(name="web", objective=950_000, tiers=TIERS),))
    terms = agreement.terms
    service.down = [(terms.start + DOWN_AT, terms.end + 3600)]
    rule_file = tmp_path / "smartsla.rules.yml"
    rule_file.write_text(rules.render(rules.generate_for_terms(terms, rules.Context("test"), agreement.address)))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "scrape_configs": [{"job_name": "oracle", "static_configs": [{"targets": [f"127.0.0.1:{oracle_port}"]}]}],
    }))
    config = world.config(agreement.address, service.url, listen=f"127.0.0.1:{oracle_port}")
    proc = world.start(config)
    prom_log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed below
    prom = subprocess.Popen([prometheus_binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                             "--log.level=warn"], stdout=prom_log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        world.wait_ready(before=terms.start)

        def firing() -> list[dict]:
            try:
                alerts = httpx.get(f"{base}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
            except (httpx.HTTPError, ValueError, KeyError):
                return []
            return [a for a in alerts if a["labels"]["alertname"] == "SmartslaCreditAtRisk"
                    and a["state"] == "firing"]

        # healthy up to DOWN_AT: nothing at risk
        wait_until(lambda: time.time() > terms.start + DOWN_AT - 1, 40, "the outage", world.log_text)
        assert firing() == []
        # the failure series exists at 0 before any failure (I14-1), so the SLI reads 0, not "no data"
        healthy = httpx.get(f"http://127.0.0.1:{oracle_port}/metrics", timeout=2).text
        assert metric(healthy, "smartsla_oracle_check_failures_total") == 0
        assert metric(healthy, "smartsla_oracle_period_budget_left_seconds") == ALLOWED_BAD
        wait_until(lambda: bool(firing()), terms.end - time.time(), "credit at risk to fire", world.log_text)
        seen = time.time()
        alert = firing()[0]
        metrics = httpx.get(f"http://127.0.0.1:{oracle_port}/metrics", timeout=2).text
        bad = metric(metrics, "smartsla_oracle_period_bad_seconds")
        # before the period settles, and before tier 0 is crossed (the oracle's own count)
        assert seen < terms.end and agreement.snapshot().settled_periods == 0
        assert alert["labels"]["tier"] == "0" and alert["labels"]["agreement"] == agreement.address
        assert alert["annotations"]["credit_amount"] == "0.1 ETH"
        assert bad is not None and 0 < bad <= ALLOWED_BAD, metrics
        # the gauges are smartsla.forecast's: budget left is what the tier still allows
        left = metric(metrics, "smartsla_oracle_period_budget_left_seconds")
        assert left == ALLOWED_BAD - bad
        assert metric(metrics, "smartsla_oracle_period_next_tier") == 0
    finally:
        prom.terminate()
        prom.wait(timeout=15)
        prom_log.close()
        stop(proc)


# ---------------------------------------------------------------- the tally against the store
def test_tally_and_store_agree_and_a_restart_mid_period_picks_up_the_slices_before(tmp_path: Path) -> None:
    a = "0x" + "11" * 20
    terms = Terms(provider="0x" + "22" * 20, customer="0x" + "33" * 20, oracle="0x" + "44" * 20, start=1_000_000,
                  period_length=600, period_count=2, fee_per_period=ETHER, collateral=0, slice_seconds=10,
                  services=(Service(name="web", objective=999_000, tiers=(Tier(threshold=990_000, credit_bps=500),
                                                                               Tier(threshold=900_000,
                                                                                    credit_bps=5_000))),))
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    start = terms.period_start(1)
    # checks every 3 s for 400 s of period 1, failing in [100, 130) and [300, 305); none in [200, 250)
    samples = [Sample(service="web", ts=start + t, ok=not (100 <= t < 130 or 300 <= t < 305), latency_ms=5.0,
                      detail="")
               for t in range(0, 400, 3) if not 200 <= t < 250]
    store.add_samples(a, samples[:60])  # what a previous daemon stored before it stopped
    running = RunningPeriods(store, OracleMetrics().running)
    windows = [(start + 350, start + 370)]
    running.serve(a, terms, {"web": 1}, lambda: windows)
    for s in samples[60:]:  # what this daemon sees
        running.on_sample(a, "web", s.ts, s.ok)
        store.add_samples(a, [s])
    now = start + 400
    windows_read, seeds = running._inputs(now)  # noqa: SLF001 - the blocking half, run inline
    (f,) = running.refresh(now, windows_read, seeds)
    counts = count_slices(start, now, 10, store.slice_verdicts(a, "web", start, now, 10, 1), windows)
    assert f.good_s == counts.good * 10 and f.bad_s == (counts.total - counts.good) * 10
    assert f.unmeasured_s == counts.missing * 10 and f.period == 1
    assert counts.maintenance == 2 and f.excluded_s == 20
    assert f == forecast(terms, 0, 1, now, counts.good * 10, (counts.total - counts.good) * 10, 20,
                         counts.missing * 10)
    store.close()


def test_tally_counts_a_slice_in_maintenance_as_excluded_only() -> None:
    t = SliceTally(period=0, start=0, end=100, slice_seconds=10, failure_threshold=2)
    for ts, ok in ((1, False), (11, False), (12, False), (25, True), (41, False), (42, False)):
        t.add(ts, ok)
    # slice 0: one failure (threshold 2: not bad); slice 1: second failure in a row: bad;
    # slice 4: bad but under maintenance; slice 3: nothing
    assert t.counts(55, maintenance_slices(0, 100, 10, [(40, 50)])) == (2, 1, 1, 1)


def test_metrics_endpoint_text_has_every_running_gauge() -> None:
    m = OracleMetrics()
    terms = Terms(provider="0x" + "22" * 20, customer="0x" + "33" * 20, oracle="0x" + "44" * 20, start=0,
                  period_length=600, period_count=1, fee_per_period=ETHER, collateral=0, slice_seconds=10,
                  services=(Service(name="web", objective=999_000, tiers=(Tier(threshold=990_000,
                                                                                  credit_bps=500),)),))
    m.running.publish([("0xA", "web", forecast(terms, 0, 0, 300, 290, 10), 18)])
    text = generate_latest(m.registry).decode()
    for name in ("good_seconds", "bad_seconds", "excluded_seconds", "unmeasured_seconds", "remaining_seconds",
                 "value_ppm", "projected_ppm", "projected_tier", "projected_credit", "projected_credit_units",
                 "budget_left_seconds", "next_tier", "slow_checks_left"):
        assert f"smartsla_oracle_period_{name}{{" in text, name
    assert metric(text, "smartsla_oracle_period_projected_credit_units") == 0.05


def test_latency_service_running_figure_is_the_stores_percentile_and_counts_each_check_once(tmp_path: Path) -> None:
    a = "0x" + "11" * 20
    lat = Service(name="lat", kind=Kind.latency, objective=100,
                  tiers=(Tier(threshold=150, credit_bps=1_000), Tier(threshold=400, credit_bps=3_000)))
    terms = Terms(provider="0x" + "22" * 20, customer="0x" + "33" * 20, oracle="0x" + "44" * 20, start=1_000_000,
                  period_length=600, period_count=2, fee_per_period=ETHER, collateral=0, slice_seconds=10,
                  services=(lat,))
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    start = terms.period_start(0)
    # every 2 s: fast (50 ms) at first, slow (300 ms) in [200, 260), 900 ms in the maintenance window
    samples = [Sample(service="lat", ts=start + t + 0.5, ok=t % 37 != 0,
                      latency_ms=900.0 if 350 <= t < 370 else 300.0 if 200 <= t < 260 else 50.0 + t / 100, detail="")
               for t in range(0, 400, 2)]
    store.add_samples(a, samples[:80])  # a previous daemon's checks
    running = RunningPeriods(store, OracleMetrics().running)
    windows = [(start + 350, start + 370)]
    running.serve(a, terms, {"lat": 1}, lambda: windows, percentiles={"lat": 95})
    for s in samples[80:]:  # this daemon's: tallied live, then stored (before the seeding read)
        running.on_sample(a, "lat", s.ts, s.ok, s.latency_ms)
        store.add_samples(a, [s])
    now = start + 400
    windows_read, seeds = running._inputs(now)  # noqa: SLF001 - the blocking half, run inline
    (f,) = running.refresh(now, windows_read, seeds)
    p95 = store.latency_percentiles(a, "lat", start, now, 10, windows)[1]
    assert p95 is not None and f.value_so_far_ppm == f.projected_ppm == math.ceil(p95) == 300
    assert f.projected_tier == 0 and f.next_tier == 1  # above 150 ms, not above 400 ms
    ok = [s.latency_ms for s in samples if s.ok and not 350 <= s.ts - start < 370]
    assert f == forecast_latency(terms, 0, 0, now, ok, 95, measured=True, good_s=f.good_s, bad_s=f.bad_s,
                                 excluded_s=f.excluded_s, unmeasured_s=f.unmeasured_s)
    assert f.slow_checks_left == 100 * len(ok) // 95 - len(ok)  # every check so far is <= 400 ms
    store.close()
