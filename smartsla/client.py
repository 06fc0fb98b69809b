"""The smartsla library: deploy the factory, create agreements, move money, read status.

One code path for the command line, the oracle, the API and the tests. Every method that sends
a transaction takes the sender's address explicitly: the library never guesses who acts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any

from web3 import Web3
from web3.contract.contract import Contract
from web3.logs import DISCARD

from .chain import Chain, TxResult
from .compact_reports import pack
from .errors import ContractReverted, InvalidTermsError, NotAnAgreement, errors_of
from .reports import SignedReport, root_bytes
from .terms import Terms


class Status(IntEnum):
    """Mirror of the contract's Status enum."""

    Pending = 0
    Active = 1
    Ended = 2
    Terminated = 3
    Cancelled = 4
    Expired = 5

    @property
    def terminal(self) -> bool:
        """Nothing but withdrawals can happen any more: no period will settle (the one definition
        of the end states; the oracle stops serving such an agreement)."""
        return self in (Status.Ended, Status.Terminated, Status.Cancelled, Status.Expired)


@dataclass(frozen=True)
class Snapshot:
    status: Status
    settled_periods: int
    fees_deposited: bool
    collateral_deposited: bool
    disaster_occurred: bool
    fees_escrowed: int
    collateral_escrowed: int
    owed_to_customer: int
    owed_to_provider: int
    pending_to_customer: int = 0  # settled, waiting for the dispute window
    pending_to_provider: int = 0
    pending_periods: int = 0

    @classmethod
    def from_abi(cls, raw: Any) -> Snapshot:
        """What ``Agreement.snapshot()`` returns (a named tuple: Chain.contract decodes tuples)."""
        return cls(Status(raw.status), int(raw.settledPeriods), bool(raw.feesDeposited), bool(raw.collateralDeposited),
                   bool(raw.disasterOccurred), int(raw.feesEscrowed), int(raw.collateralEscrowed),
                   int(raw.owedToCustomer), int(raw.owedToProvider), int(raw.pendingToCustomer),
                   int(raw.pendingToProvider), int(raw.pendingPeriods))

    @property
    def held(self) -> int:
        """What the contract should hold according to its own books."""
        return (self.fees_escrowed + self.collateral_escrowed + self.owed_to_customer + self.owed_to_provider
                + self.pending_to_customer + self.pending_to_provider)


@dataclass(frozen=True)
class Settlement:
    """A PeriodSettled event, decoded."""

    period: int
    values_ppm: tuple[int, ...]
    service_credits: tuple[int, ...]
    credit_paid: int
    fee_earned: int
    disaster: bool
    measured_ppm: int = 1_000_000  # share of the period's countable time the oracles measured
    tx: TxResult | None = None
    # (oracle, evidence root) of every accepted report (EvidenceCommitted events of the same
    # transaction); filled in only when the settlement is read from its receipt.
    evidence: tuple[tuple[str, bytes], ...] = ()


PERIOD_STATES = ("None", "Pending", "Disputed", "Final")


@dataclass(frozen=True)
class MaintenanceWindow:
    start: int
    end: int
    declared_at: int
    # excluded from the figures: declared under the maintenance clause with the agreed notice
    # (the contract decides and stores it; without a clause nothing is excluded)
    with_notice: bool


class Factory:
    """The AgreementFactory on one chain."""

    def __init__(self, chain: Chain, address: str):
        self.chain = chain
        self.contract: Contract = chain.contract("AgreementFactory", address)
        self.address = self.contract.address

    @classmethod
    def deploy(cls, chain: Chain, sender: str) -> Factory:
        contract, _ = chain.deploy("AgreementFactory", sender)
        return cls(chain, contract.address)

    def create_agreement(self, terms: Terms, sender: str) -> Agreement:
        """Create an agreement; returns it once mined. Terms are validated before sending."""
        if not isinstance(terms, Terms):
            raise InvalidTermsError("terms must be smartsla.terms.Terms")
        # The factory refuses a start before the block's time; say so before paying for a revert.
        # The next block is at least one second later than the latest one.
        now = self.chain.now()
        if terms.start <= now:
            raise InvalidTermsError(f"start {terms.start} is in the past: the chain's latest block is at {now} "
                                    f"({now - terms.start} s later); an agreement must start in the future, "
                                    "so that both deposits can come in before its first period")
        if terms.has_options:
            fn = self.contract.functions.createAgreementWithOptions(terms.to_abi(), terms.options_abi())
        else:
            fn = self.contract.functions.createAgreement(terms.to_abi())
        result = self.chain.transact(fn, sender, action="createAgreement")
        events = self.contract.events.AgreementCreated().process_receipt(result.receipt, errors=DISCARD)
        agreement = Agreement(self.chain, events[0]["args"]["agreement"], factory=self, terms=terms)
        agreement.creation = result
        return agreement

    def agreement(self, address: str) -> Agreement:
        """An agreement this factory created; NotAnAgreement otherwise."""
        if not Web3.is_address(address):
            raise NotAnAgreement(f"{address!r} is not an Ethereum address")
        if not self.contract.functions.isAgreement(Web3.to_checksum_address(address)).call():
            raise NotAnAgreement(f"{address} was not created by the factory at {self.address}")
        return Agreement(self.chain, address, factory=self)

    def _page(self, fn_name: str, count_name: str, party: str) -> list[Agreement]:
        party = Web3.to_checksum_address(party)
        count = getattr(self.contract.functions, count_name)(party).call()
        out: list[Agreement] = []
        page = 100
        for offset in range(0, count, page):
            for addr in getattr(self.contract.functions, fn_name)(party, offset, page).call():
                out.append(Agreement(self.chain, addr, factory=self))
        return out

    def agreements_of_provider(self, provider: str) -> list[Agreement]:
        return self._page("agreementsOfProvider", "providerAgreementCount", provider)

    def agreements_of_customer(self, customer: str) -> list[Agreement]:
        return self._page("agreementsOfCustomer", "customerAgreementCount", customer)


