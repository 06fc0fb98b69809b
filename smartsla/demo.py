"""`smartsla demo`: one agreement's whole life on a chain, told step by step.

Deploys the factory, creates a three-service agreement with AWS-like credit schedules, has the
customer prepay the fees and the provider bond the collateral, lets the oracle settle periods that
hit each tier, triggers the disaster clause, terminates, withdraws, and ends with a balance sheet
that accounts for every wei deposited. Every on-chain number is checked as it goes against the
independent Python reference model (:class:`smartsla.credit.Books`); any difference raises
:class:`DemoMismatch`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from oracle.evidence import Bundle, build_record, dumps_bundle, figure_from_record, period_root
from oracle.sli import slice_count

from .chain import EMBEDDED, Chain
from .client import Agreement, Factory, Snapshot
from .credit import Books, PeriodOutcome
from .errors import ContractReverted, SmartSLAError
from .presentation import fmt_days, fmt_eth, fmt_time
from .terms import Service, Terms, Tier
from .units import bps_to_percent, percent_to_bps, percent_to_ppm, ppm_to_percent

ETHER = 10**18
DAY = 86_400

PARTIES = ("customer", "provider")


class DemoMismatch(SmartSLAError):
    """The chain and the Python reference model disagree: a bug in one of them."""


# ---------------------------------------------------------------------------- the scenario
def _tiers(*steps: tuple[str, str]) -> tuple[Tier, ...]:
    return tuple(Tier(threshold=percent_to_ppm(b), credit_bps=percent_to_bps(c)) for b, c in steps)


# AWS EC2 region level: below 99.99 % 10 %, below 99.0 % 30 %, below 95.0 % 100 %.
EC2_REGION_TIERS = _tiers(("99.99", "10"), ("99.0", "30"), ("95.0", "100"))
# AWS S3 Standard: below 99.9 % 10 %, below 99 % 25 %, below 95 % 100 %.
S3_TIERS = _tiers(("99.9", "10"), ("99.0", "25"), ("95.0", "100"))
# AWS EC2 instance level: below 99.5 % 10 %, below 99.0 % 30 %, below 95.0 % 100 %.
EC2_INSTANCE_TIERS = _tiers(("99.5", "10"), ("99.0", "30"), ("95.0", "100"))

DEMO_SERVICES = (
    Service(name="compute", objective=percent_to_ppm("99.99"), weight_bps=percent_to_bps(50),
            tiers=EC2_REGION_TIERS),
    Service(name="storage", objective=percent_to_ppm("99.9"), weight_bps=percent_to_bps(30), tiers=S3_TIERS),
    Service(name="api", objective=percent_to_ppm("99.5"), weight_bps=percent_to_bps(20),
            tiers=EC2_INSTANCE_TIERS),
)

PERIOD_LENGTH = 30 * DAY
PERIOD_COUNT = 6
FEE_PER_PERIOD = 3 * ETHER // 2  # 1.5 ETH a month
COLLATERAL = 4 * ETHER
CREDIT_CAP_BPS = percent_to_bps(50)  # at most half of a month's fee comes back as credit
TERMINATION_PPM = percent_to_ppm(90)  # disaster clause: any service below 90 % in a period

# What the oracle saw, per period, as whole one-minute slices of each service (compute, storage,
# api): (minutes down, minutes not measured) out of the 43,200 of a 30-day month. Each figure the
# oracle settles is computed from the slice record this builds (`demo_bundle`), with the oracle's
# own function, and committed as its Merkle root: `smartsla verify` can recompute every period.
# Whole minutes decide which values exist: 21 minutes down give 99.9513 %, not 99.95 %.
Minutes = tuple[int, int]
DEMO_SCENARIO: tuple[tuple[tuple[Minutes, Minutes, Minutes], str], ...] = (
    (((0, 0), (0, 0), (0, 0)), "a perfect month"),
    (((21, 0), (21, 0), (0, 0)), "21 minutes down: compute misses 99.99 %; storage's 99.9513 % meets its 99.9 %"),
    (((562, 0), (216, 0), (346, 1)), "every service in a tier: 30 %, 10 %, 10 % (api's probe missed a minute)"),
    (((2_592, 0), (476, 0), (130, 60)), "compute earns a 100 % credit: the 50 % cap binds (api unmeasured an hour)"),
    (((432, 0), (5_400, 0), (1_728, 0)), "storage falls below the 90 % disaster threshold; 99.0 % is not below 99.0 %"),
)
PROVIDER_WITHDRAWS_AFTER = 2  # the provider takes the fees earned so far after this period


def demo_terms(provider: str, customer: str, oracle: str, start: int) -> Terms:
    """The demo's agreement terms, starting at `start`."""
    return Terms(
        provider=provider, customer=customer, oracles=(oracle,), start=start, period_length=PERIOD_LENGTH,
        period_count=PERIOD_COUNT, fee_per_period=FEE_PER_PERIOD, collateral=COLLATERAL,
        credit_cap_bps=CREDIT_CAP_BPS, termination_ppm=TERMINATION_PPM, services=DEMO_SERVICES,
    )


