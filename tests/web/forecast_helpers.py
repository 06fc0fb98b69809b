"""The oracle's /metrics for the forecast tests: a real prometheus_client exposition on a real
127.0.0.1 HTTP server, with the running-period gauges named and computed as the oracle daemon
exports them (oracle.metrics.RunningPeriodCollector: `smartsla_oracle_period_<name>{agreement,
service}`, values from smartsla.forecast at the oracle's instant)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from web_helpers import free_port

from smartsla.forecast import Forecast, forecast
from smartsla.terms import Terms


def running_gauges(f: Forecast, decimals: int = 18) -> dict[str, float]:
    return {
        "period": f.period, "good_seconds": f.good_s, "bad_seconds": f.bad_s, "excluded_seconds": f.excluded_s,
        "unmeasured_seconds": f.unmeasured_s, "remaining_seconds": f.remaining_s, "value_ppm": f.value_so_far_ppm,
        "projected_ppm": f.projected_ppm, "projected_tier": -1 if f.projected_tier is None else f.projected_tier,
        "projected_credit": f.projected_credit, "projected_credit_units": f.projected_credit / 10**decimals,
        "budget_left_seconds": f.budget_left_s, "next_tier": -1 if f.next_tier is None else f.next_tier,
    }


class RunningCollector:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, dict[str, float]]] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        names = {n for _, _, g in self.rows for n in g}
        families = {n: GaugeMetricFamily(f"smartsla_oracle_period_{n}", n, labels=["agreement", "service"])
                    for n in sorted(names)}
        for agreement, service, gauges in self.rows:
            for n, v in gauges.items():
                families[n].add_metric([agreement, service], float(v))
        yield from families.values()

    def describe(self) -> list[Any]:
        return []


@contextlib.contextmanager
def oracle_metrics(rows: list[tuple[str, str, dict[str, float]]]) -> Iterator[str]:
    """Serve `rows` as the oracle's /metrics; yields the URL."""
    registry = CollectorRegistry()
    collector = RunningCollector()
    collector.rows = rows
    registry.register(collector)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def scenario(terms: Terms, agreement: str) -> tuple[list[tuple[str, str, dict[str, float]]], dict[str, Forecast]]:
    """The live demo agreement's period 2, 12 days (40 %) in, nothing excluded or missed:
    compute had 1 hour of downtime, storage none; api is not probed by this oracle."""
    period = 2
    start = terms.period_start(period)
    now = start + 12 * 86_400
    elapsed = now - start
    out = {"compute": forecast(terms, 0, period, now, elapsed - 3_600, 3_600),
           "storage": forecast(terms, 1, period, now, elapsed, 0)}
    return [(agreement, name, running_gauges(f)) for name, f in out.items()], out
