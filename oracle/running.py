"""The running period on /metrics: slices counted as checks arrive, forecast every few seconds.

Per agreement and service the daemon exports (oracle.metrics.RUNNING_GAUGES) the good, bad,
excluded and not-measured seconds so far, the figure so far, the projection at period end, the
projected tier and credit and the downtime budget left, all from `smartsla.forecast`, so the API
and the dashboard show the same numbers.

Cost: a check adds one or two set insertions (`SliceTally.add`, on the event loop); a refresh
(every REFRESH_S) costs a few set lookups per service plus the forecast's arithmetic. The store is
read once per service and period (the slices measured before the daemon started), and the chain
once a minute per agreement (its maintenance windows). bench/rules_bench.py measures it.

Counting follows oracle.sli: a slice holding a failed check (after the failure threshold) is
bad, a slice holding checks that all passed is good, a slice overlapping a maintenance window
declared on-chain with notice is excluded, a past slice without a check is not measured.
A latency service also keeps its successful checks' latencies by slice: the figure so far is
their nearest-rank percentile outside maintenance slices, in whole ms rounded up (the oracle's
period rule), and `slow_checks_left` the further slow checks before the next tier
(`smartsla.forecast.forecast_latency`). The refresh sorts them: O(n log n) per service and
refresh, n the period's successful checks so far (a month at one check per 10 s: 260k values).
A Prometheus-sourced service (`services.X.prometheus`) has no checks to count: at most once per
PROMETHEUS_REFRESH_S its query is evaluated over the elapsed part of the period (a worker thread,
the source's HTTP timeout capped at PROMETHEUS_TIMEOUT_S), incrementally from a few slices
before the last one judged (late scrapes still land), and its verdicts feed the same tally, so
the gauges and credit-at-risk alerts cover it with `oracle.prometheus`'s slice rule. A failed
query keeps the last verdicts (and logs); the settled figure re-queries the whole period anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from smartsla.forecast import Forecast, current_period, forecast, forecast_latency
from smartsla.terms import Kind, Terms

from .metrics import RunningPeriodCollector, SliceTally
from .prometheus import PrometheusError, PrometheusSource
from .sli import Window, maintenance_slices
from .store import Store, StoreError

log = logging.getLogger("oracle")

REFRESH_S = 2.0  # how often the gauges are recomputed
PROMETHEUS_REFRESH_S = 30.0  # how often a Prometheus-sourced service's query is re-evaluated
PROMETHEUS_TIMEOUT_S = 10.0  # at most this long per query (a slow Prometheus must not stall the gauges)
PROMETHEUS_OVERLAP_SLICES = 5  # re-judged at each query: scrapes land late
MAINTENANCE_REFRESH_S = 60.0  # how often an agreement's declared windows are read from the chain
Seed = tuple[dict[int, bool], list[tuple[float, float]]]  # a period's slice verdicts, its ok (ts, latency ms)
CHAIN_ERRORS: tuple[type[BaseException], ...] = (Exception,)  # a failed read keeps the last known windows


class RunningPeriods:
    """Tallies of the period in progress for every (agreement, service) the daemon probes."""

    def __init__(self, store: Store, collector: RunningPeriodCollector,
                 declared: Callable[[list[str]], dict[str, int]] | None = None) -> None:
        """`declared(agreements)`: how many windows each has declared, read for many at once
        (batched); an agreement with none needs no read of its windows. Missing: read each."""
        self.store = store
        self.collector = collector
        self.declared = declared
        # (agreement, service) -> (terms, service index, failure threshold, decimals)
        self._services: dict[tuple[str, str], tuple[Terms, int, int, int]] = {}
        self._percentile: dict[tuple[str, str], int] = {}  # latency services -> the reported percentile
        self._tallies: dict[tuple[str, str], SliceTally] = {}
        self._seeded: set[tuple[str, str, int]] = set()
        self._maintenance: dict[str, tuple[float, Sequence[Window]]] = {}
        self._windows_of: dict[str, Callable[[], Sequence[Window]]] = {}
        # Prometheus-sourced services: (source, query, threshold, inclusive), when last queried
        self._prometheus: dict[tuple[str, str], tuple[PrometheusSource, str, float, bool]] = {}
        self._prom_last: dict[tuple[str, str], float] = {}

    def serve(self, agreement: str, terms: Terms, probed: dict[str, int],
              windows: Callable[[], Sequence[Window]], decimals: int = 18,
              percentiles: dict[str, int] | None = None) -> None:
        """Follow `agreement`'s availability and latency services named in `probed` (name ->
        failure threshold). `windows` reads the maintenance windows declared on-chain with notice;
        `percentiles`: a latency service's reported percentile (the oracle's
        `latency_percentile`, 95 when not given)."""
        self._windows_of[agreement] = windows
        for i, s in enumerate(terms.services):
            if s.kind in (Kind.availability, Kind.latency) and s.name in probed:
                self._services[(agreement, s.name)] = (terms, i, probed[s.name], decimals)
                if s.kind is Kind.latency:
                    self._percentile[(agreement, s.name)] = (percentiles or {}).get(s.name, 95)

    def serve_prometheus(self, agreement: str, terms: Terms,
                         sources: dict[str, tuple[PrometheusSource, str, float, bool]],
                         windows: Callable[[], Sequence[Window]], decimals: int = 18) -> None:
        """Follow `agreement`'s availability services measured through Prometheus: name ->
        (source, PromQL query, threshold, inclusive), as in the oracle's `prometheus:` probe."""
        self._windows_of[agreement] = windows
        for i, s in enumerate(terms.services):
            if s.kind is Kind.availability and s.name in sources:
                self._services[(agreement, s.name)] = (terms, i, 1, decimals)
                src, query, threshold, inclusive = sources[s.name]
                if src.timeout > PROMETHEUS_TIMEOUT_S:
                    src = PrometheusSource(src.base_url, PROMETHEUS_TIMEOUT_S, src.headers, src.verify_tls)
                self._prometheus[(agreement, s.name)] = (src, query, threshold, inclusive)

    def unserve(self, agreement: str) -> None:
        """Stop following `agreement` (a fleet member lost its lease): its gauges leave /metrics
        at the next refresh and its maintenance windows are no longer read. Call it on the event
        loop (as `refresh`); `_inputs` in its worker thread reads copies of these tables."""
        for key in [k for k in self._services if k[0] == agreement]:
            for table in (self._services, self._percentile, self._tallies, self._prometheus, self._prom_last):
                table.pop(key, None)
        self._seeded = {k for k in self._seeded if k[0] != agreement}
        self._maintenance.pop(agreement, None)
        self._windows_of.pop(agreement, None)

    def on_sample(self, agreement: str, service: str, ts: float, ok: bool,
                  latency_ms: float | None = None) -> None:
        key = (agreement, service)
        tally = self._tallies.get(key)
        if tally is None or not tally.start <= ts < tally.end:
            spec = self._services.get(key)
            if spec is None:
                return
            terms, _, threshold, _ = spec
            period = current_period(terms, int(ts))
            if period is None:
                return
            tally = SliceTally(period=period, start=terms.period_start(period), end=terms.period_end(period),
                               slice_seconds=terms.slice_seconds, failure_threshold=threshold)
            self._tallies[key] = tally
        tally.add(ts, ok, latency_ms if key in self._percentile else None)

    # ------------------------------------------------------------------ refresh
    def _inputs(self, now: float) -> tuple[dict[str, list[Window]], dict[tuple[str, str, int], Seed]]:
        """Blocking reads (a worker thread): maintenance windows due for a re-read, and the
        store's verdicts (latency services: and ok latencies by slice) of periods not yet seeded."""
        windows: dict[str, list[Window]] = {}
        due = [(agreement, read) for agreement, read in list(self._windows_of.items())  # (un)served meanwhile
               if (last := self._maintenance.get(agreement)) is None or now - last[0] >= MAINTENANCE_REFRESH_S]
        counts: dict[str, int] = {}
        if self.declared is not None and due:
            # A fleet member following 3,000 agreements read every one's windows each minute
            # (two calls each); most declare none, which one batched count says.
            try:
                counts = self.declared([a for a, _ in due])
            except CHAIN_ERRORS as exc:
                log.warning("could not count maintenance windows", extra={"error": str(exc)})
        for agreement, read in due:
            if counts.get(agreement) == 0:
                windows[agreement] = []
                continue
            try:
                windows[agreement] = list(read())
            except CHAIN_ERRORS as exc:
                log.warning("could not read maintenance windows", extra={"agreement": agreement,
                                                                        "error": str(exc)})
        seeds: dict[tuple[str, str, int], Seed] = {}
        for (agreement, name), (terms, _, threshold, _) in list(self._services.items()):
            period = current_period(terms, int(now))
            if period is None:
                continue
            if (agreement, name) in self._prometheus:
                self._query_prometheus(agreement, name, terms, period, now, seeds)
                continue
            if (agreement, name, period) in self._seeded:
                continue
            start = terms.period_start(period)
            try:
                verdicts = self.store.slice_verdicts(agreement, name, start, now, terms.slice_seconds, threshold)
                latencies: list[tuple[float, float]] = []
                if (agreement, name) in self._percentile:  # read once per period, then tallied live
                    latencies = [(x.ts, x.latency_ms) for x in self.store.samples(agreement, name, start, now)
                                 if x.ok and x.latency_ms is not None]
                seeds[(agreement, name, period)] = (verdicts, latencies)
            except StoreError as exc:
                log.warning("could not read the period so far", extra={"agreement": agreement, "error": str(exc)})
        return windows, seeds

    def _query_prometheus(self, agreement: str, name: str, terms: Terms, period: int, now: float,
                          seeds: dict[tuple[str, str, int], Seed]) -> None:
        """The Prometheus verdicts since a few slices before the last judged one, at most once per
        PROMETHEUS_REFRESH_S (blocking: the worker thread)."""
        key = (agreement, name)
        last = self._prom_last.get(key)
        if last is not None and now - last < PROMETHEUS_REFRESH_S:
            return
        self._prom_last[key] = now  # a failure waits for the next interval too: no hammering
        src, query, threshold, inclusive = self._prometheus[key]
        start, s = terms.period_start(period), terms.slice_seconds
        tally = self._tallies.get(key)
        done = max(tally.measured, default=-1) if tally is not None and tally.period == period else -1
        first = max(0, done - PROMETHEUS_OVERLAP_SLICES)
        try:
            verdicts = src.verdicts(query, start + first * s, now, slice_seconds=s, threshold=threshold,
                                    inclusive=inclusive)
        except (PrometheusError, httpx.HTTPError) as exc:
            log.warning("could not query Prometheus for the running period",
                        extra={"agreement": agreement, "service": name, "error": str(exc)})
            return
        seeds[(agreement, name, period)] = ({first + i: good for i, good in verdicts.items()}, [])

    def refresh(self, now: float, windows: dict[str, list[Window]] | None = None,
                seeds: dict[tuple[str, str, int], Seed] | None = None) -> list[Forecast]:
        """Merge what `_inputs` read, recompute every forecast and publish the gauges."""
        for agreement, ws in (windows or {}).items():
            if agreement in self._windows_of:  # not unserved while they were read
                self._maintenance[agreement] = (now, ws)
        for (agreement, name, seeded), (verdicts, latencies) in (seeds or {}).items():
            if (agreement, name) not in self._services:  # unserved while its seed was read
                continue
            terms, _, threshold, _ = self._services[(agreement, name)]
            tally = self._tallies.get((agreement, name))
            if tally is None or tally.period != seeded:
                tally = SliceTally(period=seeded, start=terms.period_start(seeded), end=terms.period_end(seeded),
                                   slice_seconds=terms.slice_seconds, failure_threshold=threshold)
                self._tallies[(agreement, name)] = tally
            tally.measured.update(verdicts)
            tally.bad.update(i for i, good in verdicts.items() if not good)
            if (agreement, name) in self._prometheus:  # its overlap slices are re-judged: a late scrape counts
                tally.bad.difference_update(i for i, good in verdicts.items() if good)
            # a check is tallied live before it is stored: the store's checks from the first live
            # one on are already in the tally (verdicts are sets, latencies are not: count once)
            first_live = tally.first_ts
            for ts, ms in latencies:
                if first_live is None or ts < first_live:
                    tally.latencies.setdefault(int((ts - tally.start) // tally.slice_seconds), []).append(ms)
            self._seeded.add((agreement, name, seeded))
        rows: list[tuple[str, str, Forecast, int]] = []
        out: list[Forecast] = []
        for (agreement, name), (terms, index, _, decimals) in sorted(self._services.items()):
            period = current_period(terms, int(now))
            if period is None:
                continue
            tally = self._tallies.get((agreement, name))
            start, end, s = terms.period_start(period), terms.period_end(period), terms.slice_seconds
            if tally is None or tally.period != period:
                tally = SliceTally(period=period, start=start, end=end, slice_seconds=s, failure_threshold=1)
            maint = maintenance_slices(start, end, s, self._maintenance.get(agreement, (0.0, []))[1])
            good, bad, excluded, unmeasured = tally.counts(now, maint)
            percentile = self._percentile.get((agreement, name))
            if percentile is None:
                f = forecast(terms, index, period, int(now), good_s=good * s, bad_s=bad * s,
                             excluded_s=excluded * s, unmeasured_s=unmeasured * s)
            else:
                f = forecast_latency(terms, index, period, int(now), tally.latencies_outside(maint), percentile,
                                     measured=good + bad > 0, good_s=good * s, bad_s=bad * s,
                                     excluded_s=excluded * s, unmeasured_s=unmeasured * s)
            rows.append((agreement, name, f, decimals))
            out.append(f)
        self.collector.publish(rows)
        return out

    async def run(self, stop: asyncio.Event, sleep: Callable[[asyncio.Event, float], Any]) -> None:
        while not stop.is_set():
            now = time.time()
            try:
                windows, seeds = await asyncio.to_thread(self._inputs, now)
                self.refresh(time.time(), windows, seeds)
            except Exception as exc:  # the gauges must never take the daemon down
                log.error("running-period metrics failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            await sleep(stop, REFRESH_S)


def probed_thresholds(probes: dict[str, Any]) -> dict[str, int]:
    """Services measured by the daemon's own checks (not Prometheus), with their failure
    threshold."""
    return {n: p.failure_threshold for n, p in probes.items() if p.prometheus is None}

