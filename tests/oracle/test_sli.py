"""SLI maths: worked examples with exact numbers, and properties over random data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.probes import ProbeSchedule, Sample, apply_failure_threshold
from oracle.prometheus import verdicts_from_series
from oracle.sli import (
    PeriodFigure,
    availability,
    count_slices,
    latency_percentiles,
    maintenance_slices,
    meets_minimum,
    nearest_rank,
    sample_verdicts,
)
from smartsla.units import PPM

MONTH_MINUTES = 43_200  # 30 days


def per_minute(n: int, bad: set[int], start: float = 0.0, latency: float = 20.0) -> list[Sample]:
    """One check per minute, 1 s into each minute; minutes in `bad` fail."""
    return [Sample("api", start + 60 * i + 1, i not in bad, None if i in bad else latency, "")
            for i in range(n)]


def test_month_with_30_bad_minutes_is_999_305_ppm() -> None:
    samples = per_minute(MONTH_MINUTES, bad=set(range(1000, 1030)))
    fig = availability(samples, 0, MONTH_MINUTES * 60)
    assert (fig.good_slices, fig.total_slices, fig.excluded_slices, fig.missing_slices) == (43_170, 43_200, 0, 0)
    assert fig.value_ppm == 999_305  # 43,170 * 1e6 // 43,200 = 999,305.55... rounded down
    assert fig.measured_ppm == PPM
    assert fig.explain() == ("43,170 of 43,200 measured minutes good (99.9305%), 100.0000% of the period measured, "
                             "latency p50/p95/p99 20.0/20.0/20.0 ms")


def test_maintenance_over_the_bad_minutes_restores_100_percent() -> None:
    samples = per_minute(MONTH_MINUTES, bad=set(range(1000, 1030)))
    fig = availability(samples, 0, MONTH_MINUTES * 60, maintenance=[(1000 * 60, 1030 * 60)])
    assert (fig.good_slices, fig.total_slices, fig.excluded_slices, fig.maintenance_slices) == (43_170, 43_170, 30, 30)
    assert fig.value_ppm == PPM
    assert fig.explain().startswith("43,170 of 43,170 measured minutes good (100.0000%), 30 maintenance minutes "
                                    "excluded, 100.0000% of the period measured")


def test_one_failed_check_makes_the_minute_bad() -> None:
    # five good checks and one failure in minute 0; minute 1 all good
    samples = [Sample("api", t, True, 1.0, "") for t in (0, 10, 20, 30, 40)] + [Sample("api", 50, False, None, "")]
    samples += [Sample("api", 60 + t, True, 1.0, "") for t in (0, 30)]
    fig = availability(samples, 0, 120)
    assert (fig.good_slices, fig.total_slices, fig.value_ppm) == (1, 2, 500_000)


def test_slices_without_a_sample_are_not_measured_never_down() -> None:
    # Finding 9: a service that never failed, probed less often than once per slice, read 5 %
    # because the empty slices counted as down. Not measured is neither down nor up.
    samples = per_minute(10, bad=set())
    samples = [s for s in samples if s.ts // 60 not in (3, 4)]  # no data in minutes 3 and 4
    fig = availability(samples, 0, 600)
    assert (fig.good_slices, fig.total_slices, fig.missing_slices, fig.excluded_slices) == (8, 8, 2, 2)
    assert fig.value_ppm == PPM
    assert fig.measured_ppm == 800_000  # 8 of 10 countable minutes measured
    assert "2 minutes not measured, 80.0000% of the period measured" in fig.explain()
    # one sample every 30 slices of 1 s: 100 % up, 1/30 measured (the report is then refused)
    sparse = [Sample("api", t, True, 5.0, "") for t in range(0, 600, 30)]
    fig = availability(sparse, 0, 600, slice_seconds=1)
    assert (fig.value_ppm, fig.measured_ppm) == (PPM, 33_333)


def test_measured_share_leaves_maintenance_out() -> None:
    samples = [s for s in per_minute(10, bad=set()) if s.ts // 60 not in (0, 1, 2)]
    fig = availability(samples, 0, 600, maintenance=[(0, 120)])
    # 8 countable minutes (2 excluded by maintenance), 7 measured
    assert (fig.maintenance_slices, fig.missing_slices, fig.measured_ppm) == (2, 1, 875_000)


def test_partial_maintenance_overlap_excludes_the_whole_slice() -> None:
    assert maintenance_slices(0, 600, 60, [(59.5, 60.5)]) == {0, 1}
    assert maintenance_slices(0, 600, 60, [(60, 120)]) == {1}  # half-open: ends exactly at a boundary
    assert maintenance_slices(0, 600, 60, [(-1000, 30), (590, 9999)]) == {0, 9}
    assert maintenance_slices(0, 600, 60, [(300, 300)]) == set()  # empty window


def test_no_countable_slice_is_100_percent() -> None:
    fig = availability([], 0, 600, maintenance=[(0, 600)])
    assert (fig.total_slices, fig.excluded_slices, fig.value_ppm, fig.measured_ppm) == (0, 10, PPM, PPM)
    fig = availability([], 0, 600)  # nothing measured: a neutral value that is never reported
    assert (fig.total_slices, fig.missing_slices, fig.value_ppm, fig.measured_ppm) == (0, 10, PPM, 0)
    assert not meets_minimum({"api": fig}, 1)[0]


def test_partial_last_slice_counts_as_one() -> None:
    fig = availability(per_minute(3, bad={2}), 0, 150)  # minutes 0, 1 and half of 2
    assert (fig.good_slices, fig.total_slices) == (2, 3)


def test_samples_outside_the_period_are_ignored() -> None:
    samples = per_minute(5, bad={0, 4})
    fig = availability(samples, 60, 240)
    assert (fig.good_slices, fig.total_slices) == (3, 3)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [nearest_rank(values, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert nearest_rank([7.0], 99) == 7.0
    assert nearest_rank([], 50) is None
    # failed samples and samples without latency do not count
    samples = [Sample("a", 0, True, 10.0, ""), Sample("a", 1, False, 9000.0, ""), Sample("a", 2, True, None, "")]
    assert latency_percentiles(samples) == (10.0, 10.0, 10.0)


def test_latency_leaves_out_maintenance() -> None:
    samples = [Sample("a", 1, True, 10.0, ""), Sample("a", 61, True, 5000.0, "")]
    fig = availability(samples, 0, 120, maintenance=[(60, 120)])
    assert (fig.p50_ms, fig.p99_ms) == (10.0, 10.0)


def test_failure_threshold_tolerates_short_streaks() -> None:
    oks = [True, False, False, True, False, False, False, False, True]
    samples = [Sample("a", float(i), ok, 1.0 if ok else None, "boom" if not ok else "") for i, ok in enumerate(oks)]
    out = apply_failure_threshold(list(reversed(samples)), 3)  # order of input does not matter
    assert [s.ok for s in out] == [True, True, True, True, True, True, False, False, True]
    assert out[1].detail == "tolerated failure 1/3: boom"
    assert apply_failure_threshold(samples, 1) == samples
    with pytest.raises(ValueError):
        apply_failure_threshold(samples, 0)


def test_failure_threshold_counts_streaks_per_service() -> None:
    samples = [Sample("a", 0, False, None, ""), Sample("b", 1, False, None, ""), Sample("a", 2, False, None, "")]
    assert [s.ok for s in apply_failure_threshold(samples, 2)] == [True, True, False]
    schedule = ProbeSchedule({"a": 10, "b": 10}, failure_thresholds={"a": 2})
    assert [s.ok for s in schedule.apply_thresholds(samples)] == [True, False, False]


def test_probe_schedule_keeps_to_its_grid() -> None:
    schedule = ProbeSchedule({"fast": 10, "slow": 60})
    assert schedule.due(1000) == ["fast", "slow"]  # never run: due at once
    schedule.mark_run(["fast", "slow"], 1000)
    assert schedule.due(1005) == []
    assert schedule.seconds_until_next(1005) == 5
    assert schedule.due(1010.5) == ["fast"]
    schedule.mark_run(["fast"], 1012)  # ran late: the next one is still at 1020, not 1022
    assert schedule.seconds_until_next(1012) == 8
    schedule.mark_run(["fast"], 1095)  # stalled for a while: skip ahead to 1100, no burst
    assert schedule.due(1095) == ["slow"]
    schedule.mark_run(["slow"], 1095)  # planned at 1060: next on its grid, 1120
    assert schedule.seconds_until_next(1095) == 5
    assert schedule.due(1100) == ["fast"]
    assert schedule.due(1120) == ["fast", "slow"]
    with pytest.raises(ValueError):
        ProbeSchedule({"x": 0})


def test_prometheus_points_judge_the_slice_they_end() -> None:
    series = [({"job": "a"}, [(60.0, 1.0), (120.0, 0.0), (180.0, float("nan")), (240.0, 1.0)]),
              ({"job": "b"}, [(60.0, 1.0), (240.0, 0.0)])]
    # slice 0 ends at 60: both good; slice 1: a bad; slice 2: NaN = no data; slice 3: b bad
    assert verdicts_from_series(series, 0, 4, 60) == {0: True, 1: False, 3: False}
    ratio = [({}, [(60.0, 0.999), (120.0, 0.9989)])]
    assert verdicts_from_series(ratio, 0, 2, 60, threshold=0.999, inclusive=True) == {0: True, 1: False}
    assert verdicts_from_series(ratio, 0, 2, 60, threshold=0.999) == {0: False, 1: False}


# -- properties -------------------------------------------------------------------------------

SLICE = st.sampled_from([1, 60, 300])


@st.composite
def period_samples(draw: st.DrawFn) -> tuple[int, int, list[Sample]]:
    slice_seconds = draw(SLICE)
    n = draw(st.integers(1, 120))
    end = n * slice_seconds
    points = draw(st.lists(st.tuples(st.floats(0, end, exclude_max=True), st.booleans()), max_size=300))
    return slice_seconds, end, [Sample("s", t, ok, 5.0 if ok else None, "") for t, ok in points]


windows = st.lists(st.tuples(st.floats(-100, 40_000), st.floats(0, 5_000)).map(lambda w: (w[0], w[0] + w[1])),
                   max_size=4)


@settings(max_examples=200, deadline=None)
@given(period_samples(), windows)
def test_value_is_bounded_and_counts_add_up(data: tuple[int, int, list[Sample]],
                                            maint: list[tuple[float, float]]) -> None:
    slice_seconds, end, samples = data
    fig = availability(samples, 0, end, slice_seconds=slice_seconds, maintenance=maint)
    assert 0 <= fig.value_ppm <= PPM and 0 <= fig.measured_ppm <= PPM
    assert fig.good_slices <= fig.total_slices
    assert fig.total_slices + fig.excluded_slices == end // slice_seconds
    countable = fig.total_slices + fig.missing_slices
    assert fig.measured_ppm == (PPM if countable == 0 else fig.total_slices * PPM // countable)
    assert fig.value_ppm == (PPM if fig.total_slices == 0 else fig.good_slices * PPM // fig.total_slices)


@settings(max_examples=200, deadline=None)
@given(period_samples(), st.data())
def test_excluding_bad_slices_as_maintenance_never_lowers_the_value(data: tuple[int, int, list[Sample]],
                                                                    draw: st.DataObject) -> None:
    slice_seconds, end, samples = data
    verdicts = sample_verdicts(samples, 0, slice_seconds)
    bad = sorted(i for i, good in verdicts.items() if not good)
    chosen = draw.draw(st.lists(st.sampled_from(bad), unique=True) if bad else st.just([]))
    maint = [(i * slice_seconds, (i + 1) * slice_seconds) for i in chosen]
    before = availability(samples, 0, end, slice_seconds=slice_seconds)
    after = availability(samples, 0, end, slice_seconds=slice_seconds, maintenance=maint)
    assert after.value_ppm >= before.value_ppm
    assert after.good_slices == before.good_slices


@settings(max_examples=200, deadline=None)
@given(period_samples(), st.floats(0, 36_000, exclude_max=True))
def test_one_more_failed_check_never_raises_the_value(data: tuple[int, int, list[Sample]], t: float) -> None:
    slice_seconds, end, samples = data
    t = t % end
    before = availability(samples, 0, end, slice_seconds=slice_seconds)
    after = availability([*samples, Sample("s", t, False, None, "")], 0, end, slice_seconds=slice_seconds)
    assert after.value_ppm <= before.value_ppm


@settings(max_examples=200, deadline=None)
@given(period_samples(), st.floats(0, 36_000, exclude_max=True))
def test_one_more_check_never_lowers_the_measured_share(data: tuple[int, int, list[Sample]], t: float) -> None:
    slice_seconds, end, samples = data
    before = availability(samples, 0, end, slice_seconds=slice_seconds)
    after = availability([*samples, Sample("s", t % end, True, 1.0, "")], 0, end, slice_seconds=slice_seconds)
    assert after.measured_ppm >= before.measured_ppm


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.booleans()), max_size=60), st.integers(1, 5))
def test_failure_threshold_only_ever_forgives(checks: list[tuple[str, bool]], threshold: int) -> None:
    samples = [Sample(svc, float(i), ok, None, "") for i, (svc, ok) in enumerate(checks)]
    out = apply_failure_threshold(samples, threshold)
    assert len(out) == len(samples)
    history: dict[str, list[bool]] = {}
    for raw, got in zip(samples, out, strict=True):
        assert got.ok or not raw.ok  # an ok sample stays ok
        seen = history.setdefault(raw.service, [])
        seen.append(raw.ok)
        # down exactly when this and the threshold-1 checks before it (same service) all failed
        assert got.ok == (len(seen) < threshold or any(seen[-threshold:]))


def test_count_slices_is_shared_and_ignores_foreign_indexes() -> None:
    counts = count_slices(0, 300, 60, {0: True, 1: False, 7: False, -1: False})
    assert (counts.good, counts.total, counts.missing) == (1, 2, 3)
    assert (counts.value_ppm, counts.measured_ppm) == (500_000, 400_000)


def test_neutral_figure_type() -> None:
    assert isinstance(PeriodFigure(1, 0, 0, 0, 0, 0, 60).measured_ppm, int)
