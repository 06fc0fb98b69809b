"""smartsla.forecast: the running period's figure, projection, tier, credit and budget left.

Property tests check the forecast against the independent reference (smartsla.credit and a
brute-force end-of-period figure), so the budget a provider reads is the budget the contract
applies.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.sli import nearest_rank
from smartsla.corporate import load_corporate_spec
from smartsla.credit import service_credit, tier_credit_bps
from smartsla.forecast import LATENCY_UNKNOWN_MS, capped_credit, current_period, forecast, forecast_latency
from smartsla.multilevel import measured_terms
from smartsla.terms import Kind, Service, Terms, Tier
from smartsla.units import PPM

A = "0x" + "11" * 20
B = "0x" + "22" * 20
ORACLE = "0x" + "33" * 20
DAY = 86_400


def make_terms(objective: int = 999_000, tiers: tuple[tuple[int, int], ...] = ((999_000, 1_000), (990_000, 3_000),
                                                                              (950_000, 10_000)),
               period: int = 30 * DAY, slice_s: int = 60, cap_bps: int = 10_000, extra: tuple[Service, ...] = ()
               ) -> Terms:
    svc = Service(name="api", objective=objective, weight_bps=10_000 - 100 * len(extra),
                  tiers=tuple(Tier(threshold=b, credit_bps=c) for b, c in tiers))
    return Terms(provider=A, customer=B, oracle=ORACLE, start=1_000_000 * 60, period_length=period, period_count=3,
                 fee_per_period=10**18, collateral=3 * 10**18, credit_cap_bps=cap_bps, slice_seconds=slice_s,
                 services=(svc, *extra))


def final_value(good: int, bad: int) -> int:
    return PPM if good + bad == 0 else good * PPM // (good + bad)


def test_a_clean_half_period_has_the_whole_budget() -> None:
    terms = make_terms()
    start = terms.start
    f = forecast(terms, 0, 0, start + 15 * DAY, good_s=15 * DAY, bad_s=0)
    assert f.value_so_far_ppm == PPM and f.projected_ppm == PPM
    assert f.projected_tier is None and f.projected_credit == 0
    # 99.9 % of 30 days = 43.2 minutes of downtime before the 10 % tier
    assert f.next_tier == 0 and f.budget_left_s == 43 * 60  # whole one-minute slices


def test_downtime_so_far_projects_the_tier_and_its_credit() -> None:
    terms = make_terms()
    f = forecast(terms, 0, 0, terms.start + 10 * DAY, good_s=10 * DAY - 3 * 3600, bad_s=3 * 3600, unmeasured_s=60)
    # 3 h down of 10 days: 98.75 %, below 99 % -> tier 1 (30 %)
    assert f.value_so_far_ppm == 987_500 == f.projected_ppm
    assert f.projected_tier == 1 and f.projected_credit == 3 * 10**17
    # 3 h of 30 days is already beyond the 99.9 % tier (43 min) but not the 99 % one (7.2 h)
    assert f.next_tier == 1 and f.budget_left_s == pytest.approx(4.2 * 3600, abs=60)
    assert f.unmeasured_s == 60 and f.remaining_s == 20 * DAY


def test_a_recent_burn_projects_beyond_the_period_so_far() -> None:
    terms = make_terms()
    f = forecast(terms, 0, 0, terms.start + DAY, good_s=DAY, bad_s=0, burn=0.5)
    assert f.value_so_far_ppm == PPM and f.projected_tier == 2 and f.projected_credit == 10**18


def test_refuses_what_it_cannot_forecast_naming_every_problem() -> None:
    lat = Service(name="lat", objective=200, weight_bps=100, kind=Kind.latency,
                  tiers=(Tier(threshold=300, credit_bps=500),))
    terms = make_terms(extra=(lat,))
    with pytest.raises(ValueError) as err:
        forecast(terms, 1, 7, terms.start, good_s=-1, bad_s=float("nan"), burn=2)
    msg = str(err.value)
    for part in ("'lat' is a latency service", "period 7", "good_s", "bad_s", "burn"):
        assert part in msg


def test_current_period_half_open() -> None:
    terms = make_terms(period=3600)
    assert current_period(terms, terms.start - 1) is None
    assert current_period(terms, terms.start) == 0
    assert current_period(terms, terms.start + 3599) == 0
    assert current_period(terms, terms.start + 3600) == 1
    assert current_period(terms, terms.end) is None


tiers_st = st.lists(st.integers(500_000, 999_999), min_size=1, max_size=4, unique=True).map(
    lambda bs: tuple((b, 1_000 * (i + 1)) for i, b in enumerate(sorted(bs, reverse=True))))


@settings(max_examples=300, deadline=None)
@given(tiers=tiers_st, slices=st.integers(1, 2_000), data=st.data())
def test_property_matches_the_reference_and_the_budget_is_exact(tiers: tuple[tuple[int, int], ...], slices: int,
                                                                 data: st.DataObject) -> None:
    slice_s = 60
    terms = make_terms(objective=tiers[0][0], tiers=tiers, period=slices * slice_s, slice_s=slice_s)
    elapsed = data.draw(st.integers(0, slices))
    bad = data.draw(st.integers(0, elapsed))
    unmeasured = data.draw(st.integers(0, elapsed - bad))
    good = elapsed - bad - unmeasured
    now = terms.start + elapsed * slice_s
    f = forecast(terms, 0, 0, now, good_s=good * slice_s, bad_s=bad * slice_s, unmeasured_s=unmeasured * slice_s)
    service = terms.services[0]
    # the figure so far and the projection at the same burn are the oracle's figure
    assert f.value_so_far_ppm == final_value(good, bad) == f.projected_ppm or good + bad == 0
    assert f.projected_credit == service_credit(service, f.projected_ppm, terms.fee_per_period)
    bps = tier_credit_bps(service, f.projected_ppm)
    assert (f.projected_tier is None) == (bps == 0)
    if f.projected_tier is not None:
        assert service.tiers[f.projected_tier].credit_bps == bps
    remaining = slices - elapsed
    if f.next_tier is None:
        assert f.budget_left_s == 0
        # the harshest tier is certain even if every remaining slice is good
        assert final_value(good + remaining, bad) < service.tiers[-1].threshold
        return
    k = f.next_tier
    assert f.budget_left_s % slice_s == 0
    d = int(f.budget_left_s // slice_s)
    # spending exactly the budget keeps the period out of tier k ...
    if d <= remaining:
        assert final_value(good + remaining - d, bad + d) >= service.tiers[k].threshold
    # ... one more bad slice puts it in (when there is time left for one)
    if d + 1 <= remaining:
        assert final_value(good + remaining - d - 1, bad + d + 1) < service.tiers[k].threshold
    # and every milder tier is already certain
    for j in range(k):
        assert final_value(good + remaining, bad) < service.tiers[j].threshold


# --------------------------------------------------------------------------- latency services
def latency_terms() -> Terms:
    """200 ms objective; 10 % above 300 ms, 30 % above 500 ms (p95 of the successful checks)."""
    lat = Service(name="lat", objective=200, weight_bps=5_000, kind=Kind.latency,
                  tiers=(Tier(threshold=300, credit_bps=1_000), Tier(threshold=500, credit_bps=3_000)))
    avail = Service(name="api", objective=999_000, weight_bps=5_000,
                    tiers=(Tier(threshold=999_000, credit_bps=1_000),))
    return Terms(provider=A, customer=B, oracle=ORACLE, start=1_000_000 * 60, period_length=DAY, period_count=3,
                 fee_per_period=10**18, collateral=3 * 10**18, credit_cap_bps=10_000, slice_seconds=60,
                 services=(avail, lat))


def test_latency_figure_tier_credit_and_slow_checks_left() -> None:
    terms = latency_terms()
    # 19 checks at 100 ms, one at 900 ms: p95 = rank 19 -> 100 ms, within the objective
    f = forecast_latency(terms, 1, 0, terms.start + 3600, [100.0] * 19 + [900.0], 95)
    assert f.value_so_far_ppm == f.projected_ppm == 100
    assert f.projected_tier is None and f.projected_credit == 0
    # 300 ms tier: f = 19 fast of n = 20 -> floor(1900 / 95) - 20 = 0 more slow checks
    assert f.next_tier == 0 and f.slow_checks_left == 0
    # one more slow check: p95 = rank 21 -> 900 ms, beyond both tiers: 30 % of half the fee
    g = forecast_latency(terms, 1, 0, terms.start + 3600, [100.0] * 19 + [900.0, 900.0], 95)
    assert g.value_so_far_ppm == 900 and g.projected_tier == 1 and g.projected_credit == 15 * 10**16
    assert g.next_tier is None and g.slow_checks_left == 0
    # 300.2 ms rounds up to 301 > 300: tier 0 (never in the provider's favour)
    h = forecast_latency(terms, 1, 0, terms.start, [300.2] * 10, 50)
    assert h.value_so_far_ppm == 301 and h.projected_tier == 0 and h.projected_credit == 5 * 10**16
    assert h.next_tier == 1 and h.slow_checks_left == 10  # 10 values <= 500: floor(1000 / 50) - 10


def test_latency_without_a_successful_check() -> None:
    terms = latency_terms()
    never = forecast_latency(terms, 1, 0, terms.start, [], 95, measured=True)
    assert never.value_so_far_ppm == LATENCY_UNKNOWN_MS and never.projected_tier == 1 and never.next_tier is None
    nothing = forecast_latency(terms, 1, 0, terms.start, [], 95)
    assert nothing.value_so_far_ppm == 200 and nothing.projected_credit == 0 and nothing.slow_checks_left == 0


def test_latency_refuses_naming_every_problem() -> None:
    terms = latency_terms()
    with pytest.raises(ValueError) as err:
        forecast_latency(terms, 0, 9, terms.start, [1.0, float("nan"), -2.0], 90, excluded_s=-1)
    msg = str(err.value)
    for part in ("'api' is a availability service", "period 9", "percentile must be 50, 95 or 99",
                 "2 latencies", "excluded_s"):
        assert part in msg


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=900), max_size=60), st.sampled_from([50, 95, 99]))
def test_latency_forecast_matches_the_reference_and_its_budget_is_exact(values: list[int], percentile: int) -> None:
    terms = latency_terms()
    service = terms.services[1]
    lat = [v + 0.5 for v in values]  # fractional ms: the figure rounds up
    f = forecast_latency(terms, 1, 0, terms.start, lat, percentile)
    # the oracle's own figure (oracle.sli.nearest_rank, rounded up) and the reference credit
    ref = nearest_rank(sorted(lat), percentile)
    value = 200 if ref is None else math.ceil(ref)
    assert f.value_so_far_ppm == f.projected_ppm == value
    assert f.projected_credit == service_credit(service, value, terms.fee_per_period)
    assert (f.projected_tier is not None) == (tier_credit_bps(service, value) > 0)
    if f.next_tier is None:
        assert all(value > t.threshold for t in service.tiers)
        return
    bound = service.tiers[f.next_tier].threshold
    assert value <= bound and all(value > t.threshold for t in service.tiers[:f.next_tier])
    left = f.slow_checks_left
    assert left is not None

    def after(slow: int) -> int:  # brute force: the figure after `slow` further checks at bound + 1
        got = nearest_rank(sorted(lat + [bound + 1.0] * slow), percentile)
        return 200 if got is None else math.ceil(got)  # nothing measured: the objective

    assert after(left) <= bound < after(left + 1)  # exactly `left` more slow checks are tolerated


def test_a_multi_level_services_projected_credit_is_its_departments_not_zero() -> None:
    # Corporate services carry no weight of their own (each department weighs the services it
    # covers): the Agreement formula gave every multi-level gauge a projected credit of 0.
    example = Path(__file__).resolve().parent.parent / "examples" / "multi-level-corporate.yaml"
    corporate = load_corporate_spec(example).to_terms()
    terms = measured_terms(corporate, 60)
    erp = [s.name for s in terms.services].index("erp")
    ether = 10**18
    # erp at 98.5 %: finance (its own 99.9 % objective, weight 70 %, fee 2.0) 10 % -> 0.14;
    # engineering (weight 20 %, fee 1.5) 10 % -> 0.03; sales does not cover erp.
    assert capped_credit(terms, erp, 985_000) == 14 * ether // 100 + 3 * ether // 100
    # finance alone is below its stricter objective at 99.8 %: 0.14
    assert capped_credit(terms, erp, 998_000) == 14 * ether // 100
    assert capped_credit(terms, erp, 1_000_000) == 0
    # each department as the contract's rule says (CorporateTerms.department_credit)
    values = [1_000_000] * len(terms.services)
    values[erp] = 900_000
    assert capped_credit(terms, erp, 900_000) == sum(
        corporate.department_credit(d, values)[1] for d in range(len(corporate.departments)))
