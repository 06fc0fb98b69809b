"""Gas used by every operation of an agreement, measured on a real local node (Anvil by default).

    python bench/gas.py [--kind anvil|ganache] [--hardfork shanghai] [--json] [--check]

Starts the node with smartsla.localnode, deploys the factory and walks agreements through their
life in native ETH and in an ERC-20 (TestToken). Figures are each transaction's receipt gasUsed
(21,000 intrinsic gas and calldata included). --check exits 1 when a target is missed.

The "before" column is the same operation measured on main 860c811, before every report carried
its evidence root (issue 12): a settlement may cost at most EVIDENCE_BUDGET more per report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

try:
    import smartsla  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account

from oracle.evidence import opaque_root
from smartsla.chain import Chain, TxResult
from smartsla.client import Agreement, Factory
from smartsla.localnode import KINDS, start_node
from smartsla.reports import sign_report
from smartsla.terms import Service, Terms, Tier

ETHER = 10**18
TIERS = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=990_000, credit_bps=3_000),
         Tier(threshold=950_000, credit_bps=10_000))  # AWS EC2 region level
CREATE_TARGET = 400_000
SETTLE_1_TARGET = 80_000
CREDIT_VALUE = 995_000  # below 99.99 %: earns the 10 % tier, so the customer's balance is written
# A realistic root: a month of one-minute slices, 30 of them down (all roots cost the same).
EVIDENCE = opaque_root([b"U" * 43_140 + b"D" * 30 + b"U" * 30])
# Gas of the settlements on main 860c811 (Anvil, latest hardfork), before the evidence root.
BEFORE = {
    "settle 1 service, first period (credit due)": 75_329,
    "settle 1 service, later period (credit due)": 58_241,
    "settle 1 service, last period (ends, returns collateral)": 60_148,
    "settle 5 services, first period": 98_994,
    "settle 5 services, later period": 81_906,
    "settle 1 service, disaster (below termination)": 75_897,
    "settle 1 service, first period (ERC-20)": 75_329,
    "settle 1 service, 3 signed reports (quorum 3 of 3)": 110_264,
}
EVIDENCE_BUDGET = 3_000  # the most a report's evidence may add (issue 12)


@dataclass
class Row:
    operation: str
    gas: int
    target: int | None = None
    before: int | None = None  # on main 860c811, before the evidence root

    @property
    def ok(self) -> bool | None:
        return None if self.target is None else self.gas <= self.target


class Bench:
    def __init__(self, chain: Chain):
        self.chain = chain
        a = chain.accounts
        self.deployer, self.provider, self.customer, self.oracle = a[0], a[1], a[2], a[3]
        self.rows: list[Row] = []
        self.factory: Factory | None = None

    def add(self, operation: str, result: TxResult | int, target: int | None = None) -> None:
        gas = result if isinstance(result, int) else result.gas_used
        before = BEFORE.get(operation)
        if before is not None:
            # one report per settlement except the committee's three
            reports = 3 if "3 signed" in operation else 1
            budget = before + EVIDENCE_BUDGET * reports
            target = budget if target is None else min(target, budget)
        self.rows.append(Row(operation, gas, target, before))

    def terms(self, services: int = 1, *, asset: str | None = None, periods: int = 3) -> Terms:
        weight = 10_000 // services
        return Terms(
            provider=self.provider, customer=self.customer, oracle=self.oracle,
            asset=asset or "0x" + "00" * 20, start=self.chain.now() + 60, period_length=3600, period_count=periods,
            fee_per_period=ETHER, collateral=3 * ETHER, credit_cap_bps=10_000, termination_ppm=900_000,
            services=tuple(
                Service(name=f"service-{i}", objective=999_900,
                        weight_bps=weight + (10_000 - weight * services if i == 0 else 0), tiers=TIERS)
                for i in range(services)
            ),
        )

    def create(self, terms: Terms) -> Agreement:
        assert self.factory is not None
        agreement = self.factory.create_agreement(terms, self.deployer)
        return agreement

    def settle(self, agreement: Agreement, period: int, values: list[int]) -> TxResult:
        self.chain.mine_at(agreement.terms.period_end(period))
        settled = agreement.settle(period, values, 1_000_000, EVIDENCE, self.oracle)
        assert settled.tx is not None
        return settled.tx

    def withdraw(self, agreement: Agreement, party: str) -> TxResult:
        return self.chain.transact(agreement.contract.functions.withdraw(), party, action="withdraw")

    def deposit(self, agreement: Agreement, which: str, sender: str) -> TxResult:
        """Deposit without the library's implicit approve, so that only the deposit is measured."""
        fn = agreement.contract.functions.depositFees() if which == "fees" else \
            agreement.contract.functions.depositCollateral()
        amount = agreement.terms.total_fees if which == "fees" else agreement.terms.collateral
        value = amount if agreement.terms.is_native else 0
        return self.chain.transact(fn, sender, value=value, action=f"deposit {which}")

    def run(self) -> list[Row]:
        chain = self.chain
        contract, result = chain.deploy("AgreementFactory", self.deployer)
        self.factory = Factory(chain, contract.address)
        self.add("deploy factory (with Agreement implementation)", result)

        # ------------------------------------------------------------ native ETH, 1 service
        one = self.create(self.terms(1))
        assert one.creation is not None
        # The parties' first agreement also pays for their registry entries (zero to non-zero slots).
        self.add("create agreement (1 service, 3 tiers; parties' first)", one.creation, CREATE_TARGET)
        self.add("deposit fees (ETH)", self.deposit(one, "fees", self.customer))
        self.add("deposit collateral (ETH, activates)", self.deposit(one, "collateral", self.provider))
        self.add("settle 1 service, first period (credit due)", self.settle(one, 0, [CREDIT_VALUE]), SETTLE_1_TARGET)
        self.add("settle 1 service, later period (credit due)", self.settle(one, 1, [CREDIT_VALUE]), SETTLE_1_TARGET)
        self.add("settle 1 service, last period (ends, returns collateral)", self.settle(one, 2, [1_000_000]),
                 SETTLE_1_TARGET)
        self.add("withdraw (customer, ETH)", self.withdraw(one, self.customer))
        self.add("withdraw (provider, ETH)", self.withdraw(one, self.provider))

        # ------------------------------------------------------------ native ETH, 5 services
        five = self.create(self.terms(5))
        assert five.creation is not None
        self.add("create agreement (5 services, 3 tiers each)", five.creation, CREATE_TARGET)
        self.deposit(five, "fees", self.customer)
        self.deposit(five, "collateral", self.provider)
        values = [1_000_000, CREDIT_VALUE, 980_000, 999_950, 940_000]
        self.add("settle 5 services, first period", self.settle(five, 0, values))
        self.add("settle 5 services, later period", self.settle(five, 1, values))

        # ------------------------------------------------------------ disaster clause
        doomed = self.create(self.terms(1))
        assert doomed.creation is not None
        self.add("create agreement (1 service, 3 tiers; parties' later)", doomed.creation, CREATE_TARGET)
        self.deposit(doomed, "fees", self.customer)
        self.deposit(doomed, "collateral", self.provider)
        self.add("settle 1 service, disaster (below termination)", self.settle(doomed, 0, [500_000]), SETTLE_1_TARGET)
        self.add("terminate (customer, after a disaster)",
                 chain.transact(doomed.contract.functions.terminate(), self.customer, action="terminate"))

        # ------------------------------------------------------------ committee: 3 signed reports
        keys = [Account.create(f"gas bench oracle {i}") for i in range(3)]
        board = self.create(self.terms(1).model_copy(update={"oracles": tuple(k.address for k in keys),
                                                             "quorum": 3}))
        self.deposit(board, "fees", self.customer)
        self.deposit(board, "collateral", self.provider)
        chain.mine_at(board.terms.period_end(0))
        deadline = board.terms.period_end(0) + 86_400
        reports = [sign_report(k.key, chain.chain_id, board.address, 0, [CREDIT_VALUE], 1_000_000, EVIDENCE, deadline)
                   for k in keys]
        settled = board.settle_with_reports(0, reports, self.oracle)
        assert settled.tx is not None and len(settled.evidence) == 3
        self.add("settle 1 service, 3 signed reports (quorum 3 of 3)", settled.tx)

        # ------------------------------------------------------------ ERC-20 (TestToken)
        token, result = chain.deploy("TestToken", self.deployer)
        self.add("deploy TestToken (ERC-20)", result)
        self.add("mint (ERC-20)", chain.transact(token.functions.mint(self.customer, 100 * ETHER), self.deployer))
        chain.transact(token.functions.mint(self.provider, 100 * ETHER), self.deployer)
        erc = self.create(self.terms(1, asset=token.address))
        assert erc.creation is not None
        self.add("create agreement (1 service, ERC-20)", erc.creation, CREATE_TARGET)
        terms = erc.terms
        self.add("approve fees (ERC-20)", chain.transact(token.functions.approve(erc.address, terms.total_fees),
                                                         self.customer, action="approve"))
        self.add("deposit fees (ERC-20)", self.deposit(erc, "fees", self.customer))
        chain.transact(token.functions.approve(erc.address, terms.collateral), self.provider, action="approve")
        self.add("deposit collateral (ERC-20, activates)", self.deposit(erc, "collateral", self.provider))
        self.add("settle 1 service, first period (ERC-20)", self.settle(erc, 0, [CREDIT_VALUE]), SETTLE_1_TARGET)
        self.add("withdraw (customer, ERC-20)", self.withdraw(erc, self.customer))
        self.add("withdraw (provider, ERC-20)", self.withdraw(erc, self.provider))
        return self.rows


