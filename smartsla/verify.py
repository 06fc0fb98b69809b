"""Check a settled period against the oracles' evidence (issue 12): the library behind
`smartsla verify` (smartsla/cli_verify.py).

For each evidence bundle (oracle.evidence): its header must name this chain, agreement, period,
the period's bounds and the agreed slice length; its oracle must be a committee member whose
`EvidenceCommitted` root for the period equals the bundle's root; its records must cover exactly
the services the oracle measures, each slice excluded only by a maintenance window declared
ON-CHAIN with the agreed notice that covers it (and every such slice excluded). Each service's
figure is recomputed from the record with the oracle's own function
(`oracle.evidence.figure_from_record`) and the agreement's latency percentile; the committee's
median and the credit are recomputed with the reference model (smartsla.credit) and compared
with the `PeriodSettled` event.

Outcome: `verified`, `mismatch` (the problems, each naming what differs), or `missing` (a
bundle could not be had, or the period was not settled with evidence).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from web3 import Web3

from oracle.evidence import (
    DOWN,
    MAX_BUNDLE_BYTES,
    NONE,
    UP,
    Bundle,
    EvidenceError,
    ServiceRecord,
    build_record,
    excluded_slices,
    figure_from_record,
    parse_bundle,
)
from oracle.sli import PeriodFigure

from .client import Agreement, MaintenanceWindow, Settlement
from .credit import median, period_outcome
from .terms import Kind, Terms
from .units import PPM


@dataclass
class Source:
    """Where a bundle came from, and what was found there."""

    where: str
    bundle: Bundle | None = None
    error: str | None = None
    # True: nothing could be had there (unreachable, 404, no file): the evidence is missing.
    # False with an error: something was served as evidence but is malformed or lies about its
    # own hashes: a mismatch.
    missing: bool = False


@dataclass
class OracleCheck:
    oracle: str
    where: str
    committed_root: str | None
    bundle_root: str
    figures: dict[int, PeriodFigure] = field(default_factory=dict)  # service index -> figure
    records: dict[int, ServiceRecord] = field(default_factory=dict)
    measured_ppm: int = PPM
    problems: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    agreement: str
    period: int
    outcome: str  # "verified" | "mismatch" | "missing"
    problems: list[str]
    missing: list[str]
    oracles: list[OracleCheck]
    settlement: Settlement | None
    disputes: list[OracleCheck] = field(default_factory=list)  # a party's dispute evidence
    medians: dict[int, int] = field(default_factory=dict)  # service index -> recomputed median
    measured_median: int | None = None
    credit: int | None = None
    service_credits: tuple[int, ...] = ()
    # The arbiter corrected the period (DisputeResolved): `settlement` then carries the final
    # values and credit, the ones the money followed, and those are what is verified.
    resolved: bool = False

    @property
    def exit_code(self) -> int:
        return {"verified": 0, "mismatch": 1}.get(self.outcome, 2)


def evidence_url(base: str, agreement: str, period: int) -> str:
    """The oracle's endpoint for a period: `base` is the oracle's HTTP address (as for /metrics),
    or already a full /evidence/... URL."""
    if "/evidence/" in base:
        return base
    return f"{base.rstrip('/')}/evidence/{agreement}/{period}"


def fetch_bundle(url: str, timeout_s: float = 10.0) -> Source:
    """GET a bundle; never raises: what went wrong is in `error`."""
    try:
        with httpx.stream("GET", url, timeout=timeout_s) as r:
            if r.status_code == 404:
                return Source(url, error=f"{url}: no evidence there (HTTP 404)", missing=True)
            if r.status_code != 200:
                return Source(url, error=f"{url}: HTTP {r.status_code}", missing=True)
            body = b""
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_BUNDLE_BYTES:  # a hostile server cannot make us read forever
                    return Source(url, error=f"{url}: more than {MAX_BUNDLE_BYTES:,} bytes")
    except httpx.HTTPError as exc:
        return Source(url, error=f"{url}: {exc.__class__.__name__}: {exc}", missing=True)
    return _parsed(url, body)


def read_bundle(path: str) -> Source:
    try:
        with open(path, "rb") as f:
            body = f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        return Source(path, error=f"{path}: {exc.strerror or exc}", missing=True)
    return _parsed(path, body)


def _parsed(where: str, body: bytes) -> Source:
    try:
        return Source(where, bundle=parse_bundle(body))
    except EvidenceError as exc:
        return Source(where, error=f"{where}: {exc}")


def committed_roots(agreement: Agreement, period: int) -> dict[str, str]:
    """oracle (checksummed) -> root of its accepted report for `period` (EvidenceCommitted)."""
    return {Web3.to_checksum_address(oracle): "0x" + root.hex() for oracle, root in agreement.evidence_roots(period)}


def agreed_percentile(terms: Terms, index: int) -> int:
    """The agreement's latency percentile of service `index`. Agreements created before the
    method was part of the terms say 0: the oracle's default, 95, applies (and is all anyone can
    check against)."""
    return terms.services[index].latency_percentile or 95


def measured_indexes(terms: Terms) -> list[int]:
    return [i for i, s in enumerate(terms.services) if s.kind in (Kind.availability, Kind.latency)]


def check_bundle(agreement: Agreement, chain_id: int, period: int, bundle: Bundle, where: str,
                 roots: dict[str, str], windows: Sequence[MaintenanceWindow], *, party: bool = False) -> OracleCheck:
    """Check one bundle; `party`: it is a party's dispute evidence (root in `Disputed`), not an
    oracle's report."""
    terms = agreement.terms
    oracle = Web3.to_checksum_address(bundle.oracle)
    check = OracleCheck(oracle, where, roots.get(oracle), "0x" + bundle.root.hex())
    p = check.problems
    h = bundle.head
    start, end = terms.period_start(period), terms.period_end(period)
    expected = {"chainId": chain_id, "agreement": agreement.address.lower(), "period": period, "start": start,
                "end": end, "sliceSeconds": terms.slice_seconds}
    found = {"chainId": h.chain_id, "agreement": h.agreement, "period": h.period, "start": h.start, "end": h.end,
             "sliceSeconds": h.slice_seconds}
    p += [f"{where}: {k} is {found[k]}, the agreement says {v}" for k, v in expected.items() if found[k] != v]
    if not party and oracle not in terms.oracles:
        p.append(f"{where}: {oracle} is not a member of the oracle committee")
    if check.committed_root is None:
        p.append(f"{where}: {oracle} committed no evidence root for period {period} on-chain")
    elif check.committed_root != check.bundle_root:
        p.append(f"{where}: the bundle's root {check.bundle_root} is not the root {check.committed_root} "
                 f"{oracle} committed on-chain")
    if p:
        return check
    want = measured_indexes(terms)
    got = sorted(r.index for r in bundle.records)
    if got != want:
        p.append(f"{where}: records for services {got}, the agreement measures services {want}")
        return check
    notice = [(k, w.start, w.end) for k, w in enumerate(windows) if w.with_notice]
    for r in bundle.records:
        s = terms.services[r.index]
        if r.name != s.name or r.kind != s.kind.name:
            p.append(f"{where}: service #{r.index} is {s.name} ({s.kind.name}), the record says {r.name} ({r.kind})")
            continue
        # The exclusions the agreement allows, slice by slice, from the windows declared on-chain.
        allowed = excluded_slices(build_record(chain_id=chain_id, agreement=h.agreement, period=period, start=start,
                                               end=end, slice_seconds=h.slice_seconds, index=r.index, name=r.name,
                                               kind=r.kind, slices={}, windows=notice))
        claimed = excluded_slices(r)
        wrong = sorted(i for i in claimed if allowed.get(i) != claimed[i])
        for i in wrong[:5]:
            k = claimed[i]
            why = ("no such window" if k >= len(windows) else
                   "it was declared without the agreed notice" if not windows[k].with_notice else
                   "it does not cover the slice")
            p.append(f"{where}: {r.name}: slice {i} is excluded by window #{k}, but {why}")
        unexcluded = sorted(set(allowed) - set(claimed))
        if unexcluded:
            p.append(f"{where}: {r.name}: {len(unexcluded)} slices (first: {unexcluded[0]}) lie in window "
                     f"#{allowed[unexcluded[0]]} declared with notice but were not excluded")
        if len(wrong) > 5:
            p.append(f"{where}: {r.name}: {len(wrong) - 5} more slices wrongly excluded")
        check.records[r.index] = r
        check.figures[r.index] = figure_from_record(r, percentile=agreed_percentile(terms, r.index),
                                                    objective_ms=s.objective)
    check.measured_ppm = min((f.measured_ppm for f in check.figures.values()), default=PPM)
    return check


