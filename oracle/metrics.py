"""The daemon's own Prometheus metrics (served on /metrics by the daemon's HTTP listener)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge


class OracleMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter("smartsla_oracle_checks", "Probe checks run", ["agreement", "service"],
                              registry=self.registry)
        self.check_failures = Counter("smartsla_oracle_check_failures", "Probe checks that failed",
                                      ["agreement", "service"], registry=self.registry)
        self.checks_not_measured = Counter(
            "smartsla_oracle_checks_not_measured", "Checks the prober could not run on time (it was behind, or "
            "stalled during the check): recorded as not measured, never as failures", ["agreement", "service"],
            registry=self.registry)
        self.period_measured_ppm = Gauge(
            "smartsla_oracle_period_measured_ppm", "Measured share (ppm) of the last period evaluated: the lowest "
            "over the agreement's measured services", ["agreement"], registry=self.registry)
        self.periods_not_reported = Counter(
            "smartsla_oracle_periods_not_reported", "Periods refused because less than the agreement's "
            "min_measured_ppm was measured (left to the contract's dispute/expire path)", registry=self.registry)
        self.reports_submitted = Counter("smartsla_oracle_reports_submitted",
                                         "Settlement transactions sent", registry=self.registry)
        self.reports_confirmed = Counter("smartsla_oracle_reports_confirmed",
                                         "Periods confirmed settled by this oracle", registry=self.registry)
        self.chain_errors = Counter("smartsla_oracle_chain_errors", "Chain calls that failed (node down, timeouts)",
                                    registry=self.registry)
        self._last_report = 0.0
        self.since_last_report = Gauge("smartsla_oracle_seconds_since_last_report",
                                       "Seconds since this oracle last got a period settled (-1: never)",
                                       registry=self.registry)
        self.since_last_report.set_function(
            lambda: time.time() - self._last_report if self._last_report else -1.0)

    def mark_report(self) -> None:
        self._last_report = time.time()
        self.reports_confirmed.inc()
