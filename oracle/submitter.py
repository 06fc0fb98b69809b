"""Crash-safe, idempotent submission of one period's report.

Each report moves through the store's states computed -> signed -> submitted -> confirmed, and
every move is committed before the action it announces:

* the figures and the values are stored before they are signed, and once signed they never change
  (what was attested stays attested, even if late samples arrive);
* the transaction hash is stored (state 'submitted') before the transaction is broadcast, so a
  crash right after sending leaves a hash to look up, not a mystery;
* before sending anything, the period's on-chain state is read: a period that is already settled
  (by us before a crash, or by another committee member) is marked confirmed and nothing is sent;
* 'confirmed' means settled `confirmations` blocks deep (oracle.transactions: fees under a cap,
  nonces, replacement of stuck transactions, rebroadcast of dropped or reorganised-out ones).

The contract settles a period at most once whatever happens here; this module makes sure the
daemon does not waste transactions trying, nor skip a period.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.logs import DISCARD

from smartsla.chain import REVERTS, Chain, _revert_data
from smartsla.client import Agreement, Snapshot
from smartsla.compact_reports import pack, pack_batch
from smartsla.errors import ContractReverted, decode_revert
from smartsla.reports import ReportSigner, SignedReport, root_bytes, sign_report

from .peer_reports import DEADLINE_MARGIN_S, accepted_signer, ppm_bounds, refusal_culprit
from .sli import PeriodFigure
from .store import Store
from .terms_batch import read_views
from .transactions import FeeCapExceeded, TxManager

log = logging.getLogger("oracle.submitter")

RECEIPT_WAIT_S = 30
DEFAULT_MAX_FEE_GWEI = 500.0  # oracle.config's default, for Submitters built without a TxManager
# A signed report is refused by the contract after its deadline: the period's end plus this,
# equal to Agreement.REPORT_DEADLINE (after which the term can be expired anyway). A signature
# cannot be held back and used later, yet a committee has the whole window to gather a quorum.
REPORT_VALIDITY_S = 30 * 24 * 3600
PEER_TIMEOUT_S = 2.0
# The members of a committee take turns sending a period's transaction (Submitter.turn_delay):
# the member whose turn it is sends as soon as it can, the next one this much later if it has not
# been done by then, and so on. Without turns every member that gathers the quorum at once sends
# its own transaction, and all but one revert (gas wasted, a period "refused" in the logs).
COMMITTEE_TURN_S = 10.0
# Fault injection for the crash tests: the process SIGKILLs itself at this point of a submission
# ("before-broadcast": hash recorded, transaction not sent; "after-broadcast": sent, not confirmed).
CRASH_ENV = "SMARTSLA_ORACLE_CRASH_AT"


# The estimate is made against the latest block; the block that includes the transaction may need
# a little more (another member's report landing first changes nothing we pay for, but storage
# warmth and refunds can differ). Unused gas is not charged.
GAS_MARGIN = 1.2


def fallback_gas_limit(services: int, reports: int) -> int:
    """A gas limit above any settlement's cost (measured: about 60k + 10k per service, plus about
    10k per signed report), used when the node cannot estimate."""
    return 150_000 + 40_000 * services + 30_000 * reports


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Outcome:
    """What one call of `Submitter.process` achieved; `state` is the report's state afterwards."""

    state: str
    detail: str
    tx_hash: str | None = None


