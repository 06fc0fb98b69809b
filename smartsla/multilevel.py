"""Multi-level agreements seen by their users: what kind an address is, what one holds now, and
the one call that sends the oracle's report.

The contract is driven by `smartsla.corporate.Corporate`; the CLI (smartsla.cli.corporate), the
oracle daemon (oracle.corporate) and the demo read and act through this module so that a change
of the contract's interface is adapted here, once:

* `is_corporate` decides whether an address is a multi-level agreement (the contract is asked:
  only a CorporateAgreement answers `departmentCount()`);
* `read_state` is every read of a deployed one's state (pool, exposure, departments' progress);
* `send_report` is the oracle's report call (the values and the evidence behind them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from web3 import Web3

from .chain import Chain, TxResult
from .corporate import Corporate, CorporateTerms
from .errors import NotAnAgreement
from .terms import DEFAULT_MIN_MEASURED_PPM, ZERO_ADDRESS, Service

KIND = "CorporateAgreement"


# ---------------------------------------------------------------- which kind
def is_corporate(chain: Chain, address: str) -> bool:
    """Whether `address` holds a multi-level agreement: the contract is asked (only a
    CorporateAgreement answers departmentCount()). Nothing is recorded at creation: a record
    would be a second truth that a restarted dev chain (same chain id, new contracts) makes
    wrong, and one call costs nothing. Raises NotAnAgreement when no contract is there."""
    address = Web3.to_checksum_address(address)
    if not chain.w3.eth.get_code(address):
        raise NotAnAgreement(f"no contract at {address} on chain id {chain.chain_id}")
    try:
        chain.contract(KIND, address).functions.departmentCount().call()
    except Exception:  # noqa: BLE001 - any failure (revert, undecodable answer): not this kind
        return False
    return True


# ---------------------------------------------------------------- state
@dataclass(frozen=True)
class DepartmentState:
    index: int
    name: str
    payout: str
    fee_per_period: int
    settled_periods: int
    worst_credit: int  # the pool's reservation per unsettled period
    credits_paid: int  # every settled period's credit, so far
    owed: int  # credited to the payout address and not withdrawn yet
    periods: tuple[tuple[int, int, int], ...]  # (period, credit paid, fee) per settled period


@dataclass(frozen=True)
class CorporateState:
    status: str  # Pending, Active, Ended, Cancelled, Expired
    fees_deposited: bool
    collateral_deposited: bool
    reported_periods: int
    fees_escrowed: int
    pool: int  # collateral still held
    exposure: int  # the most the pool can still have to pay: each department's worst credit, each unsettled period
    owed_provider: int
    owed_organisation: int
    balance: int
    departments: tuple[DepartmentState, ...]
    reported_values: tuple[tuple[int, ...], ...]  # per reported period, one value (ppm) per corporate service

    @property
    def settled_periods(self) -> int:
        """Periods settled for every department."""
        return min((d.settled_periods for d in self.departments), default=0)


def read_state(corporate: Corporate, terms: CorporateTerms, names: Sequence[str] | None = None) -> CorporateState:
    """Everything the chain holds about a multi-level agreement now. `names`: the departments'
    names from its spec (the chain holds none: department-<i> otherwise)."""
    f = corporate.contract.functions
    call = corporate.chain.call
    cancelled, expired = call(f.cancelled()), call(f.expired())
    fees_in, collateral_in = call(f.feesDeposited()), call(f.collateralDeposited())
    reported = call(f.reportedPeriods())
    paid: dict[int, list[tuple[int, int, int]]] = {}
    for log in corporate.contract.events.DepartmentSettled().get_logs(from_block=0):
        a = log["args"]
        paid.setdefault(int(a["department"]), []).append((int(a["period"]), int(a["creditPaid"]), int(a["fee"])))
    departments = []
    exposure = 0
    for i, d in enumerate(terms.departments):
        settled = call(f.settledPeriodsOf(i))
        worst = call(f.worstCreditOf(i))
        if not (cancelled or (expired and settled >= reported)):
            # After expire, only reported periods still settle; their reservations stay in the pool.
            exposure += worst * ((reported if expired else terms.period_count) - settled)
        periods = tuple(sorted(paid.get(i, [])))
        name = names[i] if names is not None and i < len(names) else d.name
        departments.append(DepartmentState(i, name, d.payout, d.fee_per_period, settled, worst,
                                           sum(p[1] for p in periods), call(f.owed(d.payout)), periods))
    if cancelled:
        status = "Cancelled"
    elif expired:
        status = "Expired"
    elif not (fees_in and collateral_in):
        status = "Pending"
    elif min((d.settled_periods for d in departments), default=0) >= terms.period_count:
        status = "Ended"
    else:
        status = "Active"
    return CorporateState(status, fees_in, collateral_in, reported, call(f.feesEscrowed()), call(f.collateralPool()),
                          exposure, call(f.owed(terms.provider)), call(f.owed(terms.organisation)),
                          corporate.chain.balance(corporate.address), tuple(departments),
                          tuple(tuple(call(f.reportedValues(p))) for p in range(reported)))


def reported_periods(corporate: Corporate) -> int:
    return int(corporate.chain.call(corporate.contract.functions.reportedPeriods()))


def settled_periods_of(corporate: Corporate, index: int) -> int:
    return int(corporate.chain.call(corporate.contract.functions.settledPeriodsOf(index)))


def finished(corporate: Corporate) -> bool:
    """Cancelled or expired: nothing more will be reported (reported periods may still settle)."""
    f = corporate.contract.functions
    return bool(corporate.chain.call(f.cancelled()) or corporate.chain.call(f.expired()))


def funded(corporate: Corporate) -> bool:
    f = corporate.contract.functions
    return bool(corporate.chain.call(f.feesDeposited()) and corporate.chain.call(f.collateralDeposited()))


# ---------------------------------------------------------------- measuring
# The contract takes reports until this long after the term (CorporateAgreement.REPORT_DEADLINE);
# after it nothing more can be reported and the agreement can only be expired.
REPORT_DEADLINE_S = 30 * 24 * 3600


@dataclass(frozen=True)
class MeasuredTerms:
    """What measuring code (the oracle daemon's probes, slice records, evidence, running-period
    gauges and signed payload; the demo's evidence) reads of an agreement's terms, for a
    multi-level agreement. The slice length and the minimum measured share are not in its terms
    (yet): the daemon's setting and the Agreement default apply."""

    services: tuple[Service, ...]
    start: int
    period_length: int
    period_count: int
    slice_seconds: int
    oracles: tuple[str, ...]
    provider: str
    asset: str
    fee_per_period: int  # the organisation's, all departments
    credit_cap_bps: int
    min_measured_ppm: int = DEFAULT_MIN_MEASURED_PPM
    dispute_window: int = 0
    quorum: int = 1

    def period_end(self, period: int) -> int:
        return self.start + (period + 1) * self.period_length

    def period_start(self, period: int) -> int:
        return self.start + period * self.period_length

    @property
    def end(self) -> int:
        return self.period_end(self.period_count - 1)

    @property
    def is_native(self) -> bool:
        return int(self.asset, 16) == 0

    @property
    def report_deadline(self) -> int:
        return self.end + REPORT_DEADLINE_S



def measured_terms(terms: CorporateTerms, slice_seconds: int) -> MeasuredTerms:
    return MeasuredTerms(terms.services, terms.start, terms.period_length, terms.period_count, slice_seconds,
                         (terms.oracle,), terms.provider, terms.asset or ZERO_ADDRESS,
                         sum(d.fee_per_period for d in terms.departments), terms.credit_cap_bps)


# ---------------------------------------------------------------- the oracle's report
def send_report(corporate: Corporate, period: int, values: Sequence[int], sender: str, *,
                measured_ppm: int, evidence_root: bytes) -> TxResult:
    """The oracle's report of `period`: one value per corporate service, and what backs them (the
    share of the period measured, the Merkle root of the evidence, oracle.evidence). The one
    place the report is sent from; today's contract takes the values only."""
    del measured_ppm, evidence_root  # committed in the oracle's signed record; not on-chain yet
    return corporate.report(period, list(values), sender)
