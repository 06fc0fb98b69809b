"""Gas of a multi-level agreement with 1, 10 and 100 departments (embedded chain: EVM gas is the
same on every chain). The oracle's report must cost the same whatever the number of departments;
each department's settlement is a separate, constant cost that anyone may pay; one
`settleDepartments` settles a whole period (and releases its unused pool) for every department;
`expire` (silent oracle, one period unreported) costs the same for any number of departments.

Before issue 11 (commit 3289ca9): deploy 3,226,313; oracle report 81,943 for 1, 10 and 100
departments; settle 161,903 (first department) / 144,815 (later ones); no batch settle, no expire.
Main 006b6fa (constructor-deployed, one oracle): settle 144,837-161,925. Now a clone created by
CorporateAgreementFactory ("create" includes writing the departments' data contract; the
factory's own deployment is once per chain and not counted); the report is the committee's
single-member path with its evidence root. --check exits 1 when the report's gas depends on the
number of departments or a department's settlement reaches 144,837.

    .venv/bin/python bench/multilevel_gas.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from smartsla.chain import Chain
from smartsla.corporate import Corporate, CorporateFactory, CorporateTerms, DepartmentTerms
from smartsla.terms import Service, Tier

ETHER = 10**18
ROOT = b"\x11" * 32  # an evidence root (any non-zero root costs the same)
SETTLE_LIMIT = 144_837  # a department's settlement on main 006b6fa (the bound)
SERVICES = (
    Service(name="email", objective=999_000, tiers=(Tier(threshold=999_000, credit_bps=1_000),
                                                         Tier(threshold=990_000, credit_bps=2_500))),
    Service(name="erp", objective=995_000, tiers=(Tier(threshold=995_000, credit_bps=1_000),)),
    Service(name="vpn", objective=990_000, tiers=(Tier(threshold=990_000, credit_bps=2_000),)),
)


def measure(departments: int) -> dict[str, int]:
    chain = Chain.connect("embedded")
    a = chain.accounts
    factory = CorporateFactory.deploy(chain, a[0])  # once per chain: not part of the figures
    payouts = [chain.new_account()[0] for _ in range(departments)]
    deps = tuple(DepartmentTerms(f"d{i}", payouts[i], ETHER // 10, 0b111, 0, (0, 0, 0), (4_000, 3_000, 3_000))
                 for i in range(departments))
    terms = CorporateTerms(a[1], a[2], a[3], "0x" + "00" * 20, chain.now() + 600, 3_600, 3, 5_000,
                           departments * ETHER, SERVICES, deps)
    corp = Corporate.deploy(chain, terms, a[0], factory=factory.address)
    corp.deposit_fees(a[2])
    corp.deposit_collateral(a[1])
    chain.mine_at(terms.period_end(0))
    report = corp.report(0, [985_000, 999_000, 980_000], a[3], evidence_root=ROOT)
    _, first = corp.settle_department(0, 0, a[4])
    _, last = corp.settle_department(departments - 1, 0, a[4]) if departments > 1 else (0, first)
    corp.settle_departments(0, 0, departments, a[4])  # the others (those done are skipped)
    chain.mine_at(terms.period_end(1))
    corp.report(1, [985_000, 999_000, 980_000], a[3], evidence_root=ROOT)
    batch = corp.settle_departments(1, 0, departments, a[4])
    chain.mine_at(terms.period_end(terms.period_count - 1) + 30 * 86_400)  # period 2 never reported
    expire = corp.expire(a[4])
    assert corp.creation is not None
    return {"departments": departments, "deploy": corp.creation.gas_used, "oracle_report": report.gas_used,
            "settle_department_first": first.gas_used, "settle_department_last": last.gas_used,
            "settle_period_all": batch.gas_used, "expire": expire.gas_used}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    rows = [measure(n) for n in (1, 10, 100)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Multi-level agreement gas (3 services)")
    for col in ("departments", "create (clone + departments)", "oracle report", "settle 1st department",
                "settle last department", "settle a period, all departments", "expire"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*(f"{r[k]:,}" for k in ("departments", "deploy", "oracle_report", "settle_department_first",
                                               "settle_department_last", "settle_period_all", "expire")))
    console = Console()
    console.print(table)
    spread = max(r["oracle_report"] for r in rows) - min(r["oracle_report"] for r in rows)
    console.print(f"oracle report gas spread across 1..100 departments: {spread} gas")
    worst_settle = max(max(r["settle_department_first"], r["settle_department_last"]) for r in rows)
    console.print(f"a department's settlement: at most {worst_settle:,} gas (bound {SETTLE_LIMIT:,})")
    if args.check and (spread != 0 or worst_settle >= SETTLE_LIMIT):
        sys.exit(1)


if __name__ == "__main__":
    main()
