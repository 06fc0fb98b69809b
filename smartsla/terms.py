"""Agreement terms in Python, validated by the same rules as AgreementFactory.validate.

Validating here first means bad terms get a clear error and nothing is sent to the chain; the
contract checks again, because the chain must not trust its callers.
"""

from __future__ import annotations

import warnings
from enum import IntEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .addresses import parse_address
from .units import BPS, PPM

ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = "0x" + "00" * 32
# The latency percentiles the oracles compute (AgreementFactory: UnsupportedPercentile otherwise).
LATENCY_PERCENTILES = (50, 95, 99)
MAX_SERVICES = 16
MAX_TIERS = 8
MAX_ORACLES = 16
MAX_SLICE_SECONDS = 3600
MAX_MAINTENANCE_WINDOWS = 64  # Agreement.MAX_MAINTENANCE_WINDOWS
DEFAULT_SLICE_SECONDS = 60  # what AgreementFactory.createAgreement agrees to
DEFAULT_MIN_MEASURED_PPM = 900_000
# EIP-170 limits code to 24,576 bytes; an OpenZeppelin clone's own code takes 45 of them.
MAX_PACKED_TERMS = 24_531

Ppm = Annotated[int, Field(ge=0, le=PPM)]
Bps = Annotated[int, Field(ge=0, le=BPS)]


def service_id_bytes(name: str) -> bytes:
    """A service name as the contract's bytes32 id (UTF-8, at most 32 bytes, zero-padded)."""
    raw = name.encode()
    if not raw or len(raw) > 32:
        raise ValueError(f"service name must be 1..32 bytes of UTF-8, got {name!r}")
    return raw.ljust(32, b"\0")


