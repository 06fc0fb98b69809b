"""Experience objectives (latency, satisfaction, composite), on-chain maintenance, and disputes."""

from __future__ import annotations

import pytest
from sla_helpers import EC2_TIERS, ETHER, EVIDENCE_ROOT

from smartsla.client import Status
from smartsla.credit import Books, period_outcome
from smartsla.errors import ContractReverted
from smartsla.terms import Kind, Service, Tier

LATENCY = Service(name="p95-latency", kind="latency", objective=300, weight_bps=2_000,
                  tiers=(Tier(threshold=300, credit_bps=1_000), Tier(threshold=500, credit_bps=3_000),
                         Tier(threshold=1_000, credit_bps=10_000)))
CSAT = Service(name="csat", kind="satisfaction", objective=800_000, weight_bps=2_000,
               tiers=(Tier(threshold=800_000, credit_bps=2_500), Tier(threshold=600_000, credit_bps=5_000)))
MAIL = Service(name="mail", objective=999_000, weight_bps=2_000, tiers=EC2_TIERS[1:])
FILES = Service(name="files", objective=999_000, weight_bps=2_000, tiers=EC2_TIERS[1:])
COMBINED = Service(name="combined", kind="composite", objective=999_500, weight_bps=2_000,
                   tiers=(Tier(threshold=999_500, credit_bps=1_000), Tier(threshold=990_000, credit_bps=5_000)))


def reverted(name: str):
    return pytest.raises(ContractReverted, match=rf"^{name}\(")


def active(chain, factory, roles, terms_for, **overrides):
    terms = terms_for(**overrides)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    assert ag.terms == terms
    return ag


