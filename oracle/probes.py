"""Asyncio probes: check a service once and say how it went, as a `Sample`.

A probe never raises: every failure (refused connection, TLS error, timeout, wrong status,
missing keyword) becomes a failed Sample with a one-line reason, because the oracle must keep
measuring the other services whatever one of them does. `run_round` runs probes concurrently,
each under its own deadline, so a target that hangs costs one timeout and never blocks the rest.

Raw samples are stored as measured; a failure threshold ("down after N consecutive failures")
is applied afterwards with `apply_failure_threshold`, so the evidence kept for disputes is the
unfiltered one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import ssl
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import certifi
import httpx

DEFAULT_TIMEOUT_S = 10.0
# Extra time run_round grants a probe beyond its own timeout before cutting it off: the probe's
# own deadline should fire first and produce the better message.
_ROUND_GRACE_S = 1.0
_MAX_BODY_BYTES = 1 << 20  # keyword search reads at most this much of a body


@dataclass(frozen=True)
class Sample:
    """One check of one service. `ts` is when the check started (unix seconds)."""

    service: str
    ts: float
    ok: bool
    latency_ms: float | None
    detail: str


class Probe(Protocol):
    """Anything run_round can run: a service name, a timeout, and an async check."""

    service: str
    timeout: float

    async def run(self) -> Sample: ...


@functools.cache
def _ssl_context(verify: bool) -> ssl.SSLContext:
    """One TLS context per setting, shared by all probes: building one takes ~20 ms of CPU, which
    per probe would stall the event loop and eat into the other probes' timeouts."""
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=certifi.where())


def _elapsed_ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


