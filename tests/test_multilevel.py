"""Multi-level SLAs: one oracle report per period settles every department, from one pool."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from smartsla.corporate import Corporate, load_corporate_spec
from smartsla.errors import ContractReverted
from smartsla.spec import SpecError

ROOT = b"\x22" * 32  # an evidence root (any non-zero root is stored)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multi-level-corporate.yaml"


def _example_terms(chain, roles, tmp_path, *, count: int = 2, collateral: str | None = None):
    """The example's terms on this chain: our accounts, starting now, `count` periods."""
    a = chain.accounts
    data = yaml.safe_load(EXAMPLE.read_text())
    body = data["spec"]
    body["parties"] = {"provider": roles["provider"], "organisation": roles["customer"]}
    body["oracle"] = roles["oracle"]
    for dep, payout in zip(body["departments"], a[5:8], strict=True):
        dep["payout"] = payout
    body["timeWindow"]["start"] = dt.datetime.fromtimestamp(chain.now() + 60, dt.UTC).isoformat()
    body["timeWindow"]["count"] = count
    if collateral is not None:
        body["collateral"] = collateral
    path = tmp_path / "corporate.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_corporate_spec(path).to_terms()


@pytest.fixture
def corporate(chain, roles, tmp_path):
    terms = _example_terms(chain, roles, tmp_path)
    c = Corporate.deploy(chain, terms, roles["deployer"])
    c.deposit_fees(roles["customer"])
    c.deposit_collateral(roles["provider"])
    return c


def test_one_report_settles_every_department_with_its_own_terms(chain, roles, corporate):
    terms = corporate.terms
    chain.mine_at(terms.period_end(0))
    values = [985_000, 998_500, 970_000]  # email < 99 %, erp 99.85 %, vpn 97 %
    corporate.report(0, values, roles["oracle"], evidence_root=ROOT)
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
        corporate.report(period, [1_000_000, 1_000_000, 1_000_000], roles["oracle"], evidence_root=ROOT)
        for index in range(len(terms.departments)):
            corporate.settle_department(index, period, roles["provider"])
    assert corporate.owed(roles["provider"]) == terms.total_fees + terms.collateral
    corporate.withdraw(roles["provider"])
    assert chain.balance(corporate.address) == 0


def test_only_the_oracle_reports_each_period_once(chain, roles, corporate):
    chain.mine_at(corporate.terms.period_end(0))
    with pytest.raises(ContractReverted, match=r"^Unauthorized"):
        corporate.report(0, [1, 1, 1], roles["customer"], evidence_root=ROOT)
    with pytest.raises(ContractReverted, match=r"^ValueAboveOneHundredPercent"):
        corporate.report(0, [1_000_001, 1, 1], roles["oracle"], evidence_root=ROOT)
    corporate.report(0, [1, 1, 1], roles["oracle"], evidence_root=ROOT)
    with pytest.raises(ContractReverted, match=r"^PeriodAlreadyReported"):
        corporate.report(0, [1, 1, 1], roles["oracle"], evidence_root=ROOT)


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
    terms = CorporateTerms(roles["provider"], roles["customer"], roles["oracle"], "0x" + "00" * 20, chain.now() + 60,
                           3_600, 2, 5_000, 10**18,
                           (Service(name="email", objective=999_000, tiers=(Tier(threshold=999_000,
                                                                                     credit_bps=1_000),)),),
                           (DepartmentTerms("d", a[6], 10**17, 1, 0, (0,), (10_000,)),))
    c = Corporate.deploy(chain, terms, roles["deployer"])
    c.deposit_fees(roles["customer"])
    with pytest.raises(ContractReverted, match=r"^Unauthorized"):
        c.cancel(roles["stranger"])
    c.cancel(roles["provider"])  # the provider never bonded: the organisation gets its fees back
    assert c.owed(roles["customer"]) == terms.total_fees
    with pytest.raises(ContractReverted, match=r"^WrongStatus\(Cancelled\)"):
        c.deposit_collateral(roles["provider"])
    c.withdraw(roles["customer"])
    assert chain.balance(c.address) == 0


# ---------------------------------------------------------------- review findings (issue 11)

# A period in which every service is down: every department earns its capped credit.
OUTAGE = [0, 0, 0]


