"""The store's sample runs (oracle.sample_runs) on a real SQLite file and a real PostgreSQL server:
they stay what the samples say through pruning, concurrent writers and a schema upgrade, and the
edges of a period (a run crossing its end, a gap of exactly the slice length) read exactly."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from oracle.evidence import SliceData
from oracle.probes import Sample
from oracle.sample_runs import chain, merge
from oracle.store import Store, sample_runs

AGREEMENT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
T = 1_800_000_000.0
DAY = 86_400


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def runs_of(store: Store, gap: int, service: str = "api") -> list[tuple[float, float]]:
    r = sample_runs.c
    with store.engine.begin() as conn:
        return [(a, b) for a, b in conn.execute(select(r.t0, r.t1).where(
            r.agreement == AGREEMENT.lower(), r.service == service, r.gap == gap).order_by(r.t0))]


def said_by_samples(store: Store, gap: int, service: str = "api") -> list[tuple[float, float]]:
    return chain([s.ts for s in store.samples(AGREEMENT, service, 0, 4 * T)], gap)


def at(*offsets: float, ok: bool = True) -> list[Sample]:
    return [Sample("api", T + o, ok, 10.0 if ok else None, "") for o in offsets]


def test_merge_joins_runs_through_a_late_sample() -> None:
    # Two runs 90 s apart at gap 60; a late sample in between joins them into the first one.
    updates, deletes, inserts = merge([(1, 0.0, 100.0), (2, 190.0, 300.0)], [150.0], 60)
    assert (updates, deletes, inserts) == ([(1, 0.0, 300.0)], [2], [])
    assert merge([(1, 0.0, 100.0)], [50.0, 100.0], 60) == ([], [], [])  # inside: nothing changes
    assert merge([(1, 0.0, 100.0)], [161.0], 60) == ([], [], [(161.0, 161.0)])  # 61 s away: a run of its own


def test_a_run_crossing_the_period_end_measures_only_its_slices_inside(store: Store) -> None:
    # Period [T, T + 90) in 60 s slices: slices [0, 60) and [60, 90). The samples at 50, 95 and
    # 110 are one run at gap 60, but the short last slice holds none of them: not measured.
    store.track_slices(AGREEMENT, 60)
    store.add_samples(AGREEMENT, at(50, 95, 110))
    assert store.slice_data(AGREEMENT, "api", T, T + 90, 60) == SliceData(measured=((0, 0),))
    # A run crossing the start: slice 0 holds its first sample after the start.
    assert store.slice_data(AGREEMENT, "api", T + 40, T + 200, 60) == SliceData(measured=((0, 1),))
    # A run around a period holding none of its samples: nothing measured.
    assert store.slice_data(AGREEMENT, "api", T + 60, T + 90, 60) == SliceData(measured=())


def test_a_gap_of_the_slice_length_chains_and_one_more_does_not(store: Store) -> None:
    store.track_slices(AGREEMENT, 60)
    store.track_slices(AGREEMENT, 61)  # wider than the slices: must never be read for them
    store.add_samples(AGREEMENT, at(59, 119, 179) + at(240, ok=False))
    assert runs_of(store, 60) == [(T + 59, T + 179), (T + 240, T + 240)]
    assert runs_of(store, 61) == [(T + 59, T + 240)]
    # 59 -> 119 -> 179 leave no slice empty; 179 -> 240 leaves [180, 240) empty (the gap-61 run
    # would call it measured).
    want = SliceData(measured=((0, 2), (4, 4)), down=frozenset({4}))
    assert store.slice_data(AGREEMENT, "api", T, T + 600, 60) == want
    # At 30 s slices no gap is tracked: the samples decide.
    got = store.slice_data(AGREEMENT, "api", T, T + 600, 30)
    assert got == SliceData(measured=((1, 1), (3, 3), (5, 5), (8, 8)), down=frozenset({8}))


def test_pruning_keeps_the_runs_equal_to_the_samples(store: Store) -> None:
    store.track_slices(AGREEMENT, 60)
    old = [Sample("api", T - 60 * DAY + 30 * i, True, 5.0, "") for i in range(100)]
    spanning = [Sample("api", T - 47 * DAY + 30 * i, True, 5.0, "") for i in range(10_000)]  # crosses the cut
    store.add_samples(AGREEMENT, old + spanning)
    assert store.prune_samples(T - 46 * DAY, now=T) > 100
    assert runs_of(store, 60) == said_by_samples(store, 60) != []
    start = T - 46 * DAY
    data = store.slice_data(AGREEMENT, "api", start - DAY, start + DAY, 60)
    assert data == SliceData(measured=((1_440, 2_879),))  # nothing before the cut, all after it


def test_tracking_chains_the_samples_already_stored_once(store: Store) -> None:
    store.add_samples(AGREEMENT, at(0, 30, 60, 200, 230))
    assert store.track_slices(AGREEMENT, 60) is True
    assert store.track_slices(AGREEMENT, 60) is False  # already tracked: nothing chained twice
    assert store.tracked_gaps(AGREEMENT) == [60]
    assert runs_of(store, 60) == said_by_samples(store, 60) == [(T, T + 60), (T + 200, T + 230)]


def test_concurrent_writers_of_one_service_leave_the_runs_the_samples_say(store_url: str) -> None:
    # A fleet handing an agreement over: two daemons write its samples at the same time.
    with Store.open(store_url) as s:
        s.track_slices(AGREEMENT, 10)
    rng = random.Random(7)
    offsets = [float(i * 6) for i in range(2_000)]
    rng.shuffle(offsets)
    halves = [offsets[::2], offsets[1::2]]

    def write(part: list[float]) -> None:
        with Store.open(store_url, busy_timeout_s=30) as s:
            for k in range(0, len(part), 20):
                s.add_samples(AGREEMENT, at(*part[k:k + 20]))

    threads = [threading.Thread(target=write, args=(h,)) for h in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Store.open(store_url) as s:
        assert runs_of(s, 10) == said_by_samples(s, 10) == [(T, T + 6 * 1_999)]


def test_a_schema_4_store_is_upgraded_and_its_samples_chained_when_tracked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v4.db'}"
    with Store.open(url) as s, s.engine.begin() as conn:  # make it look like schema 4, with samples
        conn.execute(text("DROP TABLE sample_runs"))
        conn.execute(text("DROP TABLE sample_run_gaps"))
        conn.execute(text("DELETE FROM schema_version WHERE version >= 4"))
        conn.execute(text("INSERT INTO schema_version (version, applied_at) VALUES (4, 0)"))
        conn.execute(text("INSERT INTO samples (agreement, service, ts, ok, latency_ms, detail) VALUES "
                          + ", ".join(f"('{AGREEMENT.lower()}', 'api', {T + 30 * i}, {int(i != 7)}, 1.0, '')"
                                      for i in range(50) if not 20 <= i < 25)))
    with Store.open(url) as s:
        assert s.schema_version() == 5
        before = s.slice_data(AGREEMENT, "api", T, T + 3_000, 60)  # read from the samples
        assert s.track_slices(AGREEMENT, 60) and not s.track_slices(AGREEMENT, 60)
        assert s.tracked_gaps(AGREEMENT) == [60]
        assert runs_of(s, 60) == said_by_samples(s, 60) == [(T, T + 570), (T + 750, T + 1_470)]
        assert s.slice_data(AGREEMENT, "api", T, T + 3_000, 60) == before == SliceData(
            measured=((0, 9), (12, 24)), down=frozenset({3}))


def test_tracking_while_a_batch_is_being_written_loses_none_of_its_samples(store_url: str) -> None:
    # The batch has read which gaps are tracked (none yet) when the agreement gets tracked and
    # its stored samples chained; the batch then commits. Its samples must be in the runs.
    with Store.open(store_url) as s:
        s.add_samples(AGREEMENT, at(0, 30))
    writer, tracker = Store.open(store_url, busy_timeout_s=30), Store.open(store_url, busy_timeout_s=30)
    read_gaps, resume = threading.Event(), threading.Event()

    @event.listens_for(writer.engine, "after_cursor_execute")
    def pause(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "sample_run_gaps" in statement and statement.lstrip().upper().startswith("SELECT"):
            read_gaps.set()
            resume.wait(10)

    try:
        w = threading.Thread(target=writer.add_samples, args=(AGREEMENT, at(60, 90)))
        w.start()
        assert read_gaps.wait(10)
        errors: list[BaseException] = []

        def track() -> None:
            try:
                tracker.track_slices(AGREEMENT, 60)
            except BaseException as exc:  # shown by the assertion below
                errors.append(exc)

        t = threading.Thread(target=track)
        t.start()
        t.join(1.5)  # with the lock it waits for the writer; without, it commits now
        resume.set()
        w.join(10)
        t.join(30)
        assert errors == [] and not t.is_alive() and not w.is_alive()
        assert runs_of(tracker, 60) == said_by_samples(tracker, 60) == [(T, T + 90)]
    finally:
        resume.set()
        writer.close()
        tracker.close()