class Submitter:
    def __init__(self, chain: Chain, account: LocalAccount, store: Store, peers: list[str] | None = None,
                 metrics: Any = None, clock: Callable[[], float] = time.time, tx: TxManager | None = None,
                 receipt_wait_s: float = RECEIPT_WAIT_S):
        self.chain = chain
        # Fees, nonces, replacements and the confirmation depth; the attempts live in the store's
        # database next to the reports, so a restart knows every hash sent.
        self.tx = tx or TxManager(chain.w3, account, store.engine, max_fee_gwei=DEFAULT_MAX_FEE_GWEI,
                                  chain_id=chain.chain_id)
        self.receipt_wait_s = receipt_wait_s
        # The wall clock, which decides whether a period has ended when the chain's latest block is
        # older (a dev chain that mines on demand); injectable to test a clock running ahead.
        self.clock = clock
        self.account = account
        self._signer = ReportSigner(account.key)  # the public key derived once, not per report
        self.store = store
        self.peers = [str(p).rstrip("/") for p in (peers or [])]
        self.metrics = metrics
        # (agreement, period, signer) of peer reports the chain refused although they passed
        # oracle.peer_reports' checks: never collected again (Z7-1's defence in depth).
        self.refused_reports: set[tuple[str, int, str]] = set()

    # ------------------------------------------------------------------ public
    def process(self, agreement: Agreement, period: int, figures: dict[str, PeriodFigure] | None,
                evidence_root: bytes | None = None) -> Outcome:
        """Advance the report of `period` as far as it can go now. `figures` (one per service, by
        name) and `evidence_root` (the Merkle root of the period's evidence,
        oracle.evidence.period_root) are used only if the report has not been signed yet; figures
        without a root are refused (the contract would refuse the report: MissingEvidence)."""
        report = self.store.report(agreement.address, period)
        if self._settled_on_chain(agreement, period):
            return self._confirm(agreement, period, report, "already settled on-chain")
        if report is None or report.state == "computed":
            if figures is None:
                return Outcome("none", "no figures yet")
            report = self._compute_and_sign(agreement, period, figures, evidence_root)
        if report.state == "submitted":
            outcome = self._follow_up(agreement, period, report.tx_hash)
            if outcome is not None:
                return outcome
        return self._submit(agreement, period, report)

    def process_batch(self, batch: Any,
                      items: Sequence[tuple[Agreement, int, dict[str, PeriodFigure] | None, bytes | None]]
                      ) -> dict[tuple[str, int], Outcome]:
        """Advance many reports at once: those ready to send go into one SettlementBatch.settleMany
        transaction (every agreement tried on its own, so one failure reverts nothing else); the
        others move as `process` would move them; one alone goes to its agreement directly (a batch
        of one costs more). Returns an outcome per (agreement, period).

        Each batched report is 'submitted' with the batch's hash before the broadcast, like a
        single one. An item that failed in the batch stays 'submitted'; the next pass finds the
        batch mined but the period open, and sends that item again (only that one). Each item is
        (agreement, period, figures, evidence root), as the arguments of `process`."""
        outcomes: dict[tuple[str, int], Outcome] = {}
        ready: list[tuple[Agreement, int, Any, list[SignedReport]]] = []
        # Every item's on-chain state in one batch request (oracle.terms_batch) rather than a
        # `snapshot` call each; at a confirmation depth above 1 (or if the batch read fails) each
        # is read at its depth, one by one (_settled_on_chain).
        snaps = {} if self.tx.confirmations > 1 else \
            read_views(self.chain, [ag.address for ag, _, _, _ in items], "snapshot")
        for agreement, period, figures, evidence_root in items:
            key = (agreement.address, period)
            report = self.store.report(agreement.address, period)
            raw = snaps.get(agreement.address)
            if raw is not None:
                snap = Snapshot.from_abi(raw)
                settled = snap.settled_periods > period or snap.status.terminal
            else:
                settled = self._settled_on_chain(agreement, period)
            if settled:
                outcomes[key] = self._confirm(agreement, period, report, "already settled on-chain")
                continue
            if report is None or report.state == "computed":
                if figures is None:
                    outcomes[key] = Outcome("none", "no figures yet")
                    continue
                report = self._compute_and_sign(agreement, period, figures, evidence_root)
            if report.state == "submitted":
                outcome = self._follow_up(agreement, period, report.tx_hash)
                if outcome is not None:
                    outcomes[key] = outcome
                    continue
            if agreement.terms.quorum > 1 and not self._my_turn(agreement, period):
                outcomes[key] = Outcome(report.state, "signed; another member's turn to send")
                continue
            reports = self.signed_reports(agreement, period, report)
            if len(reports) < agreement.terms.quorum:
                outcomes[key] = Outcome(report.state, f"waiting for peers: {len(reports)} of {agreement.terms.quorum}")
                continue
            ready.append((agreement, period, report, reports))
        if not ready:
            return outcomes
        if len(ready) == 1:
            # A batch of one costs more than the agreement's own entry point (bench/batch_gas.py:
            # 57,952 against 47,269 gas, a met period): the batch's call and the signature check
            # are paid for nothing. The report moves through the same states either way.
            ag, period, report, _ = ready[0]
            outcomes[(ag.address, period)] = self._submit(ag, period, report)
            return outcomes
        # Each item is the agreement's address and its reports packed as settleCompact reads them
        # (smartsla.compact_reports): the batch copies the bytes into the call as they are.
        fn = batch.functions.settleMany(pack_batch((ag.address, pack(period, reports))
                                                   for ag, period, _, reports in ready))
        # A try/catch item gets only 63/64 of the gas left: an estimate made at an older block
        # (items refused there as PeriodNotEnded cost almost nothing) would starve them at
        # inclusion. Give every item its worst case; unused gas is not charged.
        worst = sum(fallback_gas_limit(len(ag.terms.services), len(reports)) for ag, _, _, reports in ready)
        try:
            gas = max(worst, int(fn.estimate_gas({"from": self.account.address}) * GAS_MARGIN))
        except REVERTS:
            gas = worst
        call = {"to": batch.address, "value": 0, "gas": gas, "data": fn._encode_transaction_data()}

        def record(tx_hash: str) -> None:
            # Every item 'submitted' with the hash in one transaction, before the broadcast: after a
            # crash here all of them (or none, and nothing was sent) name the batch.
            self.store.transition_reports([(ag.address, period, report.state) for ag, period, report, _ in ready],
                                          "submitted", tx_hash=tx_hash)
            _crash_point("before-broadcast")

        try:
            tx_hash = self.tx.send(call, f"batch of {len(ready)}", record)
        except FeeCapExceeded as exc:
            for ag, period, report, _ in ready:
                outcomes[(ag.address, period)] = Outcome(report.state, f"waiting: {exc}")
            return outcomes
        _crash_point("after-broadcast")
        log.info("batch submitted", extra={"items": len(ready), "tx": tx_hash})
        try:
            receipt = self.chain.w3.eth.wait_for_transaction_receipt(HexStr(tx_hash), timeout=self.receipt_wait_s,
                                                                     poll_latency=0.2)
        except Exception:  # noqa: BLE001 - web3's TimeExhausted: a later pass follows it up
            receipt = None
        failed = _batch_failures(batch, receipt) if receipt is not None and receipt["status"] == 1 else {}
        # An item counts as settled only by its own agreement's PeriodSettled in the receipt, not by
        # the batch's silence: the batch is only a transport, and one that skips an item without
        # saying so (another contract, an address without code) must not have it marked confirmed.
        mined_ok = receipt is not None and receipt["status"] == 1
        settled_by_batch = _settled_in(ready[0][0], receipt) if mined_ok else set()
        mined = [] if receipt is None or receipt["status"] != 1 or self.tx.confirmations > 1 else \
            [(ag.address, period, "submitted") for i, (ag, period, _, _) in enumerate(ready)
             if i not in failed and (ag.address, period) in settled_by_batch]
        self.store.transition_reports(mined, "confirmed")  # one transaction for the batch
        for i, (ag, period, _, _) in enumerate(ready):
            key = (ag.address, period)
            if receipt is None:
                outcomes[key] = Outcome("submitted", "batch pending", tx_hash)
            elif i in failed:
                error = decode_revert(failed[i], f"settle period {period}")
                self.drop_refused(ag, period, ready[i][3], error)  # the next pass collects without it
                log.warning("batch item failed; will retry", extra={"agreement": ag.address, "period": period,
                                                                   "error": str(error)})
                outcomes[key] = Outcome("submitted", f"failed in batch: {error.name}; will retry", tx_hash)
            elif receipt["status"] == 1 and (ag.address, period) not in settled_by_batch:
                log.warning("batch mined without settling the item; will check again",
                            extra={"agreement": ag.address, "period": period, "tx": tx_hash})
                outcomes[key] = Outcome("submitted", "batch mined, period not settled by it; will retry", tx_hash)
            elif receipt["status"] == 1 and self.tx.confirmations <= 1:
                if self.metrics is not None:
                    self.metrics.mark_report()
                outcomes[key] = Outcome("confirmed", f"settled in block {receipt['blockNumber']}", tx_hash)
            else:
                outcomes[key] = Outcome("submitted", "batch mined; following up", tx_hash)
        return outcomes

    def own_signed_report(self, agreement: str, period: int) -> dict[str, Any] | None:
        """What this member offers its committee peers for (agreement, period), if signed."""
        report = self.store.report(agreement, period)
        if report is None or report.state == "computed" or not report.signature:
            return None
        offered = {"agreement": Web3.to_checksum_address(agreement), "period": period,
                   "values": report.payload["values"], "signature": report.signature,
                   "signer": self.account.address}
        offered.update(measured_ppm=report.payload["measured_ppm"], evidence_root=report.payload["evidence_root"],
                       deadline=report.payload["deadline"])
        return offered

    def signed_reports(self, agreement: Any, period: int, report: Any) -> list[SignedReport]:
        """This member's signed report of `period` (a stored report past 'computed') and, when the
        committee's quorum is above 1, the valid ones its peers offer (`_collect`): what a
        settleCompact (or a multi-level settleWithReports) transaction carries. `agreement` is
        anything with `address` and `terms` (oracles, quorum): an Agreement, or a multi-level
        agreement (oracle.corporate), which shares the signed report's type and domain."""
        assert report.signature is not None  # past 'computed' a report is signed (Store.advance checks it)
        own = _report(agreement.address, self.chain.chain_id, period, report.payload, self.account.address,
                      report.signature)
        return [own] if agreement.terms.quorum == 1 else self._collect(agreement, period, own)

    def turn_delay(self, committee: Sequence[str], period: int) -> float:
        """How long after a period is due this member waits before sending the committee's
        transaction itself: 0 when it is its turn (the member at `period` modulo the committee's
        size), one COMMITTEE_TURN_S more for each member before it in the rotation. A member that
        is down or lying only delays the period by its turn: the next member sends."""
        members = [Web3.to_checksum_address(m) for m in committee]
        if len(members) <= 1 or self.account.address not in members:
            return 0.0
        return ((members.index(self.account.address) - period) % len(members)) * COMMITTEE_TURN_S

    # ------------------------------------------------------------------ steps
    def _my_turn(self, agreement: Agreement, period: int) -> bool:
        """Whether this member may send the committee's settlement of `period` now (turn_delay
        counted from the period's end)."""
        terms = agreement.terms
        return self.clock() >= terms.period_end(period) + self.turn_delay(terms.oracles, period)

    def _settled_on_chain(self, agreement: Agreement, period: int) -> bool:
        """Settled (or over) at the block `confirmations` deep: a shallower settlement can still be
        reorganised out, and then this daemon must still hold the report to send again."""
        depth = self.tx.confirmations
        if depth <= 1:
            snap = agreement.snapshot()
        else:
            block = max(0, int(self.chain.w3.eth.block_number) - (depth - 1))
            snap = Snapshot.from_abi(agreement.contract.functions.snapshot().call(block_identifier=block))
        # an agreement in an end state settles nothing more (Expired refuses reports): stop trying
        return snap.settled_periods > period or snap.status.terminal

    def confirm_settled(self, agreement: Agreement, settled_periods: int) -> int:
        """Confirm the stored reports of periods below `settled_periods` (the chain's count at its
        latest block) that are still 'signed' or 'submitted' although the chain settled them: the
        daemon was killed between the broadcast and its record, another committee member sent
        the settlement, or the pass that sent it had not reached the confirmation depth. The
        report loop starts from the chain's count and would never look at them again. Each is
        confirmed only once settled `confirmations` deep; returns how many still wait for that."""
        waiting = 0
        for report in self.store.unconfirmed_reports(agreement.address):
            if report.period >= settled_periods:
                continue
            if self._settled_on_chain(agreement, report.period):
                self._confirm(agreement, report.period, report, "settled on-chain")
            else:
                waiting += 1
        return waiting

    def _confirm(self, agreement: Agreement, period: int, report: Any, why: str) -> Outcome:
        if report is not None and report.state in ("signed", "submitted"):
            self.store.transition_report(agreement.address, period, report.state, "confirmed")
        state = "confirmed" if report is not None else "none"
        return Outcome(state, why, getattr(report, "tx_hash", None))

    def _compute_and_sign(self, agreement: Agreement, period: int, figures: dict[str, PeriodFigure],
                          evidence_root: bytes | None) -> Any:
        names = [s.name for s in agreement.terms.services]
        missing = [n for n in names if n not in figures]
        if missing:
            raise ValueError(f"no figure for services {missing} of {agreement.address}")
        # No report without evidence: the contract refuses a zero root (MissingEvidence), and a
        # figure nobody can check must not be signed in the first place.
        if evidence_root is None or len(evidence_root) != 32 or not any(evidence_root):
            raise ValueError(f"no evidence root for period {period} of {agreement.address}: a report carries "
                             "the Merkle root of its evidence (oracle.evidence.period_root)")
        values = [int(figures[n].value_ppm) for n in names]
        self.store.save_period_results(agreement.address, period, {n: figures[n] for n in names})
        # The share of the period measured, least over the services (the contract refuses a report
        # below the agreed minimum).
        measured = min(int(figures[n].measured_ppm) for n in names)
        # The deadline is the same on every retry, so the payload (hence the signature) is stable.
        deadline = agreement.terms.period_end(period) + REPORT_VALIDITY_S
        payload = {"values": values, "services": names, "measured_ppm": measured,
                   "evidence_root": "0x" + bytes(evidence_root).hex(), "deadline": deadline,
                   "explain": {n: figures[n].explain() for n in names}}
        report = self.store.put_computed_report(agreement.address, period, payload)
        if report.state != "computed":
            return report  # signed earlier with the same payload
        signed = sign_report(self._signer, self.chain.chain_id, agreement.address, period,
                             report.payload["values"], report.payload["measured_ppm"],
                             report.payload["evidence_root"], report.payload["deadline"])
        log.info("signed report", extra={"agreement": agreement.address, "period": period,
                                         "values": report.payload["values"]})
        return self.store.transition_report(agreement.address, period, "computed", "signed",
                                            signature="0x" + signed.signature.hex())

    def _follow_up(self, agreement: Agreement, period: int, tx_hash: str | None) -> Outcome | None:
        """A transaction was (maybe) sent before: wait for it, or decide to send again (None)."""
        if not tx_hash:
            return None
        status = self.tx.status(tx_hash)  # replaces a stuck attempt, rebroadcasts a dropped one
        if status.kind in ("pending", "mined"):
            why = "transaction pending" if status.kind == "pending" else \
                f"mined in block {status.block}, waiting for {self.tx.confirmations} confirmations"
            return Outcome("submitted", why, status.tx_hash)
        if status.kind == "gone":
            log.warning("sent transaction can no longer be mined (nonce used); sending again",
                        extra={"agreement": agreement.address, "period": period, "tx": tx_hash})
            return None
        if self._settled_on_chain(agreement, period):
            report = self.store.report(agreement.address, period)
            return self._confirm(agreement, period, report, "settled")
        return None  # mined but reverted (or a batch item that failed), period still open: try again

    def _collect(self, agreement: Agreement, period: int, own: SignedReport) -> list[SignedReport]:
        """Own report plus the peer reports the contract accepts (oracle.peer_reports: one check
        for both kinds of agreement), one per distinct committee member. One refused report makes
        the contract refuse the whole set, so anything doubtful is left out (Z7-1)."""
        committee = list(agreement.terms.oracles)
        services = len(agreement.terms.services)
        bounds = ppm_bounds(agreement.terms)
        # The contract compares a deadline with the including block's time: keep a margin past the
        # latest block's; and never keep one the wall clock has passed.
        try:
            not_before = max(self.chain.now() + DEADLINE_MARGIN_S, self.clock())
        except Exception:  # noqa: BLE001 - the chain unreachable: the send fails anyway; judge by the clock
            not_before = self.clock() + DEADLINE_MARGIN_S
        found: dict[str, SignedReport] = {Web3.to_checksum_address(own.signer): own}
        for peer in self.peers:
            url = f"{peer}/reports/{agreement.address}/{period}"
            try:
                response = httpx.get(url, timeout=PEER_TIMEOUT_S)
                if response.status_code != 200:
                    continue
                data = response.json()
                report = _report(agreement.address, self.chain.chain_id, period, data, str(data["signer"]),
                                 data["signature"])
                signer = accepted_signer(report, services=services, committee=committee,
                                         not_before=not_before, ppm_bounded=bounds)
            except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("peer report unusable", extra={"peer": peer, "agreement": agreement.address,
                                                           "period": period, "error": str(exc)})
                continue
            if signer not in found and (agreement.address, period, signer) not in self.refused_reports:
                found[signer] = replace(report, signer=signer)
        return list(found.values())

    def drop_refused(self, agreement: Any, period: int, reports: list[SignedReport],
                     error: ContractReverted) -> bool:
        """If `error` (the chain's refusal of `reports`) names one peer report, remove it from
        `reports`, never collect it again, and return True (then try the rest)."""
        bad = refusal_culprit(error, reports, self.account.address, len(agreement.terms.services))
        if bad is None:
            return False
        reports.remove(bad)
        self.refused_reports.add((agreement.address, period, Web3.to_checksum_address(bad.signer)))
        log.warning("peer report refused by the chain; dropped", extra={"agreement": agreement.address,
                                                                        "period": period, "signer": bad.signer,
                                                                        "error": str(error)})
        return True

    def _submit(self, agreement: Agreement, period: int, report: Any) -> Outcome:
        values = list(report.payload["values"])
        terms = agreement.terms
        reports: list[SignedReport] = []
        if terms.quorum == 1:
            fn = agreement.contract.functions.settle(period, values, int(report.payload["measured_ppm"]),
                                                     root_bytes(report.payload["evidence_root"]))
        else:
            if not self._my_turn(agreement, period):
                return Outcome(report.state, "signed; another member's turn to send")
            reports = self.signed_reports(agreement, period, report)
            if len(reports) < terms.quorum:
                return Outcome(report.state, f"waiting for peers: {len(reports)} of {terms.quorum} reports")
            fn = agreement.contract.functions.settleCompact(pack(period, reports))
        sender = self.account.address
        while True:
            error: ContractReverted | None = None
            try:
                gas = int(fn.estimate_gas({"from": sender}) * GAS_MARGIN)
            except REVERTS as exc:
                error = decode_revert(_revert_data(exc), f"settle period {period}")
            if error is None or terms.quorum == 1 or not self.drop_refused(agreement, period, reports, error):
                break
            # The chain refused the set naming one peer's report (Z7-1): try the rest, never the same set.
            if len(reports) < terms.quorum:
                return Outcome(report.state, f"waiting for peers: {len(reports)} of {terms.quorum} reports "
                                             f"(one refused: {error})")
            fn = agreement.contract.functions.settleCompact(pack(period, reports))
        if error is not None:
            if error.name != "PeriodNotEnded" or self.clock() < terms.period_end(period):
                return self._refused(agreement, period, report, error)
            # The period has ended by the wall clock, but the node estimates against its latest
            # block, which on a chain that mines only on demand (Ganache, Anvil without
            # --block-time: the README's way to start them) stays as old as the last transaction:
            # nobody else may send one for hours. The block that will include ours is stamped with
            # the current time, so send it with a gas limit that covers the worst case rather than
            # wait. PeriodNotEnded is the only refusal overridden, and only once the wall clock
            # agrees; if the clock was wrong the transaction reverts (costing at most this gas
            # limit), the report stays 'submitted' and is sent again on a later pass. No dev-only
            # RPC (evm_mine) is needed, so the same path is safe on a real network.
            gas = fallback_gas_limit(len(terms.services), max(1, terms.quorum))
            log.info("estimating at an older block; sending with a fixed gas limit",
                     extra={"agreement": agreement.address, "period": period, "gas": gas})
        call = {"to": agreement.address, "value": 0, "gas": gas, "data": fn._encode_transaction_data()}

        def record(tx_hash: str) -> None:
            # Record the hash first: after a crash here, the restart finds the hash and looks it up.
            self.store.transition_report(agreement.address, period, report.state, "submitted", tx_hash=tx_hash)
            _crash_point("before-broadcast")

        try:
            tx_hash = self.tx.send(call, f"settle {agreement.address} {period}", record)
        except FeeCapExceeded as exc:
            log.warning("fees above the cap; not sending", extra={"agreement": agreement.address,
                                                                  "period": period, "error": str(exc)})
            return Outcome(report.state, f"waiting: {exc}")
        _crash_point("after-broadcast")
        if self.metrics is not None:
            self.metrics.reports_submitted.inc()
        log.info("report submitted", extra={"agreement": agreement.address, "period": period, "tx": tx_hash})
        try:
            receipt = self.chain.w3.eth.wait_for_transaction_receipt(HexStr(tx_hash), timeout=self.receipt_wait_s,
                                                                     poll_latency=0.2)
        except Exception:  # noqa: BLE001 - web3's TimeExhausted: a later pass follows it up
            return Outcome("submitted", "transaction pending", tx_hash)
        if receipt["status"] == 1 and self.tx.confirmations > 1:
            return Outcome("submitted", f"mined in block {receipt['blockNumber']}, waiting for "
                                        f"{self.tx.confirmations} confirmations", tx_hash)
        if receipt["status"] == 1:
            self.store.transition_report(agreement.address, period, "submitted", "confirmed")
            if self.metrics is not None:
                self.metrics.mark_report()
            return Outcome("confirmed", f"settled in block {receipt['blockNumber']}", tx_hash)
        if self._settled_on_chain(agreement, period):  # another member won the race
            return self._confirm(agreement, period, self.store.report(agreement.address, period), "settled by a peer")
        # Mined but reverted: not settled. The report stays 'submitted' with this hash; the next
        # pass finds the failed receipt (_follow_up) and sends a new transaction.
        error = self._why_reverted(fn, sender, receipt, period)
        log.warning("settlement transaction reverted; will retry",
                    extra={"agreement": agreement.address, "period": period, "tx": tx_hash, "error": str(error)})
        return Outcome("submitted", f"transaction reverted: {error}; will retry", tx_hash)

    def _why_reverted(self, fn: Any, sender: str, receipt: Any, period: int) -> ContractReverted:
        """Name the error of a mined, reverted transaction: replay it as a call at the block it was
        mined in (that block's timestamp; the state after it, which a reverted settlement did not
        change). A node without historical state answers with the generic name."""
        action = f"settle period {period}"
        try:
            fn.call({"from": sender}, block_identifier=receipt["blockNumber"])
        except REVERTS as exc:
            return decode_revert(_revert_data(exc), action)
        except Exception:  # noqa: BLE001 - a node without historical state: say what we know
            pass
        return ContractReverted("Reverted", (), action=action)

    def _refused(self, agreement: Agreement, period: int, report: Any, error: ContractReverted) -> Outcome:
        if error.name in ("PeriodAlreadySettled", "WrongStatus") and self._settled_on_chain(agreement, period):
            return self._confirm(agreement, period, report, error.name)
        # PeriodNotEnded (clock skew), a committee change... keep the report, say why, retry later.
        log.warning("settlement refused", extra={"agreement": agreement.address, "period": period,
                                                 "error": str(error)})
        return Outcome(report.state, f"refused: {error}")


