"""The agreement's lifecycle driven by Brownie on the Anvil it launches: deposits, time, settlements
with the AWS EC2 credit tiers, withdrawals, the disaster clause, and reverts by custom error."""

from __future__ import annotations

from typing import Any

import brownie
import pytest
from sla_brownie import ETHER, EVIDENCE_ROOT, PERIOD, service_id, typed_error

PENDING, ACTIVE, ENDED, TERMINATED, CANCELLED = range(5)


def snapshot(agreement: Any) -> dict[str, Any]:
    return agreement.snapshot().dict()


def paid(tx: Any) -> int:
    """What a transaction cost its sender in gas."""
    return tx.gas_used * tx.gas_price


def end_period(chain: Any, terms: tuple, period: int) -> None:
    """Move the chain past the end of `period` (start + (period + 1) * periodLength)."""
    start, length = terms[5], terms[6]
    chain.sleep(start + (period + 1) * length - chain.time() + 1)
    chain.mine()


def test_deposits_activate_the_agreement(create: Any, roles: dict[str, Any]) -> None:
    agreement, _ = create()
    assert snapshot(agreement)["status"] == PENDING
    tx = agreement.depositFees({"from": roles["customer"], "value": 3 * ETHER})
    assert tx.events["FeesDeposited"]["amount"] == 3 * ETHER
    tx = agreement.depositCollateral({"from": roles["provider"], "value": 3 * ETHER})
    assert "Activated" in tx.events
    state = snapshot(agreement)
    assert state["status"] == ACTIVE
    assert (state["feesEscrowed"], state["collateralEscrowed"]) == (3 * ETHER, 3 * ETHER)
    assert agreement.balance() == 6 * ETHER


