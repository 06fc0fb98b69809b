"""The oracle daemon: probe services, keep samples, report each period after it ends.

Three parts share one asyncio event loop: the prober (`oracle.probes.Prober`: every target on
its own schedule, concurrently, bounded, so no target can delay or spoil another's figures), the
report loop (settles every period that ended more than its grace ago, through the crash-safe
Submitter), and an HTTP listener (/metrics, /healthz, and /reports for committee peers). Samples
go through a queue to a writer thread that stores them in batches; chain and database calls
block, so they run in worker threads. SIGTERM or SIGINT stops the loops after their current
step (queued samples are written first); SIGKILL loses at most the last half second of samples,
which then count as not measured, and nothing that was committed (see oracle.submitter for how
reports survive it).

A period whose measured share is below the agreement's minimum gets no report (oracle.sli); the
daemon logs it, stores the figure, exposes it on /metrics and leaves the period to the contract's
dispute/expire path. docs/oracle.md documents every setting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import queue
import signal
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import requests
from aiohttp import web
from eth_account.signers.local import LocalAccount
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from web3 import Web3
from web3.exceptions import Web3Exception

from smartsla import deployments
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory, Snapshot, Status
from smartsla.credit import service_credit
from smartsla.errors import ChainUnavailable, NotAnAgreement, SmartSLAError
from smartsla.terms import Kind

from .config import ConfigError, OracleConfig, ServiceProbe, probe_problems
from .contract_probe import agreement_problem, batch_problem
from .corporate import CorporateServed, created_corporates, open_corporate, report_corporate
from .evidence import (
    Bundle,
    ExcludedWindow,
    ServiceRecord,
    SliceData,
    build_record,
    dumps_bundle,
    figure_from_record,
)
from .fleet import Fleet
from .keys import load_key
from .metrics import OracleMetrics
from .probes import HttpProbe, Prober, Sample, Target, TcpProbe
from .prometheus import PrometheusError, PrometheusSource
from .running import RunningPeriods, probed_thresholds
from .sli import NEUTRAL_FIGURE, PeriodFigure, meets_minimum
from .store import Store, StoreError
from .submitter import Submitter
from .terms_batch import read_terms_many, read_views
from .transactions import GWEI, TxManager

log = logging.getLogger("oracle")

CHAIN_ERRORS = (ChainUnavailable, requests.ConnectionError, requests.Timeout, Web3Exception, OSError)
MAX_BACKOFF_S = 30.0
PRUNE_EVERY_S = 3_600
FLUSH_EVERY_S = 0.5
FLUSH_BATCH = 2_000
UNMEASURED_RECHECK_S = 60.0  # how often a period left to dispute/expire is looked at again
BatchItem = tuple[Agreement, int, dict[str, PeriodFigure], bytes]


def _runner(name: str, probe: ServiceProbe) -> HttpProbe | TcpProbe | None:
    if probe.http is not None:
        h = probe.http
        return HttpProbe(service=name, url=str(h.url), expected_status=frozenset(h.expect_status), keyword=h.keyword,
                         timeout=h.timeout_s, method=h.method)
    if probe.tcp is not None:
        return TcpProbe(service=name, host=probe.tcp.host, port=probe.tcp.port, timeout=probe.tcp.timeout_s)
    return None  # Prometheus: evaluated at report time, nothing to probe


@dataclass
class Served:
    """One agreement this oracle measures and reports."""

    agreement: Agreement
    probes: dict[str, ServiceProbe]
    runners: dict[str, HttpProbe | TcpProbe]
    slice_seconds: int
    min_measured_ppm: int
    grace_s: float
    # The report loop's cursor: the first period not known to be settled, and when it is due.
    # Period ends follow from the immutable terms, so nothing is asked of the chain before then.
    next_period: int = 0
    next_due: float = 0.0
    unmeasured: set[int] = field(default_factory=set)  # periods refused for lack of measurement
    # Every stored report of a period below this is known to be confirmed (Submitter.confirm_settled).
    confirmed_below: int = 0
    done: bool = False


class SampleWriter:
    """Batches samples into the store from a thread of its own: a flush every FLUSH_EVERY_S or
    FLUSH_BATCH samples, so a thousand checks a second cost a few transactions a second.

    `put` only appends to a deque (thread-safe, no lock): the writer thread is NOT woken per
    sample (waking it for each one cost a thread switch and a GIL hand-over per check, taken
    from the event loop); it looks every POLL_S, and `flush`/`close` wake it at once."""

    POLL_S = 0.1

    def __init__(self, store: Store) -> None:
        self.store = store
        self._samples: collections.deque[tuple[str, Sample]] = collections.deque()
        self._control: queue.SimpleQueue[threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sample-writer", daemon=True)
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, agreement: str, sample: Sample) -> None:
        self._samples.append((agreement, sample))

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued before this call is committed."""
        done = threading.Event()
        self._control.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self._control.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + FLUSH_EVERY_S
        stopping = False
        while not stopping:
            waiters: list[threading.Event] = []
            try:
                item = self._control.get(timeout=self.POLL_S)
                while True:  # every control message waiting: one write serves them all
                    if item is None:
                        stopping = True
                    else:
                        waiters.append(item)
                    item = self._control.get_nowait()
            except queue.Empty:
                pass
            due = stopping or waiters or len(self._samples) >= FLUSH_BATCH or time.monotonic() >= deadline
            if due:
                self._write()
                deadline = time.monotonic() + FLUSH_EVERY_S
            for w in waiters:
                w.set()

    def _write(self) -> None:
        """Everything queued so far, in one transaction (popleft: safe against concurrent put)."""
        pending: dict[str, list[Sample]] = {}
        count = 0
        samples = self._samples
        with contextlib.suppress(IndexError):
            while True:
                agreement, sample = samples.popleft()
                pending.setdefault(agreement, []).append(sample)
                count += 1
        if not count:
            return
        try:
            self.store.add_samples_many(pending)
        except StoreError as exc:
            # Lost samples read as "not measured", never as down.
            self.errors += 1
            log.error("could not store samples", extra={"samples": count, "error": str(exc)})


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
        self.batch: Any = None  # the SettlementBatch contract, when chain.batch_contract is set
        self.writer: SampleWriter | None = None
        self.prober: Prober | None = None
        self._discovered_to_block = 0
        self._last_prune = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running: RunningPeriods | None = None  # the running period on /metrics (issue 14)
        self._latency_objective: dict[Hashable, int] = {}  # (agreement, service) -> objective ms
        self._asset_decimals: dict[str, int] = {}
        self.fleet: Fleet | None = None  # fleet mode (oracle.fleet): leases in the shared store
        # Fleet mode: the agreements whose probes and running-period gauges this member runs,
        # i.e. those it held at its last fleet step (_sync_held); outside fleet mode, all.
        self._following: set[str] = set()
        # Agreements served by prepare whose sample runs are started in one go at its end.
        self._track_later: list[tuple[str, int]] | None = None

    # ------------------------------------------------------------------ start-up
    def prepare(self, *, wait_for_chain_s: float = 60.0) -> None:
        """Everything that can be wrong with the configuration fails here, with ConfigError
        naming every problem found (not only the first)."""
        self.account = load_key(self.config.key)
        try:
            self.store = Store.open(self.config.store, min_sample_retention_s=self.config.sample_retention_s)
        except StoreError as exc:
            raise ConfigError(f"store: {exc}") from exc
        if self.config.fleet is not None:
            try:
                self.fleet = Fleet(self.store, self.config.fleet.lease_s, self.config.fleet.id)
            except StoreError as exc:
                raise ConfigError(f"fleet: {exc}") from exc
        self.chain = self._connect(wait_for_chain_s)
        factory_address = self.config.chain.factory or deployments.lookup(self.chain.chain_id)
        if factory_address is None:
            raise ConfigError(f"chain.factory: not given, and no factory is recorded for chain id "
                              f"{self.chain.chain_id} in {deployments.deployments_path()}")
        if not self.chain.w3.eth.get_code(Web3.to_checksum_address(factory_address)):
            raise ConfigError(f"chain.factory: no contract at {factory_address} on chain {self.chain.chain_id}")
        self.factory = Factory(self.chain, factory_address)
        txm = TxManager(self.chain.w3, self.account, self.store.engine, chain_id=self.chain.chain_id,
                        max_fee_gwei=self.config.chain.max_fee_gwei, confirmations=self.config.chain.confirmations)
        self.metrics.bind_sender(txm)
        self.batch = None
        batch_address, origin = self._batch_address(factory_address)
        if batch_address is not None:
            where = Web3.to_checksum_address(batch_address)
            if not self.chain.w3.eth.get_code(where):
                raise ConfigError(f"chain.batch_contract{origin}: no contract at {where} "
                                  f"on chain {self.chain.chain_id}")
            self.batch = self.chain.contract("SettlementBatch", where)
            wrong = batch_problem(self.batch, self.account.address)  # Z7-6: a pre-compact batch contract
            if wrong:
                raise ConfigError(f"chain.batch_contract{origin}: {wrong}")
        self.submitter = Submitter(self.chain, self.account, self.store, [str(p) for p in self.config.peers],
                                   self.metrics, tx=txm)
        problems = [f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in self.config.problems()]
        covered: set[str] = set()
        # Every listed agreement's terms in a few batch requests (oracle.terms_batch); what the
        # batch could not read is read one by one below, which names any problem.
        known = read_terms_many(self.chain, self.factory, [e.address for e in self.config.agreements])
        self._track_later = []
        factory_compact: bool | None = None  # the configured factory's clones have settleCompact
        for i, entry in enumerate(self.config.agreements):
            try:
                terms = known.get(Web3.to_checksum_address(entry.address)) if Web3.is_address(entry.address) else None
                agreement = (Agreement(self.chain, entry.address, factory=self.factory, terms=terms)
                             if terms is not None else self.factory.agreement(entry.address))
            except NotAnAgreement as exc:
                # Not the factory's: a multi-level agreement (oracle.corporate), or a mistake.
                agreement = open_corporate(self, entry.address)  # type: ignore[assignment]
                if agreement is None:
                    problems.append(f"agreements[{i}].address: {exc}")
                    continue
            if isinstance(agreement, Agreement) and (agreement.terms.quorum > 1 or self.batch is not None):
                # Z7-6: a pre-compact factory's agreement. Every agreement the configured factory
                # registered is a clone of its one immutable implementation, so one probe answers
                # for all of them (10,000 agreements must not cost 10,000 start-up calls).
                # (A refusal is still asked of each agreement, so every one is named.)
                wrong = None if factory_compact else agreement_problem(agreement, self.account.address)
                factory_compact = factory_compact or (factory_compact is None and wrong is None)
                if wrong:
                    problems.append(f"agreements[{i}].address: {wrong}")
                    continue
            names = {s.name for s in agreement.terms.services}
            covered |= names
            unknown = sorted(set(entry.services) - names)
            if unknown:
                problems.append(f"agreements[{i}].services: {', '.join(unknown)} not in agreement {agreement.address} "
                                f"(its services: {', '.join(s.name for s in agreement.terms.services)})")
            problems += self._serve(agreement, f"agreements[{i}]")
        track, self._track_later = self._track_later, None
        try:
            self.store.track_slices_many(track)
        except StoreError as exc:  # not fatal: slice_data reads the samples themselves
            log.error("could not track sample runs", extra={"agreements": len(track), "error": str(exc)})
        if self.config.agreements and not self.config.discover:
            unknown = sorted(set(self.config.services) - covered)
            if unknown:
                problems.append(f"services: {', '.join(unknown)} not in any listed agreement "
                                f"(their services: {', '.join(sorted(covered))})")
        if problems:
            raise ConfigError("\n".join(problems))
        if self.config.discover:
            self._discover()
        log.info("oracle ready", extra={"oracle": self.account.address, "chain_id": self.chain.chain_id,
                                        "agreements": list(self.served)})

    def _batch_address(self, factory_address: str) -> tuple[str | None, str]:
        """The SettlementBatch to settle through, and where it came from (for messages).

        Configured: that one; `false`: none. Unset: the one `smartsla deploy` recorded for this
        chain id, but only beside the factory in use: a batch recorded with another factory may be
        of another contract version, and an operator who names a factory of their own has not
        chosen that record. A deployments file written before batches were recorded has none, so
        such a daemon goes on settling one transaction per period."""
        configured = self.config.chain.batch_contract
        if configured is False:
            return None, ""
        if configured is not None:
            return configured, ""
        recorded_factory = deployments.lookup(self.chain.chain_id)
        if recorded_factory is None or recorded_factory.lower() != factory_address.lower():
            return None, ""
        recorded = deployments.lookup(self.chain.chain_id, deployments.SETTLEMENT_BATCH)
        return recorded, f" (unset; recorded in {deployments.deployments_path()})" if recorded else ""

    def _connect(self, wait_s: float) -> Chain:
        deadline = time.monotonic() + wait_s
        delay = 0.5
        while True:
            try:
                chain = Chain.connect(self.config.chain.rpc_url, timeout_s=self.config.chain.timeout_s)
                # web3's validation asks the node for its chain id before EVERY eth_call and
                # transaction (two requests for one); a node's chain id does not change, so the
                # answer is cached (only eth_chainId: block reads must stay fresh).
                provider = cast(Any, chain.w3.provider)
                if hasattr(provider, "cache_allowed_requests"):
                    provider.cacheable_requests = {"eth_chainId"}
                    provider.cache_allowed_requests = True
                return chain
            except ChainUnavailable as exc:
                if time.monotonic() > deadline:
                    raise ConfigError(f"chain.rpc_url: {exc}") from exc
                log.warning("chain not answering; retrying", extra={"url": self.config.chain.rpc_url, "in_s": delay})
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    def _serve(self, agreement: Agreement, where: str) -> list[str]:
        """Start serving `agreement`; returns the problems that prevent it (empty: served)."""
        terms = agreement.terms
        problems: list[str] = []
        problems += self._key_problems(agreement, where)
        probes = self.config.probes_for(agreement.address)
        # Satisfaction (attested by the customer) and composite (computed on-chain) figures need
        # no probe.
        names = [s.name for s in terms.services if s.kind in (Kind.availability, Kind.latency)]
        unprobed = [n for n in names if n not in probes]
        if unprobed:
            problems.append(f"{where}.services: no probe configured for {', '.join(unprobed)} "
                            f"(the agreement covers {', '.join(names)})")
        if terms.dispute_window > self.config.sample_retention_s:
            problems.append(f"sample_retention_s: {self.config.sample_retention_s:.0f} s is shorter than the "
                            f"dispute window of {agreement.address} ({terms.dispute_window} s): the samples "
                            "behind a disputed period must outlive the dispute")
        # The measurement method is part of the terms: the agreement's slice length and latency
        # percentiles decide; a configuration that says otherwise is refused, not followed.
        agreed_slice = terms.slice_seconds
        slice_seconds = agreed_slice or self.config.slice_seconds
        if agreed_slice and "slice_seconds" in self.config.model_fields_set \
                and self.config.slice_seconds != agreed_slice:
            problems.append(f"slice_seconds: {self.config.slice_seconds} s, but agreement {agreement.address} "
                            f"counts in slices of {agreed_slice} s (its Options.sliceLength): remove the setting "
                            "or make it equal")
        elif agreed_slice:
            # The configuration was checked against its own slice length; check the agreed one.
            for n in names:
                if n in probes:
                    problems += [f"{where}.services.{n}.{'.'.join(loc)}: {msg}"
                                 for loc, msg in probe_problems(probes[n], slice_seconds)]
        for s in terms.services:
            probe = probes.get(s.name)
            if s.kind is not Kind.latency or not s.latency_percentile or probe is None:
                continue
            if "latency_percentile" in probe.model_fields_set and probe.latency_percentile != s.latency_percentile:
                problems.append(f"services.{s.name}.latency_percentile: {probe.latency_percentile}, but agreement "
                                f"{agreement.address} measures {s.name} at the {s.latency_percentile}th percentile "
                                "(its Options.latencyPercentiles): remove the setting or make it equal")
            else:
                probes[s.name] = probe.model_copy(update={"latency_percentile": s.latency_percentile})
        if problems:
            return problems
        runners = {n: r for n in names if (r := _runner(n, probes[n])) is not None}
        served = Served(agreement, {n: probes[n] for n in names}, runners, slice_seconds,
                        terms.min_measured_ppm,
                        # In a fleet the sender waits for the other members' last sample batch too.
                        self.config.grace_for({n: probes[n] for n in names})
                        + (2 * FLUSH_EVERY_S if self.fleet is not None else 0.0))
        served.next_due = terms.period_end(0) + served.grace_s
        # The store keeps this agreement's samples chained at its slice length too
        # (oracle.sample_runs): a period's measured slices are then a few runs, not a month of rows.
        if self._track_later is not None:  # prepare: all at once at its end
            self._track_later.append((agreement.address, slice_seconds))
        else:
            try:
                self.store.track_slices(agreement.address, slice_seconds)
            except StoreError as exc:  # not fatal: slice_data reads the samples themselves
                log.error("could not track sample runs", extra={"agreement": agreement.address, "error": str(exc)})
        self.served[agreement.address] = served
        if self.fleet is not None:
            return []  # probed and followed once held (_sync_held)
        self._following.add(agreement.address)
        self._follow_running(served)
        if self.prober is not None and self._loop is not None:  # discovered while running
            for target in self._targets(served):
                self._loop.call_soon_threadsafe(self.prober.add, target)
        return []

    def _key_problems(self, agreement: Agreement, where: str) -> list[str]:
        """Whether this daemon's key may act for `agreement`: an oracle must be in the committee
        (the customer's watchdog, oracle.watchdog, checks for the customer instead)."""
        terms = agreement.terms
        if self.account.address in terms.oracles:
            return []
        return [f"key: {self.account.address} is not a member of the oracle committee of "
                f"{agreement.address} (members: {', '.join(terms.oracles)}) [{where}]"]

    def _discover(self) -> None:
        """Serve agreements of the factory whose committee includes this oracle AND whose
        provider is in discover_providers: otherwise anyone could create worthless agreements
        naming this oracle and make it spend gas settling them (finding 7c)."""
        latest = self.chain.w3.eth.block_number
        if latest < self._discovered_to_block:
            return
        logs = self.factory.contract.events.AgreementCreated().get_logs(
            from_block=self._discovered_to_block, to_block=latest)
        # Multi-level agreements: those the recorded CorporateAgreementFactory created, same rules.
        corporates = created_corporates(self, self._discovered_to_block, latest)
        self._discovered_to_block = latest + 1
        allowed = set(self.config.discover_providers)
        found: list[Any] = [entry["args"]["agreement"] for entry in logs] + corporates
        for address in found:
            if address in self.served:
                continue
            # A CorporateServed stands in for an Agreement (as for listed ones in prepare).
            agreement = cast(Agreement | None, open_corporate(self, address) if address in corporates
                             else Agreement(self.chain, address, factory=self.factory))
            if agreement is None:
                continue
            terms = agreement.terms
            if self.account.address not in terms.oracles:
                continue
            if terms.provider not in allowed:
                log.info("not serving discovered agreement: provider not in discover_providers",
                         extra={"agreement": address, "provider": terms.provider})
                continue
            problems = self._serve(agreement, f"discovered {address}")
            if problems:
                log.error("cannot serve discovered agreement", extra={"agreement": address, "problems": problems})
            else:
                log.info("serving discovered agreement", extra={"agreement": address})

    # ------------------------------------------------------------------ loops
    def _targets(self, served: Served) -> list[Target]:
        address = served.agreement.address
        return [Target((address, name), runner if self.fleet is None else _Leased(runner, address, self.fleet),
                       served.probes[name].interval_s)
                for name, runner in served.runners.items()]

    def _on_sample(self, key: Hashable, sample: Sample, lag: float) -> None:
        address, service = cast(tuple[str, str], key)
        if sample.detail == NOT_HELD:
            return  # another fleet member probes this agreement
        self.metrics.checks.labels(address, service).inc()
        if not sample.ok:
            self.metrics.check_failures.labels(address, service).inc()
        if self.running is not None:
            self.running.on_sample(address, service, sample.ts, sample.ok, sample.latency_ms)
            limit = self._latency_objective.get(key)
            if limit is not None and (not sample.ok or sample.latency_ms is None or sample.latency_ms > limit):
                self.metrics.checks_slow.labels(address, service).inc()
        assert self.writer is not None
        self.writer.put(address, sample)

    def _on_skip(self, key: Hashable, n: int) -> None:
        address, service = cast(tuple[str, str], key)
        self.metrics.checks_not_measured.labels(address, service).inc(n)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self.writer = SampleWriter(self.store)
        self.writer.start()
        # In a fleet, none yet: the member probes what it holds (_sync_held after each step).
        targets = [t for a in self._following for t in self._targets(self.served[a])]
        self.prober = Prober(targets, max_in_flight=self.config.max_in_flight, on_sample=self._on_sample,
                             on_skip=self._on_skip)
        runner = await self._start_http()
        if self.fleet is not None:
            if self.running is None:  # its loop must run even if nothing is held yet
                self.running = self._new_running()
            await asyncio.to_thread(self.fleet.step, list(self.served))  # lease before the first probe
            self._sync_held()
        try:
            await asyncio.gather(self.prober.run(stop), self._report_loop(stop),
                                 *([self._fleet_loop(stop)] if self.fleet is not None else []),
                                 *([self.running.run(stop, _sleep)] if self.running else []))
        finally:
            await runner.cleanup()
            await asyncio.to_thread(self.writer.close)
            if self.fleet is not None:
                with contextlib.suppress(StoreError):
                    await asyncio.to_thread(self.fleet.leave)
            self.store.close()
            log.info("oracle stopped")

    def _sync_held(self) -> None:
        """Fleet mode, on the event loop after each step: probe and follow (running-period
        gauges, maintenance windows) exactly the agreements held now. A member configured with
        10,000 agreements used to keep a probe task, gauges and a maintenance-window read a
        minute for every one of them, though it probed only its share (the others' checks
        returned at once). The lease check in each probe (_Leased) still guards every check."""
        assert self.fleet is not None and self.prober is not None
        held = {a for a in self.served if a.lower() in self.fleet.status.held}
        gained, lost = held - self._following, self._following - held
        if lost:
            self.prober.remove([(a, n) for a in lost for n in self.served[a].runners])
            if self.running is not None:
                for a in lost:
                    self.running.unserve(a)
        for a in sorted(gained):
            self._follow_running(self.served[a])
            for target in self._targets(self.served[a]):
                self.prober.add(target)
        self._following = held

    async def _fleet_loop(self, stop: asyncio.Event) -> None:
        """Heartbeat and leases every lease/3 (oracle.fleet)."""
        assert self.fleet is not None
        while not stop.is_set():
            await _sleep(stop, self.fleet.renew_every_s)
            if stop.is_set():
                return
            try:
                before = self.fleet.status
                status = await asyncio.to_thread(self.fleet.step, [a for a, s in self.served.items() if not s.done])
                self._sync_held()
                if status.sender != before.sender or status.taken_over or len(status.held) != len(before.held):
                    log.info("fleet leases", extra={"member": self.fleet.member, "held": len(status.held),
                                                    "share": status.share, "live": status.live,
                                                    "sender": status.sender, "taken_over": status.taken_over})
            except StoreError as exc:  # the leases run out by themselves: others take over
                log.error("fleet step failed", extra={"error": str(exc)})

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
            # Wake up when the next period falls due, not a whole report_check_s later.
            pending = [s.next_due for s in self.served.values() if not s.done]
            until_due = min(pending, default=math.inf) - time.time()
            await _sleep(stop, min(backoff, max(0.05, until_due)))

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
        """Report every period of every served agreement that ended more than its grace ago.

        An agreement is only asked for its state when its next period can be due: the period
        ends follow from the immutable terms, so a pass over 10,000 agreements where nothing is
        due costs no chain call at all beyond one read of the chain clock.

        In a fleet only the holder of the sender lease reports (for every agreement)."""
        if self.fleet is not None and not self.fleet.is_sender():
            return
        self.prune_old_samples()
        if self.config.discover:
            self._discover()
        wall = time.time()
        candidates = [s for s in self.served.values() if not s.done]
        if not candidates:
            return
        # The contract compares with block time; dev chains may run ahead of the wall clock.
        now = max(wall, self.chain.now())
        due = [s for s in candidates if now >= s.next_due]
        if not due:
            return
        if self.writer is not None:
            self.writer.flush()  # the due periods' last samples must be in the store (once a pass)
        plain = [s for s in due if not isinstance(s.agreement, CorporateServed)]
        for served in due:
            if isinstance(served.agreement, CorporateServed):
                report_corporate(self, served, now)
        # What every due agreement's first step reads, in a few batch requests instead of two
        # calls each (oracle.terms_batch): its snapshot, and whether it declared any maintenance.
        addresses = [s.agreement.address for s in plain]
        snaps = {a: Snapshot.from_abi(raw) for a, raw in read_views(self.chain, addresses, "snapshot").items()}
        declared = read_views(self.chain, addresses, "maintenanceCount")
        no_windows = {a for a, n in declared.items() if n == 0}

        def still_sender() -> bool:
            return self.fleet is None or self.fleet.is_sender()

        def report(served: Served, batch: list[BatchItem] | None) -> None:
            a = served.agreement.address
            self._report_agreement(served, now, batch, snap=snaps.get(a), no_windows=a in no_windows)

        if self.batch is None:
            for served in plain:
                if not still_sender():
                    return
                report(served, None)
            return
        # Batches of due periods, one after the other, each sent as soon as it is computed
        # (holding every batch until the whole pass was computed delayed the first settlement by
        # the pass). Sending two batches from threads side by side was tried for the fleet
        # (sixth session): no faster on 2 cores, and a 2,000-agreement run under heavy load
        # mined none of its batches for reasons not understood; one sender thread until that
        # is explained.
        size = self.config.chain.batch_size
        for i in range(0, len(plain), size):
            # A pass at scale lasts longer than a lease: checking the sender lease only at its
            # start let a member that lost it (starved, its steps late) go on broadcasting next
            # to the new sender, their nonces clashing (bench/fleet_sim.py at 2,000, security
            # finding F-1). Each batch is computed and sent only while the lease is held.
            if not still_sender():
                return
            batch: list[BatchItem] = []
            for served in plain[i:i + size]:
                report(served, batch)
            if batch and still_sender():
                self._settle_batches(batch)

    def _settle_batches(self, items: Sequence[tuple[Agreement, int, dict[str, PeriodFigure] | None, bytes | None]]
                        ) -> None:
        """One SettlementBatch transaction per `batch_size` due periods. An item not confirmed now
        (failed in the batch, pending, waiting for peers) is simply due again on the next pass."""
        size = self.config.chain.batch_size
        for i in range(0, len(items), size):
            outcomes = self.submitter.process_batch(self.batch, items[i:i + size])
            for (address, period), outcome in outcomes.items():
                log.info("period report", extra={"agreement": address, "period": period, "state": outcome.state,
                                                 "detail": outcome.detail, "batched": True})

    def _report_agreement(self, served: Served, now: float, batch: list[BatchItem] | None = None, *,
                          snap: Snapshot | None = None, no_windows: bool = False) -> None:
        """Report the agreement's due periods; with `batch`, queue its first due period there
        instead (the next ones are due on the next pass, once it is settled). `snap`: its
        snapshot read at the start of the pass; `no_windows`: it had declared no maintenance
        window then (both for the first period only; the next ones read again)."""
        agreement = served.agreement
        terms = agreement.terms
        while True:
            if snap is None:
                snap = agreement.snapshot()
                no_windows = False
            # Settled while this daemon was not looking (killed after a broadcast, a peer's
            # settlement, a depth not reached yet): the store must say so too.
            if (snap.settled_periods > served.confirmed_below
                    and self.submitter.confirm_settled(agreement, snap.settled_periods) == 0):
                served.confirmed_below = snap.settled_periods
            if snap.status.terminal:  # Expired included: it used to be polled forever
                served.done = True
                log.info("agreement finished", extra={"agreement": agreement.address, "status": snap.status.name})
                return
            period = snap.settled_periods
            served.next_period = period
            served.next_due = terms.period_end(period) + served.grace_s
            if snap.status is not Status.Active:
                served.next_due = max(served.next_due, now + self.config.report_check_s)
                return
            if now < served.next_due:
                return
            if period in served.unmeasured:
                # Already refused: the contract's dispute/expire path decides; look again later.
                served.next_due = now + UNMEASURED_RECHECK_S
                return
            figures, bundle = self.evidence(served, period, windows=[] if no_windows else None)
            snap = None
            # Kept (and served) before anything is signed: the root in the report commits to it.
            self.save_evidence(agreement.address, period, bundle)
            enough, lowest = meets_minimum({n: figures[n] for n in served.probes}, served.min_measured_ppm)
            self.metrics.period_measured_ppm.labels(agreement.address).set(lowest)
            if not enough:
                served.unmeasured.add(period)
                self.metrics.periods_not_reported.inc()
                self.store.save_period_results(agreement.address, period, figures)
                log.warning("not enough of the period measured: no report (the contract's dispute/expire path "
                            "applies)", extra={"agreement": agreement.address, "period": period,
                                               "measured_ppm": lowest, "min_measured_ppm": served.min_measured_ppm,
                                               "explain": {n: figures[n].explain() for n in served.probes}})
                served.next_due = now + UNMEASURED_RECHECK_S
                return
            if batch is not None:
                batch.append((agreement, period, figures, bundle.root))
                return
            outcome = self.submitter.process(agreement, period, figures, bundle.root)
            log.info("period report", extra={"agreement": agreement.address, "period": period,
                                             "state": outcome.state, "detail": outcome.detail,
                                             "measured_ppm": lowest,
                                             "values": [figures[s.name].value_ppm for s in terms.services]})
            if outcome.state != "confirmed":
                return
            self._count_credit(served, figures)

    def save_evidence(self, address: str, period: int, bundle: Bundle) -> str:
        """Keep the period's bundle (served on /evidence) before anything is signed; its root."""
        root = "0x" + bundle.root.hex()
        kept = self.store.save_evidence(address, period, root, dumps_bundle(bundle))
        if kept != root:  # recomputed after signing: what was signed stays the evidence
            log.warning("evidence recomputed after signing differs; the signed bundle is kept",
                        extra={"agreement": address, "period": period, "signed_root": kept, "recomputed": root})
        return kept

    def maintenance(self, served: Served) -> list[tuple[int, int]]:
        """Windows the provider declared ON-CHAIN with the agreed notice: the only ones excluded
        (a figure must never depend on something the parties did not sign)."""
        return [(w.start, w.end) for w in served.agreement.maintenance_windows() if w.with_notice]

    def excluded_windows(self, served: Served) -> list[ExcludedWindow]:
        """The windows of `maintenance` with their on-chain index (the evidence names them)."""
        return [(k, w.start, w.end) for k, w in enumerate(served.agreement.maintenance_windows()) if w.with_notice]

    def figures(self, served: Served, period: int) -> dict[str, PeriodFigure]:
        return self.evidence(served, period)[0]

    def evidence(self, served: Served, period: int, windows: list[ExcludedWindow] | None = None
                 ) -> tuple[dict[str, PeriodFigure], Bundle]:
        """Every service's figure and the period's evidence bundle. Each measured service's slice
        record (oracle.evidence) is built from per-slice aggregates of the store (never a month
        of samples as Python objects), and its figure is computed FROM THE RECORD, the way
        `smartsla verify` recomputes it: what is reported is exactly what the evidence shows."""
        terms = served.agreement.terms
        start, end = terms.period_start(period), terms.period_end(period)
        if windows is None:  # (given: read for the whole pass, see report_due_periods)
            windows = self.excluded_windows(served)
        slice_s = served.slice_seconds
        address = served.agreement.address
        out: dict[str, PeriodFigure] = {}
        records: list[ServiceRecord] = []
        probed = [s for s in terms.services if s.kind not in (Kind.satisfaction, Kind.composite)
                  and served.probes[s.name].prometheus is None]
        # The store's services are read side by side (threads, a connection each).
        stored = dict(zip([s.name for s in probed], self.store.slice_data_many(
            [(address, s.name, start, end, slice_s, served.probes[s.name].failure_threshold, s.kind is Kind.latency)
             for s in probed]), strict=True))
        for index, service in enumerate(terms.services):
            if service.kind in (Kind.satisfaction, Kind.composite):
                # The contract fills these in; report a neutral figure (ignored on-chain).
                out[service.name] = replace(NEUTRAL_FIGURE, slice_seconds=slice_s)
                continue
            probe = served.probes[service.name]
            slices: SliceData | dict[int, tuple[bool, float | None]]
            if probe.prometheus is not None:
                p = probe.prometheus
                verdicts = PrometheusSource(str(p.url).rstrip("/")).verdicts(
                    p.query, start, end, slice_seconds=slice_s, threshold=p.threshold, inclusive=p.inclusive)
                slices = {i: (ok, None) for i, ok in verdicts.items()}
            else:
                slices = stored[service.name]
            record = build_record(chain_id=self.chain.chain_id, agreement=address, period=period, start=start,
                                  end=end, slice_seconds=slice_s, index=index, name=service.name,
                                  kind=service.kind.name, slices=slices, windows=windows)
            records.append(record)
            out[service.name] = figure_from_record(record, percentile=probe.latency_percentile,
                                                   objective_ms=service.objective)
        return out, Bundle(self.account.address, tuple(records), chain_id=self.chain.chain_id,
                           agreement=address.lower(), period=period, start=start, end=end, slice_seconds=slice_s)

    # ------------------------------------------------------------------ the running period
    def _follow_running(self, served: Served) -> None:
        """Export `served`'s period in progress on /metrics (oracle.running)."""
        if self.running is None:
            self.running = self._new_running()
        address = served.agreement.address
        for name in served.runners:  # a failure series from the start: rules see 0, not "no data"
            self.metrics.check_failures.labels(address, name)
            self.metrics.credit_reported.labels(address, name)
        for s in served.agreement.terms.services:
            if s.kind is Kind.latency and s.name in served.runners:
                self._latency_objective[(address, s.name)] = s.objective  # ms for latency services
                self.metrics.checks_slow.labels(address, s.name)
        self.running.serve(address, served.agreement.terms, probed_thresholds(served.probes),
                           lambda: self.maintenance(served), decimals=self._decimals(served),
                           percentiles={n: p.latency_percentile for n, p in served.probes.items()})
        sources = {n: (PrometheusSource(str(p.prometheus.url).rstrip("/")), p.prometheus.query,
                       p.prometheus.threshold, p.prometheus.inclusive)
                   for n, p in served.probes.items() if p.prometheus is not None}
        if sources:  # their query is evaluated over the elapsed period (oracle.running)
            self.running.serve_prometheus(address, served.agreement.terms, sources, lambda: self.maintenance(served),
                                          decimals=self._decimals(served))

    def _new_running(self) -> RunningPeriods:
        def declared(addresses: list[str]) -> dict[str, int]:  # maintenance counts, batched
            return {a: int(n) for a, n in read_views(self.chain, addresses, "maintenanceCount").items()}

        return RunningPeriods(self.store, self.metrics.running, declared=declared)

    def _count_credit(self, served: Served, figures: dict[str, PeriodFigure]) -> None:
        """The credits panel of the dashboard: what this oracle's settled figures imply."""
        terms = served.agreement.terms
        scale = 10 ** self._decimals(served)
        for s in terms.services:
            if s.kind in (Kind.availability, Kind.latency) and s.name in figures:
                credit = service_credit(s, figures[s.name].value_ppm, terms.fee_per_period)
                self.metrics.credit_reported.labels(served.agreement.address, s.name).inc(credit / scale)

    def _decimals(self, served: Served) -> int:
        terms = served.agreement.terms
        if terms.is_native:
            return 18
        if terms.asset not in self._asset_decimals:
            try:
                decimals = int(self.chain.contract("IERC20Metadata", terms.asset).functions.decimals().call())
            except Exception:  # a token without the optional metadata: whole units are base units
                decimals = 0
            self._asset_decimals[terms.asset] = decimals
        return self._asset_decimals[terms.asset]

    # ------------------------------------------------------------------ HTTP
    async def _start_http(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/reports/{agreement}/{period}", self._report)
        app.router.add_get("/evidence/{agreement}/{period}", self._evidence)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, _, port = self.config.listen.rpartition(":")
        site = web.TCPSite(runner, host, int(port))
        await site.start()
        bound = [s.getsockname()[1] for s in getattr(site._server, "sockets", None) or []]  # noqa: SLF001
        log.info("listening", extra={"listen": self.config.listen, "port": bound[0] if bound else int(port)})
        return runner

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"oracle": self.account.address, "agreements": list(self.served),
                                  "sending": self.sending_status()})

    def sending_status(self) -> dict[str, Any]:
        """Whether this oracle's settlements can be mined now (F8-1): {"state": "ok"} or
        {"state": "blocked", "reason": "fee_cap" | "stuck", "detail", "base_fee_gwei", "cap_gwei",
        "blocked_s"}. `smartsla oracle status` prints it and exits 1 when blocked."""
        tx = getattr(getattr(self, "submitter", None), "tx", None)
        if tx is None:
            return {"state": "starting"}
        base = None if tx.last_base_fee is None else tx.last_base_fee / GWEI
        block = tx.blocked
        if block is None:
            return {"state": "ok", "base_fee_gwei": base, "cap_gwei": tx.cap_wei / GWEI,
                    "replacements": tx.replacements}
        return {"state": "blocked", "reason": block.reason, "detail": block.detail,
                "base_fee_gwei": block.base_fee / GWEI, "cap_gwei": block.cap / GWEI,
                "blocked_s": round(time.time() - block.since, 1), "replacements": tx.replacements}

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

    async def _evidence(self, request: web.Request) -> web.Response:
        """The evidence bundle of a period (oracle.evidence), as committed: 404 when unknown."""
        address = request.match_info["agreement"]
        try:
            period = int(request.match_info["period"])
            if not Web3.is_address(address) or period < 0:
                raise ValueError
        except ValueError:
            return web.json_response({"error": "expected /evidence/<agreement address>/<period number>"}, status=400)
        found = await asyncio.to_thread(self.store.evidence, address, period)
        if found is None:
            return web.json_response({"error": f"no evidence for period {period} of {address}"}, status=404)
        response = web.Response(text=found[1], content_type="application/json")
        # Latency records hold one number per slice (about 130 KB for a month of minutes, a third
        # of that compressed); clients that accept gzip get it compressed.
        response.enable_compression()
        return response