def render(rows: list[Row], meta: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        print(f"gas used on {meta['kind']} (chain {meta['chain_id']}, hardfork {meta['hardfork']})")
        for row in rows:
            target = f"<= {row.target:,}" if row.target else ""
            verdict = {True: "ok", False: "OVER", None: ""}[row.ok]
            before = f"{row.before:,} ({row.gas - row.before:+,})" if row.before else ""
            print(f"{row.operation:58} {row.gas:>10,} {before:>18} {target:>12} {verdict}")
        return
    table = Table(title=f"gas used on {meta['kind']} (chain id {meta['chain_id']}, hardfork {meta['hardfork']})")
    table.add_column("operation")
    table.add_column("gas used", justify="right")
    table.add_column("before (860c811)", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="center")
    for row in rows:
        verdict = {True: "[green]ok[/]", False: "[red]OVER[/]", None: ""}[row.ok]
        before = f"{row.before:,} ({row.gas - row.before:+,})" if row.before else ""
        table.add_row(row.operation, f"{row.gas:,}", before, f"≤ {row.target:,}" if row.target else "", verdict)
    Console().print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the gas of every smartsla operation on a local node.")
    parser.add_argument("--kind", choices=KINDS, default="anvil", help="node to measure on (default anvil)")
    parser.add_argument("--hardfork", default=None,
                        help="EVM hardfork (default: the node's own; Anvil's latest, Ganache's shanghai)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)

    with start_node(args.kind, hardfork=args.hardfork) as node:
        chain = Chain.connect(node.url)
        rows = Bench(chain).run()
        version = chain.w3.client_version
    meta = {"kind": args.kind, "client": version, "chain_id": node.chain_id,
            "hardfork": args.hardfork or ("latest" if args.kind == "anvil" else "shanghai")}
    if args.json:
        print(json.dumps({**meta, "rows": [{**asdict(r), "ok": r.ok} for r in rows]}, indent=2))
    else:
        render(rows, meta)
    missed = [r for r in rows if r.ok is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
