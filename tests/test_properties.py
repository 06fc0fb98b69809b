"""Property tests: the chain against the Python reference model (smartsla.credit).

A module-scoped embedded chain serves every example; each example creates fresh agreements, so
examples do not interfere. Conservation is proven by comparing, after every step, the contract's
real balance with its books and with the reference model, and at the end that every wei deposited
was withdrawn by exactly one party.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sla_helpers import ETHER, EVIDENCE_ROOT, make_terms

from smartsla.chain import Chain
from smartsla.client import Factory, Status
from smartsla.credit import Books, period_outcome
from smartsla.errors import ContractReverted
from smartsla.reports import sign_report
from smartsla.terms import Service, Tier
from smartsla.units import BPS, PPM

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def env():
    chain = Chain.connect("embedded")
    a = chain.accounts
    roles = {"deployer": a[0], "provider": a[1], "customer": a[2], "oracle": a[3], "stranger": a[4]}
    return chain, roles, Factory.deploy(chain, roles["deployer"])


@st.composite
def tiers(draw, objective: int) -> tuple[Tier, ...]:
    n = draw(st.integers(1, min(4, objective + 1)))
    thresholds = sorted(draw(st.sets(st.integers(0, objective), min_size=n, max_size=n)), reverse=True)
    credits = sorted(draw(st.sets(st.integers(1, BPS), min_size=n, max_size=n)))
    return tuple(Tier(threshold=b, credit_bps=c) for b, c in zip(thresholds, credits, strict=False))


@st.composite
def latency_tiers(draw, objective: int) -> tuple[Tier, ...]:
    n = draw(st.integers(1, 4))
    bounds = sorted(draw(st.sets(st.integers(objective, objective + 5_000), min_size=n, max_size=n)))
    credits = sorted(draw(st.sets(st.integers(1, BPS), min_size=n, max_size=n)))
    return tuple(Tier(threshold=b, credit_bps=c) for b, c in zip(bounds, credits, strict=True))


@st.composite
def services(draw, max_services: int = 4) -> tuple[Service, ...]:
    """Availability services, sometimes a latency one (ms, lower is better) and a composite."""
    n = draw(st.integers(1, max_services))
    cuts = sorted(draw(st.sets(st.integers(1, BPS - 1), min_size=n - 1, max_size=n - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, BPS], strict=False)]
    out = []
    for i, w in enumerate(weights):
        kind = draw(st.sampled_from(["availability", "latency", "composite"])) if i else "availability"
        if kind == "latency":
            objective = draw(st.integers(1, 2_000))
            out.append(Service(name=f"svc{i}", kind=kind, objective=objective, weight_bps=w,
                               tiers=draw(latency_tiers(objective))))
            continue
        objective = draw(st.integers(1, PPM))
        out.append(Service(name=f"svc{i}", kind=kind, objective=objective, weight_bps=w,
                           tiers=draw(tiers(objective))))
    return tuple(out)


values_ppm = st.integers(0, PPM) | st.sampled_from([0, 950_000, 990_000, 999_900, PPM])


@SETTINGS
@given(svcs=services(), fee=st.integers(1, 10**24), cap=st.integers(1, BPS), data=st.data())
def test_contract_credit_equals_the_reference_model(env, svcs, fee, cap, data):
    chain, roles, factory = env
    terms = make_terms(roles, chain.now() + 60, services=svcs, fee_per_period=fee, credit_cap_bps=cap, collateral=0)
    ag = factory.create_agreement(terms, roles["deployer"])
    for _ in range(3):
        values = data.draw(st.lists(values_ppm, min_size=len(svcs), max_size=len(svcs)))
        credits, capped = ag.quote_credit(values)
        expected = period_outcome(terms, values, collateral_left=2**256)
        assert tuple(credits) == expected.service_credits
        assert capped == expected.capped_credit


ORACLE_KEY = "0x" + "c8" * 32  # the one committee member of the signed-settlement test


@settings(SETTINGS, max_examples=15)
@given(svcs=services(max_services=5), collateral=st.integers(0, 3 * ETHER), cap=st.integers(1, BPS),
       data=st.data())
def test_signed_settlements_pay_the_reference_credit_and_books(env, svcs, collateral, cap, data):
    """Each period settled with a signed compact report (the batch path) pays what the reference
    model pays, limited by the collateral left; the customer's and the provider's balances,
    withdrawn at random between periods, and the collateral follow the model (the credit is kept
    in the collateral's slot until the customer withdraws: helper C, wave 8)."""
    chain, roles, factory = env
    oracle = Account.from_key(ORACLE_KEY)
    terms = make_terms(roles, chain.now() + 60, services=svcs, collateral=collateral, credit_cap_bps=cap,
                       oracles=(oracle.address,))
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    books = Books(terms)
    books.deposit_fees()
    books.deposit_collateral()
    for period in range(terms.period_count):
        values = data.draw(st.lists(values_ppm, min_size=len(svcs), max_size=len(svcs)))
        chain.mine_at(terms.period_end(period))
        report = sign_report(ORACLE_KEY, chain.chain_id, ag.address, period, values, PPM, EVIDENCE_ROOT,
                             terms.period_end(period) + 86_400)
        settled = ag.settle_with_reports(period, [report], roles["stranger"])
        assert settled.credit_paid == books.settle(values).paid_credit
        for party in ("customer", "provider"):
            if data.draw(st.booleans(), label=f"{party} withdraws after period {period}"):
                if books.owed[party]:
                    assert ag.withdraw(roles[party]) == books.withdraw(party)
                else:
                    with pytest.raises(ContractReverted, match="NothingToWithdraw"):
                        ag.withdraw(roles[party])
        snap = ag.snapshot()
        assert (snap.owed_to_customer, snap.owed_to_provider, snap.collateral_escrowed) == (
            books.owed["customer"], books.owed["provider"], books.collateral_escrowed)
    assert ag.snapshot().status == Status.Ended
    for party in ("customer", "provider"):
        if books.owed[party]:
            assert ag.withdraw(roles[party]) == books.withdraw(party)
    assert chain.w3.eth.get_balance(ag.address) == 0
    assert books.withdrawn["customer"] + books.withdrawn["provider"] == terms.total_fees + terms.collateral


operations = st.lists(
    st.tuples(st.sampled_from(["fees", "collateral", "cancel", "settle", "terminate", "withdraw_c", "withdraw_p",
                               "stranger", "dispute", "resolve", "finalize"]),
              st.integers(0, PPM)),
    max_size=16,
)


@SETTINGS
@given(ops=operations, collateral=st.integers(0, 4 * ETHER), cap=st.integers(1, BPS),
       window=st.sampled_from([0, 3_600]))
def test_funds_are_conserved_over_random_sequences(env, ops, collateral, cap, window):
    chain, roles, factory = env
    terms = make_terms(roles, chain.now() + 60, collateral=collateral, credit_cap_bps=cap, period_count=4,
                       dispute_window=window, arbiter=roles["stranger"] if window else "0x" + "00" * 20)
    ag = factory.create_agreement(terms, roles["deployer"])
    books = Books(terms)
    disputed: set[int] = set()
    for op, value in ops:
        try:
            if op == "fees":
                ag.deposit_fees(roles["customer"])
                books.deposit_fees()
            elif op == "collateral":
                ag.deposit_collateral(roles["provider"])
                books.deposit_collateral()
            elif op == "cancel":
                ag.cancel(roles["customer"])
                books.cancel()
            elif op == "settle":
                period = books.settled_periods
                chain.mine_at(terms.period_end(min(period, terms.period_count - 1)))
                s = ag.settle(period, [value], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
                assert s.credit_paid == books.settle([value]).paid_credit
            elif op == "terminate":
                tx = ag.terminate(roles["customer"])
                # the provider keeps the served seconds of the period in progress (pro rata)
                books.terminate(int(chain.w3.eth.get_block(tx.block_number)["timestamp"]))
            elif op == "withdraw_c":
                assert ag.withdraw(roles["customer"]) == books.withdraw("customer")
            elif op == "withdraw_p":
                assert ag.withdraw(roles["provider"]) == books.withdraw("provider")
            elif op == "stranger":
                ag.withdraw(roles["stranger"])
                pytest.fail("a stranger withdrew")
            elif op == "dispute":
                period = min(books.pending_credit, default=0)
                ag.dispute(period, b"\x01" * 32, roles["customer"])
                disputed.add(period)
            elif op == "resolve":
                period = min(disputed, default=0)
                ag.resolve_dispute(period, [value], roles["stranger"])
                available = books.collateral_escrowed + books.pending_credit[period]
                corrected = period_outcome(terms, [value], available)
                books.finalize(period, corrected.paid_credit, corrected.disaster)
                disputed.discard(period)
            elif op == "finalize":
                period = min(books.pending_credit, default=0)
                chain.mine_at(chain.now() + 2 * 3_600)
                ag.finalize(period, roles["provider"])
                books.finalize(period)
                disputed.discard(period)
        except ContractReverted:
            pass  # refused operations must leave the books untouched: checked below
        snap = ag.snapshot()
        assert snap.status is Status[books.status]
        assert snap.disaster_occurred == books.disaster  # only final figures open the clause
        assert (snap.owed_to_customer, snap.owed_to_provider) == (books.owed["customer"], books.owed["provider"])
        assert (snap.pending_to_customer, snap.pending_to_provider) == (books.pending["customer"],
                                                                        books.pending["provider"])
        assert (snap.fees_escrowed, snap.collateral_escrowed) == (books.fees_escrowed, books.collateral_escrowed)
        assert ag.balance() == snap.held == books.held
        assert books.held + sum(books.withdrawn.values()) == books.deposited