NOT_HELD = "fleet: not held"


@dataclass
class _Leased:
    """A check that runs only while this fleet member holds the agreement's lease; otherwise it
    returns at once a NOT_HELD marker that _on_sample drops (no network traffic)."""

    runner: HttpProbe | TcpProbe
    address: str
    fleet: Fleet

    @property
    def service(self) -> str:
        return self.runner.service

    @property
    def timeout(self) -> float:
        return self.runner.timeout

    async def run(self, session: Any = None) -> Sample:
        if not self.fleet.holds(self.address):
            return Sample(self.runner.service, time.time(), True, None, NOT_HELD)
        return await self.runner.run(session)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.05, seconds))


def check_config(config: OracleConfig, *, wait_for_chain_s: float = 5.0) -> Daemon:
    """Every start-up check `oracle run` makes (key, store, chain, factory, each agreement's
    committee, probes, service names, slice lengths), without measuring anything: what
    `oracle check` should run so both accept exactly the same files. Raises ConfigError listing
    every problem. Note: it opens (and creates, if missing) the store."""
    daemon = Daemon(config)
    daemon.prepare(wait_for_chain_s=wait_for_chain_s)
    daemon.store.close()
    return daemon


def run_daemon(config: OracleConfig, daemon_class: type[Daemon] | None = None) -> None:
    """Prepare (fail fast on bad configuration), then run until SIGTERM/SIGINT."""
    daemon = (daemon_class or Daemon)(config)
    daemon.prepare()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await daemon.run(stop)

    asyncio.run(main())


