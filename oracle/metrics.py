"""The daemon's own Prometheus metrics (served on /metrics by the daemon's HTTP listener)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily

from smartsla.forecast import Forecast


class OracleMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter("smartsla_oracle_checks", "Probe checks run", ["agreement", "service"],
                              registry=self.registry)
        self.check_failures = Counter("smartsla_oracle_check_failures", "Probe checks that failed",
                                      ["agreement", "service"], registry=self.registry)
        self.checks_slow = Counter(
            "smartsla_oracle_checks_slow", "Checks of a latency service that failed or took longer than its "
            "objective (the SLI of its burn-rate alerts, smartsla.rules)", ["agreement", "service"],
            registry=self.registry)
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
        self.credit_reported = Counter(
            "smartsla_oracle_credit_reported_units", "Credit (whole units of the asset, before the per-period cap "
            "and the collateral limit) implied by the figures of the periods this oracle got settled",
            ["agreement", "service"], registry=self.registry)
        self.running = RunningPeriodCollector(self.registry)
        # The sender's fee state (F8-1), read from the TxManager at each scrape (bind_sender).
        self._sender: Any = None
        self.sending_blocked = Gauge(
            "smartsla_oracle_sending_blocked", "1 while settlements cannot be mined: the base fee is at or above "
            "chain.max_fee_gwei, or a sent transaction is stuck below the base fee and its replacement would "
            "exceed the cap (reports wait; see /healthz 'sending')", registry=self.registry)
        self.sending_blocked.set_function(lambda: 0.0 if self._sender is None or self._sender.blocked is None else 1.0)
        self.sending_blocked_seconds = Gauge(
            "smartsla_oracle_sending_blocked_seconds", "How long sending has been blocked (0: not blocked)",
            registry=self.registry)
        self.sending_blocked_seconds.set_function(
            lambda: 0.0 if self._sender is None or self._sender.blocked is None
            else time.time() - self._sender.blocked.since)
        self.base_fee_gwei = Gauge("smartsla_oracle_base_fee_gwei", "The next block's base fee when last seen "
                                   "(-1: not yet)", registry=self.registry)
        self.base_fee_gwei.set_function(
            lambda: -1.0 if self._sender is None or self._sender.last_base_fee is None
            else self._sender.last_base_fee / 1e9)
        self.fee_cap_gwei = Gauge("smartsla_oracle_fee_cap_gwei", "The configured fee cap (chain.max_fee_gwei)",
                                  registry=self.registry)
        self.fee_cap_gwei.set_function(lambda: -1.0 if self._sender is None else self._sender.cap_wei / 1e9)
        self.tx_replacements = Gauge("smartsla_oracle_tx_replacements", "Transactions stuck below the base fee "
                                     "replaced (same nonce, bumped fees) since the start", registry=self.registry)
        self.tx_replacements.set_function(lambda: 0.0 if self._sender is None else float(self._sender.replacements))

    def bind_sender(self, sender: Any) -> None:
        """The oracle.transactions.TxManager whose fee state the gauges above export."""
        self._sender = sender

    def mark_report(self) -> None:
        self._last_report = time.time()
        self.reports_confirmed.inc()


# ---------------------------------------------------------------------------- the running period
# What /metrics says about the period in progress, per agreement and service (issue 14): the
# slices counted so far and smartsla.forecast's projection. Counted in memory as samples arrive
# (O(1) per check, a set of slice indexes per service), so a refresh costs a few set lookups per
# service and never a scan of the store; the store is read once per service and period, when the
# daemon starts mid-period, to pick up the slices measured before.

RUNNING_GAUGES: tuple[tuple[str, str], ...] = (
    ("period", "Index of the period in progress"),
    ("good_seconds", "Good time so far in the period (measured slices, all checks passed)"),
    ("bad_seconds", "Bad time so far in the period (slices holding a failed check)"),
    ("excluded_seconds", "Time so far excluded as maintenance declared on-chain with notice"),
    ("unmeasured_seconds", "Countable time so far without any check (left out of the figure)"),
    ("remaining_seconds", "Time left until the period ends"),
    ("value_ppm", "The figure so far (ppm): good / (good + bad)"),
    ("projected_ppm", "The figure projected at period end at the period's burn so far (ppm)"),
    ("projected_tier", "Credit tier the projected figure falls in (index into the service's tiers; -1: none)"),
    ("projected_credit", "Credit the projected figure costs, in the asset's base units"),
    ("projected_credit_units", "Credit the projected figure costs, in whole units of the asset"),
    ("budget_left_seconds", "Downtime left before the next credit tier is certain (whole slices)"),
    ("next_tier", "The tier budget_left_seconds guards (-1: every tier is already certain)"),
    ("slow_checks_left", "Latency services: further checks slower than next_tier's bound before the period's "
                         "percentile crosses it (-1: availability service)"),
)


@dataclass
class SliceTally:
    """The slices of one service's period in progress that hold a check, and the bad ones
    (oracle.sli's rule: a slice holding a failed check counted by the failure threshold)."""

    period: int
    start: int
    end: int
    slice_seconds: int
    failure_threshold: int
    measured: set[int] = field(default_factory=set)
    bad: set[int] = field(default_factory=set)
    streak: int = 0
    # latency services: the successful checks' latencies (ms) by slice, so a maintenance window
    # declared later still takes its slices out (oracle.store.latency_percentiles' rule)
    latencies: dict[int, list[float]] = field(default_factory=dict)
    first_ts: float | None = None  # the earliest check tallied live (seeding from the store stops there)

    def add(self, ts: float, ok: bool, latency_ms: float | None = None) -> None:
        self.streak = 0 if ok else self.streak + 1
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        i = int((ts - self.start) // self.slice_seconds)
        if i < 0:
            return
        self.measured.add(i)
        if not ok and self.streak >= self.failure_threshold:
            self.bad.add(i)
        if ok and latency_ms is not None:
            self.latencies.setdefault(i, []).append(latency_ms)

    def latencies_outside(self, maintenance: set[int]) -> list[float]:
        """The successful checks' latencies outside the maintenance slices."""
        return [v for i, vs in self.latencies.items() if i not in maintenance for v in vs]

    def counts(self, now: float, maintenance: set[int]) -> tuple[int, int, int, int]:
        """(good, bad, excluded, unmeasured) slices up to the one holding `now` (a slice in
        progress counts as soon as it holds a check; until then it is not yet unmeasured)."""
        elapsed = max(0, int((now - self.start) // self.slice_seconds))  # whole slices behind us
        maint = {i for i in maintenance if i <= elapsed}
        measured = len(self.measured) - sum(1 for i in maint if i in self.measured)
        bad = len(self.bad) - sum(1 for i in maint if i in self.bad)
        done_maint = sum(1 for i in maint if i < elapsed)
        done_measured = measured - (1 if elapsed in self.measured and elapsed not in maint else 0)
        unmeasured = max(0, elapsed - done_maint - done_measured)
        return measured - bad, bad, len(maint), unmeasured


class RunningPeriodCollector:
    """The running-period gauges (`smartsla_oracle_period_*{agreement, service}`), recomputed
    by `refresh` (the daemon calls it every few seconds) and served as they were last computed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._rows: list[tuple[str, str, Forecast, int]] = []  # agreement, service, forecast, decimals
        self._lock = threading.Lock()
        registry.register(self)

    def publish(self, rows: list[tuple[str, str, Forecast, int]]) -> None:
        with self._lock:
            self._rows = rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            rows = self._rows
        families = {name: GaugeMetricFamily(f"smartsla_oracle_period_{name}", doc, labels=["agreement", "service"])
                    for name, doc in RUNNING_GAUGES}
        for agreement, service, f, decimals in rows:
            values = {
                "period": f.period, "good_seconds": f.good_s, "bad_seconds": f.bad_s,
                "excluded_seconds": f.excluded_s, "unmeasured_seconds": f.unmeasured_s,
                "remaining_seconds": f.remaining_s, "value_ppm": f.value_so_far_ppm,
                "projected_ppm": f.projected_ppm,
                "projected_tier": -1 if f.projected_tier is None else f.projected_tier,
                "projected_credit": f.projected_credit,
                "projected_credit_units": f.projected_credit / 10**decimals,
                "budget_left_seconds": f.budget_left_s,
                "next_tier": -1 if f.next_tier is None else f.next_tier,
                "slow_checks_left": -1 if f.slow_checks_left is None else f.slow_checks_left,
            }
            for name, family in families.items():
                family.add_metric([agreement, service], float(values[name]))
        yield from families.values()

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # computed at collection: nothing to check at registration