def verify_period(agreement: Agreement, chain_id: int, period: int, sources: Sequence[Source]) -> Verdict:
    terms = agreement.terms
    settlement = next((s for s in agreement.settlements() if s.period == period), None)
    verdict = Verdict(agreement.address, period, "missing", [], [], [], settlement)
    if settlement is None:
        verdict.missing.append(f"period {period} of {agreement.address} is not settled: nothing to verify")
        return verdict
    resolution = dispute_resolution(agreement, period)
    if resolution is not None:
        # The figure to check is the final one: a dispute that overturned the report replaced it.
        values_ppm, credit_paid = resolution
        settlement = replace(settlement, values_ppm=values_ppm, credit_paid=credit_paid)
        verdict.settlement, verdict.resolved = settlement, True
    settled_words = "the final figure (DisputeResolved)" if resolution is not None else "the settled figure"
    roots = committed_roots(agreement, period)
    if not roots:
        verdict.missing.append(f"no EvidenceCommitted event for period {period}: it was settled without evidence")
        return verdict
    windows = agreement.maintenance_windows()
    disputes = dispute_roots(agreement, period)
    disputed: list[str] = []  # what a party's dispute evidence says against the settlement
    seen: set[str] = set()
    for src in sources:
        if src.bundle is None:
            (verdict.missing if src.missing else verdict.problems).append(src.error or f"{src.where}: no bundle")
            continue
        by = Web3.to_checksum_address(src.bundle.oracle)
        if by not in roots and by in disputes:
            # A party's dispute evidence (the customer's watchdog): checked the same way against
            # the root its dispute named, and compared with the settled figure (not in the median).
            party = check_bundle(agreement, chain_id, period, src.bundle, src.where, disputes, windows, party=True)
            verdict.disputes.append(party)
            disputed += party.problems
            for i, f in sorted(party.figures.items()):
                if f.value_ppm != settlement.values_ppm[i]:
                    disputed.append(
                        f"{terms.services[i].name}: the evidence {by} disputed with gives "
                        f"{_fmt_value(terms, i, f.value_ppm)}, {settled_words} is "
                        f"{_fmt_value(terms, i, settlement.values_ppm[i])}")
            continue
        check = check_bundle(agreement, chain_id, period, src.bundle, src.where, roots, windows)
        verdict.oracles.append(check)
        verdict.problems += check.problems
        seen.add(check.oracle)
    for oracle in sorted(set(roots) - seen):
        verdict.missing.append(f"no evidence bundle from {oracle}, whose report counted in the median")
    if verdict.problems or (disputed and verdict.missing):
        verdict.problems += disputed
        verdict.outcome = "mismatch"
        return verdict
    if verdict.missing:
        return verdict
    # One figure per member: the same bundle given twice (a URL and a file) must not weigh twice
    # in the median (every bundle of a member has its committed root by now, so they are equal).
    checks = list({c.oracle: c for c in verdict.oracles if c.oracle in roots}.values())
    problems = verdict.problems
    values = list(settlement.values_ppm)
    for i in measured_indexes(terms):
        verdict.medians[i] = median([c.figures[i].value_ppm for c in checks])
        # After a resolved dispute, the correction may rest on the disputing party's evidence
        # (checked against the root its dispute named, its figure compared above): then it holds.
        backed = resolution is not None and any(
            d.figures.get(i) is not None and d.figures[i].value_ppm == settlement.values_ppm[i]
            for d in verdict.disputes if not d.problems)
        if verdict.medians[i] != settlement.values_ppm[i] and not backed:
            problems.append(f"{terms.services[i].name}: the evidence gives {_fmt_value(terms, i, verdict.medians[i])}, "
                            f"{settled_words} is {_fmt_value(terms, i, settlement.values_ppm[i])}")
        values[i] = settlement.values_ppm[i] if backed else verdict.medians[i]
    verdict.measured_median = median([c.measured_ppm for c in checks])
    if verdict.measured_median != settlement.measured_ppm:
        problems.append(f"measured share: the evidence gives {verdict.measured_median} ppm, the settlement says "
                        f"{settlement.measured_ppm} ppm")
    sat = next((settlement.values_ppm[i] for i, s in enumerate(terms.services) if s.kind is Kind.satisfaction), None)
    outcome = period_outcome(terms, values, 2**255, sat)
    verdict.credit, verdict.service_credits = outcome.capped_credit, outcome.service_credits
    if resolution is None and outcome.service_credits != settlement.service_credits:
        # (DisputeResolved carries no per-service credits: after one, the total is compared.)
        problems.append(f"service credits: the evidence implies {list(outcome.service_credits)}, "
                        f"the settlement paid {list(settlement.service_credits)}")
    if settlement.credit_paid != outcome.capped_credit and not _collateral_exhausted(
            agreement, period, outcome.capped_credit - settlement.credit_paid):
        problems.append(f"credit: the evidence implies {outcome.capped_credit}, the settlement paid "
                        f"{settlement.credit_paid}")
    problems += disputed
    verdict.outcome = "mismatch" if problems else "verified"
    return verdict


