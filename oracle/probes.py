"""Asyncio probes: check a service once and say how it went, as a `Sample`.

A probe never raises: every failure (refused connection, TLS error, timeout, wrong status,
missing keyword) becomes a failed Sample with a one-line reason, because the oracle must keep
measuring the other services whatever one of them does. `run_round` runs probes concurrently,
each under its own deadline, so a target that hangs costs one timeout and never blocks the rest.

`Prober` is what the daemon runs: every target on its own schedule (see its docstring for how
it keeps one target from affecting another, and overload from reading as an outage).

Raw samples are stored as measured; a failure threshold ("down after N consecutive failures")
is applied afterwards with `apply_failure_threshold`, so the evidence kept for disputes is the
unfiltered one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ipaddress
import math
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import aiohttp
import certifi

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
    """Anything run_round and the Prober can run: a service name, a timeout, and an async check
    (given the Prober's shared session, which a probe that needs none ignores)."""

    @property
    def service(self) -> str: ...

    @property
    def timeout(self) -> float: ...

    async def run(self, session: Any = None) -> Sample: ...


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
    connection: a kept-alive one would hide DNS, TCP and TLS problems that users do see. The
    client session (aiohttp, ~0.25 ms of CPU a check where a new httpx client costs ~1 ms) is
    shared: pass one to `run`, or a throwaway one is made for this check.
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

    async def run(self, session: aiohttp.ClientSession | None = None) -> Sample:
        if session is None:
            async with new_session() as own:
                return await self.run(own)
        ts = time.time()
        t0 = time.perf_counter()
        try:
            # The deadline starts here, when the check starts to connect: never while it waited
            # for its turn (see Prober).
            async with asyncio.timeout(self.timeout):
                ok, detail = await self._check(session)
        except TimeoutError:
            return Sample(self.service, ts, False, None, f"timeout after {self.timeout:g} s")
        except aiohttp.ClientError as exc:
            return Sample(self.service, ts, False, None, _describe(exc))
        except Exception as exc:  # a probe never raises: anything else is a failed check too
            return Sample(self.service, ts, False, None, f"probe error: {_describe(exc)}")
        return Sample(self.service, ts, ok, _elapsed_ms(t0), detail)

    async def _check(self, session: aiohttp.ClientSession) -> tuple[bool, str]:
        # The asyncio.timeout around this bounds the whole exchange, e.g. against a server that
        # drips bytes.
        async with session.request(self.method, self.url, allow_redirects=self.follow_redirects,
                                   headers=dict(self.headers) or None, ssl=_ssl_context(self.verify_tls)
                                   ) as response:
            status = response.status
            if status not in self.expected_status:
                return False, f"status {status}"
            if self.keyword is None:
                return True, f"status {status}"
            body = bytearray()
            async for chunk in response.content.iter_chunked(65_536):
                body += chunk
                if len(body) >= _MAX_BODY_BYTES:
                    break
            text = bytes(body).decode(response.charset or "utf-8", errors="replace")
            if self.keyword in text:
                return True, f"status {status}, keyword found"
            return False, f"status {status}, keyword {self.keyword!r} not found"


def new_session() -> aiohttp.ClientSession:
    """The probes' HTTP session: a fresh connection per check (force_close: a pooled connection
    would hide connect problems), no limit of its own (the Prober bounds the checks in flight),
    no cookies kept between checks."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0, ttl_dns_cache=10)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True)


@dataclass(frozen=True)
class TcpProbe:
    """Open a TCP connection; ok when it is accepted within the timeout. Latency = connect time."""

    service: str
    host: str
    port: int
    timeout: float = DEFAULT_TIMEOUT_S

    async def run(self, session: object = None) -> Sample:
        family = _ip_family(self.host)
        if family is not None:
            return await self._run_ip(family)
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


    async def _run_ip(self, family: socket.AddressFamily) -> Sample:
        """The check of an IP address (no name to resolve): a bare non-blocking socket whose
        connect is awaited on the loop's selector, without the transport, protocol and stream
        objects asyncio.open_connection builds and tears down for a connection nobody reads (half
        a TCP check's CPU), nor loop.sock_connect's address re-resolution and callbacks. Same
        outcome and messages: the connect is the check."""
        ts = time.time()
        t0 = time.perf_counter()
        sock = socket.socket(family, socket.SOCK_STREAM)
        loop = asyncio.get_running_loop()
        fd = -1
        try:
            sock.setblocking(False)
            address = (self.host, self.port)
            try:
                sock.connect(address)
            except BlockingIOError:  # in progress: wait until writable, then read its outcome
                fd = sock.fileno()
                writable = loop.create_future()
                loop.add_writer(fd, _set_done, writable)
                async with asyncio.timeout(self.timeout):
                    await writable
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:  # the words of loop.sock_connect
                    raise OSError(err, f"Connect call failed {address}") from None
            latency = _elapsed_ms(t0)
        except TimeoutError:
            return Sample(self.service, ts, False, None, f"timeout after {self.timeout:g} s")
        except Exception as exc:  # refused, unreachable: failed checks
            return Sample(self.service, ts, False, None, _describe(exc))
        finally:
            if fd >= 0:
                loop.remove_writer(fd)
            sock.close()
        return Sample(self.service, ts, True, latency, f"connected to {self.host}:{self.port}")


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@functools.lru_cache(maxsize=4096)
def _ip_family(host: str) -> socket.AddressFamily | None:
    """AF_INET/AF_INET6 for an IP address literal, None for a name (resolved at each check)."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


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


# -------------------------------------------------------------------------- the daemon's prober
class _Slots:
    """A semaphore whose release hands the slot to the first waiter in O(1). (asyncio.Semaphore
    of Python 3.11 scans its waiters on each release and removes a woken one from the middle of
    its deque: with a thousand targets waiting, that was a tenth of the prober's CPU.)"""

    def __init__(self, n: int) -> None:
        self.free = n
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut  # release() handed its slot over by setting the result
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot, then cancelled: pass it on
                self.release()
            raise

    def release(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():  # a cancelled waiter's future is done: skip it
                fut.set_result(None)
                return
        self.free += 1



@dataclass
class Target:
    """One thing to check on a schedule: `key` names it to the caller (e.g. agreement, service)."""

    key: Hashable
    probe: Probe
    interval: float


@dataclass
class ProberStats:
    checks: int = 0
    not_measured: int = 0  # checks that could not start on time, or ran while the prober stalled
    lags: list[float] = field(default_factory=list)  # start lag of recent checks (s), for benches


class Prober:
    """Runs every target on its own schedule, concurrently, so that no target affects another.

    * Each target has its own task and grid (`interval`), its first check spread over the first
      interval by a hash of its key (no thundering herd at start-up or on a round clock).
    * At most `max_in_flight` checks are starting or running fast at once (a semaphore): beyond
      a few dozen per core more concurrency only makes the checks compete for the CPU. A check
      still waiting on its target after `hold_s` gives its slot back (it is waiting, not
      computing), so hanging targets cannot starve the healthy ones.
    * A check's timeout starts when the check starts (after it got its turn), never while it
      waited, so a busy prober cannot turn a healthy target's check into a timeout.
    * A check that could not START before its next one was due is NOT MEASURED (`on_skip`), never
      a failure: the prober fell behind, the target did nothing wrong. Likewise a check that
      timed out while the event loop itself ran late for a quarter of the timeout or more (a lag
      monitor adds it up) is discarded as not measured: the time was lost in the prober. A
      target's own slowness never makes its checks "not measured": a hanging target is down in
      every slice (otherwise hanging instead of refusing would lower the measured share and
      could escape the credit).
    * One shared aiohttp session (fresh connection per check).

    `on_sample(key, sample, lag_s)` and `on_skip(key, n)` are called on the event loop; keep them
    cheap (the daemon puts samples on a queue that a thread writes in batches).
    """

    # A timeout is the prober's fault, not the target's, when the event loop ran late for at
    # least this share of the timeout while the check ran.
    STALL_SHARE = 0.25
    # A check holds its concurrency slot at most this long: past it, it is waiting on a slow or
    # hanging target (no CPU), and the slot goes to the next check.
    hold_s = 0.1

    def __init__(self, targets: Sequence[Target], *, max_in_flight: int,
                 on_sample: Callable[[Hashable, Sample, float], None],
                 on_skip: Callable[[Hashable, int], None] = lambda key, n: None,
                 keep_lags: bool = False) -> None:
        self.targets = list(targets)
        self.max_in_flight = max_in_flight
        self.on_sample = on_sample
        self.on_skip = on_skip
        self.stats = ProberStats()
        self._keep_lags = keep_lags
        self._lag_total = 0.0  # seconds the event loop ran late, summed (see _lag_monitor)
        self._monitor_due = 0.0  # when the lag monitor expects to wake next (monotonic)
        self._slots = _Slots(max_in_flight)
        self._holding: dict[int, float] = {}  # checks holding a slot -> when they took it (monotonic)
        self._next_hold = 0
        self._session: aiohttp.ClientSession | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._task_of: dict[Hashable, asyncio.Task[None]] = {}

    def add(self, target: Target) -> None:
        """Start checking one more target (e.g. a discovered agreement's service)."""
        self.targets.append(target)
        if self._stop is not None:
            self._start(target, self._stop)

    def remove(self, keys: Collection[Hashable]) -> None:
        """Stop checking the targets with these keys (a fleet member lost their agreement's
        lease): their tasks are cancelled, so they cost nothing any more. One pass for many."""
        keys = set(keys)
        if not keys:
            return
        self.targets = [t for t in self.targets if t.key not in keys]
        for key in keys:
            task = self._task_of.pop(key, None)
            if task is not None:
                task.cancel()

    def _start(self, target: Target, stop: asyncio.Event) -> None:
        task = asyncio.get_running_loop().create_task(self._target_loop(target, stop))
        self._tasks.add(task)
        self._task_of[target.key] = task
        # a finished task leaves the list (removed targets would otherwise pile up there)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)

    async def run(self, stop: asyncio.Event) -> None:
        self._slots = _Slots(self.max_in_flight)
        self._holding.clear()
        async with new_session() as session:
            self._session = session
            self._stop = stop
            self._tasks = set()
            for t in self.targets:
                self._start(t, stop)
            helpers = [asyncio.create_task(self._lag_monitor(stop)), asyncio.create_task(self._release_held(stop))]
            try:
                await stop.wait()
            finally:
                self._stop = None
                tasks = [*self._tasks, *helpers]
                self._task_of.clear()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _release_held(self, stop: asyncio.Event) -> None:
        """Give the slot of each check running for hold_s to the next check, on time: one timer
        for all checks (the oldest hold's deadline; holds are in the order they were taken),
        instead of one per check."""
        while not stop.is_set():
            now = time.monotonic()
            expired = []
            for hold, since in self._holding.items():
                if since > now - self.hold_s:
                    break
                expired.append(hold)
            for hold in expired:
                del self._holding[hold]
                self._slots.release()
            oldest = next(iter(self._holding.values()), now)
            await asyncio.sleep(max(0.001, oldest + self.hold_s - time.monotonic()))

    async def _lag_monitor(self, stop: asyncio.Event, every: float = 0.05) -> None:
        """Adds up how late the event loop runs (the time no check could make progress)."""
        while not stop.is_set():
            before = time.monotonic()
            self._monitor_due = before + every
            await asyncio.sleep(every)
            self._lag_total += max(0.0, time.monotonic() - before - every)

    def _lag_now(self) -> float:
        """The loop's lag so far, including a stall the monitor has not woken up to count yet:
        after the process was descheduled, a check's timeout and the monitor's timer fall due
        together and the check's may run first; without the pending part that stall would be
        missed and a healthy target's check recorded as a failure."""
        pending = time.monotonic() - self._monitor_due if self._monitor_due else 0.0
        return self._lag_total + max(0.0, pending)

    @staticmethod
    def offset(key: Hashable, interval: float) -> float:
        """Where in its interval a target's grid sits: stable across restarts, spread evenly."""
        return zlib.crc32(repr(key).encode()) / 2**32 * interval

    async def _target_loop(self, target: Target, stop: asyncio.Event) -> None:
        interval = target.interval
        now = time.time()
        # Grid anchored on the epoch plus the target's offset: after a restart the checks land
        # where they did before.
        due = math.floor((now - self.offset(target.key, interval)) / interval + 1) * interval \
            + self.offset(target.key, interval)
        while not stop.is_set():
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._slots.acquire()
            hold = self._next_hold  # this check's hold on its slot: released once, by whoever is first
            self._next_hold += 1
            self._holding[hold] = time.monotonic()
            try:
                started = time.time()
                if started >= due + interval:  # could not even start before the next one was due
                    self.stats.not_measured += 1
                    self.on_skip(target.key, 1)
                else:
                    lag0 = self._lag_now()
                    # The check runs in this task (no task of its own per check); if it is still
                    # waiting on its target after hold_s, _release_held gives its slot away.
                    sample = await target.probe.run(self._session)
                    stalled = self._lag_now() - lag0
                    if not sample.ok and sample.detail.startswith("timeout") \
                            and stalled >= self.STALL_SHARE * target.probe.timeout:
                        # The loop was stuck for a good part of the timeout: the time ran out in
                        # the prober, not in the target. Not measured, never a failure.
                        self.stats.not_measured += 1
                        self.on_skip(target.key, 1)
                    else:
                        self.stats.checks += 1
                        lag = max(0.0, started - due)
                        if self._keep_lags:
                            self.stats.lags.append(lag)
                        self.on_sample(target.key, sample, lag)
            finally:
                if self._holding.pop(hold, None) is not None:  # not given away by _release_held
                    self._slots.release()
            due += interval
            now = time.time()
            if due + interval <= now:  # fell behind by whole intervals: skip ahead, count them
                missed = math.floor((now - due) / interval)
                due += missed * interval
                self.stats.not_measured += missed
                self.on_skip(target.key, missed)