def test_full_lifecycle_pays_ec2_credits(active: tuple[Any, tuple], roles: dict[str, Any], chain: Any) -> None:
    agreement, terms = active
    provider, customer, oracle = roles["provider"], roles["customer"], roles["oracle"]
    # Period 0 meets 99.99 %, period 1 is below it (10 %), period 2 below 95 % (100 %).
    measured = [999_950, 995_000, 940_000]
    expected_credit = [0, ETHER // 10, ETHER]
    for period, value in enumerate(measured):
        end_period(chain, terms, period)
        tx = agreement.settle(period, [value], 1_000_000, EVIDENCE_ROOT, {"from": oracle})
        event = tx.events["PeriodSettled"]
        assert event["period"] == period
        assert event["creditPaid"] == expected_credit[period]
        assert event["feeEarned"] == ETHER
        assert event["disaster"] is False
    assert "Ended" in tx.events
    state = snapshot(agreement)
    assert state["status"] == ENDED and state["settledPeriods"] == 3
    credits = sum(expected_credit)
    assert state["owedToCustomer"] == credits
    assert state["owedToProvider"] == 3 * ETHER + 3 * ETHER - credits  # every fee + the collateral left

    before = customer.balance()
    tx = agreement.withdraw({"from": customer})
    assert tx.events["Withdrawn"]["amount"] == credits
    assert customer.balance() == before + credits - paid(tx)
    before = provider.balance()
    tx = agreement.withdraw({"from": provider})
    assert provider.balance() == before + 6 * ETHER - credits - paid(tx)
    assert agreement.balance() == 0
    with brownie.reverts(typed_error("NothingToWithdraw", customer)):
        agreement.withdraw({"from": customer})


@pytest.mark.parametrize(("value_ppm", "credit_bps"), [
    (1_000_000, 0), (999_900, 0),            # meeting the objective earns nothing
    (999_899, 1_000), (990_000, 1_000),      # below 99.99 %: 10 %
    (989_999, 3_000), (950_000, 3_000),      # below 99 %: 30 %
    (949_999, 10_000), (0, 10_000),          # below 95 %: 100 %
])
def test_ec2_tier_boundaries(active: tuple[Any, tuple], roles: dict[str, Any], chain: Any, value_ppm: int,
                             credit_bps: int) -> None:
    agreement, terms = active
    credit = ETHER * credit_bps // 10_000
    service_credits, capped = agreement.quoteCredit([value_ppm])
    assert (list(service_credits), capped) == ([credit], credit)
    end_period(chain, terms, 0)
    tx = agreement.settle(0, [value_ppm], 1_000_000, EVIDENCE_ROOT, {"from": roles["oracle"]})
    assert tx.events["PeriodSettled"]["creditPaid"] == credit
    assert snapshot(agreement)["owedToCustomer"] == credit


def test_disaster_lets_the_customer_terminate(active: tuple[Any, tuple], roles: dict[str, Any], chain: Any) -> None:
    agreement, terms = active
    customer, provider = roles["customer"], roles["provider"]
    with brownie.reverts(typed_error("NoDisaster")):
        agreement.terminate({"from": customer})
    end_period(chain, terms, 0)
    # below the 90 % termination threshold
    tx = agreement.settle(0, [850_000], 1_000_000, EVIDENCE_ROOT, {"from": roles["oracle"]})
    assert tx.events["PeriodSettled"]["disaster"] is True
    with brownie.reverts(typed_error("Unauthorized", provider)):
        agreement.terminate({"from": provider})
    tx = agreement.terminate({"from": customer})
    refund, earned = tx.events["Terminated"]["refundedFees"], tx.events["Terminated"]["feeEarnedByProvider"]
    # pro rata: the seconds of period 1 served are the provider's, the rest comes back
    assert refund + earned == 2 * ETHER and earned < ETHER // 10
    assert tx.events["Terminated"]["returnedCollateral"] == 2 * ETHER
    state = snapshot(agreement)
    assert state["status"] == TERMINATED
    assert state["owedToCustomer"] == refund + ETHER  # unserved fees + the period's 100 % credit
    assert state["owedToProvider"] == ETHER + earned + 2 * ETHER  # the earned fees + the collateral left


def test_cancel_returns_the_deposit(create: Any, roles: dict[str, Any]) -> None:
    agreement, _ = create()
    customer = roles["customer"]
    agreement.depositFees({"from": customer, "value": 3 * ETHER})
    tx = agreement.cancel({"from": roles["provider"]})
    assert tx.events["Cancelled"]["refundToCustomer"] == 3 * ETHER
    assert snapshot(agreement)["status"] == CANCELLED
    before = customer.balance()
    tx = agreement.withdraw({"from": customer})
    assert customer.balance() == before + 3 * ETHER - paid(tx)


# ---------------------------------------------------------------------------- reverts by custom error


def test_only_the_parties_deposit(create: Any, roles: dict[str, Any]) -> None:
    agreement, _ = create()
    stranger = roles["stranger"]
    with brownie.reverts(typed_error("Unauthorized", stranger)):
        agreement.depositFees({"from": stranger, "value": 3 * ETHER})
    with brownie.reverts(typed_error("Unauthorized", roles["customer"])):
        agreement.depositCollateral({"from": roles["customer"], "value": 3 * ETHER})


def test_fees_must_be_exact(create: Any, roles: dict[str, Any]) -> None:
    agreement, _ = create()
    with brownie.reverts(typed_error("WrongAmount", 3 * ETHER, ETHER)):
        agreement.depositFees({"from": roles["customer"], "value": ETHER})


def test_periods_settle_after_their_end_and_in_order(active: tuple[Any, tuple], roles: dict[str, Any],
                                                      chain: Any) -> None:
    agreement, terms = active
    oracle = roles["oracle"]
    ends_at = terms[5] + PERIOD
    with brownie.reverts(typed_error("PeriodNotEnded", 0, ends_at)):
        agreement.settle(0, [999_950], 1_000_000, EVIDENCE_ROOT, {"from": oracle})
    end_period(chain, terms, 1)
    with brownie.reverts(typed_error("PeriodOutOfOrder", 0, 1)):
        agreement.settle(1, [999_950], 1_000_000, EVIDENCE_ROOT, {"from": oracle})
    agreement.settle(0, [999_950], 1_000_000, EVIDENCE_ROOT, {"from": oracle})
    with brownie.reverts(typed_error("PeriodAlreadySettled", 0)):
        agreement.settle(0, [999_950], 1_000_000, EVIDENCE_ROOT, {"from": oracle})
    with brownie.reverts(typed_error("Unauthorized", roles["stranger"])):
        agreement.settle(1, [999_950], 1_000_000, EVIDENCE_ROOT, {"from": roles["stranger"]})
    with brownie.reverts(typed_error("ValueAboveOneHundredPercent", 0, 1_000_001)):
        agreement.settle(1, [1_000_001], 1_000_000, EVIDENCE_ROOT, {"from": oracle})


def test_factory_rejects_unsound_terms(create: Any, chain: Any) -> None:
    with brownie.reverts(typed_error("InvalidTerms", "quorum outside 1..oracle count")):
        create(quorum=0)
    with brownie.reverts(typed_error("InvalidTerms", "start is in the past")):
        create(start=chain.time() - 3_600)
    with brownie.reverts(typed_error("InvalidService", 0, "tier credits not rising")):
        create(services=[(service_id("compute"), 999_900, 10_000, [(999_900, 3_000), (990_000, 1_000)])])
