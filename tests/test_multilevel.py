"""Multi-level SLAs: one oracle report per period settles every department, from one pool."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from smartsla.corporate import Corporate, load_corporate_spec
from smartsla.errors import ContractReverted
from smartsla.spec import SpecError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multi-level-corporate.yaml"


@pytest.fixture
def corporate(chain, roles, tmp_path):
    a = chain.accounts
    data = yaml.safe_load(EXAMPLE.read_text())
    body = data["spec"]
    body["parties"] = {"provider": roles["provider"], "organisation": roles["customer"]}
    body["oracle"] = roles["oracle"]
    for dep, payout in zip(body["departments"], a[5:8], strict=True):
        dep["payout"] = payout
    body["timeWindow"]["start"] = dt.datetime.fromtimestamp(chain.now() + 10, dt.UTC).isoformat()
    body["timeWindow"]["count"] = 2
    path = tmp_path / "corporate.yaml"
    path.write_text(yaml.safe_dump(data))
    terms = load_corporate_spec(path).to_terms()
    c = Corporate.deploy(chain, terms, roles["deployer"])
    c.deposit_fees(roles["customer"])
    c.deposit_collateral(roles["provider"])
    return c


def test_one_report_settles_every_department_with_its_own_terms(chain, roles, corporate):
    terms = corporate.terms
    chain.mine_at(terms.period_end(0))
    values = [985_000, 998_500, 970_000]  # email < 99 %, erp 99.85 %, vpn 97 %
    corporate.report(0, values, roles["oracle"])
    paid = []
    for index in range(len(terms.departments)):
        credit, _ = corporate.settle_department(index, 0, roles["stranger"])  # anyone may trigger it
        _, expected = terms.department_credit(index, values)
        assert credit == expected
        paid.append(credit)
    finance, sales, engineering = terms.departments
    # finance: email 25 % of 30 %, erp 99.85 % < its stricter 99.9 % objective: 10 % of 70 %
    assert paid[0] == finance.fee_per_period * (30 * 25 + 70 * 10) // 10_000
    # sales: email 25 % of 50 %, vpn 20 % of 50 %; under the corporate 50 % cap
    assert paid[1] == sales.fee_per_period * (50 * 25 + 50 * 20) // 10_000
    for dep, credit in zip(terms.departments, paid, strict=True):
        assert corporate.owed(dep.payout) == credit
    with pytest.raises(ContractReverted, match=r"^PeriodOutOfOrder"):
        corporate.settle_department(0, 0, roles["stranger"])  # never twice
    with pytest.raises(ContractReverted, match=r"^PeriodNotReported\(1\)"):
        corporate.settle_department(0, 1, roles["stranger"])


def test_pool_returns_to_the_provider_when_every_department_is_done(chain, roles, corporate):
    terms = corporate.terms
    for period in range(terms.period_count):
        chain.mine_at(terms.period_end(period))
        corporate.report(period, [1_000_000, 1_000_000, 1_000_000], roles["oracle"])
        for index in range(len(terms.departments)):
            corporate.settle_department(index, period, roles["provider"])
    assert corporate.owed(roles["provider"]) == terms.total_fees + terms.collateral
    corporate.withdraw(roles["provider"])
    assert chain.balance(corporate.address) == 0


def test_only_the_oracle_reports_each_period_once(chain, roles, corporate):
    chain.mine_at(corporate.terms.period_end(0))
    with pytest.raises(ContractReverted, match=r"^Unauthorized"):
        corporate.report(0, [1, 1, 1], roles["customer"])
    with pytest.raises(ContractReverted, match=r"^ValueAboveOneHundredPercent"):
        corporate.report(0, [1_000_001, 1, 1], roles["oracle"])
    corporate.report(0, [1, 1, 1], roles["oracle"])
    with pytest.raises(ContractReverted, match=r"^PeriodAlreadyReported"):
        corporate.report(0, [1, 1, 1], roles["oracle"])


def test_bad_department_spec_is_refused(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["spec"]["departments"][1]["services"]["vpn"]["weight"] = "40%"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="department 'sales': service weights must sum to 100%"):
        load_corporate_spec(path)


def test_cancel_before_both_deposits_returns_the_money(chain, roles):
    from smartsla.corporate import CorporateTerms, DepartmentTerms
    from smartsla.terms import Service, Tier

    a = chain.accounts
    terms = CorporateTerms(roles["provider"], roles["customer"], roles["oracle"], "0x" + "00" * 20, chain.now() + 10,
                           3_600, 2, 5_000, 10**18,
                           (Service(name="email", objective_ppm=999_000, tiers=(Tier(below_ppm=999_000,
                                                                                     credit_bps=1_000),)),),
                           (DepartmentTerms("d", a[6], 10**17, 1, 0, (0,), (10_000,)),))
    c = Corporate.deploy(chain, terms, roles["deployer"])
    c.deposit_fees(roles["customer"])
    with pytest.raises(ContractReverted, match=r"^Unauthorized"):
        c.cancel(roles["stranger"])
    c.cancel(roles["provider"])  # the provider never bonded: the organisation gets its fees back
    assert c.owed(roles["customer"]) == terms.total_fees
    with pytest.raises(ContractReverted, match=r"^AlreadyDeposited"):
        c.deposit_collateral(roles["provider"])
    c.withdraw(roles["customer"])
    assert chain.balance(c.address) == 0
