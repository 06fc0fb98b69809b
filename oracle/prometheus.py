"""Prometheus as a data source, for operators who already monitor the service.

A PromQL expression is evaluated once per slice through `/api/v1/query_range` with
step = slice length; each point becomes a slice verdict (good when the value is above a
threshold) and `oracle.sli.count_slices` does the counting, so the rules (maintenance,
not-measured slices, ppm rounding) are exactly those applied to the oracle's own probes.

Alignment: the point at time t judges the slice that *ends* at t, i.e. slice i of the period is
judged by the point at start + (i + 1) * step. Write expressions that look back one step, e.g.
`min_over_time(up{job="api"}[1m])` ("up for the whole minute") or
`sum(rate(http_requests_total{code!~"5.."}[1m])) / sum(rate(http_requests_total[1m]))` with
threshold 0.999 and `inclusive=True`. A plain instant selector such as `up` uses Prometheus'
lookback (5 minutes by default), so a target that stopped being scraped still looks up for a while.

Missing points (no series, a gap, or NaN such as 0/0 when there was no traffic) are slices without
that were not measured (left out of good and total; they lower the measured share). When
an expression returns several series, a slice is good only when every series with a point there is good.

Unlike a probe, a failed query raises PrometheusError: an unreachable Prometheus must never be
mistaken for a period without data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .sli import PeriodFigure, Window, count_slices, figure_from_counts, slice_count

# Prometheus refuses a query_range of more than 11,000 points per series; stay well below it.
MAX_POINTS_PER_QUERY = 10_000


class PrometheusError(RuntimeError):
    """The query could not be evaluated (unreachable server, bad PromQL, HTTP error)."""


Series = tuple[dict[str, str], list[tuple[float, float]]]


@dataclass(frozen=True)
class PrometheusSource:
    """A Prometheus server's HTTP API, e.g. `PrometheusSource("http://127.0.0.1:9090")`."""

    base_url: str
    timeout: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)
    verify_tls: bool = True

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """Evaluate `expr` at start, start+step, ..., up to end, in chunks Prometheus accepts.
        Returns (labels, [(t, value), ...]) per series."""
        if step <= 0:
            raise ValueError(f"step must be positive, got {step}")
        merged: dict[tuple[tuple[str, str], ...], Series] = {}
        chunk = step * (MAX_POINTS_PER_QUERY - 1)
        with httpx.Client(base_url=self.base_url, timeout=self.timeout, headers=dict(self.headers),
                          verify=self.verify_tls) as client:
            lo = start
            while lo <= end:
                hi = min(end, lo + chunk)
                for labels, points in self._query_chunk(client, expr, lo, hi, step):
                    key = tuple(sorted(labels.items()))
                    merged.setdefault(key, (labels, []))[1].extend(points)
                lo = hi + step
        return list(merged.values())

    @staticmethod
    def _query_chunk(client: httpx.Client, expr: str, start: float, end: float, step: float) -> list[Series]:
        # POST: a long expression does not fit every proxy's URL limit.
        data = {"query": expr, "start": repr(float(start)), "end": repr(float(end)), "step": repr(float(step))}
        try:
            response = client.post("/api/v1/query_range", data=data)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"query_range failed: {type(exc).__name__}: {exc}") from exc
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise PrometheusError(f"query_range: HTTP {response.status_code}, not JSON") from exc
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"query_range: HTTP {response.status_code}, "
                                  f"{body.get('errorType', '?')}: {body.get('error', body)}")
        result = body["data"]
        if result.get("resultType") != "matrix":
            raise PrometheusError(f"query_range returned {result.get('resultType')}, expected matrix")
        return [(dict(s.get("metric", {})), [(float(t), float(v)) for t, v in s.get("values", [])])
                for s in result["result"]]

    def verdicts(self, expr: str, start: float, end: float, *, slice_seconds: int = 60,
                 threshold: float = 0.0, inclusive: bool = False) -> dict[int, bool]:
        """Per-slice verdicts of [start, end) (slice index -> good); absent index = no data."""
        n = slice_count(start, end, slice_seconds)
        if n == 0:
            return {}
        series = self.query_range(expr, start + slice_seconds, start + n * slice_seconds, slice_seconds)
        return verdicts_from_series(series, start, n, slice_seconds, threshold, inclusive)

    def availability(self, expr: str, start: float, end: float, *, slice_seconds: int = 60,
                     threshold: float = 0.0, inclusive: bool = False, maintenance: Iterable[Window] = ()
                     ) -> PeriodFigure:
        """The period figure from a PromQL expression; no latency percentiles (the expression
        measures whatever it measures)."""
        verdicts = self.verdicts(expr, start, end, slice_seconds=slice_seconds, threshold=threshold,
                                 inclusive=inclusive)
        counts = count_slices(start, end, slice_seconds, verdicts, maintenance)
        return figure_from_counts(counts, slice_seconds)


def verdicts_from_series(series: Iterable[Series], start: float, n_slices: int, slice_seconds: int,
                         threshold: float = 0.0, inclusive: bool = False) -> dict[int, bool]:
    """Turn query_range points into slice verdicts: the point at start + (i+1)*step judges slice i."""
    verdicts: dict[int, bool] = {}
    for _labels, points in series:
        for t, value in points:
            if math.isnan(value):
                continue  # NaN (0/0, no traffic) is no data, not an outage
            i = round((t - start) / slice_seconds) - 1
            if not 0 <= i < n_slices:
                continue
            good = value >= threshold if inclusive else value > threshold
            verdicts[i] = verdicts.get(i, True) and good
    return verdicts
