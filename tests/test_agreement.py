"""Agreement behaviour on the embedded chain: settlement rules, access control, named errors."""

from __future__ import annotations

import pytest
from sla_helpers import ETHER, EVIDENCE_ROOT

from smartsla.client import Status
from smartsla.credit import Books, served_fee
from smartsla.errors import ContractReverted, NotAnAgreement


@pytest.fixture
def active(chain, factory, roles, terms_for):
    """An agreement with both deposits made."""
    terms = terms_for()
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    return ag


def reverted(name: str):
    return pytest.raises(ContractReverted, match=rf"^{name}\(")


def test_terms_round_trip_through_the_clone(factory, roles, terms_for):
    terms = terms_for()
    ag = factory.create_agreement(terms, roles["deployer"])
    del ag.__dict__["terms"]  # force a read from the chain
    assert ag.terms == terms
    assert ag.snapshot().status is Status.Pending


def test_activation_needs_both_deposits(active):
    snap = active.snapshot()
    assert snap.status is Status.Active
    assert active.balance() == snap.held == active.terms.total_fees + active.terms.collateral


def test_settlement_pays_the_tier_credit_and_the_fee(chain, active, roles):
    chain.mine_at(active.terms.period_end(0))
    s = active.settle(0, [985_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])  # below 99 %: 30 %
    assert s.credit_paid == 3 * ETHER // 10
    assert s.fee_earned == ETHER
    snap = active.snapshot()
    assert snap.owed_to_customer == 3 * ETHER // 10
    assert snap.owed_to_provider == ETHER
    assert snap.collateral_escrowed == 3 * ETHER - 3 * ETHER // 10


