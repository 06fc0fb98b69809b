"""The daemon's record path (Store.slice_data -> oracle.evidence.build_record by ranges ->
figure_from_record by runs) gives byte for byte the record, hash and figure of the reference: the
record built the old way, slice by slice, from the raw samples (the code before the fast path,
kept here verbatim as the reference), on random samples, slice lengths, failure thresholds,
maintenance windows, and both measured kinds."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from oracle import evidence as ev
from oracle.probes import Sample
from oracle.sample_runs import chain
from oracle.sli import PeriodFigure, count_slices, figure_from_counts, maintenance_slices, nearest_rank, slice_count
from oracle.store import Store, sample_runs
from smartsla.forecast import latency_figure_ms

START = 1_800_000_000
_ids = count(1)


def reference_slices(samples: Sequence[Sample], start: float, end: float, slice_seconds: int,
                     threshold: int) -> dict[int, tuple[bool, float | None]]:
    """Per-slice (verdict, slowest ok latency) from the raw samples, in time order (ties: insertion)."""
    out: dict[int, tuple[bool, float | None]] = {}
    streak = 0
    for s in sorted((s for s in samples if start <= s.ts < end), key=lambda s: s.ts):
        streak = 0 if s.ok else streak + 1
        i = int((s.ts - start) // slice_seconds)
        verdict, slowest = out.get(i, (True, None))
        if s.ok and s.latency_ms is not None:
            slowest = s.latency_ms if slowest is None else max(slowest, s.latency_ms)
        out[i] = (verdict and (s.ok or streak < threshold), slowest)
    return out


def reference_record(*, start: int, end: int, slice_seconds: int, kind: str,
                     slices: Mapping[int, tuple[bool, float | None]],
                     windows: Sequence[ev.ExcludedWindow]) -> ev.ServiceRecord:
    """build_record as it was: one state per slice, then run-length encoded."""
    n = slice_count(start, end, slice_seconds)
    excluded_by: dict[int, int] = {}
    for w_index, w_start, w_end in sorted(windows, key=lambda w: w[0], reverse=True):
        for i in maintenance_slices(start, end, slice_seconds, [(w_start, w_end)]):
            excluded_by[i] = w_index
    states: list[str] = []
    latencies: list[int | None] = []
    for i in range(n):
        if i in excluded_by:
            states.append(ev.window_state(excluded_by[i]))
            continue
        data = slices.get(i)
        if data is None:
            states.append(ev.NONE)
            continue
        ok, ms = data
        states.append(ev.UP if ok else ev.DOWN)
        if ok and kind == "latency":
            latencies.append(None if ms is None else int(math.ceil(ms)))
    return ev.ServiceRecord(chain_id=1, agreement="0x" + "ab" * 20, period=3, start=start, end=end,
                            slice_seconds=slice_seconds, index=0, name="api", kind=kind,
                            runs=ev.encode_runs(states), latency_ms=tuple(latencies))


def reference_figure(record: ev.ServiceRecord, percentile: int, objective_ms: int) -> PeriodFigure:
    """figure_from_record as it was: every slice's verdict through oracle.sli.count_slices."""
    verdicts: dict[int, bool] = {}
    maintenance: list[tuple[float, float]] = []
    i = 0
    L = record.slice_seconds
    for s, n in record.runs:
        if s in (ev.UP, ev.DOWN):
            verdicts.update(dict.fromkeys(range(i, i + n), s == ev.UP))
        elif s != ev.NONE:
            maintenance.append((record.start + i * L, record.start + (i + n) * L))
        i += n
    counts = count_slices(record.start, record.end, L, verdicts, maintenance)
    values = sorted(float(v) for v in record.latency_ms if v is not None)
    latencies = (nearest_rank(values, 50), nearest_rank(values, 95), nearest_rank(values, 99))
    figure = figure_from_counts(counts, L, latencies if record.kind == "latency" else (None, None, None))
    if record.kind == "latency":
        figure = replace(figure, value_ppm=latency_figure_ms(values, percentile, objective_ms,
                                                             measured=counts.total > 0))
    return figure


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("fast") / "store.db"
    with Store.open(f"sqlite:///{path}") as s:
        yield s


@pytest.fixture(scope="module")
def runs_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('runs') / 'store.db'}"