def explaining_check(verdict: Verdict, index: int) -> tuple[OracleCheck, int]:
    """The record that explains a verified figure of service `index`, and that figure: an oracle's
    whose figure is the median, or, after a resolved dispute, the disputing party's evidence the
    correction rests on."""
    assert verdict.settlement is not None and verdict.oracles
    value = verdict.settlement.values_ppm[index]
    check = next((c for c in [*verdict.oracles, *verdict.disputes]
                  if c.figures.get(index) is not None and c.figures[index].value_ppm == value), verdict.oracles[0])
    return check, value


def dispute_resolution(agreement: Agreement, period: int) -> tuple[tuple[int, ...], int] | None:
    """(corrected values, credit paid) of the arbiter's DisputeResolved for `period`, if any (a
    period is resolved at most once: it is final afterwards)."""
    logs = agreement.contract.events.DisputeResolved().get_logs(from_block=0, argument_filters={"period": period})
    if not logs:
        return None
    args = logs[-1]["args"]
    return tuple(int(v) for v in args["valuesPpm"]), int(args["creditPaid"])


def dispute_roots(agreement: Agreement, period: int) -> dict[str, str]:
    """party (checksummed) -> the evidence root its dispute of `period` named (Disputed)."""
    logs = agreement.contract.events.Disputed().get_logs(from_block=0, argument_filters={"period": period})
    return {Web3.to_checksum_address(log["args"]["by"]): "0x" + bytes(log["args"]["evidence"]).hex() for log in logs}


