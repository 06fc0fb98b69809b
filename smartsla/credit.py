"""Reference model of the contracts' credit arithmetic and escrow books.

The same integer arithmetic as contracts/CreditMath.sol and contracts/Agreement.sol, written
independently so that tests can check the chain against it (property tests with random
schedules and values, and random operation sequences for the books).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .terms import Service, Terms
from .units import BPS, PPM


def tier_credit_bps(service: Service, value_ppm: int) -> int:
    """Credit share earned by a measured value: the harshest tier it falls strictly below."""
    if value_ppm >= service.objective_ppm:
        return 0
    applicable = [t.credit_bps for t in service.tiers if value_ppm < t.below_ppm]
    return max(applicable, default=0)


def service_credit(service: Service, value_ppm: int, fee_per_period: int) -> int:
    return fee_per_period * service.weight_bps * tier_credit_bps(service, value_ppm) // (BPS * BPS)


@dataclass(frozen=True)
class PeriodOutcome:
    service_credits: tuple[int, ...]
    capped_credit: int  # after the per-period cap
    paid_credit: int  # after the collateral limit
    disaster: bool

    @property
    def shortfall(self) -> int:
        return self.capped_credit - self.paid_credit


def period_outcome(terms: Terms, values_ppm: list[int] | tuple[int, ...], collateral_left: int) -> PeriodOutcome:
    if len(values_ppm) != len(terms.services):
        raise ValueError(f"expected {len(terms.services)} values, got {len(values_ppm)}")
    for i, v in enumerate(values_ppm):
        if not 0 <= v <= PPM:
            raise ValueError(f"value {v} of service {i} is outside 0..{PPM} ppm")
    fee = terms.fee_per_period
    credits = tuple(service_credit(s, v, fee) for s, v in zip(terms.services, values_ppm, strict=True))
    capped = min(sum(credits), terms.fee_per_period * terms.credit_cap_bps // BPS)
    disaster = any(v < terms.termination_ppm for v in values_ppm)
    return PeriodOutcome(credits, capped, min(capped, collateral_left), disaster)


@dataclass
class Books:
    """Where every unit of an agreement's asset is: escrowed, owed to a party, or withdrawn."""

    terms: Terms
    status: str = "Pending"
    settled_periods: int = 0
    fees_deposited: bool = False
    collateral_deposited: bool = False
    disaster: bool = False
    fees_escrowed: int = 0
    collateral_escrowed: int = 0
    owed: dict[str, int] = field(default_factory=lambda: {"customer": 0, "provider": 0})
    withdrawn: dict[str, int] = field(default_factory=lambda: {"customer": 0, "provider": 0})

    @property
    def held(self) -> int:
        """What the agreement contract must hold."""
        return self.fees_escrowed + self.collateral_escrowed + self.owed["customer"] + self.owed["provider"]

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

    def settle(self, values_ppm: list[int]) -> PeriodOutcome:
        outcome = period_outcome(self.terms, values_ppm, self.collateral_escrowed)
        fee = self.terms.fee_per_period
        self.settled_periods += 1
        self.disaster = self.disaster or outcome.disaster
        self.fees_escrowed -= fee
        self.collateral_escrowed -= outcome.paid_credit
        self.owed["customer"] += outcome.paid_credit
        self.owed["provider"] += fee
        if self.settled_periods == self.terms.period_count:
            self.owed["provider"] += self.collateral_escrowed
            self.collateral_escrowed = 0
            self.status = "Ended"
        return outcome

    def terminate(self) -> None:
        self.owed["customer"] += self.fees_escrowed
        self.owed["provider"] += self.collateral_escrowed
        self.fees_escrowed = self.collateral_escrowed = 0
        self.status = "Terminated"

    def withdraw(self, party: str) -> int:
        amount = self.owed[party]
        self.owed[party] = 0
        self.withdrawn[party] += amount
        return amount
