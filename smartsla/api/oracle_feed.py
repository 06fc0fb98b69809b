"""The running period as the oracle sees it: read from the oracle's /metrics, forecast here.

The indexer only sees the chain, and the chain learns a period's figure when it settles. The
oracle daemon exports the period in progress on /metrics (oracle.metrics.RUNNING_GAUGES, as
`smartsla_oracle_period_<name>{agreement, service}`). The API reads the *inputs* from there — the
period, the good, bad, excluded and not-measured seconds so far and the seconds left — and runs
the same `smartsla.forecast.forecast` with the agreement's indexed terms at the oracle's own
instant (`period_end - remaining_seconds`). So every figure equals the oracle's gauges, and the
credit is exact in base units (a Prometheus gauge is a float: above 2**53 wei it rounds).
A latency service's figure needs the latencies only the oracle holds: the API takes its exported
`value_ppm` (the percentile so far in whole ms) and `slow_checks_left` and recomputes tier and
credit (`smartsla.forecast.latency_outcome`).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

METRIC_PREFIX = "smartsla_oracle_period_"
INPUTS = ("period", "good_seconds", "bad_seconds", "excluded_seconds", "unmeasured_seconds", "remaining_seconds")
# The oracle's own results, compared with ours: a difference means it follows other terms.
# Latency services: value_ppm is the figure itself (the percentile so far, whole ms) and
# slow_checks_left the budget; both need the latencies only the oracle holds (smartsla.forecast).
RESULTS = ("value_ppm", "projected_ppm", "budget_left_seconds", "slow_checks_left")
CACHE_S = 2.0  # the oracle recomputes its gauges every 2 s (oracle.running.REFRESH_S)
MAX_BYTES = 8 * 1024 * 1024  # a /metrics page larger than this is not an oracle's


class FeedError(Exception):
    """The oracle's /metrics could not be read or parsed; the message says why."""


@dataclass(frozen=True)
class RunningInputs:
    """One service's period in progress as the oracle exported it."""

    period: int
    good_s: float
    bad_s: float
    excluded_s: float
    unmeasured_s: float
    remaining_s: float
    reported: tuple[tuple[str, float], ...] = ()  # the oracle's RESULTS, as exported


_LINE = re.compile(r'^smartsla_oracle_period_([a-z_]+)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})?'
                   r'\s+(\S+)(?:\s+-?\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(value: str) -> str:
    return re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], value)


def parse_running(text: str) -> dict[tuple[str, str], RunningInputs]:
    """(agreement address lower-case, service name) -> the inputs, for every series that has all
    of them. A series with a non-finite or negative value is left out (the forecast refuses it).

    Only the `smartsla_oracle_period_*` sample lines are read (the exposition format's sample
    syntax: `name{label="value",...} value [timestamp]`): an oracle serving 1,000 agreements
    exports ~1.5 MB, most of it other metrics, and the generic parser takes 250 ms over it."""
    if text.lstrip().startswith("<"):
        raise FeedError("not Prometheus text: the page is HTML")
    values: dict[tuple[str, str], dict[str, float]] = {}
    wanted = set(INPUTS + RESULTS)
    for line in text.splitlines():
        if not line.startswith(METRIC_PREFIX):
            continue
        m = _LINE.match(line)
        if m is None:
            raise FeedError(f"not Prometheus text: cannot read the sample line {line[:120]!r}")
        if m.group(1) not in wanted:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(m.group(2) or "")}
        try:
            number = float(m.group(3))
        except ValueError:
            raise FeedError(f"not Prometheus text: {m.group(3)[:40]!r} is not a sample value") from None
        agreement, service = labels.get("agreement"), labels.get("service")
        if agreement and service:
            values.setdefault((agreement.lower(), service), {})[m.group(1)] = number
    out = {}
    for key, v in values.items():
        if not set(INPUTS) <= set(v) or not all(math.isfinite(v[k]) and v[k] >= 0 for k in INPUTS):
            continue
        out[key] = RunningInputs(period=int(v["period"]), good_s=v["good_seconds"], bad_s=v["bad_seconds"],
                                 excluded_s=v["excluded_seconds"], unmeasured_s=v["unmeasured_seconds"],
                                 remaining_s=v["remaining_seconds"],
                                 reported=tuple((k, v[k]) for k in RESULTS if k in v))
    return out


class OracleFeed:
    """Reads the oracle's /metrics at most every CACHE_S seconds (pages of the dashboard and API
    calls share one read)."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._cache: tuple[float, dict[tuple[str, str], RunningInputs] | None, str | None] | None = None

    async def read(self) -> tuple[dict[tuple[str, str], RunningInputs] | None, str | None]:
        """(inputs, None) or (None, why not)."""
        cached = self._cache
        if cached and time.monotonic() - cached[0] < CACHE_S:
            return cached[1], cached[2]
        data: dict[tuple[str, str], RunningInputs] | None = None
        error: str | None = None
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                resp = await client.get(self.url)
            if resp.status_code != 200:
                error = f"the oracle's metrics answered HTTP {resp.status_code}"
            elif len(resp.content) > MAX_BYTES:
                error = f"the oracle's metrics page is larger than {MAX_BYTES} bytes"
            else:  # parsing is CPU work: off the event loop
                data = await asyncio.to_thread(parse_running, resp.text)
        except httpx.HTTPError as exc:
            error = f"the oracle's metrics are unreachable ({exc.__class__.__name__})"
        except FeedError as exc:
            error = str(exc)
        self._cache = (time.monotonic(), data, error)
        return data, error


def inputs_for(data: dict[tuple[str, str], RunningInputs], address: str, service: str) -> RunningInputs | None:
    return data.get((address.lower(), service))


def as_json(inputs: RunningInputs) -> dict[str, Any]:
    return {"period": inputs.period, "good_seconds": inputs.good_s, "bad_seconds": inputs.bad_s,
            "excluded_seconds": inputs.excluded_s, "unmeasured_seconds": inputs.unmeasured_s,
            "remaining_seconds": inputs.remaining_s}
