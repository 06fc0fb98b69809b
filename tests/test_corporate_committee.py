"""Multi-level agreements on Agreement's foundations (issue 11 items 1-2): the oracle committee of
signed reports, disputes with an arbiter, finality before departments settle, the silent
committee, departments fixed at creation, and the disaster clause per department.

Attacks written first; each failed on the constructor-deployed CorporateAgreement of main 006b6fa
(see the commit message and docs/security.md Review 4, P-1 to P-5)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from smartsla.chain import Chain
from smartsla.corporate import Corporate, CorporateTerms, DepartmentTerms
from smartsla.errors import ContractReverted
from smartsla.reports import sign_report
from smartsla.terms import Service, Tier

ETHER = 10**18
ROOT = b"\x11" * 32  # an evidence root (the contract stores any non-zero root)
UP = [1_000_000, 1_000_000]
SERVICES = (
    Service(name="email", objective=999_000, tiers=(Tier(threshold=999_000, credit_bps=1_000),
                                                        Tier(threshold=990_000, credit_bps=3_000))),
    Service(name="erp", objective=995_000, tiers=(Tier(threshold=995_000, credit_bps=2_000),)),
)


def _terms(chain: Chain, roles: dict[str, str], payouts: list[str], **clauses) -> CorporateTerms:
    """Two departments: one covers both services, one only erp; 3 one-hour periods."""
    deps = (DepartmentTerms("finance", payouts[0], ETHER, 0b11, 0, (0, 0), (5_000, 5_000)),
            DepartmentTerms("sales", payouts[1], ETHER // 2, 0b10, 0, (0, 0), (0, 10_000)))
    terms = CorporateTerms(roles["provider"], roles["customer"], roles["oracle"], "0x" + "00" * 20,
                           chain.now() + 60, 3_600, 3, 10_000, 3 * ETHER, SERVICES, deps)
    return replace(terms, **clauses)


def _committee(chain: Chain, roles: dict[str, str], n: int = 3) -> list[tuple[str, str]]:
    return [chain.new_account(fund_from=roles["deployer"]) for _ in range(n)]


def _funded(chain: Chain, roles: dict[str, str], terms: CorporateTerms) -> Corporate:
    c = Corporate.deploy(chain, terms, roles["deployer"])
    c.deposit_fees(roles["customer"])
    c.deposit_collateral(roles["provider"])
    return c


def _sign(chain: Chain, c: Corporate, key: str, period: int, values: list[int]):
    return sign_report(key, chain.chain_id, c.address, period, values, 1_000_000, ROOT, 2**63)


def test_a_single_lying_member_cannot_set_the_figures(chain, roles):
    """C4: with one oracle, that oracle alone decided every department's credit. With a committee
    of 3 and a quorum of 3, one member can neither report alone nor move the median."""
    members = _committee(chain, roles)
    payouts = [chain.new_account()[0] for _ in range(2)]
    c = _funded(chain, roles, _terms(chain, roles, payouts, oracles=tuple(a for a, _ in members), quorum=3))
    chain.mine_at(c.terms.period_end(0))
    liar, liar_key = members[0]
    with pytest.raises(ContractReverted, match=r"^QuorumNotReached\(3, 1\)"):
        c.report(0, [0, 0], liar, evidence_root=ROOT)  # a total outage that never happened
    reports = [_sign(chain, c, liar_key, 0, [0, 0])] + [_sign(chain, c, k, 0, UP) for _, k in members[1:]]
    with pytest.raises(ContractReverted, match=r"^QuorumNotReached\(3, 2\)"):
        c.settle_with_reports(0, reports[:2], roles["stranger"])
    c.settle_with_reports(0, reports, roles["stranger"])
    assert c.reported_values(0) == UP  # the median of (0, up, up)
    c.settle_departments(0, 0, 2, roles["stranger"])
    assert [c.owed(p) for p in payouts] == [0, 0]


def test_a_dispute_changes_the_credits(chain, roles):
    """The organisation disputes a report of 100 % within the window; the arbiter's corrected
    figures are what every department is paid on."""
    arbiter = chain.accounts[8]
    payouts = [chain.new_account()[0] for _ in range(2)]
    terms = _terms(chain, roles, payouts, dispute_window=600, arbiter=arbiter)
    c = _funded(chain, roles, terms)
    chain.mine_at(terms.period_end(0))
    c.report(0, UP, roles["oracle"], evidence_root=ROOT)
    with pytest.raises(ContractReverted, match=r"^Unauthorized"):
        c.dispute(0, ROOT, roles["stranger"])
    c.dispute(0, ROOT, roles["customer"])
    with pytest.raises(ContractReverted, match=r"^Unauthorized"):
        c.resolve_dispute(0, [985_000, 990_000], roles["customer"])
    corrected = [985_000, 990_000]  # email below its second tier, erp below its objective
    c.resolve_dispute(0, corrected, arbiter)
    assert c.period_state(0)[0] == "Final"
    paid = [c.settle_department(i, 0, roles["stranger"])[0] for i in range(2)]
    assert paid == [terms.department_credit(i, corrected)[1] for i in range(2)]
    assert paid[0] == ETHER * (5_000 * 3_000 + 5_000 * 2_000) // 10_000**2 and paid[1] == ETHER // 2 * 2_000 // 10_000


def test_a_department_cannot_settle_before_the_period_is_final(chain, roles):
    payouts = [chain.new_account()[0] for _ in range(2)]
    terms = _terms(chain, roles, payouts, dispute_window=600, arbiter=chain.accounts[8])
    c = _funded(chain, roles, terms)
    chain.mine_at(terms.period_end(0))
    c.report(0, [980_000, 980_000], roles["oracle"], evidence_root=ROOT)
    with pytest.raises(ContractReverted, match=r"^WrongPeriodState\(0, Pending\)"):
        c.settle_department(0, 0, roles["stranger"])
    with pytest.raises(ContractReverted, match=r"^DisputeWindowOpen"):
        c.finalize(0, roles["stranger"])
    chain.mine_at(c.period_state(0)[1])
    c.finalize(0, roles["stranger"])
    credit, _ = c.settle_department(0, 0, roles["stranger"])
    assert credit == terms.department_credit(0, [980_000, 980_000])[1] > 0


def test_expire_after_a_silent_committee_releases_everything(chain, roles):
    payouts = [chain.new_account()[0] for _ in range(2)]
    terms = _terms(chain, roles, payouts)
    c = _funded(chain, roles, terms)
    expires_at = terms.period_end(terms.period_count - 1) + 30 * 86_400
    chain.mine_at(expires_at)
    with pytest.raises(ContractReverted, match=r"^AgreementExpired"):
        c.report(0, UP, roles["oracle"], evidence_root=ROOT)  # too late: the outcome cannot race
    c.expire(roles["stranger"])
    assert c.status().status == "Expired"
    assert c.owed(roles["customer"]) == terms.total_fees
    assert c.owed(roles["provider"]) == terms.collateral
    c.withdraw(roles["customer"])
    c.withdraw(roles["provider"])
    assert chain.balance(c.address) == 0


def test_a_stranger_cannot_create_credits_for_an_address_that_is_not_a_department(chain, roles):
    """The old contract let its deployer add departments (with any payout) until the first
    deposit. Departments are now fixed in code at creation: there is no function to add one, and
    no settlement can reach an index that does not exist."""
    payouts = [chain.new_account()[0] for _ in range(2)]
    terms = _terms(chain, roles, payouts)
    c = Corporate.deploy(chain, terms, roles["stranger"])  # anyone may create; it changes nothing
    dept = (roles["stranger"], ETHER, 0b11, 0, [0, 0], [5_000, 5_000])
    old = chain.w3.eth.contract(abi=[{"type": "function", "name": "addDepartments", "stateMutability": "nonpayable",
                                      "inputs": [{"name": "d", "type": "tuple[]", "components": [
                                          {"name": "payout", "type": "address"},
                                          {"name": "feePerPeriod", "type": "uint128"},
                                          {"name": "serviceMask", "type": "uint32"},
                                          {"name": "creditCapBps", "type": "uint16"},
                                          {"name": "objectives", "type": "uint32[]"},
                                          {"name": "weightsBps", "type": "uint16[]"}]}], "outputs": []}],
                                address=c.address)
    with pytest.raises(Exception):  # noqa: B017, PT011 - any revert: the function does not exist
        chain.transact(old.functions.addDepartments([dept]), roles["stranger"], action="addDepartments")
    c.deposit_fees(roles["customer"])
    c.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0))
    c.report(0, [0, 0], roles["oracle"], evidence_root=ROOT)
    with pytest.raises(ContractReverted, match=r"^UnknownDepartment\(2, 2\)"):
        c.settle_department(2, 0, roles["stranger"])
    c.settle_departments(0, 0, 2, roles["stranger"])
    assert c.owed(roles["stranger"]) == 0
    assert c.read_terms().departments[0].payout == payouts[0]


def test_disaster_clause_per_department(chain, roles):
    """erp below the threshold: sales (erp only) and finance (both) may be terminated; the
    organisation gets back the unserved fees, the provider the served part and the department's
    later reservations; the other department carries on; money is accounted for."""
    payouts = [chain.new_account()[0] for _ in range(2)]
    terms = _terms(chain, roles, payouts, termination_ppm=900_000)
    c = _funded(chain, roles, terms)
    chain.mine_at(terms.period_end(0))
    c.report(0, [1_000_000, 800_000], roles["oracle"], evidence_root=ROOT)
    with pytest.raises(ContractReverted, match=r"^Unauthorized"):
        c.terminate_department(1, 0, roles["stranger"])
    c.terminate_department(1, 0, roles["customer"])
    assert c.department_status(1).terminated and c.department_status(1).end_period == 1
    with pytest.raises(ContractReverted, match=r"^DepartmentEnded\(1, 1\)"):
        c.terminate_department(1, 0, roles["customer"])
    for period in (1, 2):
        chain.mine_at(terms.period_end(period))
        c.report(period, UP, roles["oracle"], evidence_root=ROOT)
        c.settle_departments(period - 1, 0, 2, roles["stranger"])
    with pytest.raises(ContractReverted, match=r"^DepartmentEnded\(1, 1\)"):
        c.settle_department(1, 1, roles["stranger"])
    c.settle_departments(2, 0, 2, roles["stranger"])
    owed = sum(c.owed(a) for a in (*payouts, roles["customer"], roles["provider"]))
    assert owed == chain.balance(c.address) == terms.total_fees + terms.collateral
    s = c.status()
    assert s.fees_escrowed == 0 and s.collateral_pool == 0


def test_a_zero_evidence_root_and_an_unmeasured_period_are_refused(chain, roles):
    payouts = [chain.new_account()[0] for _ in range(2)]
    c = _funded(chain, roles, _terms(chain, roles, payouts))
    chain.mine_at(c.terms.period_end(0))
    with pytest.raises(ContractReverted, match=r"^MissingEvidence"):
        c.report(0, UP, roles["oracle"], evidence_root=bytes(32))
    with pytest.raises(ContractReverted, match=r"^PeriodNotMeasured\(0, 899999, 900000\)"):
        c.report(0, UP, roles["oracle"], evidence_root=ROOT, measured_ppm=899_999)


def _committee_spec(tmp_path, chain: Chain, roles: dict[str, str], members: list[str], **body_changes):
    """The example with a committee of three, disputes, the disaster clause and maintenance."""
    import datetime as dt
    from pathlib import Path

    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "examples" / "multi-level-corporate.yaml")
                          .read_text())
    body = data["spec"]
    del body["oracle"]
    body["parties"] = {"provider": roles["provider"], "organisation": roles["customer"]}
    body["oracles"] = {"members": members, "quorum": 3}
    body["disputes"] = {"window": "1h", "arbiter": chain.accounts[8]}
    body["termination"] = {"below": "90%"}
    body["maintenance"] = {"notice": "1d", "budget": "4h"}
    body["measurement"] = {"minMeasured": "95%"}
    body["timeWindow"]["start"] = dt.datetime.fromtimestamp(chain.now() + 600, dt.UTC).isoformat()
    body["timeWindow"]["count"] = 2
    body.update(body_changes)
    path = tmp_path / "committee.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_committee_spec_creates_and_round_trips(chain, roles, tmp_path):
    """The spec names the committee and the clauses with the field names of `kind: Agreement`;
    what the chain holds reads back as a spec that validates into the same terms."""
    from smartsla.corporate import corporate_terms_to_spec, load_corporate_spec
    from smartsla.spec import dump_spec

    members = [chain.new_account()[0] for _ in range(3)]
    terms = load_corporate_spec(_committee_spec(tmp_path, chain, roles, members)).to_terms()
    assert terms.committee == tuple(members) and terms.quorum == 3 and terms.dispute_window == 3_600
    assert terms.termination_ppm == 900_000 and terms.maintenance_budget == 4 * 3_600
    c = Corporate.deploy(chain, terms, roles["deployer"])
    on_chain = c.read_terms()
    unnamed = tuple(replace(d, name=f"department-{i}") for i, d in enumerate(terms.departments))
    assert on_chain == replace(terms, departments=unnamed)
    path = tmp_path / "shown.yaml"
    path.write_text(dump_spec(corporate_terms_to_spec(on_chain)))
    assert load_corporate_spec(path).to_terms() == on_chain


def test_committee_spec_errors_are_named(chain, roles, tmp_path):
    from smartsla.corporate import load_corporate_spec
    from smartsla.spec import SpecError

    members = [chain.new_account()[0] for _ in range(2)]
    path = _committee_spec(tmp_path, chain, roles, members, oracle=members[0])
    with pytest.raises(SpecError) as err:
        load_corporate_spec(path)
    text = str(err.value)
    assert "spec.oracles: name the committee with oracles" in text  # both oracle and oracles
    assert "spec.oracles.quorum: oracles.quorum 3 must be odd and at most the 2 members" in text


def _lifecycle(chain: Chain) -> None:
    """A committee of three signs two periods; the organisation disputes the first and the
    arbiter corrects it; both departments settle, withdraw their credits, and the contract ends
    empty with every wei accounted for."""
    a = chain.accounts
    roles = {"deployer": a[0], "provider": a[1], "customer": a[2], "oracle": a[3], "stranger": a[4]}
    members = _committee(chain, roles)
    payouts = [chain.new_account(fund_from=roles["deployer"])[0] for _ in range(2)]
    terms = _terms(chain, roles, payouts, oracles=tuple(m for m, _ in members), quorum=3, dispute_window=600,
                   arbiter=a[8])
    terms = replace(terms, start=chain.now() + 60, period_count=2)
    c = _funded(chain, roles, terms)
    credits = [0, 0]
    for period, (values, corrected) in enumerate([(UP, [985_000, 990_000]), ([998_000, 1_000_000], None)]):
        chain.mine_at(terms.period_end(period))
        c.settle_with_reports(period, [_sign(chain, c, k, period, values) for _, k in members], roles["stranger"])
        if corrected:
            c.dispute(period, ROOT, roles["customer"])
            c.resolve_dispute(period, corrected, a[8])
        else:
            chain.mine_at(c.period_state(period)[1])
            c.finalize(period, roles["stranger"])
        c.settle_departments(period, 0, 2, roles["stranger"])
        final = corrected or values
        for i in range(2):
            credits[i] += terms.department_credit(i, final)[1]
    assert c.status().status == "Ended"
    for i, payout in enumerate(payouts):
        assert c.owed(payout) == credits[i] > 0
        before = chain.balance(payout)
        tx = c.withdraw(payout)
        assert chain.balance(payout) == before + credits[i] - tx.gas_used * tx.receipt["effectiveGasPrice"]
    assert c.owed(roles["provider"]) == terms.total_fees + terms.collateral - sum(credits)
    c.withdraw(roles["provider"])
    assert chain.balance(c.address) == 0


def test_lifecycle_with_committee_and_dispute(chain):
    _lifecycle(chain)


@pytest.mark.anvil
def test_lifecycle_with_committee_and_dispute_on_anvil(anvil):
    _lifecycle(Chain.connect(anvil.url))
