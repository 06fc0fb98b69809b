"""`smartsla demo --multi-level`: one organisation, three departments, one collateral pool.

The organisation of examples/multi-level-corporate.yaml (tests/test_demo_multilevel.py checks the
terms are the same) on a chain of its own, or a dev chain that travels in time: the spec is
validated and created, both parties deposit, the oracle reports two months (ERP down for half a
day in the first; its figures computed from slice records as the daemon does, the evidence root
alongside), anyone settles every department of a month in one transaction, two departments
withdraw. Each department's credit is checked against the reference model
(CorporateTerms.department_credit) and every wei is accounted for at the end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from .chain import EMBEDDED, Chain
from .corporate import Corporate, CorporateSpec, CorporateTerms
from .demo import bundle_figures, demo_bundle
from .errors import SmartSLAError
from .multilevel import measured_terms, read_state, send_report
from .presentation import fmt_eth
from .units import BPS, ppm_to_percent

SLICE_S = 60
PERIODS = 2
# (minutes down, minutes not measured) per corporate service (email, erp, vpn), per month.
SCENARIO = (((0, 0), (720, 0), (0, 0)),   # month 0: ERP down 12 hours -> 98.33 %
            ((0, 0), (0, 0), (0, 0)))     # month 1: all up
WITHDRAWING = ("finance", "engineering")


def demo_spec(provider: str, organisation: str, oracle: str, payouts: dict[str, str], start: int) -> dict[str, Any]:
    """The example's organisation with these parties, starting at `start`, for PERIODS months."""
    def tiers(*rows: tuple[str | None, str | None, str]) -> list[dict[str, str]]:
        return [{k: v for k, v in (("below", b), ("atLeast", a), ("credit", c)) if v} for b, a, c in rows]

    services = [
        {"name": "email", "slo": {"sli": "availability", "objective": "99.9%"},
         "credits": tiers(("99.9%", "99.0%", "10%"), ("99.0%", None, "25%"))},
        {"name": "erp", "slo": {"sli": "availability", "objective": "99.5%"},
         "credits": tiers(("99.5%", "98.0%", "10%"), ("98.0%", None, "30%"))},
        {"name": "vpn", "slo": {"sli": "availability", "objective": "99.0%"},
         "credits": tiers(("99.0%", None, "20%"))},
    ]
    departments = [
        {"name": "finance", "payout": payouts["finance"], "fee": "2.0", "creditCap": "100%",
         "services": {"email": {"weight": "30%"}, "erp": {"weight": "70%", "objective": "99.9%"}}},
        {"name": "sales", "payout": payouts["sales"], "fee": "1.0",
         "services": {"email": {"weight": "50%"}, "vpn": {"weight": "50%"}}},
        {"name": "engineering", "payout": payouts["engineering"], "fee": "1.5",
         "services": {"email": {"weight": "20%"}, "erp": {"weight": "20%"}, "vpn": {"weight": "60%"}}},
    ]
    when = dt.datetime.fromtimestamp(start, dt.UTC).isoformat().replace("+00:00", "Z")
    return {"apiVersion": "smartsla/v1", "kind": "CorporateAgreement",
            "metadata": {"name": "acme-it-services", "structure": "multi-level"},
            "spec": {"parties": {"provider": provider, "organisation": organisation}, "oracle": oracle,
                     "asset": "ETH", "collateral": "20",
                     "timeWindow": {"start": when, "duration": "30d", "count": PERIODS},
                     "creditCap": "50%", "services": services, "departments": departments}}


@dataclass
class MultiLevelResult:
    address: str
    terms: CorporateTerms
    names: list[str]
    values: list[tuple[int, ...]] = field(default_factory=list)  # reported per period
    credits: dict[str, list[int]] = field(default_factory=dict)  # department -> credit per period
    withdrawn: dict[str, int] = field(default_factory=dict)


def _eth(wei: int) -> str:
    return f"{Decimal(wei) / 10**18:f}"


