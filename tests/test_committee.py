"""The oracle committee: signed EIP-712 reports, quorum, medians, deadlines, measured shares, and
replay protection."""

from __future__ import annotations

import pytest
from sla_helpers import ETHER, EVIDENCE_ROOT

from smartsla.credit import median, period_outcome
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


def _sign(chain, ag, key, period, values, measured=1_000_000, deadline=None, root=EVIDENCE_ROOT):
    """A report valid for an hour unless told otherwise."""
    deadline = chain.now() + 3_600 if deadline is None else deadline
    return sign_report(key, chain.chain_id, ag.address, period, values, measured, root, deadline)


def test_python_digest_equals_the_contracts(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 1)
    for period, values, measured, root, deadline in [(0, [999_000], 1_000_000, EVIDENCE_ROOT, 1),
                                                     (7, [0], 0, b"\x00" * 32, 2**64 - 1),
                                                     (2**40, [1_000_000], 900_000, b"\xff" * 32, 1_800_000_000)]:
        assert ag.report_digest(period, values, measured, root, deadline) == digest(
            chain.chain_id, ag.address, period, values, measured, root, deadline)
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
    ag = _agreement(chain, factory, roles, terms_for, committee, 3)
    (a, ka), (_, kb), _ = committee
    with pytest.raises(ContractReverted, match=r"^QuorumNotReached\(3, 2\)"):
        ag.settle_with_reports(0, [_sign(chain, ag, ka, 0, [0]), _sign(chain, ag, kb, 0, [0])], a)
    with pytest.raises(ContractReverted, match=r"^QuorumNotReached\(3, 1\)"):
        ag.settle(0, [0], 1_000_000, EVIDENCE_ROOT, a)  # direct reports only with a quorum of 1
    twice = [_sign(chain, ag, ka, 0, [0]), _sign(chain, ag, ka, 0, [1]), _sign(chain, ag, kb, 0, [1])]
    with pytest.raises(ContractReverted, match=r"^DuplicateSigner"):
        ag.settle_with_reports(0, twice, a)
    assert ag.snapshot().settled_periods == 0


def test_only_members_sign_but_anyone_submits(chain, factory, roles, terms_for, committee):
    """The signatures are the authority (review 2): a quorum of members' reports settles whoever
    submits it (old code: Unauthorized for anyone outside the committee); an outsider's own
    signature never counts."""
    ag = _agreement(chain, factory, roles, terms_for, committee, 3)
    (a, ka), (b, kb), (c, kc) = committee
    outsider, ko = chain.new_account(fund_from=roles["deployer"])
    good = [_sign(chain, ag, k, 0, [999_000]) for k in (ka, kb, kc)]
    with pytest.raises(ContractReverted, match=rf"^NotACommitteeMember\('{outsider}'\)"):
        ag.settle_with_reports(0, [good[0], good[1], _sign(chain, ag, ko, 0, [999_000])], a)
    assert ag.settle_with_reports(0, good, roles["customer"]).values_ppm == (999_000,)


def test_even_quorum_is_refused(chain, factory, roles, terms_for, committee):
    """Review 2, finding 5: with an even quorum one bribed member decides a tie."""
    with pytest.raises(ValueError, match="quorum must be odd"):
        terms_for(oracles=[a for a, _ in committee], quorum=2)


def test_even_number_of_reports_takes_the_neutral_median(chain, factory, roles, terms_for, committee):
    """Review 2, finding 5: two reports (quorum 1) settle on the floor of their mean; the old lower
    median took the bribed member's 0 and paid the full credit."""
    ag = _agreement(chain, factory, roles, terms_for, committee, 1)
    (a, ka), (_, kb), _ = committee
    s = ag.settle_with_reports(0, [_sign(chain, ag, ka, 0, [0]), _sign(chain, ag, kb, 0, [999_000])], a)
    assert s.values_ppm == (median([0, 999_000]),) == (499_500,)


def test_expired_reports_are_refused(chain, factory, roles, terms_for, committee):
    """Review 2, finding 7: a signed report carries a deadline (old code: valid forever)."""
    ag = _agreement(chain, factory, roles, terms_for, committee, 3)
    deadline = chain.now() + 60
    reports = [_sign(chain, ag, k, 0, [0], deadline=deadline) for _, k in committee]
    chain.mine_at(deadline + 1)
    with pytest.raises(ContractReverted, match=rf"^ReportExpired\(0, {deadline}\)"):
        ag.settle_with_reports(0, reports, committee[0][0])


def test_reports_below_the_minimum_measured_share_are_refused(chain, factory, roles, terms_for, committee):
    """Review 2, finding 10: a figure for a period the oracles mostly did not observe is refused;
    the median measured share counts, and the settled share is in the event."""
    ag = _agreement(chain, factory, roles, terms_for, committee, 3)
    (a, ka), (_, kb), (_, kc) = committee
    low = [_sign(chain, ag, ka, 0, [0], 1_000_000), _sign(chain, ag, kb, 0, [0], 500_000),
           _sign(chain, ag, kc, 0, [0], 100_000)]
    with pytest.raises(ContractReverted, match=r"^PeriodNotMeasured\(0, 500000, 900000\)"):
        ag.settle_with_reports(0, low, a)
    ok = [_sign(chain, ag, ka, 0, [999_000], 990_000), _sign(chain, ag, kb, 0, [999_000], 950_000),
          _sign(chain, ag, kc, 0, [999_000], 100_000)]
    assert ag.settle_with_reports(0, ok, a).measured_ppm == 950_000


def test_signatures_cannot_be_replayed(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 3)
    other = _agreement(chain, factory, roles, terms_for, committee, 3)
    (a, ka), (b, kb), (_, kc) = committee
    period0 = [_sign(chain, ag, k, 0, [999_000], deadline=2**63) for k in (ka, kb, kc)]
    ag.settle_with_reports(0, period0, a)
    chain.mine_at(ag.terms.period_end(1))
    # Same signatures offered for the next period: they recover to strangers.
    with pytest.raises(ContractReverted, match=r"^NotACommitteeMember"):
        ag.settle_with_reports(1, period0, a)
    # ... or for another agreement with the same committee.
    with pytest.raises(ContractReverted, match=r"^NotACommitteeMember"):
        other.settle_with_reports(0, period0, a)
    # ... or signed for another chain id.
    foreign = [sign_report(k, chain.chain_id + 1, ag.address, 1, [999_000], 1_000_000, EVIDENCE_ROOT, 2**63)
               for k in (ka, kb, kc)]
    with pytest.raises(ContractReverted, match=r"^NotACommitteeMember"):
        ag.settle_with_reports(1, foreign, a)
    # ... and replaying the very same settlement fails as a duplicate period.
    with pytest.raises(ContractReverted, match=r"^PeriodAlreadySettled"):
        ag.settle_with_reports(0, period0, a)
    assert ag.snapshot().settled_periods == 1


def test_values_in_signed_reports_are_checked(chain, factory, roles, terms_for, committee):
    ag = _agreement(chain, factory, roles, terms_for, committee, 1)
    (a, ka), (b, kb), _ = committee
    with pytest.raises(ContractReverted, match=r"^ValueAboveOneHundredPercent"):
        ag.settle_with_reports(0, [_sign(chain, ag, ka, 0, [1_000_001]), _sign(chain, ag, kb, 0, [1_000_001])], a)
    with pytest.raises(ContractReverted, match=r"^MalformedReports"):  # two values for one service
        ag.settle_with_reports(0, [_sign(chain, ag, ka, 0, [1, 2]), _sign(chain, ag, kb, 0, [1, 2])], a)