def _worst_case(terms) -> int:
    """Every department's credit for a total outage (its harshest tiers, capped), every period."""
    return terms.period_count * sum(terms.department_credit(i, OUTAGE)[1] for i in range(len(terms.departments)))


def test_silent_oracle_cannot_lock_fees_and_pool(chain, roles, corporate):
    """High: with the oracle silent after period 0, anyone ends the agreement REPORT_DEADLINE
    after the term; the unreported period's fees go back to the organisation, the pool to the
    provider, and the contract ends empty."""
    terms = corporate.terms
    chain.mine_at(terms.period_end(0))
    corporate.report(0, [1_000_000] * 3, roles["oracle"], evidence_root=ROOT)  # period 1 is never reported
    expires_at = terms.period_end(terms.period_count - 1) + 30 * 86_400
    chain.mine_at(expires_at - 5)
    with pytest.raises(ContractReverted, match=rf"^NotExpired\({expires_at}\)"):
        corporate.expire(roles["stranger"])
    chain.mine_at(expires_at)
    corporate.expire(roles["stranger"])  # anyone
    with pytest.raises(ContractReverted, match=r"^WrongStatus\(Expired\)"):
        corporate.report(1, [1_000_000] * 3, roles["oracle"], evidence_root=ROOT)  # too late: the money has gone back
    fees_per_period = sum(d.fee_per_period for d in terms.departments)
    assert corporate.owed(roles["customer"]) == fees_per_period  # period 1's fees
    for index in range(len(terms.departments)):  # the reported period still settles afterwards
        corporate.settle_department(index, 0, roles["stranger"])
    assert corporate.owed(roles["provider"]) == fees_per_period + terms.collateral
    corporate.withdraw(roles["customer"])
    corporate.withdraw(roles["provider"])
    assert chain.balance(corporate.address) == 0


def _payouts(chain, roles, terms, order) -> dict[str, int]:
    from dataclasses import replace

    terms = replace(terms, start=chain.now() + 60)  # the factory refuses a start in the past
    c = Corporate.deploy(chain, terms, roles["deployer"])
    c.deposit_fees(roles["customer"])
    c.deposit_collateral(roles["provider"])
    for period in range(terms.period_count):
        chain.mine_at(terms.period_end(period))
        c.report(period, OUTAGE, roles["oracle"], evidence_root=ROOT)
    for index, period in order:
        c.settle_department(index, period, roles["stranger"])
    parties = [d.payout for d in terms.departments] + [roles["provider"]]
    return {p: c.owed(p) for p in parties}


def test_a_pool_short_of_the_worst_case_is_refused(chain, roles, tmp_path):
    """Low: with a short pool, whoever settled first took it (on the old contract with a 1-ether
    pool: finance 1.0 / sales 0 / engineering 0 settling department by department, 0.43 / 0.225 /
    0.345 period by period). A pool must now cover every department's capped credit for a total
    outage in every period, so no settlement order can leave a department short. The contract
    refuses a short pool, and so does the spec, before anything is sent."""
    from dataclasses import replace

    terms = replace(_example_terms(chain, roles, tmp_path, count=3), collateral=10**18)
    with pytest.raises(ContractReverted, match=rf"^PoolBelowWorstCase\({10**18}, {terms.worst_case}\)"):
        Corporate.deploy(chain, terms, roles["deployer"])
    with pytest.raises(SpecError, match=r"corporate\.yaml:\d+: spec\.collateral: collateral 1 does not cover the "
                                        r"worst case 3\.42"):
        _example_terms(chain, roles, tmp_path, count=3, collateral="1")


def test_settlement_order_does_not_change_payouts(chain, roles, tmp_path):
    from dataclasses import replace

    terms = _example_terms(chain, roles, tmp_path, count=3)
    terms = replace(terms, collateral=_worst_case(terms))  # the smallest pool accepted
    departments, periods = range(len(terms.departments)), range(terms.period_count)
    department_first = [(d, p) for d in departments for p in periods]
    period_first = [(d, p) for p in periods for d in reversed(departments)]
    a = _payouts(chain, roles, terms, department_first)
    b = _payouts(chain, roles, terms, period_first)
    assert a == b
    for index, dep in enumerate(terms.departments):  # every department got its full credit
        assert a[dep.payout] == terms.period_count * terms.department_credit(index, OUTAGE)[1]
    assert a[roles["provider"]] == terms.total_fees  # the whole pool went to credits