class Agreement:
    """One deployed agreement."""

    def __init__(self, chain: Chain, address: str, *, factory: Factory | None = None, terms: Terms | None = None):
        self.chain = chain
        self.address: str = Web3.to_checksum_address(address)
        self.factory = factory
        self.creation: TxResult | None = None
        if terms is not None:
            self.__dict__["terms"] = terms

    def __repr__(self) -> str:
        return f"Agreement({self.address})"

    @cached_property
    def contract(self) -> Contract:
        """Built on first use (~6 ms and ~150 KB each): a fleet member that never talks to an
        agreement it does not hold never pays for it (issue 15 item 5)."""
        return self.chain.contract("Agreement", self.address)

    # ---------------------------------------------------------------- reads
    @cached_property
    def terms(self) -> Terms:
        """The on-chain terms (immutable, so read once)."""
        return Terms.from_abi(self.chain.call(self.contract.functions.terms(), action="terms"),
                              self.chain.call(self.contract.functions.options(), action="options"))

    def snapshot(self) -> Snapshot:
        return Snapshot.from_abi(self.chain.call(self.contract.functions.snapshot(), action="snapshot"))

    def balance(self) -> int:
        """What the contract actually holds of its asset."""
        return self.chain.balance(self.address, self.terms.asset)

    def quote_credit(self, values_ppm: list[int]) -> tuple[list[int], int]:
        credits, capped = self.chain.call(self.contract.functions.quoteCredit(list(values_ppm)), action="quoteCredit")
        return list(credits), capped

    def settlements(self, from_block: int = 0) -> list[Settlement]:
        """Every PeriodSettled event so far, oldest first."""
        logs = self.contract.events.PeriodSettled().get_logs(from_block=from_block)
        return [self._settlement(log) for log in logs]

    def evidence_roots(self, period: int, from_block: int = 0) -> list[tuple[str, bytes]]:
        """(oracle, evidence root) of every report accepted for `period` (EvidenceCommitted
        events), oldest first."""
        logs = self.contract.events.EvidenceCommitted().get_logs(from_block=from_block,
                                                                 argument_filters={"period": period})
        return [(log["args"]["oracle"], bytes(log["args"]["evidenceRoot"])) for log in logs]

    @staticmethod
    def _settlement(log: Any, tx: TxResult | None = None, evidence: tuple[tuple[str, bytes], ...] = ()
                    ) -> Settlement:
        a = log["args"]
        return Settlement(a["period"], tuple(a["valuesPpm"]), tuple(a["serviceCredits"]), a["creditPaid"],
                          a["feeEarned"], a["disaster"], a["measuredPpm"], tx, evidence)

    def _settled(self, result: TxResult) -> Settlement:
        """The Settlement a settling transaction's receipt records, with its evidence roots."""
        logs = self.contract.events.PeriodSettled().process_receipt(result.receipt, errors=DISCARD)
        roots = self.contract.events.EvidenceCommitted().process_receipt(result.receipt, errors=DISCARD)
        evidence = tuple((e["args"]["oracle"], bytes(e["args"]["evidenceRoot"])) for e in roots)
        return self._settlement(logs[0], result, evidence)

    # ---------------------------------------------------------------- actions
    def check_deposit(self, fees: bool, sender: str) -> None:
        """Ask the contract whether `sender` may deposit the fees (or the collateral) now:
        ContractReverted with its named error if not (Unauthorized, WrongStatus,
        AlreadyDeposited, TermStarted...). It checks its rules before it pulls a token, so for an
        ERC-20 the token's own refusal (no approval yet) is the expected answer, not a refusal."""
        fn = self.contract.functions.depositFees() if fees else self.contract.functions.depositCollateral()
        amount = self.terms.total_fees if fees else self.terms.collateral
        try:
            self.chain.simulate(fn, sender, value=amount if self.terms.is_native else 0,
                                action="depositFees" if fees else "depositCollateral")
        except ContractReverted as exc:
            if self.terms.is_native or exc.name in errors_of("Agreement"):
                raise

    def _deposit(self, fees: bool, sender: str) -> TxResult:
        """Deposit the fees or the collateral: ETH as the value, or an ERC-20 approved for exactly
        the amount, once the contract said it would take it (nothing approved for a refusal)."""
        fn = self.contract.functions.depositFees() if fees else self.contract.functions.depositCollateral()
        amount = self.terms.total_fees if fees else self.terms.collateral
        action = "depositFees" if fees else "depositCollateral"
        if self.terms.is_native:
            return self.chain.transact(fn, sender, value=amount, action=action)
        self.check_deposit(fees, sender)
        token = self.chain.contract("IERC20Metadata", self.terms.asset)
        self.chain.transact(token.functions.approve(self.address, amount), sender, action="approve")
        return self.chain.transact(fn, sender, action=action)

    def deposit_fees(self, sender: str) -> TxResult:
        return self._deposit(True, sender)

    def deposit_collateral(self, sender: str) -> TxResult:
        return self._deposit(False, sender)

    def settle(self, period: int, values_ppm: list[int], measured_ppm: int, evidence_root: bytes | str,
               sender: str) -> Settlement:
        """A committee member reports directly (agreements with a quorum of 1); `measured_ppm` is
        the share of the period's countable time measured (at least the terms' minimum);
        `evidence_root` the Merkle root of its evidence (oracle.evidence.period_root; the contract
        refuses a zero root)."""
        fn = self.contract.functions.settle(period, list(values_ppm), measured_ppm, root_bytes(evidence_root))
        return self._settled(self.chain.transact(fn, sender, action=f"settle period {period}"))

    def settle_with_reports(self, period: int, reports: list[SignedReport], sender: str) -> Settlement:
        """Submit the signed reports of at least `quorum` members; settles on the medians. Anyone
        may submit them: the signatures are the authority. They travel packed
        (`settleCompact`, smartsla.compact_reports), the agreement's only signed-report entry."""
        fn = self.contract.functions.settleCompact(pack(period, reports))
        return self._settled(self.chain.transact(fn, sender,
                                                 action=f"settle period {period} with {len(reports)} reports"))

    def report_digest(self, period: int, values_ppm: list[int], measured_ppm: int, evidence_root: bytes | str,
                      deadline: int) -> bytes:
        """The EIP-712 digest as the contract computes it."""
        return bytes(self.chain.call(self.contract.functions.reportDigest(
            period, list(values_ppm), measured_ppm, root_bytes(evidence_root), deadline)))

    def terminate(self, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.terminate(), sender, action="terminate")

    def expire(self, sender: str) -> TxResult:
        """End an agreement whose periods went unreported past the deadline (anyone)."""
        return self.chain.transact(self.contract.functions.expire(), sender, action="expire")

    def cancel(self, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.cancel(), sender, action="cancel")

    # ---------------------------------------------------------------- maintenance, XLA, disputes
    def declare_maintenance(self, start: int, end: int, sender: str) -> TxResult:
        """The provider declares a maintenance window (excluded if declared with enough notice)."""
        return self.chain.transact(self.contract.functions.declareMaintenance(start, end), sender,
                                   action="declareMaintenance")

    def maintenance_windows(self) -> list[MaintenanceWindow]:
        """Every declared window, with whether it came with the agreed notice."""
        count = self.chain.call(self.contract.functions.maintenanceCount())
        out: list[MaintenanceWindow] = []
        for offset in range(0, count, 100):
            for start, end, declared, excluded in self.chain.call(
                    self.contract.functions.maintenanceWindows(offset, 100)):
                out.append(MaintenanceWindow(start, end, declared, excluded))
        return out

    def attest_satisfaction(self, period: int, score_ppm: int, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.attestSatisfaction(period, score_ppm), sender,
                                   action="attestSatisfaction")

    def dispute(self, period: int, evidence: bytes, sender: str) -> TxResult:
        """Dispute a settled period within its window; `evidence` is a 32-byte hash."""
        return self.chain.transact(self.contract.functions.dispute(period, evidence), sender, action="dispute")

    def resolve_dispute(self, period: int, values: list[int], sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.resolveDispute(period, list(values)), sender,
                                   action="resolveDispute")

    def finalize(self, period: int, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.finalize(period), sender, action="finalize")

    def period_state(self, period: int) -> tuple[str, int, int]:
        """(state name, credit, final-after time) of a settled period under a dispute window."""
        state, credit, final_after = self.chain.call(self.contract.functions.periodState(period))
        return PERIOD_STATES[state], credit, final_after

    def withdraw(self, sender: str) -> int:
        """Withdraw everything owed to `sender`; returns the amount paid."""
        result = self.chain.transact(self.contract.functions.withdraw(), sender, action="withdraw")
        logs = self.contract.events.Withdrawn().process_receipt(result.receipt, errors=DISCARD)
        return int(logs[0]["args"]["amount"])

    def withdraw_to(self, to: str, sender: str) -> int:
        """Pay everything owed to `sender` to the address `to` (a party that cannot receive ether,
        or is blocked by the token); returns the amount paid."""
        fn = self.contract.functions.withdrawTo(Web3.to_checksum_address(to))
        result = self.chain.transact(fn, sender, action="withdrawTo")
        logs = self.contract.events.Withdrawn().process_receipt(result.receipt, errors=DISCARD)
        return int(logs[0]["args"]["amount"])