Burst = tuple[float, int, float, float, float | None]  # first ts, samples, step, failure rate, latency
# Runs of consecutive samples (so measured runs, gaps and flapping all occur), some outside the period.
samples_st = st.lists(st.tuples(st.floats(-50, 1_250, allow_nan=False), st.integers(1, 40), st.floats(0.5, 30),
                                st.floats(0, 1), st.one_of(st.none(), st.floats(0, 2_000, allow_nan=False))),
                      max_size=8)
windows_st = st.lists(st.tuples(st.integers(0, 5), st.floats(-100, 1_300, allow_nan=False),
                                st.floats(0, 400, allow_nan=False)), max_size=3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bursts=samples_st, windows=windows_st, slice_seconds=st.sampled_from([1, 7, 60, 300]),
       length=st.integers(1, 1_200), threshold=st.sampled_from([1, 1, 2, 3]),
       kind=st.sampled_from(["availability", "latency"]), percentile=st.sampled_from([50, 95, 99]),
       seed=st.randoms(use_true_random=False))
def test_the_fast_record_is_the_reference_record(store: Store, bursts: list[Burst],
                                                 windows: list[tuple[int, float, float]], slice_seconds: int,
                                                 length: int, threshold: int, kind: str, percentile: int,
                                                 seed: object) -> None:
    agreement = f"0x{next(_ids):040x}"  # one agreement per example: the examples share the store
    start, end = START, START + length
    samples: list[Sample] = []
    for t0, n, step, fail_rate, ms in bursts:
        for k in range(n):
            ok = seed.random() >= fail_rate  # type: ignore[attr-defined]
            samples.append(Sample("api", start + t0 + k * step, ok, ms if ok else None, ""))
    store.add_samples(agreement, samples)
    excluded = [(w, start + a, start + a + d) for w, a, d in windows]
    want = reference_record(start=start, end=end, slice_seconds=slice_seconds, kind=kind, windows=excluded,
                            slices=reference_slices(samples, start, end, slice_seconds, threshold))
    data = store.slice_data(agreement, "api", start, end, slice_seconds, threshold, kind == "latency")
    got = ev.build_record(chain_id=1, agreement="0x" + "ab" * 20, period=3, start=start, end=end,
                          slice_seconds=slice_seconds, index=0, name="api", kind=kind, slices=data, windows=excluded)
    assert ev.canonical_bytes(got) == ev.canonical_bytes(want)
    assert ev.record_hash(got) == ev.record_hash(want)
    assert ev.figure_from_record(got, percentile=percentile, objective_ms=300) == reference_figure(
        want, percentile, 300)
    # several requests at once (threads, a connection each) give the same data, in order
    other = (agreement, "api", start, start + length // 2, slice_seconds, threshold, kind == "latency")
    request = (agreement, "api", start, end, slice_seconds, threshold, kind == "latency")
    assert store.slice_data_many([request, other, other], workers=2) == [
        data, store.slice_data(*other), store.slice_data(*other)]


def stored_runs(store: Store, agreement: str, gap: int) -> dict[str, list[tuple[float, float]]]:
    """The sample_runs rows of an agreement at `gap`, per service, sorted."""
    r = sample_runs.c
    with store.engine.begin() as conn:
        rows = conn.execute(select(r.service, r.t0, r.t1).where(r.agreement == agreement.lower(), r.gap == gap)
                            .order_by(r.service, r.t0)).all()
    out: dict[str, list[tuple[float, float]]] = {}
    for service, t0, t1 in rows:
        out.setdefault(service, []).append((t0, t1))
    return out


def chained_samples(store: Store, agreement: str, gap: int) -> dict[str, list[tuple[float, float]]]:
    """The runs the samples themselves say (oracle.sample_runs.chain over every stored sample)."""
    by_service: dict[str, list[float]] = {}
    for s in store.samples(agreement, "api", -math.inf, math.inf) + store.samples(agreement, "web", -math.inf,
                                                                                     math.inf):
        by_service.setdefault(s.service, []).append(s.ts)
    return {service: chain(ts, gap) for service, ts in sorted(by_service.items())}


# As samples_st, with whole-second starts and steps of exactly a slice length or a tracked gap
# (1, 7, 60, 300 and one more) half the time: gaps equal to the gap must chain, one more must not.
exact_st = st.lists(st.tuples(st.one_of(st.floats(-50, 1_250, allow_nan=False), st.integers(-50, 1_250).map(float)),
                              st.integers(1, 40),
                              st.one_of(st.floats(0.5, 30), st.sampled_from([1.0, 2.0, 7.0, 8.0, 60.0, 61.0, 300.0])),
                              st.floats(0, 1), st.one_of(st.none(), st.floats(0, 2_000, allow_nan=False))),
                    max_size=8)


@pytest.mark.slow  # 150 examples of several SQLite commits each (5-15 s)
@settings(max_examples=150, deadline=None)
@given(bursts=exact_st, windows=windows_st, slice_seconds=st.sampled_from([1, 7, 60, 300]),
       length=st.integers(1, 1_200), threshold=st.sampled_from([1, 1, 1, 2]),
       kind=st.sampled_from(["availability", "availability", "latency"]),
       gaps=st.sampled_from(["slice", "smaller", "larger", "none"]), batches=st.integers(0, 6),
       track_after=st.integers(0, 6), reopen_after=st.integers(0, 7), duplicate=st.booleans(),
       seed=st.randoms(use_true_random=False))
def test_the_record_from_sample_runs_is_the_reference_record(
        runs_url: str, bursts: list[Burst], windows: list[tuple[int, float, float]],
        slice_seconds: int, length: int, threshold: int, kind: str, gaps: str, batches: int, track_after: int,
        reopen_after: int, duplicate: bool, seed: Any) -> None:
    """Samples written in batches out of order, some twice, some long after their time, the
    agreement tracked before, during or after the writes (its runs then built from the stored
    samples), the store closed and reopened mid-stream: the runs are what the samples say, and
    the record, hash and figure from them are the reference's, byte for byte."""
    agreement = f"0x{next(_ids):040x}"  # one agreement per example: the examples share the file
    url = runs_url
    start, end = START, START + length
    samples: list[Sample] = []
    for t0, n, step, fail_rate, ms in bursts:
        for k in range(n):
            ok = seed.random() >= fail_rate
            samples.append(Sample(seed.choice(["api", "api", "web"]), start + t0 + k * step, ok, ms if ok else None,
                                  ""))
    written = samples + (seed.sample(samples, len(samples) // 3) if duplicate and samples else [])
    seed.shuffle(written)  # late and out of order: any sample may come in any batch
    # batches 0: one sample per transaction (the daemon's usual write, merge's one-sample path),
    # for the first 25 samples (a commit each), then the rest at once
    cut = list(range(1, min(len(written), 25))) if batches == 0 else sorted(
        seed.randrange(len(written) + 1) for _ in range(batches - 1))
    chunks = [written[a:b] for a, b in zip([0, *cut], [*cut, len(written)], strict=True)]
    track = {"slice": [slice_seconds], "smaller": [max(1, slice_seconds // 3), slice_seconds],
             "larger": [slice_seconds + 1], "none": []}[gaps]
    store = Store.open(url)
    try:
        for k, chunk in enumerate(chunks + [[]]):
            if k == track_after or (k == len(chunks) and track_after > k):
                for gap in track:
                    store.track_slices(agreement, gap)
            if k == reopen_after:  # a restart mid-stream: the runs live in the database
                store.close()
                store = Store.open(url)
            store.add_samples(agreement, chunk)
        for gap in track:
            assert stored_runs(store, agreement, gap) == chained_samples(store, agreement, gap)
        excluded = [(w, start + a, start + a + d) for w, a, d in windows]
        want = reference_record(start=start, end=end, slice_seconds=slice_seconds, kind=kind, windows=excluded,
                                slices=reference_slices([s for s in written if s.service == "api"], start, end,
                                                        slice_seconds, threshold))
        data = store.slice_data(agreement, "api", start, end, slice_seconds, threshold, kind == "latency")
        got = ev.build_record(chain_id=1, agreement="0x" + "ab" * 20, period=3, start=start, end=end,
                              slice_seconds=slice_seconds, index=0, name="api", kind=kind, slices=data,
                              windows=excluded)
        assert ev.canonical_bytes(got) == ev.canonical_bytes(want)
        assert ev.record_hash(got) == ev.record_hash(want)
        assert ev.figure_from_record(got, percentile=95, objective_ms=300) == reference_figure(want, 95, 300)
    finally:
        store.close()