def service_name(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode(errors="replace")


def _renamed(data: Any, old: str, new: str) -> Any:
    """Accept a field under its name before issue 13 ('below_ppm', 'objective_ppm'): terms the event
    index stored as JSON before the rename, and JSON written by hand, keep loading."""
    if not isinstance(data, dict) or old not in data:
        return data
    if new in data:
        raise ValueError(f"both {old!r} (deprecated) and {new!r} given: keep {new!r}")
    warnings.warn(f"{old!r} is deprecated: use {new!r} (ppm, or ms for a latency service)", DeprecationWarning,
                  stacklevel=2)
    return {new if k == old else k: v for k, v in data.items()}


class Tier(BaseModel):
    """Beyond `threshold` the service earns `credit_bps` of its share of the period fee: strictly
    below it for availability-like services (ppm), strictly above it for latency services (ms)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    threshold: Annotated[int, Field(ge=0, lt=2**32)]
    credit_bps: Annotated[int, Field(gt=0, le=BPS)]

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data: Any) -> Any:
        return _renamed(data, "below_ppm", "threshold")


class Kind(IntEnum):
    """What a service measures (the contract's KIND_* constants)."""

    availability = 0  # ppm, higher is better
    latency = 1  # milliseconds, lower is better (an experience objective)
    satisfaction = 2  # ppm score attested by the customer (an experience objective)
    composite = 3  # fee-weighted mean of the availability services, computed on-chain


class Service(BaseModel):
    """One service of an agreement. `objective` and the tiers' `threshold`s are in ppm for availability,
    satisfaction and composite services, in milliseconds for latency services (Kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: Annotated[str, Field(min_length=1)]
    objective: Annotated[int, Field(gt=0, lt=2**32)]
    weight_bps: Annotated[int, Field(gt=0, le=BPS)] = BPS
    tiers: tuple[Tier, ...]
    kind: Kind = Kind.availability
    # Latency services: the percentile (50, 95, 99) of the per-slice latencies the period's figure
    # is, fixed in the terms (Options.latencyPercentiles); 0 = not fixed (and always 0 for every
    # other kind).
    latency_percentile: Annotated[int, Field(ge=0, lt=256)] = 0

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data: Any) -> Any:
        return _renamed(data, "objective_ppm", "objective")

    @field_validator("name")
    @classmethod
    def _name_fits(cls, v: str) -> str:
        service_id_bytes(v)
        return v

    @field_validator("kind", mode="before")
    @classmethod
    def _kind_by_name(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.isdigit():
            try:
                return Kind[v]
            except KeyError:
                raise ValueError(f"unknown kind {v!r}: one of {', '.join(k.name for k in Kind)}") from None
        return v

    @property
    def lower_is_better(self) -> bool:
        return self.kind is Kind.latency

    @model_validator(mode="after")
    def _tiers_ordered(self) -> Service:
        if self.latency_percentile and self.kind is not Kind.latency:
            raise ValueError(f"service {self.name!r}: a latency percentile ({self.latency_percentile}) is only for "
                             f"latency services, this one is {self.kind.name}")
        if self.latency_percentile and self.latency_percentile not in LATENCY_PERCENTILES:
            raise ValueError(f"service {self.name!r}: latency percentile {self.latency_percentile} is not one of "
                             f"{', '.join(map(str, LATENCY_PERCENTILES))}")
        if not self.lower_is_better and self.objective > PPM:
            raise ValueError(f"service {self.name!r}: objective {self.objective} ppm is above 100 %")
        if not 1 <= len(self.tiers) <= MAX_TIERS:
            raise ValueError(f"service {self.name!r}: needs 1..{MAX_TIERS} tiers, has {len(self.tiers)}")
        for i, tier in enumerate(self.tiers):
            if self.lower_is_better and tier.threshold < self.objective:
                raise ValueError(f"service {self.name!r}: latency tier {i} bound {tier.threshold} ms is below the "
                                 "objective")
            if not self.lower_is_better and tier.threshold > self.objective:
                raise ValueError(f"service {self.name!r}: tier {i} threshold {tier.threshold} is above the objective")
            if i:
                prev = self.tiers[i - 1]
                if self.lower_is_better and tier.threshold <= prev.threshold:
                    raise ValueError(f"service {self.name!r}: latency tier {i} bound must rise above tier {i - 1}'s")
                if not self.lower_is_better and tier.threshold >= prev.threshold:
                    raise ValueError(f"service {self.name!r}: tier {i} threshold must fall below tier {i - 1}'s")
                if tier.credit_bps <= prev.credit_bps:
                    raise ValueError(f"service {self.name!r}: tier {i} credit must rise above tier {i - 1}'s")
        return self


class Terms(BaseModel):
    """Everything fixed when an agreement is created. Amounts are in the asset's smallest unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    provider: str
    customer: str
    oracles: tuple[str, ...]
    quorum: Annotated[int, Field(ge=1, le=MAX_ORACLES)] = 1
    asset: str = ZERO_ADDRESS
    start: Annotated[int, Field(ge=0, lt=2**64)]
    period_length: Annotated[int, Field(ge=0, lt=2**32)]  # 0 with calendar period_ends
    period_count: Annotated[int, Field(gt=0, lt=2**16)]
    fee_per_period: Annotated[int, Field(gt=0, lt=2**128)]
    collateral: Annotated[int, Field(ge=0, lt=2**128)]
    credit_cap_bps: Annotated[int, Field(gt=0, le=BPS)] = BPS
    termination_ppm: Ppm = 0
    services: tuple[Service, ...]
    # Options (AgreementFactory.createAgreementWithOptions)
    dispute_window: Annotated[int, Field(ge=0, lt=2**32)] = 0
    arbiter: str = ZERO_ADDRESS
    # The maintenance clause: both zero (no clause, nothing is ever excluded) or both positive
    # (windows declared `maintenance_notice` ahead are excluded, at most `maintenance_budget`
    # seconds over the term).
    maintenance_notice: Annotated[int, Field(ge=0, lt=2**32)] = 0
    maintenance_budget: Annotated[int, Field(ge=0, lt=2**32)] = 0
    # The measurement slice (seconds): the unit the oracles count and exclude in; every period
    # boundary is a whole number of slices after `start`.
    slice_seconds: Annotated[int, Field(ge=1, le=MAX_SLICE_SECONDS)] = DEFAULT_SLICE_SECONDS
    # The least share of a period's countable time the oracles must have measured to report it.
    min_measured_ppm: Ppm = DEFAULT_MIN_MEASURED_PPM
    # Calendar periods: the end of each period in seconds after `start` (then period_length is 0).
    period_ends: tuple[Annotated[int, Field(gt=0, lt=2**32)], ...] = ()
    # keccak256 of the canonical specification document (smartsla.spec_hash), 0x-hex; zero when
    # the agreement was created without one.
    spec_hash: str = ZERO_HASH

    @field_validator("spec_hash", mode="before")
    @classmethod
    def _hash32(cls, v: Any) -> str:
        if isinstance(v, bytes | bytearray):
            v = "0x" + bytes(v).hex()
        if not isinstance(v, str) or len(v.removeprefix("0x")) != 64:
            raise ValueError(f"spec_hash must be 32 bytes in 0x-hex, got {v!r}")
        try:
            bytes.fromhex(v.removeprefix("0x"))
        except ValueError:
            raise ValueError(f"spec_hash is not hex: {v!r}") from None
        return "0x" + v.removeprefix("0x").lower()

    @model_validator(mode="before")
    @classmethod
    def _single_oracle(cls, data: Any) -> Any:
        """`oracle=X` is shorthand for a committee of one: `oracles=(X,), quorum=1`."""
        if isinstance(data, dict) and "oracle" in data:
            data = dict(data)
            if "oracles" in data:
                raise ValueError("give either oracle or oracles, not both")
            data["oracles"] = (data.pop("oracle"),)
        return data

    @field_validator("provider", "customer", "asset", "arbiter", mode="before")
    @classmethod
    def _address(cls, v: Any, info: Any) -> str:
        return parse_address(v, info.field_name)

    @field_validator("oracles", mode="before")
    @classmethod
    def _oracle_addresses(cls, v: Any) -> tuple[str, ...]:
        if isinstance(v, str) or not hasattr(v, "__iter__"):
            raise ValueError("oracles must be a list of addresses")
        return tuple(parse_address(o, f"oracles[{i}]") for i, o in enumerate(v))

    @model_validator(mode="after")
    def _consistent(self) -> Terms:
        """AgreementFactory.validate's rules (except the start, which needs the chain's clock:
        `client.Factory.create_agreement` checks it). Every broken rule is named, not just the
        first."""
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def problems(self) -> list[str]:
        """Every rule of AgreementFactory.validate these terms break (empty when sound)."""
        out: list[str] = []
        for field in ("provider", "customer"):
            if int(getattr(self, field), 16) == 0:
                out.append(f"{field} is the zero address")
        if self.provider == self.customer:
            out.append("provider and customer are the same address")
        if not 1 <= len(self.oracles) <= MAX_ORACLES:
            out.append(f"the oracle committee needs 1..{MAX_ORACLES} members, has {len(self.oracles)}")
        if len(set(self.oracles)) != len(self.oracles):
            out.append("duplicate oracle in the committee")
        for o in self.oracles:
            if int(o, 16) == 0:
                out.append("an oracle is the zero address")
            if o in (self.provider, self.customer):
                out.append(f"a party cannot be an oracle: {o}")
        if self.quorum > len(self.oracles):
            out.append(f"quorum {self.quorum} exceeds the committee of {len(self.oracles)}")
        if self.quorum % 2 == 0:
            # an odd quorum has a true middle report: no tie for one bribed member to break
            out.append(f"quorum must be odd, got {self.quorum}")
        if self.fee_per_period * self.period_count + self.collateral >= 2**128:
            out.append("total fees (fee_per_period x period_count) plus collateral overflow 128 bits")
        if not 1 <= len(self.services) <= MAX_SERVICES:
            out.append(f"an agreement covers 1..{MAX_SERVICES} services, got {len(self.services)}")
        names = [s.name for s in self.services]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            out.append(f"duplicate service names: {', '.join(dupes)}")
        total = sum(s.weight_bps for s in self.services)
        if total != BPS:
            out.append(f"service weights must sum to {BPS} bps (100 %), they sum to {total}")
        slice_s = self.slice_seconds
        if self.period_ends:
            if self.period_length:
                out.append("give either period_length or calendar period_ends, not both")
            if len(self.period_ends) != self.period_count:
                out.append(f"{len(self.period_ends)} period ends for {self.period_count} periods")
            if any(b <= a for a, b in zip((0, *self.period_ends), self.period_ends, strict=False)):
                out.append("period ends must rise")
            off = [e for e in self.period_ends if e % slice_s]
            if off:
                out.append(f"period ends must be whole numbers of {slice_s}-second slices: {off[:5]}")
        elif self.period_length == 0:
            out.append("period_length must be positive")
        elif self.period_length % slice_s:
            out.append(f"period_length {self.period_length} s is not a whole number of {slice_s}-second slices")
        if (self.maintenance_notice == 0) != (self.maintenance_budget == 0):
            out.append("maintenance notice and budget go together: give both (a maintenance clause) or neither")
        if any(s.latency_percentile for s in self.services):
            # Options.latencyPercentiles is all or nothing: once one is fixed, every latency
            # service names its own.
            unset = [s.name for s in self.services if s.kind is Kind.latency and not s.latency_percentile]
            if unset:
                out.append(f"latency services without a percentile while others have one: {', '.join(unset)}")
        kinds = {s.kind for s in self.services}
        if Kind.composite in kinds and Kind.availability not in kinds:
            out.append("a composite service needs availability services to combine")
        if self.dispute_window:
            if int(self.arbiter, 16) == 0:
                out.append("a dispute window needs an arbiter")
            if self.arbiter in (self.provider, self.customer):
                out.append("a party cannot be the arbiter")
        size = self.packed_length
        if size > MAX_PACKED_TERMS:
            out.append(f"the packed terms take {size:,} bytes, more than a clone holds ({MAX_PACKED_TERMS:,})")
        return out

    @property
    def packed_length(self) -> int:
        """Bytes of the terms packed into the agreement's clone (TermsCodec.packedLength)."""
        return (114 + 20 * len(self.oracles) + 74 + 4 * len(self.period_ends) + 1
                + sum(41 + 6 * len(s.tiers) for s in self.services))

    @property
    def has_maintenance_clause(self) -> bool:
        """Whether declared maintenance can ever be excluded from the figures."""
        return self.maintenance_notice > 0 and self.maintenance_budget > 0

    # ---------------------------------------------------------------- derived
    @property
    def total_fees(self) -> int:
        return self.fee_per_period * self.period_count

    @property
    def end(self) -> int:
        return self.period_end(self.period_count - 1)

    def period_end(self, period: int) -> int:
        if self.period_ends:
            return self.start + self.period_ends[period]
        return self.start + (period + 1) * self.period_length

    def period_start(self, period: int) -> int:
        return self.start if period == 0 else self.period_end(period - 1)

    @property
    def oracle(self) -> str:
        """The first committee member (the only one in a single-oracle agreement)."""
        return self.oracles[0]

    @property
    def has_options(self) -> bool:
        """Whether creating needs createAgreementWithOptions (else the cheaper createAgreement)."""
        return bool(self.dispute_window or self.maintenance_notice or self.maintenance_budget
                    or int(self.arbiter, 16) or self.period_ends
                    or self.slice_seconds != DEFAULT_SLICE_SECONDS
                    or self.min_measured_ppm != DEFAULT_MIN_MEASURED_PPM
                    or int(self.spec_hash, 16) != 0
                    or any(s.kind is not Kind.availability or s.latency_percentile for s in self.services))

    @property
    def is_native(self) -> bool:
        return int(self.asset, 16) == 0

    # ---------------------------------------------------------------- ABI
    def to_abi(self) -> tuple[Any, ...]:
        """The Terms struct as the contracts' ABI expects it."""
        services = [
            (service_id_bytes(s.name), s.objective, s.weight_bps, [(t.threshold, t.credit_bps) for t in s.tiers])
            for s in self.services
        ]
        return (
            self.provider, self.customer, list(self.oracles), self.quorum, self.asset, self.start, self.period_length,
            self.period_count, self.fee_per_period, self.collateral, self.credit_cap_bps,
            self.termination_ppm, services,
        )

    @property
    def latency_percentiles(self) -> list[int]:
        """Options.latencyPercentiles: one per service, or empty when none is fixed."""
        ps = [s.latency_percentile for s in self.services]
        return ps if any(ps) else []

    def options_abi(self) -> tuple[Any, ...]:
        """The Options struct as the contracts' ABI expects it."""
        return (self.dispute_window, self.arbiter, self.maintenance_notice, [int(s.kind) for s in self.services],
                list(self.period_ends), self.maintenance_budget, self.slice_seconds, self.min_measured_ppm,
                bytes.fromhex(self.spec_hash.removeprefix("0x")), self.latency_percentiles)

    @classmethod
    def from_abi(cls, raw: Any, options: Any = None) -> Terms:
        """Inverse of :meth:`to_abi` (and :meth:`options_abi`), for what ``Agreement.terms()``
        and ``Agreement.options()`` return: named tuples (Chain.contract decodes tuples), read by
        the Solidity field names. Without `options`, the defaults of an agreement without any."""
        services = raw.services
        kinds = list(options.serviceKinds) if options is not None else []
        percentiles = list(options.latencyPercentiles) if options is not None else []
        method: dict[str, Any] = {} if options is None else {
            "dispute_window": options.disputeWindow, "arbiter": options.arbiter,
            "maintenance_notice": options.maintenanceNotice, "period_ends": tuple(options.periodEnds),
            "maintenance_budget": options.maintenanceBudget, "slice_seconds": options.sliceLength,
            "min_measured_ppm": options.minMeasuredPpm, "spec_hash": "0x" + bytes(options.specHash).hex()}
        return cls(
            provider=raw.provider, customer=raw.customer, oracles=tuple(raw.oracles), quorum=raw.quorum,
            asset=raw.asset, start=raw.start, period_length=raw.periodLength, period_count=raw.periodCount,
            fee_per_period=raw.feePerPeriod, collateral=raw.collateral, credit_cap_bps=raw.creditCapBps,
            termination_ppm=raw.terminationPpm, **method,
            services=tuple(
                Service(name=service_name(s.id), objective=s.objective, weight_bps=s.weightBps,
                        kind=Kind(kind), latency_percentile=pct,
                        tiers=tuple(Tier(threshold=t.threshold, credit_bps=t.creditBps) for t in s.tiers))
                for s, kind, pct in zip(services, kinds or [0] * len(services),
                                        percentiles or [0] * len(services), strict=True)
            ),
        )