def test_xla_latency_satisfaction_and_composite_earn_credits_like_uptime(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, services=(LATENCY, CSAT, MAIL, FILES, COMBINED))
    assert [s.kind for s in ag.terms.services] == [Kind.latency, Kind.satisfaction, Kind.availability,
                                                  Kind.availability, Kind.composite]
    ag.attest_satisfaction(0, 700_000, roles["customer"])  # below 80 %: 25 %
    chain.mine_at(ag.terms.period_end(0))
    # p95 620 ms (> 500 ms: 30 %); mail 99.95 %, files 98.0 % -> combined 98.975 % (< 99 %: 50 %);
    # the oracle's values for csat and combined are ignored.
    reported = [620, 123, 999_500, 980_000, 1]
    s = ag.settle(0, reported, 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    expected = period_outcome(ag.terms, reported, ag.terms.collateral, satisfaction=700_000)
    assert s.values_ppm == expected.values == (620, 700_000, 999_500, 980_000, 989_750)
    assert s.service_credits == expected.service_credits
    fee_share = ETHER * 2_000 // 10_000
    assert s.service_credits == (fee_share * 3 // 10, fee_share // 4, 0, fee_share * 3 // 10, fee_share // 2)
    assert s.credit_paid == sum(s.service_credits)


def test_latency_at_the_objective_earns_nothing(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, services=(LATENCY.model_copy(update={"weight_bps": 10_000}),))
    chain.mine_at(ag.terms.period_end(0))
    assert ag.settle(0, [300], 1_000_000, EVIDENCE_ROOT, roles["oracle"]).credit_paid == 0
    chain.mine_at(ag.terms.period_end(1))
    assert ag.settle(1, [1_001], 1_000_000, EVIDENCE_ROOT, roles["oracle"]).credit_paid == ETHER


def test_only_the_customer_attests_and_only_before_settlement(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, services=(CSAT, MAIL.model_copy(update={"weight_bps": 8_000})))
    with reverted("Unauthorized"):
        ag.attest_satisfaction(0, 0, roles["provider"])
    with reverted("ValueAboveOneHundredPercent"):
        ag.attest_satisfaction(0, 1_000_001, roles["customer"])
    chain.mine_at(ag.terms.period_end(0))
    ag.settle(0, [0, 1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])  # no attestation: satisfied
    with reverted("PeriodAlreadySettled"):
        ag.attest_satisfaction(0, 0, roles["customer"])
    plain = active(chain, factory, roles, terms_for)
    with reverted("NoSatisfactionService"):
        plain.attest_satisfaction(1, 0, roles["customer"])


def test_maintenance_is_declared_on_chain_with_or_without_notice(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, maintenance_notice=600, maintenance_budget=3_600)
    s, now = ag.terms.start, chain.now()  # one-minute slices from the start
    with reverted("Unauthorized"):
        ag.declare_maintenance(s + 900, s + 1_200, roles["customer"])
    with reverted("InvalidWindow"):
        ag.declare_maintenance(now - 10, now + 100, roles["provider"])  # in the past
    with reverted("InvalidWindow"):
        ag.declare_maintenance(s + 900, s + 900, roles["provider"])  # empty
    with reverted("InvalidWindow"):
        ag.declare_maintenance(s + 900, ag.terms.end + 1, roles["provider"])  # beyond the term
    with reverted("MisalignedWindow"):
        ag.declare_maintenance(s + 901, s + 1_200, roles["provider"])  # excluded windows cover whole slices
    ag.declare_maintenance(s + 900, s + 1_200, roles["provider"])
    ag.declare_maintenance(s + 300, s + 400, roles["provider"])  # short notice: counts as downtime
    windows = ag.maintenance_windows()
    assert [(w.start - s, w.end - s, w.with_notice) for w in windows] == [(900, 1_200, True), (300, 400, False)]


def test_without_a_maintenance_clause_nothing_is_excluded(chain, factory, roles, terms_for):
    """Review 2, finding 1: the default terms have no clause; a window declared as an outage
    begins (old code: 'with notice' since the notice was 0, and budget 0 meant unlimited) counts
    as ordinary time."""
    ag = active(chain, factory, roles, terms_for)
    chain.mine_at(ag.terms.start + 100)  # the outage begins
    now = chain.now() + 1
    ag.declare_maintenance(now, ag.terms.end, roles["provider"])
    assert [w.with_notice for w in ag.maintenance_windows()] == [False]


def dispute_terms(roles):
    return {"dispute_window": 3_600, "arbiter": roles["stranger"]}


def test_without_a_dispute_window_settlement_pays_at_once(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for)
    chain.mine_at(ag.terms.period_end(0))
    ag.settle(0, [985_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    assert ag.snapshot().owed_to_customer == 3 * ETHER // 10
    assert ag.period_state(0)[0] == "None"


def test_settled_period_pays_only_after_the_dispute_window(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, **dispute_terms(roles))
    chain.mine_at(ag.terms.period_end(0))
    ag.settle(0, [985_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    snap = ag.snapshot()
    assert (snap.owed_to_customer, snap.pending_to_customer, snap.pending_periods) == (0, 3 * ETHER // 10, 1)
    state, credit, final_after = ag.period_state(0)
    assert (state, credit) == ("Pending", 3 * ETHER // 10)
    with reverted("DisputeWindowOpen"):
        ag.finalize(0, roles["stranger"])
    with reverted("NothingToWithdraw"):
        ag.withdraw(roles["customer"])
    chain.mine_at(final_after)
    ag.finalize(0, roles["stranger"])  # anyone may finalize
    assert ag.withdraw(roles["customer"]) == 3 * ETHER // 10
    with reverted("WrongPeriodState"):
        ag.finalize(0, roles["stranger"])  # never paid twice


def test_dispute_resolved_by_the_arbiter_with_a_corrected_report(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, **dispute_terms(roles))
    books = Books(ag.terms)
    books.deposit_fees()
    books.deposit_collateral()
    chain.mine_at(ag.terms.period_end(0))
    ag.settle(0, [999_950], 1_000_000, EVIDENCE_ROOT, roles["oracle"])  # the oracle says: objective met
    books.settle([999_950])
    with reverted("Unauthorized"):
        ag.dispute(0, b"\x01" * 32, roles["oracle"])
    ag.dispute(0, b"\xee" * 32, roles["customer"])  # the customer's logs say otherwise
    with reverted("WrongPeriodState"):
        ag.dispute(0, b"\x01" * 32, roles["provider"])
    with reverted("Unauthorized"):
        ag.resolve_dispute(0, [940_000], roles["customer"])
    ag.resolve_dispute(0, [940_000], roles["stranger"])  # the arbiter: below 95 % -> 100 %
    corrected = period_outcome(ag.terms, [940_000], books.collateral_escrowed + books.pending_credit[0]).paid_credit
    books.finalize(0, corrected)
    snap = ag.snapshot()
    assert snap.owed_to_customer == books.owed["customer"] == ETHER
    assert snap.held == books.held == ag.balance()
    with reverted("WrongPeriodState"):
        ag.resolve_dispute(0, [0], roles["stranger"])


def test_dispute_window_closes_and_undecided_disputes_pay_as_reported(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, **dispute_terms(roles), period_count=1)
    chain.mine_at(ag.terms.period_end(0))
    ag.settle(0, [985_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    assert ag.snapshot().status is Status.Ended
    assert ag.snapshot().collateral_escrowed > 0  # kept back while the period may be disputed
    ag.dispute(0, b"\x02" * 32, roles["provider"])
    _, _, final_after = ag.period_state(0)
    chain.mine_at(final_after)
    with reverted("DisputeWindowOpen"):
        ag.finalize(0, roles["customer"])  # the arbiter gets one more window
    chain.mine_at(final_after + 3_600)
    ag.finalize(0, roles["customer"])
    snap = ag.snapshot()
    assert snap.collateral_escrowed == 0 and snap.pending_periods == 0
    assert snap.owed_to_customer == 3 * ETHER // 10
    assert snap.owed_to_provider == ETHER + 3 * ETHER - 3 * ETHER // 10
    assert ag.withdraw(roles["customer"]) + ag.withdraw(roles["provider"]) == 4 * ETHER
    assert ag.balance() == 0


def test_late_dispute_is_refused(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, **dispute_terms(roles))
    chain.mine_at(ag.terms.period_end(0))
    ag.settle(0, [985_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    chain.mine_at(ag.period_state(0)[2])
    with reverted("DisputeWindowClosed"):
        ag.dispute(0, b"\x03" * 32, roles["customer"])


def test_options_are_validated(terms_for, roles):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="a dispute window needs an arbiter"):
        terms_for(dispute_window=60)
    with pytest.raises(ValidationError, match="a party cannot be the arbiter"):
        terms_for(dispute_window=60, arbiter=roles["customer"])
    with pytest.raises(ValidationError, match="composite service needs availability"):
        terms_for(services=(COMBINED.model_copy(update={"weight_bps": 10_000}),))
    with pytest.raises(ValidationError, match="latency tier 1 bound must rise"):
        Service(name="lat", kind="latency", objective=300,
                tiers=(Tier(threshold=500, credit_bps=1_000), Tier(threshold=400, credit_bps=2_000)))
    with pytest.raises(ValidationError, match="unknown kind 'speed'"):
        Service(name="x", kind="speed", objective=300, tiers=(Tier(threshold=300, credit_bps=1),))


def test_calendar_periods_end_where_the_terms_say(chain, factory, roles, terms_for):
    """Calendar months have different lengths: the ends are fixed at creation (see smartsla.spec)."""
    ag = active(chain, factory, roles, terms_for, period_length=0, period_ends=(100, 250, 400), slice_seconds=10)
    start = ag.terms.start
    assert [ag.chain.call(ag.contract.functions.periodEnd(p)) for p in range(3)] == [start + 100, start + 250,
                                                                                     start + 400]
    chain.mine_at(start + 100)
    ag.settle(0, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    with pytest.raises(ContractReverted, match=rf"^PeriodNotEnded\(1, {start + 250}\)"):
        ag.settle(1, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    now = chain.now()
    with reverted("InvalidWindow"):
        ag.declare_maintenance(now + 10, start + 401, roles["provider"])  # beyond the calendar term


def test_calendar_periods_are_validated(terms_for):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="either period_length or calendar period_ends"):
        terms_for(period_ends=(100, 200, 300))
    with pytest.raises(ValidationError, match="2 period ends for 3 periods"):
        terms_for(period_length=0, period_ends=(100, 200))
    with pytest.raises(ValidationError, match="period ends must rise"):
        terms_for(period_length=0, period_ends=(100, 100, 300))


def test_maintenance_budget_bounds_what_can_be_excluded(chain, factory, roles, terms_for):
    ag = active(chain, factory, roles, terms_for, maintenance_notice=600, maintenance_budget=1_020)
    s = ag.terms.start
    ag.declare_maintenance(s + 720, s + 1_320, roles["provider"])  # 600 s of the 1,020
    with reverted("MaintenanceBudgetExceeded"):
        ag.declare_maintenance(s + 2_040, s + 2_580, roles["provider"])  # 540 s > 420 left
    ag.declare_maintenance(s + 2_040, s + 2_460, roles["provider"])  # exactly what is left
    ag.declare_maintenance(s + 120, s + 5_000, roles["provider"])  # short notice: not excluded, no budget
    assert [w.with_notice for w in ag.maintenance_windows()] == [True, True, False]
