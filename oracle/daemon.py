"""The oracle daemon: probe services, keep samples, report each period after it ends.

Three loops share one asyncio event loop: the probe loop (checks due services, stores samples),
the report loop (settles every period that ended more than `grace_s` ago, through the crash-safe
Submitter), and an HTTP listener (/metrics, /healthz, and /reports for committee peers). Chain
and database calls block, so they run in worker threads. SIGTERM or SIGINT stops the loops
after their current step; SIGKILL at any moment loses nothing that was committed (see
oracle.submitter for how reports survive it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from dataclasses import dataclass, field, replace

import requests
from aiohttp import web
from eth_account.signers.local import LocalAccount
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from web3 import Web3
from web3.exceptions import Web3Exception

from smartsla import deployments
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory, Status
from smartsla.errors import ChainUnavailable, NotAnAgreement, SmartSLAError
from smartsla.terms import Kind

from .config import ConfigError, OracleConfig, ServiceProbe
from .keys import load_key
from .metrics import OracleMetrics
from .probes import HttpProbe, Probe, ProbeSchedule, TcpProbe, run_round
from .prometheus import PrometheusError, PrometheusSource
from .sli import MissingPolicy, PeriodFigure, SliceCounts, availability, figure_from_counts
from .store import Store, StoreError
from .submitter import Submitter

log = logging.getLogger("oracle")

LATENCY_UNKNOWN_MS = 2**32 - 1  # reported when a latency service had no successful check at all
CHAIN_ERRORS = (ChainUnavailable, requests.ConnectionError, requests.Timeout, Web3Exception, OSError)
MAX_BACKOFF_S = 30.0
PRUNE_EVERY_S = 3_600


@dataclass
class Served:
    """One agreement this oracle measures and reports."""

    agreement: Agreement
    probes: dict[str, ServiceProbe]
    runners: dict[str, Probe]
    schedule: ProbeSchedule
    maintenance: list[tuple[int, int]] = field(default_factory=list)
    done: bool = False


def _runner(name: str, probe: ServiceProbe) -> Probe | None:
    if probe.http is not None:
        h = probe.http
        return HttpProbe(service=name, url=str(h.url), expected_status=frozenset(h.expect_status), keyword=h.keyword,
                         timeout=h.timeout_s, method=h.method)
    if probe.tcp is not None:
        return TcpProbe(service=name, host=probe.tcp.host, port=probe.tcp.port, timeout=probe.tcp.timeout_s)
    return None  # Prometheus: evaluated at report time, nothing to probe


class Daemon:
    def __init__(self, config: OracleConfig):
        self.config = config
        self.metrics = OracleMetrics()
        self.served: dict[str, Served] = {}
        self.account: LocalAccount
        self.chain: Chain
        self.store: Store
        self.factory: Factory
        self.submitter: Submitter
        self._discovered_to_block = 0
        self._last_prune = 0.0

    # ------------------------------------------------------------------ start-up
    def prepare(self, *, wait_for_chain_s: float = 60.0) -> None:
        """Everything that can be wrong with the configuration fails here, with ConfigError."""
        self.account = load_key(self.config.key)
        try:
            self.store = Store.open(self.config.store, min_sample_retention_s=self.config.sample_retention_s)
        except StoreError as exc:
            raise ConfigError(f"store: {exc}") from exc
        self.chain = self._connect(wait_for_chain_s)
        factory_address = self.config.chain.factory or deployments.lookup(self.chain.chain_id)
        if factory_address is None:
            raise ConfigError(f"chain.factory: not given, and no factory is recorded for chain id "
                              f"{self.chain.chain_id} in {deployments.deployments_path()}")
        if not self.chain.w3.eth.get_code(Web3.to_checksum_address(factory_address)):
            raise ConfigError(f"chain.factory: no contract at {factory_address} on chain {self.chain.chain_id}")
        self.factory = Factory(self.chain, factory_address)
        self.submitter = Submitter(self.chain, self.account, self.store, [str(p) for p in self.config.peers],
                                   self.metrics)
        for i, entry in enumerate(self.config.agreements):
            try:
                agreement = self.factory.agreement(entry.address)
            except NotAnAgreement as exc:
                raise ConfigError(f"agreements[{i}].address: {exc}") from exc
            self._serve(agreement, f"agreements[{i}]")
        if self.config.discover:
            self._discover()
        log.info("oracle ready", extra={"oracle": self.account.address, "chain_id": self.chain.chain_id,
                                        "agreements": list(self.served)})

    def _connect(self, wait_s: float) -> Chain:
        deadline = time.monotonic() + wait_s
        delay = 0.5
        while True:
            try:
                return Chain.connect(self.config.chain.rpc_url, timeout_s=self.config.chain.timeout_s)
            except ChainUnavailable as exc:
                if time.monotonic() > deadline:
                    raise ConfigError(f"chain.rpc_url: {exc}") from exc
                log.warning("chain not answering; retrying", extra={"url": self.config.chain.rpc_url, "in_s": delay})
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def _serve(self, agreement: Agreement, where: str) -> None:
        terms = agreement.terms
        if self.account.address not in terms.oracles:
            raise ConfigError(f"key: {self.account.address} is not a member of the oracle committee of "
                              f"{agreement.address} (members: {', '.join(terms.oracles)}) [{where}]")
        probes = self.config.probes_for(agreement.address)
        # Satisfaction (attested by the customer) and composite (computed on-chain) figures need
        # no probe.
        names = [s.name for s in terms.services if s.kind in (Kind.availability, Kind.latency)]
        unprobed = [n for n in names if n not in probes]
        if unprobed:
            raise ConfigError(f"{where}.services: no probe configured for {', '.join(unprobed)} "
                              f"(the agreement covers {', '.join(names)})")
        if terms.dispute_window > self.config.sample_retention_s:
            raise ConfigError(f"sample_retention_s: {self.config.sample_retention_s:.0f} s is shorter than the "
                              f"dispute window of {agreement.address} ({terms.dispute_window} s): the samples "
                              "behind a disputed period must outlive the dispute")
        runners = {n: r for n in names if (r := _runner(n, probes[n])) is not None}
        schedule = ProbeSchedule(intervals={n: probes[n].interval_s for n in runners},
                                 failure_thresholds={n: probes[n].failure_threshold for n in names})
        self.served[agreement.address] = Served(agreement, {n: probes[n] for n in names}, runners, schedule,
                                                self.config.maintenance_for(agreement.address))

    def _discover(self) -> None:
        """Serve every agreement of the factory whose committee includes this oracle."""
        latest = self.chain.w3.eth.block_number
        if latest < self._discovered_to_block:
            return
        logs = self.factory.contract.events.AgreementCreated().get_logs(
            from_block=self._discovered_to_block, to_block=latest)
        self._discovered_to_block = latest + 1
        for entry in logs:
            address = entry["args"]["agreement"]
            if address in self.served:
                continue
            agreement = Agreement(self.chain, address, factory=self.factory)
            if self.account.address in agreement.terms.oracles:
                self._serve(agreement, f"discovered {address}")
                log.info("serving discovered agreement", extra={"agreement": address})

    # ------------------------------------------------------------------ loops
    async def run(self, stop: asyncio.Event) -> None:
        runner = await self._start_http()
        try:
            await asyncio.gather(self._probe_loop(stop), self._report_loop(stop))
        finally:
            await runner.cleanup()
            self.store.close()
            log.info("oracle stopped")

    async def _probe_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = time.time()
            rounds = []
            for address, served in self.served.items():
                if served.done:
                    continue
                due = served.schedule.due(now)
                if due:
                    served.schedule.mark_run(due, now)
                    rounds.append((address, run_round([served.runners[n] for n in due])))
            for address, pending in rounds:
                samples = await pending
                for s in samples:
                    self.metrics.checks.labels(address, s.service).inc()
                    if not s.ok:
                        self.metrics.check_failures.labels(address, s.service).inc()
                try:
                    await asyncio.to_thread(self.store.add_samples, address, samples)
                except StoreError as exc:
                    log.error("could not store samples", extra={"agreement": address, "error": str(exc)})
            waits = [s.schedule.seconds_until_next(time.time()) for s in self.served.values() if s.runners]
            await _sleep(stop, min([1.0, *waits]))

    async def _report_loop(self, stop: asyncio.Event) -> None:
        backoff = self.config.report_check_s
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.report_due_periods)
                backoff = self.config.report_check_s
            except CHAIN_ERRORS as exc:
                self.metrics.chain_errors.inc()
                backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF_S)
                log.warning("chain error; retrying", extra={"error": f"{type(exc).__name__}: {exc}", "in_s": backoff})
            except (StoreError, SmartSLAError, PrometheusError) as exc:
                log.error("report step failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            await _sleep(stop, backoff)

    def prune_old_samples(self) -> None:
        """Raw samples are kept `sample_retention_s` (at least every dispute window); period
        results forever. Runs at most hourly."""
        now = time.time()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        removed = self.store.prune_samples(now - self.config.sample_retention_s, now=now)
        if removed:
            log.info("pruned old samples", extra={"removed": removed})

    def report_due_periods(self) -> None:
        """Report every period of every served agreement that ended more than grace_s ago."""
        self.prune_old_samples()
        if self.config.discover:
            self._discover()
        for served in list(self.served.values()):
            if served.done:
                continue
            agreement = served.agreement
            terms = agreement.terms
            while True:
                snap = agreement.snapshot()
                if snap.status in (Status.Ended, Status.Terminated, Status.Cancelled):
                    served.done = True
                    log.info("agreement finished", extra={"agreement": agreement.address, "status": snap.status.name})
                    break
                if snap.status is not Status.Active:
                    break
                period = snap.settled_periods
                end = terms.period_end(period)
                # The contract compares with block time; dev chains may run ahead of the wall clock.
                now = max(time.time(), self.chain.now())
                if now < end + self.config.grace_s:
                    break
                figures = self.figures(served, period)
                outcome = self.submitter.process(agreement, period, figures)
                log.info("period report", extra={"agreement": agreement.address, "period": period,
                                                 "state": outcome.state, "detail": outcome.detail,
                                                 "values": [figures[s.name].value_ppm for s in terms.services]})
                if outcome.state != "confirmed":
                    break

    def maintenance(self, served: Served) -> list[tuple[int, int]]:
        """Configured windows plus those the provider declared on-chain with the agreed notice
        (declared with less notice they count like any other time)."""
        declared = [(w.start, w.end) for w in served.agreement.maintenance_windows() if w.with_notice]
        return served.maintenance + declared

    def figures(self, served: Served, period: int) -> dict[str, PeriodFigure]:
        terms = served.agreement.terms
        start, end = terms.period_start(period), terms.period_end(period)
        maintenance = self.maintenance(served)
        out: dict[str, PeriodFigure] = {}
        for service in terms.services:
            if service.kind in (Kind.satisfaction, Kind.composite):
                # The contract fills these in; report a neutral figure (ignored on-chain).
                out[service.name] = figure_from_counts(SliceCounts(0, 0, 0, 0, 0), self.config.missing_data,
                                                       self.config.slice_seconds)
        kinds = {s.name: s.kind for s in terms.services}
        objectives = {s.name: s.objective_ppm for s in terms.services}
        for name, probe in served.probes.items():
            if probe.prometheus is not None:
                p = probe.prometheus
                out[name] = PrometheusSource(str(p.url).rstrip("/")).availability(
                    p.query, start, end, slice_seconds=self.config.slice_seconds, threshold=p.threshold,
                    inclusive=p.inclusive, maintenance=maintenance, missing=self.config.missing_data)
                continue
            samples = self.store.samples(served.agreement.address, name, start, end)
            samples = served.schedule.apply_thresholds(samples)
            figure = availability(samples, start, end, slice_seconds=self.config.slice_seconds,
                                  maintenance=maintenance, missing=self.config.missing_data)
            if kinds[name] is Kind.latency:
                figure = self._latency_figure(figure, probe.latency_percentile, objectives[name])
            out[name] = figure
        return out

    def _latency_figure(self, figure: PeriodFigure, percentile: int, objective_ms: int) -> PeriodFigure:
        """A latency service reports its period percentile in whole ms (rounded up, never in the
        provider's favour). Without a single ok check: the worst value under 'down', the
        objective under 'exclude'."""
        ms = {50: figure.p50_ms, 95: figure.p95_ms, 99: figure.p99_ms}[percentile]
        if ms is None:
            value = LATENCY_UNKNOWN_MS if self.config.missing_data is MissingPolicy.DOWN else objective_ms
        else:
            value = min(math.ceil(ms), LATENCY_UNKNOWN_MS)
        return replace(figure, value_ppm=value)

    # ------------------------------------------------------------------ HTTP
    async def _start_http(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/reports/{agreement}/{period}", self._report)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, _, port = self.config.listen.rpartition(":")
        site = web.TCPSite(runner, host, int(port))
        await site.start()
        log.info("listening", extra={"listen": self.config.listen})
        return runner

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"oracle": self.account.address, "agreements": list(self.served)})

    async def _report(self, request: web.Request) -> web.Response:
        address = request.match_info["agreement"]
        try:
            period = int(request.match_info["period"])
            if not Web3.is_address(address):
                raise ValueError
        except ValueError:
            return web.json_response({"error": "expected /reports/<agreement address>/<period number>"}, status=400)
        report = await asyncio.to_thread(self.submitter.own_signed_report, Web3.to_checksum_address(address), period)
        if report is None:
            return web.json_response({"error": "no signed report for that period yet"}, status=404)
        return web.json_response(report)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.05, seconds))


def run_daemon(config: OracleConfig) -> None:
    """Prepare (fail fast on bad configuration), then run until SIGTERM/SIGINT."""
    daemon = Daemon(config)
    daemon.prepare()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await daemon.run(stop)

    asyncio.run(main())