def _collateral_exhausted(agreement: Agreement, period: int, shortfall: int) -> bool:
    """A smaller credit is right when the collateral ran out (CollateralExhausted, same shortfall)."""
    if shortfall <= 0:
        return False
    logs = agreement.contract.events.CollateralExhausted().get_logs(from_block=0)
    return any(log["args"]["period"] == period and log["args"]["shortfall"] == shortfall for log in logs)


def _fmt_value(terms: Terms, index: int, value: int) -> str:
    if terms.services[index].kind is Kind.latency:
        return f"{value:,} ms"
    return f"{value / 10_000:.4f} %"


def runs_with_times(record: ServiceRecord, state: str) -> list[tuple[int, int, int]]:
    """(first slice, slice count, start time) of each run of `state`."""
    out: list[tuple[int, int, int]] = []
    i = 0
    for s, n in record.runs:
        if s == state:
            out.append((i, n, record.start + i * record.slice_seconds))
        i += n
    return out


def to_json(verdict: Verdict) -> dict[str, Any]:
    return json.loads(json.dumps({
        "agreement": verdict.agreement, "period": verdict.period, "outcome": verdict.outcome,
        "problems": verdict.problems, "missing": verdict.missing,
        "medians": {str(k): v for k, v in verdict.medians.items()}, "measuredPpm": verdict.measured_median,
        "credit": verdict.credit,
        "oracles": [{"oracle": c.oracle, "source": c.where, "root": c.bundle_root, "committedRoot": c.committed_root,
                     "figures": {str(k): f.value_ppm for k, f in c.figures.items()}} for c in verdict.oracles],
    }))


__all__ = ["DOWN", "NONE", "UP", "OracleCheck", "explaining_check",
           "Source", "Verdict", "check_bundle", "evidence_url", "fetch_bundle",
           "read_bundle", "runs_with_times", "to_json", "verify_period"]