def _report(agreement: str, chain_id: int, period: int, data: dict[str, Any], signer: str,
            signature: str) -> SignedReport:
    """A SignedReport from a stored payload or a peer's JSON (values, measured_ppm, evidence_root,
    deadline)."""
    return SignedReport(agreement=agreement, chain_id=chain_id, period=period,
                        values_ppm=tuple(int(v) for v in data["values"]), measured_ppm=int(data["measured_ppm"]),
                        evidence_root=root_bytes(str(data["evidence_root"])),
                        deadline=int(data["deadline"]), signer=signer,
                        signature=bytes.fromhex(str(signature).removeprefix("0x")))


def _settled_in(agreement: Agreement, receipt: Any) -> set[tuple[str, int]]:
    """(agreement, period) of every PeriodSettled log in `receipt` (any agreement: the event's ABI
    is theirs in common; the log's address is the emitting contract's, which no caller can forge)."""
    events = agreement.contract.events.PeriodSettled().process_receipt(receipt, errors=DISCARD)
    return {(Web3.to_checksum_address(e["address"]), int(e["args"]["period"])) for e in events}


def _batch_failures(batch: Any, receipt: Any) -> dict[int, bytes]:
    """Index -> revert data of the items a mined SettlementBatch transaction reports failed."""
    events = batch.events.ItemFailed().process_receipt(receipt, errors=DISCARD)
    return {int(e["args"]["index"]): bytes(e["args"]["reason"]) for e in events}