# ---------------------------------------------------------------------------- the evidence
_NOBODY = "0x" + "00" * 20


def _slices(n: int, down: int, missing: int, offset: int) -> dict[int, tuple[bool, float | None]]:
    """Per-slice verdicts of a month: `down` slices in one outage from `offset`, the last `missing`
    slices not measured (the probe was not running), every other slice up."""
    if down + missing > n or offset + down > n - missing:
        raise ValueError(f"{down} down and {missing} unmeasured slices do not fit in {n} from slice {offset}")
    out: dict[int, tuple[bool, float | None]] = dict.fromkeys(range(n - missing), (True, None))
    out.update(dict.fromkeys(range(offset, offset + down), (False, None)))
    return out


def demo_bundle(terms: Terms, period: int, minutes: Sequence[Minutes], *, chain_id: int = 0,
                agreement: str = _NOBODY) -> Bundle:
    """The demo oracle's evidence for one period: a real slice record per service
    (oracle.evidence.build_record), in the bundle format `smartsla verify` reads."""
    start, end = terms.period_start(period), terms.period_end(period)
    n = slice_count(start, end, terms.slice_seconds)
    records = tuple(
        build_record(chain_id=chain_id, agreement=agreement, period=period, start=start, end=end,
                     slice_seconds=terms.slice_seconds, index=i, name=s.name, kind=s.kind.name,
                     slices=_slices(n, down, missing, offset=n // 4 + 1_000 * i))
        for i, (s, (down, missing)) in enumerate(zip(terms.services, minutes, strict=True)))
    return Bundle(oracle=terms.oracles[0], records=records)


def bundle_figures(bundle: Bundle) -> tuple[tuple[int, ...], int]:
    """(value of each service, measured share) the oracle reports: each figure from its record
    with the oracle's own function, the share the lowest of the services' (oracle.sli.meets_minimum)."""
    figures = [figure_from_record(r) for r in sorted(bundle.records, key=lambda r: r.index)]
    return tuple(f.value_ppm for f in figures), min(f.measured_ppm for f in figures)


def scenario_figures(periods: Sequence[Sequence[Minutes]]) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """(values per period, measured share per period) of a scenario, from its slice records."""
    # Figures do not depend on the chain, addresses or dates: any start gives the same values.
    provider, customer, oracle = ("0x" + f"{k:040x}" for k in (1, 2, 3))
    terms = demo_terms(provider, customer, oracle, start=1)
    figures = [bundle_figures(demo_bundle(terms, p, minutes)) for p, minutes in enumerate(periods)]
    return tuple(v for v, _ in figures), tuple(m for _, m in figures)


@functools.cache
def _demo_figures() -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    return scenario_figures([minutes for minutes, _ in DEMO_SCENARIO])


def __getattr__(name: str) -> Any:
    # DEMO_VALUES_PPM / DEMO_MEASURED_PPM: the values and measured shares the demo settles, derived
    # from the records (tests import them). Computed on first use: building 15 month-long records
    # takes 0.3 s, which every CLI command importing this module would otherwise pay.
    if name == "DEMO_VALUES_PPM":
        return _demo_figures()[0]
    if name == "DEMO_MEASURED_PPM":
        return _demo_figures()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PeriodResult:
    period: int
    values_ppm: tuple[int, ...]
    service_credits: tuple[int, ...]
    capped_credit: int  # quoted by the contract, after the per-period cap
    credit_paid: int  # after the collateral limit
    fee_earned: int
    disaster: bool


@dataclass
class DemoResult:
    """The demo's numbers, all in wei, for tests and scripts."""

    chain_id: int
    factory: str
    agreement: str
    terms: Terms
    accounts: dict[str, str]
    periods: list[PeriodResult] = field(default_factory=list)
    fees_deposited: int = 0
    collateral_deposited: int = 0
    termination_refund: int = 0  # prepaid fees given back to the customer by the disaster clause
    termination_fee_earned: int = 0  # the served seconds of the period in progress, to the provider
    collateral_returned: int = 0  # collateral left, given back to the provider on termination
    withdrawn: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTIES, 0))
    owed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTIES, 0))  # still owed at the end
    fees_escrowed: int = 0  # at the end
    collateral_escrowed: int = 0  # at the end
    contract_balance: int = 0  # what the agreement contract actually holds at the end
    wallet_change: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTIES, 0))
    gas_paid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTIES, 0))
    chain: Chain | None = field(default=None, repr=False, compare=False)  # kept for `smartsla demo --serve`
    final_status: str = ""
    bundles: list[Bundle] = field(default_factory=list)  # the oracle's evidence, one per settled period
    evidence_files: list[Path] = field(default_factory=list)  # where they were written (--evidence-dir)

    @property
    def deposited(self) -> int:
        return self.fees_deposited + self.collateral_deposited

    @property
    def credits_paid(self) -> int:
        return sum(p.credit_paid for p in self.periods)

    @property
    def held_by_contract(self) -> int:
        """What the contract's own books say it holds: escrowed plus owed."""
        return self.fees_escrowed + self.collateral_escrowed + sum(self.owed.values())

    @property
    def accounted(self) -> int:
        return sum(self.withdrawn.values()) + self.held_by_contract

    @property
    def balanced(self) -> bool:
        return self.accounted == self.deposited and self.contract_balance == self.held_by_contract