def test_settle_every_department_of_a_period_in_one_transaction(chain, roles, corporate):
    """Releasing the pool takes one transaction per period, not departments x periods."""
    terms = corporate.terms
    for period in range(terms.period_count):
        chain.mine_at(terms.period_end(period))
        corporate.report(period, [1_000_000] * 3, roles["oracle"], evidence_root=ROOT)
        corporate.settle_departments(period, 0, len(terms.departments), roles["stranger"])
    assert corporate.owed(roles["provider"]) == terms.total_fees + terms.collateral
    assert chain.balance(corporate.address) == terms.total_fees + terms.collateral


def test_bad_department_index_and_cancel_have_their_own_errors(chain, roles, corporate):
    with pytest.raises(ContractReverted, match=r"^UnknownDepartment\(3, 3\)"):
        corporate.settle_department(3, 0, roles["stranger"])
    with pytest.raises(ContractReverted, match=r"^WrongStatus\(Active\)"):  # too late to cancel
        corporate.cancel(roles["provider"])


def test_factory_refuses_bad_tiers_and_duplicate_services(chain, roles, tmp_path):
    from dataclasses import replace

    from smartsla.terms import Service, Tier

    terms = _example_terms(chain, roles, tmp_path)
    dup = replace(terms, services=(terms.services[0], terms.services[0], terms.services[2]))
    with pytest.raises(ContractReverted, match=r"^InvalidService\(1\)"):
        Corporate.deploy(chain, dup, roles["deployer"])
    # The Python model refuses a 200 % credit: build it unchecked to reach the contract's rule.
    tier = Tier.model_construct(threshold=999_000, credit_bps=20_000)
    free = Service.model_construct(name="email", objective=999_000, weight_bps=10_000, tiers=(tier,),
                                   kind=terms.services[0].kind)
    over = replace(terms, services=(free, *terms.services[1:]))
    with pytest.raises(ContractReverted, match=r"^InvalidTier\(0, 0\)"):
        Corporate.deploy(chain, over, roles["deployer"])


def test_spec_round_trips_through_the_chain(chain, roles, corporate, tmp_path):
    """The example created on-chain reads back as a spec that validates into the same terms
    (department names are not on-chain)."""
    from dataclasses import replace

    from smartsla.corporate import corporate_terms_to_spec
    from smartsla.spec import dump_spec

    on_chain = corporate.read_terms()
    sent = corporate.terms
    unnamed = tuple(replace(d, name=f"department-{i}") for i, d in enumerate(sent.departments))
    assert on_chain == replace(sent, departments=unnamed)
    path = tmp_path / "shown.yaml"
    path.write_text(dump_spec(corporate_terms_to_spec(on_chain)))
    assert load_corporate_spec(path).to_terms() == on_chain


def test_spec_errors_name_file_line_and_field(tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["spec"]["services"][0]["weight"] = "50%"  # corporate services carry no weight
    data["spec"]["departments"][1]["services"]["vpn"]["weight"] = "40%"
    data["spec"]["departments"][0]["services"]["erp"]["objective"] = "97%"  # below erp's second tier (98 %)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError) as err:
        load_corporate_spec(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 3, lines  # every problem, each on its line
    assert all(re.match(rf"^{re.escape(str(path))}:\d+: spec\.", line) for line in lines), lines
    assert "spec.services.0.weight: service 'email': corporate services carry no weight" in lines[0]
    assert "spec.departments.0.services.erp.objective: department 'finance': objective 97" in lines[1]
    assert "spec.departments.1.services: department 'sales': service weights must sum to 100%" in lines[2]


def test_spec_validate_accepts_every_example():
    from typer.testing import CliRunner

    from smartsla.cli import app

    examples = sorted(str(p) for p in EXAMPLE.parent.glob("*.yaml"))
    result = CliRunner().invoke(app, ["spec", "validate", *examples])
    assert result.exit_code == 0, result.output
    assert result.output.count("valid") == len(examples)
    assert "pool 20 covers the worst case 13.68" in result.output
