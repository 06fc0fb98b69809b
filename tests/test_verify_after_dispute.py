"""`smartsla verify` after a dispute (issue 12, item 4): the figure to check is the arbiter's
correction (DisputeResolved), the one the money followed, not the first PeriodSettled figure.
Real (embedded) chain; the bundles are built with the oracle's own evidence code."""

from __future__ import annotations

from sla_helpers import make_terms

from oracle import evidence as ev
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.credit import period_outcome
from smartsla.verify import Source, verify_period

L = 60
HOUR = 3600


def bundle(ag: Agreement, chain: Chain, author: str, down: range) -> ev.Bundle:
    t = ag.terms
    slices = {i: (i not in down, 20.0) for i in range(HOUR // L)}
    rec = ev.build_record(chain_id=chain.chain_id, agreement=ag.address, period=0, start=t.period_start(0),
                          end=t.period_end(0), slice_seconds=L, index=0, name=t.services[0].name,
                          kind="availability", slices=slices, windows=[])
    return ev.Bundle(author, (rec,))


def setup(chain: Chain, factory: Factory, roles: dict[str, str]) -> tuple[Agreement, ev.Bundle, ev.Bundle, int]:
    """An oracle reports 100 % (a consistent lie: its bundle says every slice was up); the
    customer's watchdog saw 12 slices down and disputes with the root of its own bundle."""
    arbiter = roles["stranger"]
    terms = make_terms(roles, chain.now() + 60, period_length=HOUR, period_count=1, slice_seconds=L,
                       dispute_window=600, arbiter=arbiter)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0) + 1)
    liar = bundle(ag, chain, roles["oracle"], range(0))
    ag.settle(0, [1_000_000], 1_000_000, liar.root, roles["oracle"])
    watch = bundle(ag, chain, roles["customer"], range(10, 22))
    ag.dispute(0, watch.root, roles["customer"])
    own = ev.figure_from_record(watch.records[0]).value_ppm
    assert own == 48 * 1_000_000 // 60
    return ag, liar, watch, own


def test_a_resolved_dispute_is_verified_against_the_correction(chain: Chain, factory: Factory,
                                                               roles: dict[str, str]) -> None:
    ag, liar, watch, own = setup(chain, factory, roles)
    ag.resolve_dispute(0, [own], roles["stranger"])
    v = verify_period(ag, chain.chain_id, 0, [Source("oracle", liar), Source("watchdog", watch)])
    # Failed before the fix: "the evidence ... disputed with gives 80.0000 %, the settled figure is 100.0000 %".
    assert (v.outcome, v.problems, v.missing) == ("verified", [], []), v.problems
    assert v.settlement is not None and v.settlement.values_ppm == (own,)
    assert v.settlement.credit_paid == period_outcome(ag.terms, [own], ag.terms.collateral).paid_credit > 0
    assert v.resolved


def test_the_oracles_evidence_alone_does_not_back_the_correction(chain: Chain, factory: Factory,
                                                                 roles: dict[str, str]) -> None:
    ag, liar, _watch, own = setup(chain, factory, roles)
    ag.resolve_dispute(0, [own], roles["stranger"])
    v = verify_period(ag, chain.chain_id, 0, [Source("oracle", liar)])
    # Failed before the fix: "verified" — the oracle's bundle matched the first, overturned figure.
    assert v.outcome == "mismatch"
    assert any("the evidence gives 100.0000 %, the final figure (DisputeResolved) is 80.0000 %" in p
               for p in v.problems), v.problems


def test_a_correction_no_evidence_gives_is_a_mismatch(chain: Chain, factory: Factory, roles: dict[str, str]) -> None:
    ag, liar, watch, own = setup(chain, factory, roles)
    ag.resolve_dispute(0, [own - 50_000], roles["stranger"])  # the arbiter makes up a figure
    v = verify_period(ag, chain.chain_id, 0, [Source("oracle", liar), Source("watchdog", watch)])
    assert v.outcome == "mismatch"
    assert any("the final figure (DisputeResolved) is 75.0000 %" in p for p in v.problems), v.problems
