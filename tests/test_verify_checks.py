"""smartsla.verify against a real (embedded) chain, one lie at a time: an oracle that commits a
consistent root but excludes an outage with a window declared without notice, one that ignores
a window declared with notice, and a settled figure that is not the one the evidence gives."""

from __future__ import annotations

from collections.abc import Callable

from sla_helpers import make_terms

from oracle import evidence as ev
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.verify import Source, verify_period

L = 60
HOUR = 3600


def bundle_for(ag: Agreement, chain: Chain, oracle: str, period: int, down: range,
               windows: list[tuple[int, int, int]]) -> ev.Bundle:
    t = ag.terms
    start, end = t.period_start(period), t.period_end(period)
    slices = {i: (i not in down, 20.0) for i in range(HOUR // L)}
    rec = ev.build_record(chain_id=chain.chain_id, agreement=ag.address, period=period, start=start, end=end,
                          slice_seconds=L, index=0, name=t.services[0].name, kind="availability", slices=slices,
                          windows=windows)
    return ev.Bundle(oracle, (rec,))


def settle_with(ag: Agreement, chain: Chain, oracle: str, period: int, bundle: ev.Bundle,
                value: int | None = None) -> None:
    chain.mine_at(ag.terms.period_end(period) + 1)
    fig = ev.figure_from_record(bundle.records[0])
    ag.settle(period, [fig.value_ppm if value is None else value], fig.measured_ppm, bundle.root, oracle)


def test_each_lie_is_named_and_the_honest_period_verifies(chain: Chain, factory: Factory, roles: dict[str, str],
                                                          tmp_path, terms_for: Callable) -> None:
    start = chain.now() + 60
    terms = make_terms(roles, start, period_length=HOUR, period_count=4, slice_seconds=L, collateral=4 * 10**18,
                       maintenance_notice=600, maintenance_budget=3_600)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    oracle, provider = roles["oracle"], roles["provider"]
    # With notice: window #p covers slices 20-21 of period p.
    for p in range(4):
        ag.declare_maintenance(start + p * HOUR + 20 * L, start + p * HOUR + 22 * L, provider)
    windows = ag.maintenance_windows()
    assert all(w.with_notice for w in windows)
    honest = [(k, w.start, w.end) for k, w in enumerate(windows)]

    # Period 0: honest, 3 slices down, window #0 excluded.
    b0 = bundle_for(ag, chain, oracle, 0, range(10, 13), honest)
    settle_with(ag, chain, oracle, 0, b0)
    v = verify_period(ag, chain.chain_id, 0, [Source("b0", b0)])
    assert (v.outcome, v.problems, v.missing) == ("verified", [], []), v.problems
    assert v.medians == {0: (58 - 3) * 1_000_000 // 58}

    # Period 1: an outage in slices 40-41 under a window declared 400 s ahead (no notice, #4);
    # the oracle excludes it anyway and commits that (consistent) record.
    chain.mine_at(start + HOUR + 40 * L - 400)
    ag.declare_maintenance(start + HOUR + 40 * L, start + HOUR + 42 * L, provider)
    assert not ag.maintenance_windows()[4].with_notice
    w4 = ag.maintenance_windows()[4]
    b1 = bundle_for(ag, chain, oracle, 1, range(40, 42), [*honest, (4, w4.start, w4.end)])
    settle_with(ag, chain, oracle, 1, b1)
    v = verify_period(ag, chain.chain_id, 1, [Source("b1", b1)])
    assert v.outcome == "mismatch" and v.exit_code == 1
    assert any("excluded by window #4, but it was declared without the agreed notice" in p for p in v.problems), \
        v.problems

    # Period 2: the oracle ignores window #2 (declared with notice): the provider's slices count.
    b2 = bundle_for(ag, chain, oracle, 2, range(20, 22), [w for w in honest if w[0] != 2])
    settle_with(ag, chain, oracle, 2, b2)
    v = verify_period(ag, chain.chain_id, 2, [Source("b2", b2)])
    assert v.outcome == "mismatch"
    assert any("lie in window #2 declared with notice but were not excluded" in p for p in v.problems), v.problems

    # Period 3: honest evidence, but the settled figure is another one.
    b3 = bundle_for(ag, chain, oracle, 3, range(0), honest)
    settle_with(ag, chain, oracle, 3, b3, value=990_000)
    v = verify_period(ag, chain.chain_id, 3, [Source("b3", b3)])
    assert v.outcome == "mismatch"
    assert any("the evidence gives 100.0000 %, the settled figure is 99.0000 %" in p for p in v.problems), v.problems
    assert any("service credits" in p for p in v.problems)

    # The right bundle for the wrong period, and no bundle at all.
    v = verify_period(ag, chain.chain_id, 3, [Source("b0", b0)])
    assert v.outcome == "mismatch" and any("period is 0, the agreement says 3" in p for p in v.problems)
    v = verify_period(ag, chain.chain_id, 3, [])
    assert v.outcome == "missing" and v.exit_code == 2


def test_a_committee_verifies_by_median_and_one_missing_bundle_is_missing(chain: Chain, factory: Factory,
                                                                          roles: dict[str, str]) -> None:
    from smartsla.reports import sign_report

    members = [chain.new_account(fund_from=roles["deployer"]) for _ in range(3)]
    start = chain.now() + 60
    terms = make_terms(roles, start, period_length=HOUR, period_count=1, slice_seconds=L,
                       oracles=tuple(a for a, _ in members), quorum=3)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0) + 1)
    # Three views of the same hour: 1, 3 and 30 slices down; the median is the 3-slice one.
    bundles = [bundle_for(ag, chain, address, 0, range(5, 5 + n), []) for (address, _), n in zip(members, (1, 3, 30),
                                                                                                  strict=True)]
    reports = []
    for (_, key), b in zip(members, bundles, strict=True):
        fig = ev.figure_from_record(b.records[0])
        reports.append(sign_report(key, chain.chain_id, ag.address, 0, [fig.value_ppm], fig.measured_ppm, b.root,
                                   2**40))
    settled = ag.settle_with_reports(0, reports, roles["stranger"])
    assert settled.values_ppm == (57 * 1_000_000 // 60,)
    v = verify_period(ag, chain.chain_id, 0, [Source(f"b{i}", b) for i, b in enumerate(bundles)])
    assert (v.outcome, v.problems) == ("verified", []) and v.medians == {0: 57 * 1_000_000 // 60}
    # The same member's bundle given twice (a URL and a saved file) counts once in the median.
    v = verify_period(ag, chain.chain_id, 0, [Source("again", bundles[0])] +
                      [Source(f"b{i}", b) for i, b in enumerate(bundles)])
    assert (v.outcome, v.problems) == ("verified", []), v.problems
    v = verify_period(ag, chain.chain_id, 0, [Source(f"b{i}", b) for i, b in enumerate(bundles[:2])])
    assert v.outcome == "missing" and any(members[2][0] in m for m in v.missing), v.missing
    # A member's bundle swapped for another member's: its root is not the one that member committed.
    swapped = ev.Bundle(members[0][0], bundles[1].records)
    v = verify_period(ag, chain.chain_id, 0, [Source("swapped", swapped), Source("b1", bundles[1]),
                                              Source("b2", bundles[2])])
    assert v.outcome == "mismatch" and any("is not the root" in p for p in v.problems), v.problems