# ---------------------------------------------------------------------------- formatting
def tier_label(service: Service, value_ppm: int) -> str:
    """Which step of the schedule a value falls in, as people read it."""
    if value_ppm >= service.objective:
        return "[green]met[/]"
    hit = [t for t in service.tiers if value_ppm < t.threshold]
    if not hit:  # below the objective but above the mildest tier's threshold
        return "[yellow]missed, no tier[/]"
    tier = hit[-1]
    return f"[yellow]< {ppm_to_percent(tier.threshold)} → {bps_to_percent(tier.credit_bps)}[/]"


# ---------------------------------------------------------------------------- checks
def _expect(what: str, chain_value: Any, model_value: Any) -> None:
    if chain_value != model_value:
        raise DemoMismatch(f"{what}: chain says {chain_value!r}, the Python model says {model_value!r}")


def _check_books(agreement: Agreement, books: Books, when: str) -> Snapshot:
    """Compare every field of the on-chain snapshot, and the contract's balance, with the model."""
    snap = agreement.snapshot()
    _expect(f"status {when}", snap.status.name, books.status)
    _expect(f"settled periods {when}", snap.settled_periods, books.settled_periods)
    _expect(f"fees deposited {when}", snap.fees_deposited, books.fees_deposited)
    _expect(f"collateral deposited {when}", snap.collateral_deposited, books.collateral_deposited)
    _expect(f"disaster flag {when}", snap.disaster_occurred, books.disaster)
    _expect(f"fees escrowed {when}", snap.fees_escrowed, books.fees_escrowed)
    _expect(f"collateral escrowed {when}", snap.collateral_escrowed, books.collateral_escrowed)
    _expect(f"owed to customer {when}", snap.owed_to_customer, books.owed["customer"])
    _expect(f"owed to provider {when}", snap.owed_to_provider, books.owed["provider"])
    _expect(f"contract balance {when}", agreement.balance(), books.held)
    return snap