def _describe(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"[:300]


@dataclass(frozen=True)
class HttpProbe:
    """GET (or `method`) a URL; ok when the status is expected and the keyword, if any, is in the body.

    Latency is the time from sending the request to having read the response (the body up to
    the keyword, or only the headers when there is no keyword). Each run opens a fresh
    connection: a kept-alive one would hide DNS, TCP and TLS problems that users do see.
    """

    service: str
    url: str
    expected_status: Collection[int] = range(200, 400)
    keyword: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    verify_tls: bool = True
    follow_redirects: bool = False

    async def run(self) -> Sample:
        ts = time.time()
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                ok, detail = await self._check()
        except TimeoutError:
            return Sample(self.service, ts, False, None, f"timeout after {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return Sample(self.service, ts, False, None, _describe(exc))
        except Exception as exc:  # a probe never raises: anything else is a failed check too
            return Sample(self.service, ts, False, None, f"probe error: {_describe(exc)}")
        return Sample(self.service, ts, ok, _elapsed_ms(t0), detail)

    async def _check(self) -> tuple[bool, str]:
        # httpx's own timeout applies per operation (connect, each read); the asyncio.timeout
        # around this bounds the whole exchange, e.g. against a server that drips bytes.
        async with (
            httpx.AsyncClient(timeout=self.timeout, verify=_ssl_context(self.verify_tls),
                              follow_redirects=self.follow_redirects, headers=dict(self.headers)) as client,
            client.stream(self.method, self.url) as response,
        ):
            status = response.status_code
            if status not in self.expected_status:
                return False, f"status {status}"
            if self.keyword is None:
                return True, f"status {status}"
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= _MAX_BODY_BYTES:
                    break
            text = bytes(body).decode(response.encoding or "utf-8", errors="replace")
            if self.keyword in text:
                return True, f"status {status}, keyword found"
            return False, f"status {status}, keyword {self.keyword!r} not found"


@dataclass(frozen=True)
class TcpProbe:
    """Open a TCP connection; ok when it is accepted within the timeout. Latency = connect time."""

    service: str
    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT_S

    async def run(self) -> Sample:
        ts = time.time()
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(self.host, self.port)
            latency = _elapsed_ms(t0)
        except TimeoutError:
            return Sample(self.service, ts, False, None, f"timeout after {self.timeout:g} s")
        except Exception as exc:  # refused, unreachable, DNS: all are failed checks
            return Sample(self.service, ts, False, None, _describe(exc))
        writer.close()
        with contextlib.suppress(Exception):  # closing is not part of the check
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        return Sample(self.service, ts, True, latency, f"connected to {self.host}:{self.port}")


async def _guarded(probe: Probe) -> Sample:
    """Run one probe under a hard deadline; turn anything it raises into a failed Sample."""
    ts = time.time()
    timeout = getattr(probe, "timeout", DEFAULT_TIMEOUT_S)
    try:
        async with asyncio.timeout(timeout + _ROUND_GRACE_S):
            return await probe.run()
    except TimeoutError:
        return Sample(probe.service, ts, False, None, f"probe overran its {timeout:g} s timeout")
    except Exception as exc:  # a third-party Probe that breaks the contract must not sink the round
        return Sample(probe.service, ts, False, None, f"probe error: {_describe(exc)}")


async def run_round(probes: Sequence[Probe]) -> list[Sample]:
    """Run all probes concurrently; one Sample per probe, in the order given.

    The round takes about as long as its slowest probe's timeout, however many targets hang.
    """
    return list(await asyncio.gather(*(_guarded(p) for p in probes)))


def apply_failure_threshold(samples: Iterable[Sample], threshold: int) -> list[Sample]:
    """Tolerate isolated failures: a service counts as down only from its `threshold`-th
    consecutive failed sample on. Earlier failures of a streak are returned as ok, with their
    latency dropped (it is not a success's latency) and the reason kept in `detail`.

    Samples are taken in order of `ts` and streaks are counted per service; threshold 1 changes
    nothing.
    """
    if threshold < 1:
        raise ValueError(f"failure threshold must be at least 1, got {threshold}")
    ordered = sorted(samples, key=lambda s: s.ts)
    if threshold == 1:
        return ordered
    streak: dict[str, int] = {}
    out: list[Sample] = []
    for s in ordered:
        if s.ok:
            streak[s.service] = 0
            out.append(s)
            continue
        n = streak.get(s.service, 0) + 1
        streak[s.service] = n
        if n < threshold:
            out.append(replace(s, ok=True, latency_ms=None,
                               detail=f"tolerated failure {n}/{threshold}: {s.detail}"))
        else:
            out.append(s)
    return out


@dataclass
class ProbeSchedule:
    """When each service is due. One interval per service (seconds), optional failure threshold.

    A daemon loop: `due = schedule.due(now)`, run those probes, `schedule.mark_run(due, now)`,
    sleep `schedule.seconds_until_next(now)`. Next runs are anchored to the previous planned
    time, not to when the round ended, so checks do not drift; after a stall the schedule skips
    ahead instead of firing a burst of catch-up checks.
    """

    intervals: dict[str, float]
    failure_thresholds: dict[str, int] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for service, interval in self.intervals.items():
            if not interval > 0:
                raise ValueError(f"interval for {service!r} must be positive, got {interval}")
        for service, threshold in self.failure_thresholds.items():
            if threshold < 1:
                raise ValueError(f"failure threshold for {service!r} must be at least 1, got {threshold}")

    def threshold(self, service: str) -> int:
        return self.failure_thresholds.get(service, 1)

    def due(self, now: float) -> list[str]:
        """Services whose next check time has come (never-run services are due at once)."""
        return [s for s in self.intervals if self._next.get(s, -math.inf) <= now]

    def mark_run(self, services: Iterable[str], now: float) -> None:
        for service in services:
            interval = self.intervals[service]
            planned = self._next.get(service, now)
            nxt = planned + interval
            if nxt <= now:  # fell behind (stall, slow round): realign to the grid after now
                nxt = planned + interval * (math.floor((now - planned) / interval) + 1)
            self._next[service] = nxt

    def seconds_until_next(self, now: float) -> float:
        if not self.intervals:
            return math.inf
        return max(0.0, min(self._next.get(s, now) for s in self.intervals) - now)

    def apply_thresholds(self, samples: Iterable[Sample]) -> list[Sample]:
        """apply_failure_threshold with each service's own threshold; sorted by ts."""
        by_service: dict[str, list[Sample]] = {}
        for s in samples:
            by_service.setdefault(s.service, []).append(s)
        out = [x for service, group in by_service.items()
               for x in apply_failure_threshold(group, self.threshold(service))]
        return sorted(out, key=lambda s: s.ts)
