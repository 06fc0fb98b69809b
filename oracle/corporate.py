"""The oracle daemon's multi-level agreements (kind CorporateAgreement, smartsla.corporate).

A multi-level agreement is measured exactly like an Agreement: the same probes, store, slice
records and evidence bundle (oracle.evidence), figures computed from the record, the same signed
payload in the store (oracle.submitter). What differs lives here:

* one report per period for the whole organisation (its corporate services); the contract applies
  each department's own services, weights, objectives and cap. With a quorum of 1 the member
  reports directly; above 1 the members' signed reports (same type, domain and median rule as
  Agreement) are gathered from the peers' daemons by the Submitter and sent in one
  settleWithReports transaction, as for an Agreement;
* then every department of the reported period is settled in ONE transaction
  (`settle_departments`), which releases the fees and the unused pool reservations;
* it is done when every period is reported and settled, or when the agreement was cancelled or
  has expired (nothing more can be reported): never polled forever.

Crash safety, as for Agreement: the report moves computed -> signed -> submitted -> confirmed in
the store, the transaction hash is stored before the broadcast, and the chain is read before
anything is sent (a reported period is never reported again). A settlement's transactions are
recorded by the TxManager before their broadcast under a label naming the agreement and period;
after a crash the last one is followed up (pending: wait; mined: done) rather than sent again.

Every transaction goes through `Corporate`'s methods (the contract's one driver) on a `_TxChain`:
the daemon's Chain whose `transact` signs with the oracle key through its TxManager (fee cap,
nonces, replacement of stuck transactions, attempts recorded before broadcast).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

from eth_typing import HexStr
from sqlalchemy import select
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import Wei

from smartsla import deployments
from smartsla.chain import REVERTS, Chain, TxResult, _revert_data
from smartsla.corporate import FACTORY_NAME, Corporate, CorporateTerms
from smartsla.errors import ContractReverted, NotAnAgreement, decode_revert
from smartsla.multilevel import (
    created_by_factory,
    finished,
    funded,
    is_corporate,
    measured_terms,
    period_state,
    reported_periods,
    send_report,
)
from smartsla.reports import root_bytes

from .sli import meets_minimum
from .submitter import GAS_MARGIN, Outcome, _crash_point
from .transactions import ATTEMPTS, TxManager

# The daemon (oracle.daemon.Daemon) and its Served entries are passed in, typed Any: this module
# must not import oracle.daemon, which imports it (no import cycle).
Daemon: TypeAlias = Any
Served: TypeAlias = Any

log = logging.getLogger("oracle.corporate")

# Used when the node estimates at a block older than the period's end (a dev chain that mines on
# demand); measured: about 82,000 for a report whatever the number of departments.
REPORT_GAS_FALLBACK = 300_000
RECEIPT_WAIT_S = 30


class CorporateServed:
    """The `agreement` of a `Served` entry for a multi-level agreement: its address, the terms the
    measuring code reads, and the `Corporate` that acts (through the daemon's TxManager)."""

    def __init__(self, corporate: Corporate, terms: CorporateTerms, tx_chain: _TxChain):
        self.corporate = corporate
        self.address = corporate.address
        self.corporate_terms = terms
        self.tx_chain = tx_chain
        # The agreed slice (on-chain): the daemon refuses a configured slice that differs.
        self.terms = measured_terms(terms, terms.slice_seconds)

    def maintenance_windows(self) -> list[Any]:
        return []  # the multi-level contract declares no maintenance (yet): nothing is excluded

    def __repr__(self) -> str:
        return f"CorporateAgreement({self.address})"


def created_corporates(daemon: Daemon, from_block: int, to_block: int) -> list[str]:
    """The multi-level agreements the CorporateAgreementFactory recorded for this chain
    (deployments.json, written by `smartsla deploy`) created in the block range: for discover
    mode, which then applies the same rules as to the factory's (this oracle in the committee,
    the provider allowed)."""
    factory = deployments.lookup(daemon.chain.chain_id, FACTORY_NAME)
    if factory is None or not daemon.chain.w3.eth.get_code(Web3.to_checksum_address(factory)):
        return []
    return created_by_factory(daemon.chain, factory, from_block, to_block)


def open_corporate(daemon: Daemon, address: str) -> CorporateServed | None:
    """The multi-level agreement at `address` for this daemon, or None when it is not one."""
    try:
        if not is_corporate(daemon.chain, address):
            return None
    except NotAnAgreement:
        return None
    tx_chain = _TxChain(daemon.chain, daemon.submitter.tx)
    corporate = Corporate(tx_chain, address)  # type: ignore[arg-type]  # a Chain in all but transact
    terms = corporate.read_terms()
    corporate.terms = terms
    return CorporateServed(corporate, terms, tx_chain)


# ---------------------------------------------------------------- transactions
class _TxChain:
    """The daemon's Chain, except `transact`: signed by the oracle key through the TxManager, the
    attempt recorded (and `on_hash` called) before the broadcast, so a crash never loses a hash."""

    def __init__(self, chain: Chain, tx: TxManager) -> None:
        self._chain = chain
        self.tx = tx
        self._label = ""
        self._on_hash: Callable[[str], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)

    @contextlib.contextmanager
    def sending(self, label: str, on_hash: Callable[[str], None] | None = None) -> Iterator[None]:
        self._label, self._on_hash = label, on_hash
        try:
            yield
        finally:
            self._label, self._on_hash = "", None

    def transact(self, fn: ContractFunction, sender: str, *, value: int = 0, action: str = "") -> TxResult:
        try:
            gas = int(fn.estimate_gas({"from": Web3.to_checksum_address(sender), "value": Wei(value)}) * GAS_MARGIN)
        except REVERTS as exc:
            error = decode_revert(_revert_data(exc), action)
            # A chain that mines on demand estimates at its last block, older than the period's
            # end: the block that includes ours is stamped now (see Submitter._submit).
            if error.name != "PeriodNotEnded" or time.time() < int(error.args_[1]):
                raise error from exc
            gas = REPORT_GAS_FALLBACK
        call = {"to": fn.address, "value": value, "gas": gas, "data": fn._encode_transaction_data()}
        on_hash = self._on_hash
        # Fault injection (oracle.submitter.CRASH_ENV): "before-broadcast"/"after-broadcast" hit the
        # first transaction (the report); "settle-..." the settlement's.
        step = "settle-" if " settle " in self._label else ""

        def record(tx_hash: str) -> None:
            if on_hash is not None:
                on_hash(tx_hash)
            _crash_point("before-broadcast")
            _crash_point(f"{step}before-broadcast")

        tx_hash = self.tx.send(call, self._label or action, record)
        _crash_point("after-broadcast")
        _crash_point(f"{step}after-broadcast")
        try:
            receipt = self._chain.w3.eth.wait_for_transaction_receipt(HexStr(tx_hash), timeout=RECEIPT_WAIT_S,
                                                                      poll_latency=0.2)
        except Exception as exc:  # noqa: BLE001 - web3's TimeExhausted: followed up on a later pass
            raise _Pending(tx_hash) from exc
        if receipt["status"] != 1:
            try:
                fn.call({"from": sender}, block_identifier=receipt["blockNumber"])
            except REVERTS as exc:
                raise decode_revert(_revert_data(exc), action) from None
            raise ContractReverted("Reverted", (), action=action)
        return TxResult(tx_hash=tx_hash, gas_used=receipt["gasUsed"], block_number=receipt["blockNumber"],
                        receipt=receipt)


class _Pending(Exception):  # noqa: N818 - not an error: the transaction is not mined yet
    def __init__(self, tx_hash: str) -> None:
        super().__init__(tx_hash)
        self.tx_hash = tx_hash


def _last_attempt(tx: TxManager, label: str) -> str | None:
    with tx.engine.connect() as conn:
        row = conn.execute(select(ATTEMPTS.c.tx_hash).where(ATTEMPTS.c.label == label)
                           .order_by(ATTEMPTS.c.created_at.desc()).limit(1)).first()
    return None if row is None else str(row[0])


# ---------------------------------------------------------------- the report loop's step
def report_corporate(daemon: Daemon, served: Served, now: float) -> None:
    """Settle what is reported, then report the next period once it is due (a step of the report
    loop; Daemon._report_agreement's counterpart). Marks `served.done` when nothing is left."""
    view: CorporateServed = served.agreement
    corporate, terms = view.corporate, view.terms
    departments = len(view.corporate_terms.departments)
    while True:
        reported = reported_periods(corporate)
        _confirm_reported(daemon, served, reported)
        # Departments settle FINAL periods only (after the dispute window, or the arbiter's
        # ruling); a terminated department has no period from its end on.
        behind = [d.settled_periods for d in map(corporate.department_status, range(departments))
                  if d.settled_periods < (d.end_period if d.terminated else terms.period_count)]
        lowest = min(behind, default=terms.period_count)
        if lowest < reported and period_state(corporate, lowest) == "Final":
            # A committee settles in turns, as it reports (one settlement transaction, not one
            # per member); the turns count from when the period could be final at the earliest.
            turn = terms.period_end(lowest) + served.grace_s + terms.dispute_window
            if terms.quorum > 1 and time.time() < turn + daemon.submitter.turn_delay(terms.oracles, lowest):
                served.next_due = now + daemon.config.report_check_s
                return
            if not _settle(daemon, view, lowest, departments):
                return  # pending or refused: the next pass looks again
            continue
        over = finished(corporate) or max(now, time.time()) >= terms.report_deadline
        if reported >= terms.period_count or over:
            if lowest < reported:  # reported periods not final yet: settle them when they are
                served.next_due = now + daemon.config.report_check_s
                return
            served.done = True
            log.info("agreement finished", extra={"agreement": view.address, "reported": reported,
                                                  "periods": terms.period_count})
            return
        period = reported
        served.next_period = period
        served.next_due = terms.period_end(period) + served.grace_s
        if not funded(corporate):
            served.next_due = max(served.next_due, now + daemon.config.report_check_s)
            return
        if now < served.next_due:
            return
        if period in served.unmeasured:
            served.next_due = now + 60.0
            return
        if daemon.writer is not None:
            daemon.writer.flush()
        figures, bundle = daemon.evidence(served, period)
        daemon.save_evidence(view.address, period, bundle)
        enough, measured = meets_minimum({n: figures[n] for n in served.probes}, served.min_measured_ppm)
        daemon.metrics.period_measured_ppm.labels(view.address).set(measured)
        if not enough:
            served.unmeasured.add(period)
            daemon.metrics.periods_not_reported.inc()
            daemon.store.save_period_results(view.address, period, figures)
            log.warning("not enough of the period measured: no report (the agreement can be expired)",
                        extra={"agreement": view.address, "period": period, "measured_ppm": measured})
            served.next_due = now + 60.0
            return
        outcome = _advance_report(daemon, view, period, figures, bundle.root, served.next_due)
        log.info("period report", extra={"agreement": view.address, "period": period, "state": outcome.state,
                                         "detail": outcome.detail, "multi_level": True,
                                         "values": [figures[s.name].value_ppm for s in terms.services]})
        if outcome.state != "confirmed":
            return


def _confirm_reported(daemon: Daemon, served: Served, reported: int) -> None:
    """Confirm the stored reports of periods below `reported` (the chain's count at its latest
    block) still 'signed' or 'submitted', once reported `confirmations` deep (R-1, as
    Submitter.confirm_settled for an Agreement): the pass that sent a report may not have seen it
    deep enough, a committee peer may have sent it, or the daemon was killed after the broadcast;
    the loop below starts from the chain's count and would never look at them again. A shallower
    report is left 'submitted' (a reorganisation can still undo it). `served.confirmed_below`
    keeps this to one chain read per newly reported period."""
    if reported <= served.confirmed_below:
        return
    view: CorporateServed = served.agreement
    deep = reported
    depth = daemon.submitter.tx.confirmations
    if depth > 1:
        block = max(0, int(daemon.chain.w3.eth.block_number) - (depth - 1))
        deep = int(view.corporate.contract.functions.snapshot().call(block_identifier=block)[1])  # reportedPeriods
    waiting = 0
    for report in daemon.store.unconfirmed_reports(view.address):
        if report.period >= reported:
            continue
        if report.period < deep:
            daemon.store.transition_report(view.address, report.period, report.state, "confirmed")
            daemon.metrics.mark_report()
            log.info("report confirmed", extra={"agreement": view.address, "period": report.period,
                                                "confirmations": depth, "multi_level": True})
        else:
            waiting += 1
    if waiting == 0:
        served.confirmed_below = reported


def _advance_report(daemon: Daemon, view: CorporateServed, period: int, figures: Any, root: bytes,
                    due: float) -> Outcome:
    """The report of `period` (due at `due`) as far as it can go now (oracle.submitter's states)."""
    store, submitter = daemon.store, daemon.submitter
    address = view.address
    report = store.report(address, period)

    def confirm(why: str) -> Outcome:
        current = store.report(address, period)
        if current is not None and current.state in ("signed", "submitted"):
            store.transition_report(address, period, current.state, "confirmed")
            daemon.metrics.mark_report()
        return Outcome("confirmed", why, getattr(current, "tx_hash", None))

    if reported_periods(view.corporate) > period:
        return confirm("already reported on-chain")
    if report is None or report.state == "computed":
        report = submitter._compute_and_sign(view, period, figures, root)  # noqa: SLF001 - the shared signing step
    if report.state == "submitted" and report.tx_hash:
        status = submitter.tx.status(report.tx_hash)
        if status.kind in ("pending", "mined"):
            return Outcome("submitted", f"transaction {status.kind}", status.tx_hash)
        # confirmed but not reported (it reverted) or gone: send again
    payload = report.payload
    from_state = report.state

    def submitted(tx_hash: str) -> None:
        nonlocal from_state
        store.transition_report(address, period, from_state, "submitted", tx_hash=tx_hash)
        from_state = "submitted"

    # A committee with a quorum above 1 reports with the members' signed reports, gathered from
    # their daemons exactly as for an Agreement (Submitter.signed_reports: the same peers, checks
    # and payloads); the contract refuses a direct report then (QuorumNotReached).
    # Signed (and offered to the peers) above; sent only in this member's turn.
    quorum = view.terms.quorum
    if quorum > 1 and time.time() < due + submitter.turn_delay(view.terms.oracles, period):
        return Outcome(from_state, "signed; another member's turn to send")
    reports = submitter.signed_reports(view, period, report) if quorum > 1 else []
    if quorum > 1 and len(reports) < quorum:
        return Outcome(from_state, f"waiting for peers: {len(reports)} of {quorum} reports")
    try:
        with view.tx_chain.sending(f"corporate {address} report {period}", submitted):
            if quorum > 1:
                tx = view.corporate.settle_with_reports(period, reports, daemon.account.address)
            else:
                tx = send_report(view.corporate, period, payload["values"], daemon.account.address,
                                 measured_ppm=int(payload["measured_ppm"]),
                                 evidence_root=root_bytes(payload["evidence_root"]))
    except _Pending as pending:
        return Outcome("submitted", "transaction pending", pending.tx_hash)
    except ContractReverted as exc:
        if reported_periods(view.corporate) > period:
            return confirm(f"reported by then ({exc.name})")
        log.warning("report refused", extra={"agreement": address, "period": period, "error": str(exc)})
        if quorum > 1:  # a peer report the chain refused by name is not collected again (Z7-1)
            submitter.drop_refused(view, period, reports, exc)
        return Outcome(from_state, f"refused: {exc}")
    daemon.metrics.reports_submitted.inc()
    if submitter.tx.confirmations > 1:
        return Outcome("submitted", f"mined in block {tx.block_number}", tx.tx_hash)
    return confirm(f"reported in block {tx.block_number}")


def _settle(daemon: Daemon, view: CorporateServed, period: int, departments: int) -> bool:
    """Settle `period` for every department in one transaction; True once it is settled. A
    settlement sent before (this run or before a crash) is followed up, not sent again."""
    label = f"corporate {view.address} settle {period}"
    last = _last_attempt(daemon.submitter.tx, label)
    if last is not None:
        status = daemon.submitter.tx.status(last)
        if status.kind in ("pending", "mined"):
            return False
    try:
        with view.tx_chain.sending(label):
            tx = view.corporate.settle_departments(period, 0, departments, daemon.account.address)
    except _Pending:
        return False
    except ContractReverted as exc:
        log.warning("settlement refused", extra={"agreement": view.address, "period": period, "error": str(exc)})
        return False
    log.info("period settled for every department", extra={"agreement": view.address, "period": period,
                                                            "departments": departments, "gas": tx.gas_used,
                                                            "tx": tx.tx_hash})
    return True
