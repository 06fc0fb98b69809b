"""The oracle committee: signed EIP-712 reports, quorum, medians, and replay protection."""

from __future__ import annotations

import pytest
from sla_helpers import ETHER

from smartsla.credit import period_outcome
from smartsla.errors import ContractReverted
from smartsla.reports import digest, recover_signer, sign_report


@pytest.fixture
def committee(chain, roles):
    """Three oracle keys, funded for gas."""
    return [chain.new_account(fund_from=roles["deployer"]) for _ in range(3)]


def _agreement(chain, factory, roles, terms_for, committee, quorum):
    terms = terms_for(oracles=[a for a, _ in committee], quorum=quorum)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0))
    return ag


def _sign(chain, ag, key, period, values):
    return sign_report(key, chain.chain_id, ag.address, period, values)


def test_python_digest_equals_the_contracts(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 1)
    for period, values in [(0, [999_000]), (7, [0]), (2**40, [1_000_000])]:
        assert ag.report_digest(period, values) == digest(chain.chain_id, ag.address, period, values)
    report = _sign(chain, ag, committee[0][1], 0, [999_000])
    assert recover_signer(report) == committee[0][0]


def test_one_lying_oracle_of_three_does_not_change_the_credit(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 3)
    (a, ka), (b, kb), (liar, kl) = committee
    reports = [_sign(chain, ag, ka, 0, [989_000]), _sign(chain, ag, kb, 0, [989_500]),
               _sign(chain, ag, kl, 0, [0])]  # the liar claims a total outage
    s = ag.settle_with_reports(0, reports, liar)  # even submitted by the liar
    assert s.values_ppm == (989_000,)  # the median is an honest value
    honest = period_outcome(ag.terms, [989_000], ag.terms.collateral).paid_credit
    assert s.credit_paid == honest == 3 * ETHER // 10  # 30 % tier, not the liar's 100 %


def test_liar_claiming_perfect_uptime_is_outvoted_too(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 3)
    (_, ka), (_, kb), (_, kl) = committee
    reports = [_sign(chain, ag, kl, 0, [1_000_000]), _sign(chain, ag, ka, 0, [940_000]),
               _sign(chain, ag, kb, 0, [945_000])]
    assert ag.settle_with_reports(0, reports, committee[0][0]).credit_paid == ETHER  # 100 % tier


def test_quorum_is_enforced(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 2)
    (a, ka), _, _ = committee
    with pytest.raises(ContractReverted, match=r"^QuorumNotReached\(2, 1\)"):
        ag.settle_with_reports(0, [_sign(chain, ag, ka, 0, [0])], a)
    with pytest.raises(ContractReverted, match=r"^QuorumNotReached\(2, 1\)"):
        ag.settle(0, [0], a)  # direct reports only with a quorum of 1
    twice = [_sign(chain, ag, ka, 0, [0]), _sign(chain, ag, ka, 0, [1])]
    with pytest.raises(ContractReverted, match=r"^DuplicateSigner"):
        ag.settle_with_reports(0, twice, a)
    assert ag.snapshot().settled_periods == 0


def test_only_members_sign_and_submit(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 2)
    (a, ka), (b, kb), _ = committee
    outsider, ko = chain.new_account(fund_from=roles["deployer"])
    good = [_sign(chain, ag, ka, 0, [999_000]), _sign(chain, ag, kb, 0, [999_000])]
    with pytest.raises(ContractReverted, match=rf"^NotACommitteeMember\('{outsider}'\)"):
        ag.settle_with_reports(0, [good[0], _sign(chain, ag, ko, 0, [999_000])], a)
    with pytest.raises(ContractReverted, match=r"^Unauthorized"):
        ag.settle_with_reports(0, good, roles["customer"])
    assert ag.settle_with_reports(0, good, b).values_ppm == (999_000,)


def test_signatures_cannot_be_replayed(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 2)
    other = _agreement(chain, factory, roles, terms_for, committee, 2)
    (a, ka), (b, kb), _ = committee
    period0 = [_sign(chain, ag, ka, 0, [999_000]), _sign(chain, ag, kb, 0, [999_000])]
    ag.settle_with_reports(0, period0, a)
    chain.mine_at(ag.terms.period_end(1))
    # Same signatures offered for the next period: they recover to strangers.
    with pytest.raises(ContractReverted, match=r"^NotACommitteeMember"):
        ag.settle_with_reports(1, period0, a)
    # ... or for another agreement with the same committee.
    with pytest.raises(ContractReverted, match=r"^NotACommitteeMember"):
        other.settle_with_reports(0, period0, a)
    # ... or signed for another chain id.
    foreign = [sign_report(k, chain.chain_id + 1, ag.address, 1, [999_000]) for k in (ka, kb)]
    with pytest.raises(ContractReverted, match=r"^NotACommitteeMember"):
        ag.settle_with_reports(1, foreign, a)
    # ... and replaying the very same settlement fails as a duplicate period.
    with pytest.raises(ContractReverted, match=r"^PeriodAlreadySettled"):
        ag.settle_with_reports(0, period0, a)
    assert ag.snapshot().settled_periods == 1


def test_values_in_signed_reports_are_checked(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 2)
    (a, ka), (b, kb), _ = committee
    with pytest.raises(ContractReverted, match=r"^ValueAboveOneHundredPercent"):
        ag.settle_with_reports(0, [_sign(chain, ag, ka, 0, [1_000_001]), _sign(chain, ag, kb, 0, [1_000_001])], a)
    with pytest.raises(ContractReverted, match=r"^WrongNumberOfValues"):
        ag.settle_with_reports(0, [_sign(chain, ag, ka, 0, [1, 2]), _sign(chain, ag, kb, 0, [1, 2])], a)
