"""Agreements written as YAML specs: validate them, turn them into on-chain terms, and back.

The service-level vocabulary follows OpenSLO where it fits (a Service, its SLO with an SLI,
`Timeslices` budgeting, an explicit time window); the SLA layer adds what OpenSLO leaves out:
the parties, the money (asset, fee, collateral), credit schedules with half-open ranges, a cap,
the disaster clause, scope and exclusions, a maintenance clause (notice and budget), the share of
each period that must be measured, disputes, the oracle committee. The services'
`timeSliceWindow` is the agreement's measurement slice (one for all services). A spec that
validates here also validates on-chain: `to_terms()` builds the `smartsla.terms.Terms` that the
factory checks again.

Percentages are written as in SLA documents (`99.99%`), durations as `30s`, `5m`, `48h`, `7d`;
amounts in whole units of the asset (`1.5` ETH), never floating point: they go through Decimal.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from .addresses import parse_address
from .terms import (
    DEFAULT_MIN_MEASURED_PPM,
    DEFAULT_SLICE_SECONDS,
    MAX_MAINTENANCE_WINDOWS,
    ZERO_ADDRESS,
    Kind,
    Service,
    Terms,
    Tier,
)
from .units import BPS, PPM
from .yamlfile import YamlFileError, load_model

API_VERSION = "smartsla/v1"
# The percentile of a latency service whose spec names none (oracle.config's default too).
DEFAULT_LATENCY_PERCENTILE = 95


class SpecError(YamlFileError):
    """A spec cannot become an agreement; the message names file, line and field."""


# ---------------------------------------------------------------- scalar types

def _percent(value: Any) -> Decimal:
    """'99.99%' (or a bare number meaning percent) -> Decimal('99.99')."""
    text = str(value).strip()
    if not text.endswith("%"):
        raise ValueError(f"write a percentage like '99.9%', got {value!r}")
    try:
        number = Decimal(text[:-1].strip())
    except InvalidOperation:
        raise ValueError(f"not a percentage: {value!r}") from None
    if not Decimal(0) <= number <= Decimal(100):
        raise ValueError(f"{value} is outside 0%..100%")
    return number


Percent = Annotated[Decimal, BeforeValidator(_percent)]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def _duration(value: Any) -> int:
    """'30s', '5m', '48h', '7d', '2w' -> seconds. Lower-case units only: OpenSLO's 'M' means
    months, which have no fixed length; calendar months are written `calendar: month`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"write a duration like '30s', '5m', '48h' or '7d', got {value!r}")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


Duration = Annotated[int, BeforeValidator(_duration)]


def _milliseconds(value: Any) -> int:
    m = re.match(r"^\s*(\d+)\s*ms\s*$", str(value))
    if not m:
        raise ValueError(f"write a latency like '300ms', got {value!r}")
    return int(m.group(1))


Millis = Annotated[int, BeforeValidator(_milliseconds)]