def run_multilevel_demo(console: Console | None = None, chain_url: str = EMBEDDED) -> MultiLevelResult:
    console = console or Console()
    chain = Chain.connect(chain_url)
    a = chain.accounts
    if len(a) < 7:
        raise SmartSLAError(f"the multi-level demo needs 7 unlocked accounts on {chain.url}, the node has {len(a)}")
    names = ["finance", "sales", "engineering"]
    roles = {"deployer": a[0], "provider": a[1], "organisation": a[2], "oracle": a[3]}
    payouts = dict(zip(names, a[4:7], strict=True))
    where = "the embedded chain (eth-tester, in this process)" if chain.embedded else chain.url
    console.print(Rule("[bold]smartsla demo --multi-level: one organisation, three departments, one pool"))
    console.print(f"Chain: {escape(where)}, chain id {chain.chain_id}")

    # 1. the spec and the agreement -----------------------------------------------------------
    console.print(Rule("1. The multi-level agreement"))
    spec = CorporateSpec.model_validate(demo_spec(roles["provider"], roles["organisation"], roles["oracle"], payouts,
                                                  chain.now() + 60))
    problems = spec.problems()
    if problems:
        raise SmartSLAError("the demo's spec is invalid: " + "; ".join(m for _, m in problems))
    terms = spec.to_terms()
    corporate = Corporate.deploy(chain, terms, roles["deployer"])
    console.print(f"CorporateAgreement at [cyan]{corporate.address}[/]: corporate services email, erp, vpn; "
                  f"pool {fmt_eth(terms.collateral)} (worst case {fmt_eth(terms.worst_case)}).")
    table = Table(title="Departments (customer level)", title_justify="left")
    for col in ("department", "payout", "fee / month", "cap", "services (weight, own objective)"):
        table.add_column(col)
    for name, d, body in zip(names, terms.departments, spec.spec.departments, strict=True):
        covered = ", ".join(f"{n} {s.weight}%" + (f" @ {s.objective}%" if s.objective else "")
                            for n, s in body.services.items())
        table.add_row(name, d.payout, fmt_eth(d.fee_per_period),
                      f"{(d.credit_cap_bps or terms.credit_cap_bps) / 100:g}%", covered)
    console.print(table)
    result = MultiLevelResult(corporate.address, terms, names, credits={n: [] for n in names})

    # 2. deposits ------------------------------------------------------------------------------
    console.print(Rule("2. Deposits"))
    corporate.deposit_fees(roles["organisation"])
    corporate.deposit_collateral(roles["provider"])
    state = read_state(corporate, terms, names)
    console.print(f"The organisation prepays {PERIODS} months of every department's fees: "
                  f"[bold]{fmt_eth(terms.total_fees)}[/]. The provider deposits the pool: "
                  f"[bold]{fmt_eth(terms.collateral)}[/]; {fmt_eth(state.owed_provider)} above the worst case goes "
                  f"straight back to it. Status: [bold]{state.status}[/].")

    # 3. months: one report, one settlement for every department --------------------------------
    console.print(Rule("3. Months: the oracle reports once, anyone settles every department"))
    view = measured_terms(terms, SLICE_S)
    for period, minutes in enumerate(SCENARIO):
        chain.mine_at(terms.period_end(period))
        bundle = demo_bundle(view, period, minutes, chain_id=chain.chain_id, agreement=corporate.address)  # type: ignore[arg-type]
        values, measured = bundle_figures(bundle)
        send_report(corporate, period, values, roles["oracle"], measured_ppm=measured, evidence_root=bundle.root)
        tx = corporate.settle_departments(period, 0, len(terms.departments), roles["deployer"])
        result.values.append(values)
        shown = ", ".join(f"{s.name} {ppm_to_percent(v)}" for s, v in zip(terms.services, values, strict=True))
        console.print(f"Month {period}: reported {shown}; evidence root 0x{bundle.root.hex()[:16]}…; every "
                      f"department settled in one transaction (gas {tx.gas_used}).")
    state = read_state(corporate, terms, names)
    table = Table(title="What each department got, and why", title_justify="left")
    for col in ("department", "month", "credit", "why"):
        table.add_column(col, justify="right" if col in ("month", "credit") else "left")
    for dept in state.departments:
        for period, credit, _fee in dept.periods:
            service_credits, capped = terms.department_credit(dept.index, result.values[period])
            if capped != credit:
                raise SmartSLAError(f"{dept.name} month {period}: the chain paid {credit}, the reference model says "
                                    f"{capped}")
            result.credits[dept.name].append(credit)
            dep = terms.departments[dept.index]
            why = []
            for k, (s, c) in enumerate(zip(terms.services, service_credits, strict=True)):
                if not dep.service_mask & (1 << k):
                    continue
                objective = dep.objectives[k] or s.objective
                value = result.values[period][k]
                if c:
                    tier_bps = c * BPS * BPS // (dep.fee_per_period * dep.weights_bps[k])
                    why.append(f"{s.name} {ppm_to_percent(value)} below {ppm_to_percent(objective)}: "
                               f"{tier_bps / 100:g}% credit x {dep.weights_bps[k] / 100:g}% weight x "
                               f"{_eth(dep.fee_per_period)} ETH fee = {_eth(c)} ETH")
            if not any(dep.service_mask & (1 << k) and result.values[period][k] < (dep.objectives[k] or
                       s.objective) for k, s in enumerate(terms.services)):
                why.append("every service it uses met its objective")
            elif sum(service_credits) > capped:
                why.append(f"capped at {(dep.credit_cap_bps or terms.credit_cap_bps) / 100:g}% of its fee")
            table.add_row(dept.name, str(period), fmt_eth(credit), "; ".join(why) or "–")
    console.print(table)
    console.print("Sales uses email and VPN only: the ERP outage costs the provider nothing towards it. Finance "
                  "holds the ERP to 99.9 % (its own objective), engineering to the corporate 99.5 %.")

    # 4. withdrawals ---------------------------------------------------------------------------
    console.print(Rule("4. Two departments withdraw to their payout addresses"))
    for name in WITHDRAWING:
        payout = payouts[name]
        owed = corporate.owed(payout)
        corporate.withdraw(payout)
        result.withdrawn[name] = owed
        console.print(f"{name}: [bold]{fmt_eth(owed)}[/] paid to {payout}.")
    state = read_state(corporate, terms, names)
    held = state.fees_escrowed + state.pool + state.owed_provider + state.owed_organisation + sum(
        d.owed for d in state.departments if d.payout not in (terms.provider, terms.organisation))
    if held != state.balance:
        raise SmartSLAError(f"the books do not balance: the contract holds {state.balance}, owes {held}")
    console.print(f"Status: [bold]{state.status}[/]. The contract still holds {fmt_eth(state.balance)}: exactly what "
                  f"it owes the provider (fees earned, pool released: {fmt_eth(state.owed_provider)}) and the "
                  f"departments that have not withdrawn ({fmt_eth(sum(d.owed for d in state.departments))}); "
                  "every wei accounted for.")
    return result
