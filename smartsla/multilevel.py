"""Multi-level agreements seen by their users: what kind an address is, what one holds now, and
the one call that sends the oracle's report.

The contract is driven by `smartsla.corporate.Corporate`; the CLI (smartsla.cli.corporate), the
oracle daemon (oracle.corporate) and the demo read and act through this module so that a change
of the contract's interface is adapted here, once:

* `is_corporate` decides whether an address is a multi-level agreement (the contract is asked:
  only a CorporateAgreement answers `departmentCount()`);
* `created_by_factory` lists those a CorporateAgreementFactory created (the index and the
  daemon's discover mode);
* `read_state` is every read of a deployed one's state (pool, exposure, departments' progress,
  each reported period's committee state), at any block: the index reads through it too;
* `send_report` is the oracle's report call (the values and the evidence behind them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from .chain import Chain, TxResult
from .corporate import FACTORY_NAME, PERIOD_STATES, STATUSES, Corporate, CorporateTerms
from .errors import NotAnAgreement
from .terms import DEFAULT_MIN_MEASURED_PPM, ZERO_ADDRESS, Service
from .units import PPM

KIND = "CorporateAgreement"


# ---------------------------------------------------------------- which kind
def is_corporate(chain: Chain, address: str) -> bool:
    """Whether `address` holds a multi-level agreement: the contract is asked (only a
    CorporateAgreement answers departmentCount() and packedTerms()). Nothing is recorded at
    creation: a record would be a second truth that a restarted dev chain (same chain id, new
    contracts) makes wrong, and one call costs nothing. Raises NotAnAgreement when no contract is
    there."""
    address = Web3.to_checksum_address(address)
    if not chain.w3.eth.get_code(address):
        raise NotAnAgreement(f"no contract at {address} on chain id {chain.chain_id}")
    try:
        f = chain.contract(KIND, address).functions
        f.departmentCount().call()
        f.packedTerms().call()
    except Exception:  # noqa: BLE001 - any failure (revert, undecodable answer): not this kind
        return False
    return True


def created_by_factory(chain: Chain, factory: str, from_block: int = 0,
                       to_block: int | str = "latest") -> list[str]:
    """The multi-level agreements `factory` created in the block range (its
    CorporateAgreementCreated events), in creation order."""
    contract = chain.contract(FACTORY_NAME, factory)
    logs = contract.events.CorporateAgreementCreated().get_logs(from_block=from_block, to_block=to_block)
    return [Web3.to_checksum_address(log["args"]["agreement"]) for log in logs]


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
    terminated: bool = False  # the disaster clause: no period from end_period on
    end_period: int = 0  # the department's last period + 1 (period_count unless terminated)


@dataclass(frozen=True)
class PeriodState:
    """A reported period: Pending (in its dispute window), Disputed (awaiting the arbiter) or
    Final (departments settle it); final_after: when a Pending period becomes final."""

    period: int
    state: str
    final_after: int
    values: tuple[int, ...]  # one value (ppm) per corporate service, as reported (or corrected)


@dataclass(frozen=True)
class CorporateState:
    status: str  # the contract's Status: Pending, Active, Ended (every period reported), Cancelled, Expired
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
    periods: tuple[PeriodState, ...] = ()  # per reported period
    pending_periods: int = 0  # reported and not final yet
    expires_at: int = 0
    owed: tuple[tuple[str, int], ...] = ()  # (address, owed) for the parties and every payout

    @property
    def settled_periods(self) -> int:
        """Periods settled for every department still running (a terminated one counts as done)."""
        return min((d.settled_periods if not d.terminated else 1 << 16 for d in self.departments), default=0)

    @property
    def cancelled(self) -> bool:
        return self.status == "Cancelled"

    @property
    def expired(self) -> bool:
        return self.status == "Expired"

    @property
    def all_settled(self) -> bool:
        """Every department settled all its periods: nothing more will move but withdrawals."""
        return all(d.settled_periods >= d.end_period for d in self.departments)


def read_state(corporate: Corporate, terms: CorporateTerms, names: Sequence[str] | None = None, *,
               block: int | str = "latest") -> CorporateState:
    """Everything the chain holds about a multi-level agreement at `block`: the one place that
    knows the contract's view and event names for its state (the CLI, the daemon, the demo and
    the index read through it). `names`: the departments' names from its spec (the chain holds
    none: department-<i> otherwise)."""
    c = corporate.contract
    f = c.functions

    def call(fn: Any) -> Any:
        return fn.call(block_identifier=block)

    snap = call(f.snapshot())
    status = STATUSES[snap[0]]
    reported, pending = int(snap[1]), int(snap[2])
    fees_in, collateral_in = bool(snap[3]), bool(snap[4])
    paid: dict[int, list[tuple[int, int, int]]] = {}
    for log in c.events.DepartmentSettled().get_logs(from_block=0, to_block=block):
        a = log["args"]
        paid.setdefault(int(a["department"]), []).append((int(a["period"]), int(a["creditPaid"]), int(a["fee"])))
    owed: dict[str, int] = {}
    for who in [terms.provider, terms.organisation, *(d.payout for d in terms.departments)]:
        who = Web3.to_checksum_address(who)
        if who not in owed:
            owed[who] = int(call(f.owed(who)))
    departments = []
    exposure = 0
    for i, d in enumerate(terms.departments):
        settled, terminated, end_period = call(f.departmentState(i))
        end = int(end_period) if terminated else terms.period_count
        worst = int(call(f.worstCreditOf(i)))
        if status != "Cancelled":
            # After expire only reported periods still settle; their reservations stay in the pool.
            last = min(end, reported) if status == "Expired" else end
            exposure += worst * max(0, last - int(settled))
        periods = tuple(sorted(paid.get(i, [])))
        name = names[i] if names is not None and i < len(names) else d.name
        departments.append(DepartmentState(i, name, d.payout, d.fee_per_period, int(settled), worst,
                                           sum(p[1] for p in periods), owed[Web3.to_checksum_address(d.payout)],
                                           periods, bool(terminated), end))
    period_states = []
    for p in range(reported):
        state, final_after, _mask = call(f.periodState(p))
        period_states.append(PeriodState(p, PERIOD_STATES[state], int(final_after),
                                         tuple(int(v) for v in call(f.reportedValues(p)))))
    balance = corporate.chain.w3.eth.get_balance(corporate.address, block_identifier=block)  # type: ignore[arg-type]
    return CorporateState(status, fees_in, collateral_in, reported, int(snap[5]), int(snap[6]), exposure,
                          owed[Web3.to_checksum_address(terms.provider)],
                          owed[Web3.to_checksum_address(terms.organisation)], int(balance), tuple(departments),
                          tuple(ps.values for ps in period_states), tuple(period_states), pending,
                          int(call(f.expiresAt())), tuple(owed.items()))


def reported_periods(corporate: Corporate) -> int:
    return corporate.status().reported_periods


def settled_periods_of(corporate: Corporate, index: int) -> int:
    return corporate.department_status(index).settled_periods


def period_state(corporate: Corporate, period: int) -> str:
    """None (not reported), Pending, Disputed or Final."""
    return corporate.period_state(period)[0]


def finished(corporate: Corporate) -> bool:
    """Cancelled or expired: nothing more will be reported (reported periods may still settle)."""
    return corporate.status().status in ("Cancelled", "Expired")


def funded(corporate: Corporate) -> bool:
    s = corporate.status()
    return s.fees_deposited and s.collateral_deposited


# ---------------------------------------------------------------- measuring
# The contract takes reports until this long after the term (CorporateAgreement.REPORT_DEADLINE);
# after it nothing more can be reported and the agreement can only be expired.
REPORT_DEADLINE_S = 30 * 24 * 3600


@dataclass(frozen=True)
class MeasuredTerms:
    """What measuring code (the oracle daemon's probes, slice records, evidence, running-period
    gauges and signed payload; the demo's evidence) reads of an agreement's terms, for a
    multi-level agreement: its schedule, committee, slice length and minimum measured share as
    the chain holds them."""

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
    corporate: CorporateTerms | None = field(default=None, compare=False, repr=False)

    def credit_of(self, index: int, value: int) -> int:
        """What corporate service `index` at `value` (ppm) costs for one period: the sum of the
        credits of the departments that cover it (each with its own fee, weight, objective
        override and cap; CorporateTerms.department_credit, the contract's rule), every other
        service at 100 %. The running-period gauges' projected credit (smartsla.forecast)."""
        if self.corporate is None:
            return 0
        values = [PPM] * len(self.services)
        values[index] = value
        return sum(self.corporate.department_credit(d, values)[1] for d in range(len(self.corporate.departments)))

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
                         terms.committee, terms.provider, terms.asset or ZERO_ADDRESS,
                         sum(d.fee_per_period for d in terms.departments), terms.credit_cap_bps,
                         terms.min_measured_ppm, terms.dispute_window, terms.quorum, corporate=terms)


# ---------------------------------------------------------------- the oracle's report
def send_report(corporate: Corporate, period: int, values: Sequence[int], sender: str, *,
                measured_ppm: int, evidence_root: bytes) -> TxResult:
    """The oracle's report of `period`: one value per corporate service, and what backs them (the
    share of the period measured, the Merkle root of the evidence, oracle.evidence). The one
    place the report is sent from (a committee member reporting directly: quorum 1)."""
    return corporate.report(period, list(values), sender, evidence_root=evidence_root, measured_ppm=measured_ppm)
