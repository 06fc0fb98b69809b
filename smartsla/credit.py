"""Reference model of the contracts' credit arithmetic and escrow books.

The same integer arithmetic as contracts/CreditMath.sol and contracts/Agreement.sol, written
independently so that tests can check the chain against it (property tests with random
schedules and values, and random operation sequences for the books).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .terms import Kind, Service, Terms
from .units import BPS, PPM


def tier_credit_bps(service: Service, value: int) -> int:
    """Credit share earned by a measured value: the harshest tier it is strictly beyond (below for
    availability-like services, above for latency); nothing when the objective is met."""
    if service.lower_is_better:
        if value <= service.objective:
            return 0
        return max((t.credit_bps for t in service.tiers if value > t.threshold), default=0)
    if value >= service.objective:
        return 0
    return max((t.credit_bps for t in service.tiers if value < t.threshold), default=0)


def service_credit(service: Service, value: int, fee_per_period: int) -> int:
    return fee_per_period * service.weight_bps * tier_credit_bps(service, value) // (BPS * BPS)


def effective_values(terms: Terms, reported: Sequence[int], satisfaction: int | None = None) -> tuple[int, ...]:
    """The values that count: satisfaction services take the customer's attested score (100 % when
    none), composite services the fee-weighted mean of the availability services."""
    if len(reported) != len(terms.services):
        raise ValueError(f"expected {len(terms.services)} values, got {len(reported)}")
    values = list(reported)
    weighted = weights = 0
    for i, (s, v) in enumerate(zip(terms.services, reported, strict=True)):
        if s.kind is Kind.satisfaction:
            values[i] = PPM if satisfaction is None else satisfaction
        elif s.kind is Kind.availability:
            if not 0 <= v <= PPM:
                raise ValueError(f"value {v} of service {i} is outside 0..{PPM} ppm")
            weighted += v * s.weight_bps
            weights += s.weight_bps
        elif not 0 <= v < 2**32:
            raise ValueError(f"value {v} of service {i} does not fit 32 bits")
    for i, s in enumerate(terms.services):
        if s.kind is Kind.composite:
            values[i] = weighted // weights
    return tuple(values)


def median(xs: Sequence[int]) -> int:
    """The committee's median (Agreement._median): the middle value of an odd count; of an even
    count the floor of the mean of the two middle values, which favours neither higher-is-better
    nor lower-is-better services."""
    if not xs:
        raise ValueError("the median of no reports")
    ys = sorted(xs)
    n = len(ys)
    return ys[n // 2] if n % 2 else (ys[n // 2 - 1] + ys[n // 2]) // 2


def served_fee(fee_per_period: int, period_start: int, period_end: int, now: int) -> int:
    """The part of a period's fee the provider earned by `now` when the customer terminates
    (Agreement.terminate): pro rata by the second, rounded down (in the customer's favour)."""
    if not period_start <= now < period_end:
        raise ValueError(f"{now} is not within the period [{period_start}, {period_end})")
    return fee_per_period * (now - period_start) // (period_end - period_start)


@dataclass(frozen=True)
class PeriodOutcome:
    values: tuple[int, ...]  # what counted
    service_credits: tuple[int, ...]
    capped_credit: int  # after the per-period cap
    paid_credit: int  # after the collateral limit
    disaster: bool

    @property
    def shortfall(self) -> int:
        return self.capped_credit - self.paid_credit


def period_outcome(terms: Terms, values_ppm: Sequence[int], collateral_left: int,
                   satisfaction: int | None = None) -> PeriodOutcome:
    values = effective_values(terms, values_ppm, satisfaction)
    fee = terms.fee_per_period
    credits = tuple(service_credit(s, v, fee) for s, v in zip(terms.services, values, strict=True))
    capped = min(sum(credits), fee * terms.credit_cap_bps // BPS)
    disaster = any(v < terms.termination_ppm for s, v in zip(terms.services, values, strict=True)
                   if s.kind in (Kind.availability, Kind.composite))
    return PeriodOutcome(values, credits, capped, min(capped, collateral_left), disaster)


@dataclass
class Books:
    """Where every unit of an agreement's asset is: escrowed, pending its dispute window, owed to a
    party, or withdrawn."""

    terms: Terms
    status: str = "Pending"
    settled_periods: int = 0
    fees_deposited: bool = False
    collateral_deposited: bool = False
    disaster: bool = False
    fees_escrowed: int = 0
    collateral_escrowed: int = 0
    owed: dict[str, int] = field(default_factory=lambda: {"customer": 0, "provider": 0})
    pending: dict[str, int] = field(default_factory=lambda: {"customer": 0, "provider": 0})
    pending_credit: dict[int, int] = field(default_factory=dict)  # period -> credit awaiting its window
    pending_disaster: dict[int, bool] = field(default_factory=dict)  # period -> its reported figure was one
    withdrawn: dict[str, int] = field(default_factory=lambda: {"customer": 0, "provider": 0})
    satisfaction: dict[int, int] = field(default_factory=dict)

    @property
    def held(self) -> int:
        """What the agreement contract must hold."""
        return (self.fees_escrowed + self.collateral_escrowed + sum(self.owed.values())
                + sum(self.pending.values()))

    @property
    def deposited(self) -> int:
        return (self.terms.total_fees if self.fees_deposited else 0) + (
            self.terms.collateral if self.collateral_deposited else 0
        )

    def deposit_fees(self) -> None:
        self.fees_deposited = True
        self.fees_escrowed = self.terms.total_fees
        self._maybe_activate()

    def deposit_collateral(self) -> None:
        self.collateral_deposited = True
        self.collateral_escrowed = self.terms.collateral
        self._maybe_activate()

    def _maybe_activate(self) -> None:
        if self.fees_deposited and self.collateral_deposited:
            self.status = "Active"

    def cancel(self) -> None:
        self.owed["customer"] += self.fees_escrowed
        self.owed["provider"] += self.collateral_escrowed
        self.fees_escrowed = self.collateral_escrowed = 0
        self.status = "Cancelled"

    def settle(self, values_ppm: Sequence[int]) -> PeriodOutcome:
        period = self.settled_periods
        outcome = period_outcome(self.terms, values_ppm, self.collateral_escrowed, self.satisfaction.get(period))
        fee = self.terms.fee_per_period
        self.settled_periods += 1
        self.fees_escrowed -= fee
        self.collateral_escrowed -= outcome.paid_credit
        if self.terms.dispute_window:
            # the disaster clause follows the final figure: nothing opens while disputable
            self.pending["customer"] += outcome.paid_credit
            self.pending["provider"] += fee
            self.pending_credit[period] = outcome.paid_credit
            self.pending_disaster[period] = outcome.disaster
        else:
            self.disaster = self.disaster or outcome.disaster
            self.owed["customer"] += outcome.paid_credit
            self.owed["provider"] += fee
        if self.settled_periods == self.terms.period_count:
            self.status = "Ended"
            self._release_collateral()
        return outcome

    def finalize(self, period: int, credit: int | None = None, disaster: bool | None = None) -> None:
        """A pending period pays out (with `credit` instead of the reported one: an arbiter's
        corrected credit, already limited by the caller to the collateral available; and
        `disaster`: whether the corrected figure is one). The final figure decides the disaster
        clause."""
        reported = self.pending_credit.pop(period)
        reported_disaster = self.pending_disaster.pop(period)
        self.disaster = self.disaster or (reported_disaster if disaster is None else disaster)
        fee = self.terms.fee_per_period
        credit = reported if credit is None else credit
        self.collateral_escrowed += reported - credit
        self.pending["customer"] -= reported
        self.pending["provider"] -= fee
        self.owed["customer"] += credit
        self.owed["provider"] += fee
        if self.status in ("Ended", "Terminated"):
            self._release_collateral()

    def _release_collateral(self) -> None:
        if not self.pending_credit:
            self.owed["provider"] += self.collateral_escrowed
            self.collateral_escrowed = 0

    def terminate(self, now: int) -> int:
        """The customer ends the agreement at `now` (within the next period to settle, after a
        final disaster): the provider earns the served seconds of that period, the customer gets
        the rest and every later fee back. Returns the fee the provider earned."""
        if not self.disaster:
            raise ValueError("no final disaster: the customer cannot terminate")
        period = self.settled_periods
        earned = served_fee(self.terms.fee_per_period, self.terms.period_start(period),
                            self.terms.period_end(period), now)
        self.owed["provider"] += earned
        self.owed["customer"] += self.fees_escrowed - earned
        self.fees_escrowed = 0
        self.status = "Terminated"
        self._release_collateral()
        return earned

    def withdraw(self, party: str) -> int:
        amount = self.owed[party]
        self.owed[party] = 0
        self.withdrawn[party] += amount
        return amount