def _amount(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError(f"write amounts as strings or integers ('1.5'), not floats: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    if number < 0:
        raise ValueError(f"amount {value} is negative")
    return number


Amount = Annotated[Decimal, BeforeValidator(_amount)]


def _address(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not an Ethereum address: {value!r} (quote it in YAML)")
    return parse_address(value, None)  # the field's path is in front of the message already


Address = Annotated[str, BeforeValidator(_address)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------- spec models

class Metadata(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    displayName: str | None = None  # noqa: N815 - OpenSLO's spelling
    structure: Literal["service-based", "customer-based", "multi-level"] = "service-based"


class Parties(_Strict):
    provider: Address
    customer: Address


class Committee(_Strict):
    members: Annotated[list[Address], Field(min_length=1, max_length=16)]
    quorum: Annotated[int, Field(ge=1, le=16)] = 1


class Erc20(_Strict):
    erc20: Address
    decimals: Annotated[int, Field(ge=0, le=36)] = 18
    symbol: str = "TOKEN"


class Calendar(_Strict):
    unit: Literal["month"]
    timeZone: str = "UTC"  # noqa: N815 - OpenSLO's spelling

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class TimeWindow(_Strict):
    """Periods of a fixed `duration`, or calendar months in a time zone, `count` of them from
    `start`."""

    start: dt.datetime
    duration: Duration | None = None
    calendar: Calendar | None = None
    periodEnds: list[Duration] | None = None  # noqa: N815 - explicit ends after start (as stored on-chain)
    count: Annotated[int, Field(ge=1, lt=2**16)]

    @model_validator(mode="after")
    def _one_kind(self) -> TimeWindow:
        given = [k for k in ("duration", "calendar", "periodEnds") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of duration (e.g. 30d), calendar (unit: month) or periodEnds")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("the period duration must be positive")
        if self.start.tzinfo is None:
            raise ValueError("write start with its time zone, e.g. 2026-12-01T00:00:00Z")
        if self.calendar is not None and self.start.astimezone(ZoneInfo(self.calendar.timeZone)).day > 28:
            raise ValueError("calendar months must start on day 1..28 of a month")
        if self.periodEnds is not None:
            if len(self.periodEnds) != self.count:
                raise ValueError(f"{len(self.periodEnds)} periodEnds for count {self.count}")
            if any(b <= a for a, b in zip([0, *self.periodEnds], self.periodEnds, strict=False)):
                raise ValueError("periodEnds must rise")
        return self

    def period_ends(self) -> tuple[int, int, tuple[int, ...]]:
        """(start unix time, fixed period length or 0, calendar period ends after start)."""
        start = int(self.start.timestamp())
        if self.duration is not None:
            return start, self.duration, ()
        if self.periodEnds is not None:
            return start, 0, tuple(self.periodEnds)
        assert self.calendar is not None
        zone = ZoneInfo(self.calendar.timeZone)
        local = self.start.astimezone(zone)
        ends = []
        year, month = local.year, local.month
        for _ in range(self.count):
            month += 1
            if month == 13:
                year, month = year + 1, 1
            end = local.replace(year=year, month=month)  # same wall time in the zone: DST-aware
            ends.append(int(end.timestamp()) - start)
        return start, 0, tuple(ends)


class CreditRange(_Strict):
    """One tier as a half-open range. Availability-like: `below` (exclusive) down to `atLeast`
    (inclusive). Latency: `above` (exclusive) up to `upTo` (inclusive)."""

    credit: Percent
    below: Percent | None = None
    atLeast: Percent | None = None  # noqa: N815
    above: Millis | None = None
    upTo: Millis | None = None  # noqa: N815

    @model_validator(mode="after")
    def _one_direction(self) -> CreditRange:
        if (self.below is None) == (self.above is None):
            raise ValueError("give below (percent) or above (latency), not both")
        if self.credit == 0:
            raise ValueError("a credit of 0% is no tier: leave it out")
        return self


class Slo(_Strict):
    sli: Literal["availability", "latency", "satisfaction", "composite"] = "availability"
    budgetingMethod: Literal["Timeslices"] = "Timeslices"  # noqa: N815
    timeSliceWindow: Duration = 60  # noqa: N815
    objective: Percent | Millis
    percentile: Literal[50, 95, 99] | None = None  # latency only


class ServiceSpec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=32)]
    displayName: str | None = None  # noqa: N815
    weight: Percent = Decimal(100)
    slo: Slo
    credits: Annotated[list[CreditRange], Field(min_length=1, max_length=8)]

    @model_validator(mode="after")
    def _ranges(self) -> ServiceSpec:
        latency = self.slo.sli == "latency"
        for i, c in enumerate(self.credits):
            if latency and c.above is None:
                raise ValueError(f"credits[{i}]: a latency service's tiers use above/upTo (ms)")
            if not latency and c.below is None:
                raise ValueError(f"credits[{i}]: use below/atLeast (percent) for a {self.slo.sli} service")
        if latency and not isinstance(self.slo.objective, int):
            raise ValueError("a latency objective is written in ms, e.g. '300ms'")
        if not latency and isinstance(self.slo.objective, int):
            raise ValueError("this objective is a percentage, e.g. '99.9%'")
        # Half-open ranges must be ordered, touch, and not overlap: each range starts where the
        # previous one ended, and only the last one is open-ended.
        for i, c in enumerate(self.credits):
            lo, hi = (c.atLeast, c.below) if not latency else (c.above, c.upTo)
            last = i == len(self.credits) - 1
            if not last and (lo if not latency else hi) is None:
                raise ValueError(f"credits[{i}]: only the last range may be open-ended")
            if not latency and c.atLeast is not None and c.below is not None and c.atLeast >= c.below:
                raise ValueError(f"credits[{i}]: atLeast {c.atLeast}% must be below {c.below}%")
            if latency and c.upTo is not None and c.above is not None and c.upTo <= c.above:
                raise ValueError(f"credits[{i}]: upTo {c.upTo}ms must be above {c.above}ms")
            if i:
                prev = self.credits[i - 1]
                touching = prev.atLeast == c.below if not latency else prev.upTo == c.above
                if not touching:
                    raise ValueError(f"credits[{i}]: ranges overlap, leave a gap or are out of order "
                                     f"(each must start where credits[{i - 1}] ends)")
                if c.credit <= prev.credit:
                    raise ValueError(f"credits[{i}]: credit must rise from one range to the next")
        first = self.credits[0]
        if not latency and first.below is not None and first.below > self.slo.objective:
            raise ValueError(f"credits[0]: below {first.below}% is above the objective {self.slo.objective}%")
        if latency and first.above is not None and first.above < self.slo.objective:
            raise ValueError(f"credits[0]: above {first.above}ms is below the objective {self.slo.objective}ms")
        return self

    def to_service(self) -> Service:
        latency = self.slo.sli == "latency"
        if latency:
            objective = int(self.slo.objective)
            # the validator above refused a latency tier without `above`
            tiers = tuple(Tier(threshold=int(c.above or 0), credit_bps=_bps(c.credit)) for c in self.credits)
        else:
            objective = _ppm(Decimal(self.slo.objective))
            tiers = tuple(Tier(threshold=_ppm(c.below), credit_bps=_bps(c.credit)) for c in self.credits)
        # A latency service's percentile is part of the terms (Options.latencyPercentiles): the
        # spec's, or the oracles' default of 95 when it names none, so the method is explicit.
        return Service(name=self.name, kind=Kind[self.slo.sli], objective=objective,
                       weight_bps=_bps(self.weight), tiers=tiers,
                       latency_percentile=(self.slo.percentile or DEFAULT_LATENCY_PERCENTILE) if latency else 0)


class Termination(_Strict):
    below: Percent


class Disputes(_Strict):
    window: Duration
    arbiter: Address


class MaintenanceWindowSpec(_Strict):
    start: dt.datetime
    end: dt.datetime


class Maintenance(_Strict):
    """The maintenance clause: `notice` and `budget` both given (windows declared at least the
    notice ahead are excluded from the figures, at most `budget` over the term) or neither (no
    clause: maintenance counts as ordinary time)."""

    notice: Duration = 0
    budget: Duration = 0
    windows: list[MaintenanceWindowSpec] = Field(default_factory=list)


class Measurement(_Strict):
    """How much of a period the oracles must have measured for their report to count: a period
    below it is not reported (the dispute/expiry path applies)."""

    minMeasured: Percent = Decimal(90)  # noqa: N815


class Scope(_Strict):
    covers: list[str] = Field(default_factory=list)
    exclusions: list[str] = Field(default_factory=list)


class AgreementBody(_Strict):
    parties: Parties
    oracles: Committee
    asset: Literal["ETH"] | Erc20 = "ETH"
    fee: Amount  # per period, in units of the asset
    collateral: Amount = Decimal(0)
    timeWindow: TimeWindow  # noqa: N815
    creditCap: Percent = Decimal(100)  # noqa: N815
    termination: Termination | None = None
    disputes: Disputes | None = None
    maintenance: Maintenance = Field(default_factory=Maintenance)
    measurement: Measurement = Field(default_factory=Measurement)
    scope: Scope = Field(default_factory=Scope)
    services: Annotated[list[ServiceSpec], Field(min_length=1, max_length=16)]

    @model_validator(mode="after")
    def _consistent(self) -> AgreementBody:
        """The rules across fields; every broken one is named, not just the first."""
        problems: list[str] = []
        names = [s.name for s in self.services]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"duplicate service names: {', '.join(dupes)}")
        unknown = [c for c in self.scope.covers if c not in names]
        if unknown:
            problems.append(f"scope.covers names services that are not defined: {', '.join(unknown)}")
        if self.oracles.quorum > len(self.oracles.members):
            problems.append(f"oracles.quorum {self.oracles.quorum} exceeds the {len(self.oracles.members)} members")
        total = sum(s.weight for s in self.services)
        if total != 100:
            problems.append(f"service weights must sum to 100%, they sum to {total}%")
        slices = {s.slo.timeSliceWindow for s in self.services if "timeSliceWindow" in s.slo.model_fields_set}
        if len(slices) > 1:
            problems.append("every service must use the same slo.timeSliceWindow (the agreement counts time in one "
                            f"slice length), got {', '.join(f'{x}s' for x in sorted(slices))}")
        start, _, _ = self.timeWindow.period_ends()
        end = start + self._term_length()
        slice_s = self.slice_seconds
        m = self.maintenance
        if m.windows and not (m.notice and m.budget):
            problems.append("maintenance.windows need a maintenance clause (notice and budget): without one, "
                            "declared maintenance counts as ordinary time")
        for i, w in enumerate(m.windows):
            ws, we = int(w.start.timestamp()), int(w.end.timestamp())
            if we <= ws:
                problems.append(f"maintenance.windows[{i}] ends before it starts")
            if ws < start or we > end:
                problems.append(f"maintenance.windows[{i}] is outside the term")
            if (ws - start) % slice_s or (we - start) % slice_s:
                problems.append(f"maintenance.windows[{i}] must start and end on {slice_s}-second slice boundaries "
                                "from the term's start (the budget is charged what the oracles exclude)")
        if m.budget and sum(int(w.end.timestamp()) - int(w.start.timestamp()) for w in m.windows) > m.budget:
            problems.append(f"maintenance.windows exceed the budget of {m.budget}s")
        if len(m.windows) > MAX_MAINTENANCE_WINDOWS:
            problems.append(f"at most {MAX_MAINTENANCE_WINDOWS} maintenance windows per agreement")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def slice_seconds(self) -> int:
        """The agreement's measurement slice: the services' timeSliceWindow (one for all)."""
        explicit = [s.slo.timeSliceWindow for s in self.services if "timeSliceWindow" in s.slo.model_fields_set]
        return explicit[0] if explicit else DEFAULT_SLICE_SECONDS

    def _term_length(self) -> int:
        _, length, ends = self.timeWindow.period_ends()
        return ends[-1] if ends else length * self.timeWindow.count

    @property
    def decimals(self) -> int:
        return 18 if self.asset == "ETH" else self.asset.decimals


class AgreementSpec(_Strict):
    apiVersion: Literal["smartsla/v1"]  # noqa: N815
    kind: Literal["Agreement"]
    metadata: Metadata
    spec: AgreementBody

    def to_terms(self) -> Terms:
        """The on-chain terms (validated again by smartsla.terms and by the factory)."""
        b = self.spec
        start, length, ends = b.timeWindow.period_ends()
        scale = Decimal(10) ** b.decimals
        return Terms(
            provider=b.parties.provider, customer=b.parties.customer,
            oracles=tuple(b.oracles.members), quorum=b.oracles.quorum,
            asset=ZERO_ADDRESS if b.asset == "ETH" else b.asset.erc20,
            start=start, period_length=length, period_count=b.timeWindow.count, period_ends=ends,
            fee_per_period=_units(b.fee, scale, "fee"), collateral=_units(b.collateral, scale, "collateral"),
            credit_cap_bps=_bps(b.creditCap),
            termination_ppm=_ppm(b.termination.below) if b.termination else 0,
            dispute_window=b.disputes.window if b.disputes else 0,
            arbiter=b.disputes.arbiter if b.disputes else ZERO_ADDRESS,
            maintenance_notice=b.maintenance.notice, maintenance_budget=b.maintenance.budget,
            slice_seconds=b.slice_seconds, min_measured_ppm=_ppm(b.measurement.minMeasured),
            services=tuple(s.to_service() for s in b.services),
        )

    def maintenance_windows(self) -> list[tuple[int, int]]:
        """Windows to declare on-chain right after creation (they get the full notice)."""
        return [(int(w.start.timestamp()), int(w.end.timestamp())) for w in self.spec.maintenance.windows]


# ---------------------------------------------------------------- conversions

def _ppm(percent: Decimal | None) -> int:
    assert percent is not None
    value = percent * 10_000
    if value != value.to_integral_value():
        raise ValueError(f"{percent}% has more precision than 0.0001%")
    return int(value)


def _bps(percent: Decimal) -> int:
    value = percent * 100
    if value != value.to_integral_value():
        raise ValueError(f"{percent}% has more precision than 0.01%")
    return int(value)


def _units(amount: Decimal, scale: Decimal, what: str) -> int:
    value = amount * scale
    if value != value.to_integral_value():
        raise ValueError(f"{what} {amount} has more decimals than the asset")
    return int(value)


def load_spec(path: str | Path) -> AgreementSpec:
    """Read and validate a spec file; SpecError names file, line and field."""
    spec = load_model(AgreementSpec, path, SpecError)
    try:
        spec.to_terms()
    except ValidationError as exc:  # rules only the terms can check (e.g. odd quorum, slices)
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise SpecError(f"{path}: {problems}") from exc
    except ValueError as exc:  # e.g. precision, amounts
        raise SpecError(f"{path}: {exc}") from exc
    return spec


# ---------------------------------------------------------------- terms -> spec

def _pct(ppm_or_bps: int, scale: int) -> str:
    return f"{(Decimal(ppm_or_bps) * 100 / scale).normalize():f}%"


def terms_to_spec(terms: Terms, name: str = "on-chain", decimals: int = 18) -> dict[str, Any]:
    """The spec (as plain data) that describes `terms`: `agreement show` prints it as YAML, and
    it validates and converts back to the same terms (tests check the round trip)."""
    scale = Decimal(10) ** decimals
    start = dt.datetime.fromtimestamp(terms.start, dt.UTC)
    window: dict[str, Any] = {"start": start.isoformat().replace("+00:00", "Z"), "count": terms.period_count}
    if terms.period_ends:
        # The chain stores calendar periods as their ends (the time zone was used to compute them).
        window["periodEnds"] = [f"{e}s" for e in terms.period_ends]
    else:
        window["duration"] = f"{terms.period_length}s"
    services = []
    for s in terms.services:
        latency = s.kind is Kind.latency
        ranges = []
        for i, t in enumerate(s.tiers):
            nxt = s.tiers[i + 1] if i + 1 < len(s.tiers) else None
            if latency:
                r: dict[str, Any] = {"above": f"{t.threshold}ms"}
                if nxt:
                    r["upTo"] = f"{nxt.threshold}ms"
            else:
                r = {"below": _pct(t.threshold, PPM)}
                if nxt:
                    r["atLeast"] = _pct(nxt.threshold, PPM)
            r["credit"] = _pct(t.credit_bps, BPS)
            ranges.append(r)
        objective = f"{s.objective}ms" if latency else _pct(s.objective, PPM)
        slo: dict[str, Any] = {"sli": s.kind.name, "objective": objective}
        if s.latency_percentile:
            slo["percentile"] = s.latency_percentile
        if terms.slice_seconds != DEFAULT_SLICE_SECONDS:
            slo["timeSliceWindow"] = f"{terms.slice_seconds}s"
        services.append({"name": s.name, "weight": _pct(s.weight_bps, BPS), "slo": slo, "credits": ranges})
    body: dict[str, Any] = {
        "parties": {"provider": terms.provider, "customer": terms.customer},
        "oracles": {"members": list(terms.oracles), "quorum": terms.quorum},
        "asset": "ETH" if terms.is_native else {"erc20": terms.asset, "decimals": decimals},
        "fee": f"{(Decimal(terms.fee_per_period) / scale).normalize():f}",
        "collateral": f"{(Decimal(terms.collateral) / scale).normalize():f}",
        "timeWindow": window,
        "creditCap": _pct(terms.credit_cap_bps, BPS),
        "services": services,
    }
    if terms.termination_ppm:
        body["termination"] = {"below": _pct(terms.termination_ppm, PPM)}
    if terms.dispute_window:
        body["disputes"] = {"window": f"{terms.dispute_window}s", "arbiter": terms.arbiter}
    if terms.maintenance_notice or terms.maintenance_budget:
        body["maintenance"] = {"notice": f"{terms.maintenance_notice}s", "budget": f"{terms.maintenance_budget}s"}
    if terms.min_measured_ppm != DEFAULT_MIN_MEASURED_PPM:
        body["measurement"] = {"minMeasured": _pct(terms.min_measured_ppm, PPM)}
    return {"apiVersion": API_VERSION, "kind": "Agreement", "metadata": {"name": name}, "spec": body}


def dump_spec(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