def _gas_paid(chain: Chain, first_block: int, addresses: dict[str, str]) -> dict[str, int]:
    """Gas each party paid in the blocks from `first_block` to the latest (few blocks: a demo)."""
    by_address = {addr.lower(): party for party, addr in addresses.items()}
    paid = dict.fromkeys(addresses, 0)
    for number in range(first_block, chain.w3.eth.block_number + 1):
        block = chain.w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if isinstance(tx, bytes):  # a bare hash: only without full_transactions
                continue
            party = by_address.get(str(tx["from"]).lower())
            if party is None:
                continue
            receipt = chain.w3.eth.get_transaction_receipt(tx["hash"])
            paid[party] += int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    return paid


# ---------------------------------------------------------------------------- the story
def run_demo(console: Console | None = None, chain_url: str = EMBEDDED, evidence_dir: str | Path | None = None
             ) -> DemoResult:
    """Run the whole lifecycle on `chain_url` (the embedded chain by default) and tell it; with
    `evidence_dir`, write each period's evidence bundle there (for `smartsla verify --bundle`)."""
    console = console or Console()
    chain = Chain.connect(chain_url)
    accounts = chain.accounts
    if len(accounts) < 4:
        raise SmartSLAError(f"the demo needs 4 unlocked accounts on {chain.url}, the node has {len(accounts)}")
    roles = {"deployer": accounts[0], "provider": accounts[1], "customer": accounts[2], "oracle": accounts[3]}
    where = "the embedded chain (eth-tester, in this process)" if chain.embedded else chain.url

    console.print(Rule("[bold]smartsla demo: one SLA from creation to the last withdrawal"))
    console.print(f"Chain: {escape(where)}, chain id {chain.chain_id}")
    parties = Table(title="Parties", title_justify="left")
    parties.add_column("role")
    parties.add_column("address")
    for role, address in roles.items():
        parties.add_row(role, address)
    console.print(parties)

    # 1. factory and agreement ------------------------------------------------------------
    console.print(Rule("1. The agreement"))
    factory = Factory.deploy(chain, roles["deployer"])
    console.print(f"AgreementFactory deployed at [cyan]{factory.address}[/] by the deployer.")
    terms = demo_terms(roles["provider"], roles["customer"], roles["oracle"], chain.now() + 60)
    agreement = factory.create_agreement(terms, roles["deployer"])
    console.print(f"Agreement created at [cyan]{agreement.address}[/] (an EIP-1167 clone with its terms in its code).")
    onchain_terms = agreement.contract.functions.terms().call()
    _expect("terms read back from the chain", Terms.from_abi(onchain_terms), terms)
    print_terms(console, terms)

    result = DemoResult(chain_id=chain.chain_id, factory=factory.address, agreement=agreement.address, terms=terms,
                        accounts=dict(roles), chain=chain)
    books = Books(terms)
    _check_books(agreement, books, "after creation")

    # 2. deposits ---------------------------------------------------------------------------
    console.print(Rule("2. Deposits"))
    first_block = chain.w3.eth.block_number + 1
    wallet_start = {p: chain.balance(roles[p]) for p in PARTIES}
    agreement.deposit_fees(roles["customer"])
    books.deposit_fees()
    _check_books(agreement, books, "after the fee deposit")
    result.fees_deposited = terms.total_fees
    console.print(f"The customer prepays {terms.period_count} months of fees: [bold]{fmt_eth(terms.total_fees)}[/].")
    agreement.deposit_collateral(roles["provider"])
    books.deposit_collateral()
    snap = _check_books(agreement, books, "after the collateral deposit")
    result.collateral_deposited = terms.collateral
    console.print(f"The provider bonds its collateral: [bold]{fmt_eth(terms.collateral)}[/].")
    console.print(f"Status: [bold]{snap.status.name}[/]; the contract holds {fmt_eth(agreement.balance())}.")

    # 3. periods ----------------------------------------------------------------------------
    console.print(Rule("3. Monthly settlements by the oracle"))
    table = Table(title="Settled periods (numbered from 0, as in the contract)", title_justify="left")
    for col, justify in (("period", "right"), ("service", "left"), ("measured", "right"), ("tier", "left"),
                         ("credit", "right"), ("paid to customer", "right"), ("fee to provider", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    notes: list[str] = []
    for period, (minutes, _) in enumerate(DEMO_SCENARIO):
        chain.mine_at(terms.period_end(period))
        # The oracle's evidence: a slice record per service; the figures are computed from it.
        bundle = demo_bundle(terms, period, minutes, chain_id=chain.chain_id, agreement=agreement.address)
        values, measured = bundle_figures(bundle)
        expected = _demo_figures()
        _expect(f"period {period} figures", (values, measured), (expected[0][period], expected[1][period]))
        result.bundles.append(bundle)
        quoted_credits, quoted_capped = agreement.quote_credit(list(values))
        settlement = agreement.settle(period, list(values), measured, period_root(bundle.records), roles["oracle"])
        _expect(f"period {period} measured share", settlement.measured_ppm, measured)
        outcome: PeriodOutcome = books.settle(list(values))
        _expect(f"period {period} quoted credits", tuple(quoted_credits), outcome.service_credits)
        _expect(f"period {period} quoted capped credit", quoted_capped, outcome.capped_credit)
        _expect(f"period {period} settled values", settlement.values_ppm, tuple(values))
        _expect(f"period {period} service credits", settlement.service_credits, outcome.service_credits)
        _expect(f"period {period} credit paid", settlement.credit_paid, outcome.paid_credit)
        _expect(f"period {period} fee earned", settlement.fee_earned, terms.fee_per_period)
        _expect(f"period {period} disaster flag", settlement.disaster, outcome.disaster)
        _check_books(agreement, books, f"after period {period}")
        result.periods.append(PeriodResult(period, tuple(values), settlement.service_credits, quoted_capped,
                                           settlement.credit_paid, settlement.fee_earned, settlement.disaster))

        for i, (service, value, credit) in enumerate(zip(terms.services, values, settlement.service_credits,
                                                         strict=True)):
            last = i == len(terms.services) - 1
            shown = ppm_to_percent(value)
            if value < terms.termination_ppm:
                shown = f"[bold red]{shown}[/]"
            table.add_row(
                str(period) if i == 0 else "", service.name, shown, tier_label(service, value),
                fmt_eth(credit) if credit else "–",
                fmt_eth(settlement.credit_paid) if last else "",
                fmt_eth(settlement.fee_earned) if last else "",
                end_section=last,
            )
        gross = sum(settlement.service_credits)
        if quoted_capped < gross:
            notes.append(f"period {period}: credits {fmt_eth(gross)} capped at {bps_to_percent(terms.credit_cap_bps)}"
                         f" of the fee = {fmt_eth(quoted_capped)}")
        if settlement.credit_paid < quoted_capped:
            notes.append(f"period {period}: collateral exhausted, {fmt_eth(quoted_capped - settlement.credit_paid)}"
                         " of credit unpaid")
        if settlement.disaster:
            notes.append(f"period {period}: a service measured below {ppm_to_percent(terms.termination_ppm)}:"
                         " the disaster clause may be invoked")
        if period + 1 == PROVIDER_WITHDRAWS_AFTER:
            amount = agreement.withdraw(roles["provider"])
            _expect("provider's mid-term withdrawal", amount, books.withdraw("provider"))
            result.withdrawn["provider"] += amount
            _check_books(agreement, books, f"after the provider's withdrawal after period {period}")
            notes.append(f"after period {period}: the provider withdraws the fees earned so far, {fmt_eth(amount)}")
    console.print(table)
    for period, (_, why) in enumerate(DEMO_SCENARIO):
        console.print(f"  period {period}: {why}")
    for note in notes:
        console.print(f"  [bold]•[/] {escape(note)}")
    _check_evidence(console, chain, agreement, result, evidence_dir)

    # 4. disaster clause --------------------------------------------------------------------
    console.print(Rule("4. Disaster clause"))
    tx = agreement.terminate(roles["customer"])
    # The provider keeps the seconds of the period in progress it served (pro rata).
    earned = books.terminate(int(chain.w3.eth.get_block(tx.block_number)["timestamp"]))
    event = agreement.contract.events.Terminated().process_receipt(tx.receipt)[0]["args"]
    result.termination_refund = int(event["refundedFees"])
    result.termination_fee_earned = int(event["feeEarnedByProvider"])
    result.collateral_returned = int(event["returnedCollateral"])
    unsettled = terms.period_count - books.settled_periods
    _expect("fee earned for the served part of the period in progress", int(event["feeEarnedByProvider"]), earned)
    _expect("fees refunded on termination", result.termination_refund, unsettled * terms.fee_per_period - earned)
    snap = _check_books(agreement, books, "after termination")
    console.print(f"The customer terminates. Status: [bold]{snap.status.name}[/].")
    console.print(f"  Prepaid fees of the {unsettled} unsettled period(s) refunded to the customer, less the served "
                  f"part of the period in progress ({fmt_eth(earned)} to the provider): "
                  f"[bold]{fmt_eth(result.termination_refund)}[/]")
    console.print(f"  Collateral left, returned to the provider: [bold]{fmt_eth(result.collateral_returned)}[/]")
    chain.mine_at(terms.period_end(len(DEMO_SCENARIO)))
    try:
        late = demo_bundle(terms, len(DEMO_SCENARIO), [(0, 0)] * len(terms.services), chain_id=chain.chain_id,
                           agreement=agreement.address)
        values, measured = bundle_figures(late)
        agreement.settle(len(DEMO_SCENARIO), list(values), measured, period_root(late.records), roles["oracle"])
    except ContractReverted as exc:
        if exc.name != "WrongStatus":
            raise DemoMismatch(f"settling after termination should revert WrongStatus, reverted {exc}") from exc
        console.print(f"  The oracle can no longer settle: the contract refuses with [red]{escape(str(exc))}[/].")
    else:
        raise DemoMismatch("the contract accepted a settlement after termination")

    # 5. withdrawals ------------------------------------------------------------------------
    console.print(Rule("5. Withdrawals"))
    for party in PARTIES:
        amount = agreement.withdraw(roles[party])
        _expect(f"{party}'s withdrawal", amount, books.withdraw(party))
        result.withdrawn[party] += amount
        _check_books(agreement, books, f"after the {party}'s withdrawal")
        console.print(f"The {party} withdraws {fmt_eth(amount)}.")
    try:
        agreement.withdraw(roles["customer"])
    except ContractReverted as exc:
        if exc.name != "NothingToWithdraw":
            raise DemoMismatch(f"a second withdrawal should revert NothingToWithdraw, reverted {exc}") from exc
        console.print(f"A second withdrawal is refused: [red]{escape(str(exc))}[/].")
    else:
        raise DemoMismatch("the contract paid a second withdrawal")

    # 6. final balances ---------------------------------------------------------------------
    console.print(Rule("6. Final balances"))
    snap = _check_books(agreement, books, "at the end")
    result.owed = {"customer": snap.owed_to_customer, "provider": snap.owed_to_provider}
    result.fees_escrowed = snap.fees_escrowed
    result.collateral_escrowed = snap.collateral_escrowed
    result.contract_balance = agreement.balance()
    result.final_status = snap.status.name
    result.gas_paid = _gas_paid(chain, first_block, {p: roles[p] for p in PARTIES})
    result.wallet_change = {p: chain.balance(roles[p]) - wallet_start[p] for p in PARTIES}
    deposits = {"customer": result.fees_deposited, "provider": result.collateral_deposited}
    wallets = Table(title="Wallets since the deposits", title_justify="left")
    for col in ("party", "deposited", "withdrawn", "net from the agreement", "gas paid", "wallet change"):
        wallets.add_column(col, justify="left" if col == "party" else "right")
    for party in PARTIES:
        net = result.withdrawn[party] - deposits[party]
        # The wallet must have moved by exactly the agreement's net flow less the gas it paid.
        _expect(f"{party}'s wallet change", result.wallet_change[party], net - result.gas_paid[party])
        wallets.add_row(party, fmt_eth(deposits[party]), fmt_eth(result.withdrawn[party]),
                        _signed(net), fmt_eth(result.gas_paid[party]), _signed(result.wallet_change[party]))
    console.print(wallets)
    console.print(f"The customer paid {fmt_eth(books.settled_periods * terms.fee_per_period)} for "
                  f"{books.settled_periods} months and received {fmt_eth(result.credits_paid)} of service credits: "
                  f"a net cost of {fmt_eth(books.settled_periods * terms.fee_per_period - result.credits_paid)}.")

    # 7. balance sheet ----------------------------------------------------------------------
    console.print(Rule("7. Balance sheet"))
    _print_balance_sheet(console, result)
    if not result.balanced:
        raise DemoMismatch(
            f"unbalanced: deposited {result.deposited} wei, accounted for {result.accounted} wei, "
            f"contract holds {result.contract_balance} wei against {result.held_by_contract} wei on its books"
        )
    console.print(f"[bold green]balanced[/]: every one of the {result.deposited} wei deposited is accounted for, "
                  f"exactly once; the contract holds {result.contract_balance} wei.")
    return result


def _signed(wei: int) -> str:
    return ("+" if wei >= 0 else "-") + fmt_eth(abs(wei))


def print_terms(console: Console, terms: Terms, *, parties: bool = False,
                fmt: Callable[[int], str] = fmt_eth) -> None:
    """The terms as two Rich tables: the summary (with the parties' addresses if `parties`) and the
    services. `fmt` formats amounts of the asset (ETH by default)."""
    summary = Table(title="Terms", title_justify="left", show_header=False)
    summary.add_column("item")
    summary.add_column("value")
    if parties:
        for role in ("provider", "customer", "oracle"):
            summary.add_row(role, getattr(terms, role))
    summary.add_row("periods", f"{terms.period_count} × {fmt_days(terms.period_length)}, from {fmt_time(terms.start)}"
                    f" to {fmt_time(terms.end)}")
    summary.add_row("asset", "ETH (native)" if terms.is_native else terms.asset)
    summary.add_row("fee", f"{fmt(terms.fee_per_period)} per period, {fmt(terms.total_fees)} in all, prepaid")
    summary.add_row("collateral", fmt(terms.collateral))
    summary.add_row("credit cap", f"{bps_to_percent(terms.credit_cap_bps)} of a period's fee "
                    f"({fmt(terms.fee_per_period * terms.credit_cap_bps // 10_000)})")
    summary.add_row("disaster clause",
                    f"any service below {ppm_to_percent(terms.termination_ppm)} in a period lets the customer "
                    "terminate and get back the unearned fees" if terms.termination_ppm else "none")
    console.print(summary)
    services = Table(title="Services", title_justify="left")
    for col in ("service", "weight (share of the fee)", "objective", "credit tiers"):
        services.add_column(col)
    for s in terms.services:
        tiers = ", ".join(f"< {ppm_to_percent(t.threshold)} → {bps_to_percent(t.credit_bps)}" for t in s.tiers)
        share = terms.fee_per_period * s.weight_bps // 10_000
        services.add_row(s.name, f"{bps_to_percent(s.weight_bps)} ({fmt(share)})", ppm_to_percent(s.objective),
                         tiers)
    console.print(services)


def _print_balance_sheet(console: Console, r: DemoResult) -> None:
    sheet = Table(title="Where every wei deposited is now", title_justify="left")
    sheet.add_column("")
    sheet.add_column("ETH", justify="right")
    sheet.add_column("wei", justify="right")
    rows = [
        ("fees deposited by the customer", r.fees_deposited),
        ("collateral deposited by the provider", r.collateral_deposited),
    ]
    for label, wei in rows:
        sheet.add_row(label, fmt_eth(wei), str(wei))
    sheet.add_row("[bold]deposited in all[/]", f"[bold]{fmt_eth(r.deposited)}[/]", f"[bold]{r.deposited}[/]",
                  end_section=True)
    places = [
        ("withdrawn by the customer", r.withdrawn["customer"]),
        ("withdrawn by the provider", r.withdrawn["provider"]),
        ("still owed to the customer", r.owed["customer"]),
        ("still owed to the provider", r.owed["provider"]),
        ("still escrowed: fees", r.fees_escrowed),
        ("still escrowed: collateral", r.collateral_escrowed),
    ]
    for label, wei in places:
        sheet.add_row(label, fmt_eth(wei), str(wei))
    sheet.add_row("[bold]accounted for[/]", f"[bold]{fmt_eth(r.accounted)}[/]", f"[bold]{r.accounted}[/]",
                  end_section=True)
    sheet.add_row("held by the contract (its balance on chain)", fmt_eth(r.contract_balance), str(r.contract_balance))
    sheet.add_row("held by the contract (owed + escrowed, its books)", fmt_eth(r.held_by_contract),
                  str(r.held_by_contract))
    console.print(sheet)



def _check_evidence(console: Console, chain: Chain, agreement: Agreement, result: DemoResult,
                    evidence_dir: str | Path | None) -> None:
    """Check every settled period against the oracle's evidence, as `smartsla verify` does
    (smartsla.verify.verify_period), and write the bundles to `evidence_dir` if given."""
    from .verify import Source, verify_period  # the verifier only when the demo runs

    console.print("Evidence: for each period the oracle committed the Merkle root of its slice records "
                  "(one state per minute per service); the figures are recomputed from them:")
    folder = Path(evidence_dir) if evidence_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for bundle in result.bundles:
        period = bundle.head.period
        where = f"the oracle's bundle for period {period}"
        if folder is not None:
            path = folder / f"{agreement.address}-period-{period}.json"
            path.write_text(dumps_bundle(bundle) + "\n")
            result.evidence_files.append(path)
            where = str(path)
        verdict = verify_period(agreement, chain.chain_id, period, [Source(where, bundle=bundle)])
        if verdict.outcome != "verified":
            raise DemoMismatch(f"period {period} does not verify against its evidence ({verdict.outcome}): "
                               + "; ".join(verdict.problems + verdict.missing))
        console.print(f"  period {period}: [green]verified[/] (root 0x{bundle.root.hex()[:12]}…)")
    factory = f" --factory {result.factory}"
    if result.evidence_files:
        first = result.evidence_files[0]
        console.print(f"  Bundles written to {escape(str(first.parent))}/.")
        if chain.embedded:
            console.print("  The embedded chain ends with the demo: to check a bundle yourself, run the demo on a "
                          "lasting chain (anvil), e.g. [bold]smartsla demo --rpc-url http://127.0.0.1:8545 "
                          "--evidence-dir DIR[/], then [bold]smartsla verify ADDRESS PERIOD --bundle FILE "
                          "--rpc-url http://127.0.0.1:8545 --factory FACTORY[/].")
        else:
            console.print(f"  Check one yourself: [bold]smartsla verify {agreement.address} 0 --bundle "
                          f"{escape(str(first))} --rpc-url {escape(chain.url)}{factory}[/]")
    else:
        console.print("  To check them yourself: run the demo on a lasting chain with [bold]--rpc-url "
                      "http://127.0.0.1:8545 --evidence-dir DIR[/] (anvil), then [bold]smartsla verify ADDRESS "
                      "PERIOD --bundle FILE --rpc-url http://127.0.0.1:8545 --factory FACTORY[/].")