def test_a_period_settles_at_most_once(chain, active, roles):
    chain.mine_at(active.terms.period_end(0))
    active.settle(0, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    with reverted("PeriodAlreadySettled"):
        active.settle(0, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    assert active.snapshot().settled_periods == 1


def test_never_before_the_period_ends(chain, active, roles):
    with reverted("PeriodNotEnded"):
        active.settle(0, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    chain.mine_at(active.terms.period_end(0))
    active.settle(0, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    with reverted("PeriodNotEnded"):
        active.settle(1, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])


def test_periods_settle_in_order(chain, active, roles):
    chain.mine_at(active.terms.period_end(1))
    with reverted("PeriodOutOfOrder"):
        active.settle(1, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])


def test_values_above_one_hundred_percent_revert(chain, active, roles):
    chain.mine_at(active.terms.period_end(0))
    with reverted("ValueAboveOneHundredPercent"):
        active.settle(0, [1_000_001], 1_000_000, EVIDENCE_ROOT, roles["oracle"])


def test_one_value_per_service(chain, active, roles):
    chain.mine_at(active.terms.period_end(0))
    with reverted("WrongNumberOfValues"):
        active.settle(0, [], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    with reverted("WrongNumberOfValues"):
        active.settle(0, [1_000_000, 1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])


@pytest.mark.parametrize("who", ["provider", "customer", "stranger", "deployer"])
def test_only_the_oracle_reports(chain, active, roles, who):
    chain.mine_at(active.terms.period_end(0))
    with reverted("Unauthorized"):
        active.settle(0, [0], 1_000_000, EVIDENCE_ROOT, roles[who])


def test_nobody_but_a_party_moves_that_partys_money(chain, active, roles):
    chain.mine_at(active.terms.period_end(0))
    active.settle(0, [0], 1_000_000, EVIDENCE_ROOT, roles["oracle"])  # 100 % credit, fee earned
    for who in ("stranger", "oracle", "deployer"):
        with reverted("Unauthorized"):
            active.withdraw(roles[who])
    with reverted("Unauthorized"):
        active.terminate(roles["provider"])
    before = active.snapshot()
    assert active.withdraw(roles["customer"]) == before.owed_to_customer
    assert active.withdraw(roles["provider"]) == before.owed_to_provider
    with reverted("NothingToWithdraw"):
        active.withdraw(roles["customer"])


def test_deposits_only_by_their_party_and_exact(factory, roles, terms_for):
    ag = factory.create_agreement(terms_for(), roles["deployer"])
    with reverted("Unauthorized"):
        ag.deposit_fees(roles["provider"])
    with reverted("Unauthorized"):
        ag.deposit_collateral(roles["customer"])
    fn = ag.contract.functions.depositFees()
    with reverted("WrongAmount"):
        ag.chain.transact(fn, roles["customer"], value=ag.terms.total_fees - 1)
    ag.deposit_fees(roles["customer"])
    with reverted("AlreadyDeposited"):
        ag.deposit_fees(roles["customer"])


def test_cancel_a_pending_agreement_returns_deposits(chain, factory, roles, terms_for):
    ag = factory.create_agreement(terms_for(), roles["deployer"])
    ag.deposit_fees(roles["customer"])
    with reverted("Unauthorized"):
        ag.cancel(roles["stranger"])
    ag.cancel(roles["provider"])
    assert ag.snapshot().status is Status.Cancelled
    with reverted("WrongStatus"):
        ag.deposit_collateral(roles["provider"])
    assert ag.withdraw(roles["customer"]) == ag.terms.total_fees
    assert ag.balance() == 0


def test_disaster_clause_refunds_unearned_fees(chain, active, roles):
    with reverted("NoDisaster"):
        active.terminate(roles["customer"])
    chain.mine_at(active.terms.period_end(0))
    s = active.settle(0, [850_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])  # below the 90 % termination threshold
    assert s.disaster
    terms = active.terms
    chain.mine_at(terms.period_start(1) + 900)  # a quarter of period 1 served
    tx = active.terminate(roles["customer"])
    at = int(chain.w3.eth.get_block(tx.block_number)["timestamp"])
    earned = served_fee(terms.fee_per_period, terms.period_start(1), terms.period_end(1), at)
    assert 0 < earned < terms.fee_per_period // 2
    event = active.contract.events.Terminated().process_receipt(tx.receipt)[0]["args"]
    assert event["feeEarnedByProvider"] == earned
    snap = active.snapshot()
    assert snap.status is Status.Terminated
    # the unserved part of period 1, period 2's fee, and the 100 % credit of period 0
    assert snap.owed_to_customer == terms.fee_per_period * 2 - earned + ETHER
    assert snap.owed_to_provider == ETHER + earned + (terms.collateral - ETHER)
    chain.mine_at(terms.period_end(1))
    with reverted("WrongStatus"):
        active.settle(1, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    paid = active.withdraw(roles["customer"]) + active.withdraw(roles["provider"])
    assert paid == terms.total_fees + terms.collateral
    assert active.balance() == 0


def test_full_term_returns_the_collateral_left(chain, active, roles):
    books = Books(active.terms)
    books.deposit_fees()
    books.deposit_collateral()
    for period, value in enumerate([999_950, 980_000, 1_000_000]):
        chain.mine_at(active.terms.period_end(period))
        s = active.settle(period, [value], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
        assert s.credit_paid == books.settle([value]).paid_credit
    snap = active.snapshot()
    assert snap.status is Status.Ended
    assert (snap.owed_to_customer, snap.owed_to_provider) == (books.owed["customer"], books.owed["provider"])
    assert snap.fees_escrowed == snap.collateral_escrowed == 0


def test_credit_is_capped_and_limited_by_collateral(chain, factory, roles, terms_for):
    ag = factory.create_agreement(terms_for(credit_cap_bps=5_000, collateral=ETHER * 7 // 10), roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(ag.terms.period_end(1))
    # 100 % capped at 50 %
    assert ag.settle(0, [0], 1_000_000, EVIDENCE_ROOT, roles["oracle"]).credit_paid == ETHER // 2
    # Only 0.2 ether of collateral is left: the rest of the capped credit is a shortfall.
    assert ag.settle(1, [0], 1_000_000, EVIDENCE_ROOT, roles["oracle"]).credit_paid == ETHER * 2 // 10
    assert ag.snapshot().collateral_escrowed == 0


def test_factory_registry_and_rejects_unknown_addresses(factory, roles, terms_for):
    a = factory.create_agreement(terms_for(), roles["deployer"])
    b = factory.create_agreement(terms_for(period_count=5), roles["deployer"])
    assert [x.address for x in factory.agreements_of_provider(roles["provider"])] == [a.address, b.address]
    assert [x.address for x in factory.agreements_of_customer(roles["customer"])] == [a.address, b.address]
    assert factory.agreements_of_customer(roles["stranger"]) == []
    with pytest.raises(NotAnAgreement):
        factory.agreement(roles["stranger"])
    with pytest.raises(NotAnAgreement):
        factory.agreement("0x1234")
    assert factory.agreement(a.address).terms == a.terms


def test_implementation_refuses_direct_use(chain, factory, roles):
    impl = chain.contract("Agreement", factory.contract.functions.implementation().call())
    with reverted("NotAClone"):
        chain.call(impl.functions.terms())
    with reverted("NotAClone"):
        chain.transact(impl.functions.withdraw(), roles["customer"])


def test_factory_rejects_bad_terms_on_chain(chain, factory, roles, terms_for):
    """The Python model validates first; the contract must also refuse, for other callers."""
    raw = list(terms_for().to_abi())
    raw[6] = 0  # period length zero
    with pytest.raises(ContractReverted, match="period length is zero"):
        chain.transact(factory.contract.functions.createAgreement(tuple(raw)), roles["deployer"])
    raw = list(terms_for().to_abi())
    sid, obj, weight, tiers = raw[12][0]
    raw[12] = [(sid, 1_000_001, weight, tiers)]
    with pytest.raises(ContractReverted, match="objective above 100%"):
        chain.transact(factory.contract.functions.createAgreement(tuple(raw)), roles["deployer"])
    raw[12] = [(sid, obj, weight, [(990_000, 3_000), (999_000, 1_000)])]
    with pytest.raises(ContractReverted, match="tier thresholds not falling"):
        chain.transact(factory.contract.functions.createAgreement(tuple(raw)), roles["deployer"])
    assert factory.contract.functions.agreementCount().call() == 0


def test_committee_members_cannot_be_parties_and_quorum_fits(chain, factory, roles, terms_for):
    raw = list(terms_for().to_abi())
    raw[2] = [roles["oracle"], roles["provider"]]
    with pytest.raises(ContractReverted, match="a party cannot be an oracle"):
        chain.transact(factory.contract.functions.createAgreement(tuple(raw)), roles["deployer"])
    raw[2], raw[3] = [roles["oracle"]], 2
    with pytest.raises(ContractReverted, match="quorum outside"):
        chain.transact(factory.contract.functions.createAgreement(tuple(raw)), roles["deployer"])
    raw[2], raw[3] = [roles["oracle"], roles["oracle"]], 1
    with pytest.raises(ContractReverted, match="duplicate oracle"):
        chain.transact(factory.contract.functions.createAgreement(tuple(raw)), roles["deployer"])


def test_terminate_waits_for_ended_periods_to_be_reported(chain, active, roles):
    chain.mine_at(active.terms.period_end(0))
    active.settle(0, [850_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])  # a disaster
    chain.mine_at(active.terms.period_end(1))  # period 1 was served and is over, not yet reported
    with reverted("PeriodAwaitingReport"):
        active.terminate(roles["customer"])  # front-running the report would take its fee back
    active.settle(1, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    tx = active.terminate(roles["customer"])
    terms = active.terms
    at = int(chain.w3.eth.get_block(tx.block_number)["timestamp"])
    earned = served_fee(terms.fee_per_period, terms.period_start(2), terms.period_end(2), at)
    assert active.snapshot().owed_to_customer == ETHER + terms.fee_per_period - earned  # credit + unserved time


def test_silent_oracles_cannot_lock_the_escrow(chain, active, roles):
    chain.mine_at(active.terms.period_end(0))
    active.settle(0, [985_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])  # then the oracle goes silent
    deadline = active.terms.end + active.chain.call(active.contract.functions.REPORT_DEADLINE())
    chain.mine_at(deadline - 10)
    with reverted("NotExpired"):
        active.expire(roles["stranger"])
    chain.mine_at(deadline)
    active.expire(roles["stranger"])  # anyone may
    snap = active.snapshot()
    assert snap.status is Status.Expired
    assert snap.status.terminal  # the oracle stops serving it (it used to poll expired agreements forever)
    assert [s.name for s in Status if s.terminal] == ["Ended", "Terminated", "Cancelled", "Expired"]
    assert snap.owed_to_customer == 3 * ETHER // 10 + 2 * ETHER  # the credit + the two unreported fees
    assert snap.owed_to_provider == ETHER + 3 * ETHER - 3 * ETHER // 10  # the served fee + collateral left
    assert active.withdraw(roles["customer"]) + active.withdraw(roles["provider"]) == 6 * ETHER
    assert active.balance() == 0


def test_terms_whose_sums_overflow_the_books_are_refused(chain, factory, roles, terms_for):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="plus collateral overflow 128 bits"):
        terms_for(period_count=1, fee_per_period=2**128 - 1, collateral=1)
    raw = list(terms_for().to_abi())
    raw[7], raw[8], raw[9] = 1, 2**128 - 1, 1  # one period, the largest fee, collateral 1
    with pytest.raises(ContractReverted, match="total fees plus collateral overflow"):
        chain.transact(factory.contract.functions.createAgreement(tuple(raw)), roles["deployer"])


def test_a_start_in_the_past_is_refused_before_sending(chain, factory, roles, terms_for):
    """Review 2, finding 7: the factory refuses it; the library says so before paying for a revert."""
    from smartsla.errors import InvalidTermsError

    past = terms_for().model_copy(update={"start": chain.now() - 10})
    with pytest.raises(InvalidTermsError, match="is in the past"):
        factory.create_agreement(past, roles["deployer"])
    raw = list(past.to_abi())
    with pytest.raises(ContractReverted, match="start is in the past"):
        chain.transact(factory.contract.functions.createAgreement(tuple(raw)), roles["deployer"])


def test_deposits_close_when_the_term_starts(chain, factory, roles, terms_for):
    """Review 2, finding 7: no joining with hindsight; only cancel is left."""
    ag = factory.create_agreement(terms_for(), roles["deployer"])
    ag.deposit_fees(roles["customer"])
    chain.mine_at(ag.terms.start)
    with reverted("TermStarted"):
        ag.deposit_collateral(roles["provider"])
    ag.cancel(roles["customer"])
    assert ag.withdraw(roles["customer"]) == ag.terms.total_fees


def test_withdraw_to_pays_another_address(chain, active, roles):
    """Review 2, finding 7: a party that cannot receive has its due paid elsewhere."""
    chain.mine_at(active.terms.period_end(0))
    active.settle(0, [985_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])  # 30 % credit
    treasury, _ = chain.new_account(fund_from=roles["deployer"], amount=0)
    assert active.withdraw_to(treasury, roles["customer"]) == 3 * ETHER // 10
    assert chain.balance(treasury) == 3 * ETHER // 10
    with reverted("NothingToWithdraw"):
        active.withdraw(roles["customer"])
