"""The measurement store on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from oracle.probes import Sample
from oracle.sli import PeriodFigure, availability
from oracle.store import SCHEMA_VERSION, IllegalTransitionError, SchemaTooNewError, Store, StoreError

AGREEMENT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NOW = 1_800_000_000.0
DAY = 86_400


def samples(n: int, start: float = NOW, service: str = "api") -> list[Sample]:
    return [Sample(service, start + i, i % 10 != 0, None if i % 10 == 0 else 12.5, f"check {i}") for i in range(n)]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as s:
        yield s


def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "oracle.db"


# -- both databases ------------------------------------------------------------------------------

def test_samples_round_trip_in_order(store: Store) -> None:
    batch = samples(50)
    assert store.add_samples(AGREEMENT, list(reversed(batch))) == 50
    # checksummed and lower-case addresses are the same agreement
    got = store.samples(AGREEMENT.lower(), "api", NOW, NOW + 50)
    assert got == batch
    assert store.samples(AGREEMENT, "api", NOW + 10, NOW + 20) == batch[10:20]  # [start, end)
    assert store.samples(AGREEMENT, "other", NOW, NOW + 50) == []
    assert store.add_samples(AGREEMENT, []) == 0


def test_samples_of_several_agreements_in_one_transaction(store: Store) -> None:
    other = "0x" + "ab" * 20
    assert store.add_samples_many({AGREEMENT: samples(3), other: samples(2, service="db")}) == 5
    assert len(store.samples(other, "db", 0, 2 * NOW)) == 2


def test_prune_keeps_the_dispute_window(store: Store) -> None:
    store.add_samples(AGREEMENT, samples(10, start=NOW - 60 * DAY) + samples(10, start=NOW - DAY))
    with pytest.raises(StoreError, match="refusing to prune"):
        store.prune_samples(NOW - 2 * DAY, now=NOW)  # inside the 45-day retention
    assert store.prune_samples(NOW - 50 * DAY, now=NOW) == 10
    assert len(store.samples(AGREEMENT, "api", 0, 2 * NOW)) == 10


def figure(value_ppm: int = 999_305, good: int = 43_170) -> PeriodFigure:
    return PeriodFigure(value_ppm=value_ppm, good_slices=good, total_slices=43_200, excluded_slices=30,
                        maintenance_slices=30, missing_slices=0, slice_seconds=60, p50_ms=21.0, p95_ms=80.5,
                        p99_ms=250.0, measured_ppm=987_654)


def count_rows(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_period_results_are_idempotent(store: Store) -> None:
    figs = {"api": figure(), "db": figure(1_000_000, 43_200)}
    store.save_period_results(AGREEMENT, 3, figs, computed_at=NOW)
    store.save_period_results(AGREEMENT, 3, figs, computed_at=NOW + 5)
    assert count_rows(store, "period_results") == 2
    saved = store.period_results(AGREEMENT.lower(), 3)
    assert {k: v.figure for k, v in saved.items()} == figs
    assert saved["api"].computed_at == NOW + 5
    assert saved["api"].figure.measured_ppm == 987_654
    # recomputing before the report is signed replaces the figure
    store.save_period_results(AGREEMENT, 3, {"api": figure(999_000, 43_157)})
    assert store.period_results(AGREEMENT, 3)["api"].figure.value_ppm == 999_000
    assert count_rows(store, "period_results") == 2


def test_figures_of_a_signed_period_are_frozen(store: Store) -> None:
    store.save_period_results(AGREEMENT, 0, {"api": figure()})
    store.put_computed_report(AGREEMENT, 0, {"valuesPpm": [999_305]})
    store.transition_report(AGREEMENT, 0, "computed", "signed", signature="0xsig")
    store.save_period_results(AGREEMENT, 0, {"api": figure()})  # the same figures: fine
    with pytest.raises(StoreError, match="already signed"):
        store.save_period_results(AGREEMENT, 0, {"api": figure(990_000, 42_768)})


def test_report_walks_its_states_and_never_back(store: Store) -> None:
    payload = {"period": 0, "valuesPpm": [999_305, 1_000_000]}
    r = store.put_computed_report(AGREEMENT, 0, payload)
    assert (r.state, r.payload, r.signature, r.tx_hash) == ("computed", payload, None, None)
    # recomputing before signing replaces the payload
    payload = {"period": 0, "valuesPpm": [999_306, 1_000_000]}
    assert store.put_computed_report(AGREEMENT, 0, payload).payload == payload

    with pytest.raises(IllegalTransitionError, match="computed -> submitted is not allowed"):
        store.transition_report(AGREEMENT, 0, "computed", "submitted", tx_hash="0x1")
    with pytest.raises(IllegalTransitionError, match="needs its signature"):
        store.transition_report(AGREEMENT, 0, "computed", "signed")
    r = store.transition_report(AGREEMENT, 0, "computed", "signed", signature="0xsig")
    assert (r.state, r.signature) == ("signed", "0xsig")
    # a stale caller that still thinks it is computed is refused: no double signing
    with pytest.raises(IllegalTransitionError, match="expected state computed, but it is signed"):
        store.transition_report(AGREEMENT, 0, "computed", "signed", signature="0xother")
    # once signed, the same payload again is fine, a different one is not
    assert store.put_computed_report(AGREEMENT, 0, payload).state == "signed"
    with pytest.raises(IllegalTransitionError, match="refusing a different payload"):
        store.put_computed_report(AGREEMENT, 0, {"period": 0, "valuesPpm": [1, 2]})

    store.transition_report(AGREEMENT, 0, "signed", "submitted", tx_hash="0xaa")
    r = store.transition_report(AGREEMENT, 0, "submitted", "submitted", tx_hash="0xbb")  # replacement tx
    assert r.tx_hash == "0xbb"
    assert [x.period for x in store.reports("submitted")] == [0]
    r = store.transition_report(AGREEMENT, 0, "submitted", "confirmed")
    assert (r.state, r.tx_hash, r.signature, r.payload) == ("confirmed", "0xbb", "0xsig", payload)
    for target in ("computed", "signed", "submitted", "confirmed"):
        with pytest.raises(IllegalTransitionError):
            store.transition_report(AGREEMENT, 0, "confirmed", target, signature="0x", tx_hash="0x")
    with pytest.raises(IllegalTransitionError, match="no report"):
        store.transition_report(AGREEMENT, 1, "computed", "signed", signature="0x")
    assert store.report(AGREEMENT, 0).state == "confirmed"  # type: ignore[union-attr]
    assert store.report(AGREEMENT, 1) is None


def test_newer_schema_is_refused(store_url: str) -> None:
    Store.open(store_url).close()
    with Store.open(store_url) as s:  # reopening the current version is fine
        assert s.schema_version() == SCHEMA_VERSION
        with s.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO schema_version (version, applied_at) VALUES ({SCHEMA_VERSION + 1}, 0)"))
    with pytest.raises(SchemaTooNewError, match=f"schema version {SCHEMA_VERSION + 1} is newer than this oracle's "
                                                f"{SCHEMA_VERSION}"):
        Store.open(store_url)


def test_slice_verdicts_in_the_database_equal_the_reference_maths(store: Store) -> None:
    # The store aggregates per slice in SQL (no sample materialised); it must agree exactly with
    # oracle.sli on the same samples, including the failure threshold and maintenance.
    import random

    from oracle.probes import apply_failure_threshold
    from oracle.sli import count_slices, figure_from_counts

    rng = random.Random(7)
    batch = [Sample("api", NOW + rng.uniform(0, 3_600), rng.random() > 0.1, rng.uniform(1, 500), "")
             for _ in range(2_000)]
    batch = [s if s.ok else Sample(s.service, s.ts, False, None, "") for s in batch]
    store.add_samples(AGREEMENT, batch)
    start, end, maint = NOW + 7.5, NOW + 3_000, [(NOW + 600, NOW + 700)]
    for threshold in (1, 3):
        ref = availability(apply_failure_threshold(batch, threshold), start, end, slice_seconds=60,
                           maintenance=maint)
        verdicts = store.slice_verdicts(AGREEMENT, "api", start, end, 60, threshold)
        got = figure_from_counts(count_slices(start, end, 60, verdicts, maint), 60,
                                 store.latency_percentiles(AGREEMENT, "api", start, end, 60, maint))
        if threshold == 1:
            assert got == ref
        else:  # tolerated failures carry no latency in the reference: compare the counts
            assert (got.good_slices, got.total_slices, got.measured_ppm) == (
                ref.good_slices, ref.total_slices, ref.measured_ppm)


def test_schema_1_store_is_migrated(tmp_path: Path) -> None:
    path = sqlite_path(tmp_path)
    with Store.open(str(path)) as s, s.engine.begin() as conn:  # make it look like schema 1
        conn.execute(text("DROP INDEX ix_samples_failed"))
        conn.execute(text("ALTER TABLE period_results DROP COLUMN measured_ppm"))
        conn.execute(text("DROP TABLE fleet_members"))
        conn.execute(text("DROP TABLE fleet_leases"))
        conn.execute(text("DROP TABLE evidence"))
        conn.execute(text("DELETE FROM schema_version WHERE version >= 2"))
        conn.execute(text("INSERT INTO schema_version (version, applied_at) VALUES (1, 0)"))
    with Store.open(str(path)) as s:
        assert s.schema_version() == SCHEMA_VERSION
        s.save_period_results(AGREEMENT, 0, {"api": figure()})
        assert s.period_results(AGREEMENT, 0)["api"].figure.measured_ppm == 987_654
        s.save_evidence(AGREEMENT, 0, "0x01", "{}")  # schema 4: the evidence table
        assert s.evidence(AGREEMENT, 0) == ("0x01", "{}")


def test_evidence_of_a_signed_period_is_never_replaced(store: Store) -> None:
    """The served bundle must be the one the signed root commits to: an attacker (or a bug)
    recomputing the period after signing cannot swap the evidence."""
    store.save_evidence(AGREEMENT, 0, "0xaa", '{"a":1}')
    store.save_evidence(AGREEMENT, 0, "0xbb", '{"b":1}')  # before signing: recomputed, replaced
    assert store.evidence(AGREEMENT, 0) == ("0xbb", '{"b":1}')
    store.put_computed_report(AGREEMENT, 0, {"v": 1})
    store.transition_report(AGREEMENT, 0, "computed", "signed", signature="0xsig")
    # Recomputed after signing (a restart, late samples): the signed bundle is kept, and said so.
    assert store.save_evidence(AGREEMENT, 0, "0xcc", '{"c":1}') == "0xbb"
    assert store.save_evidence(AGREEMENT, 0, "0xbb", '{"b":1}') == "0xbb"
    assert store.evidence(AGREEMENT, 0) == ("0xbb", '{"b":1}')
    assert store.evidence(AGREEMENT, 1) is None


def test_slice_states_equal_the_streamed_reference(store: Store) -> None:
    """The GROUP BY (threshold 1) and the streamed path agree with a per-sample computation."""
    import random

    rng = random.Random(3)
    batch = [Sample("api", NOW + rng.uniform(0, 600), rng.random() > 0.2, rng.uniform(1, 500), "")
             for _ in range(500)]
    store.add_samples(AGREEMENT, batch)
    start, end = NOW + 7.5, NOW + 590
    expected: dict[int, tuple[bool, float | None]] = {}
    for s in sorted(batch, key=lambda s: s.ts):
        if start <= s.ts < end:
            i = int((s.ts - start) // 10)
            ok, slowest = expected.get(i, (True, None))
            if s.ok:
                slowest = s.latency_ms if slowest is None else max(slowest, s.latency_ms)
            expected[i] = (ok and s.ok, slowest)
    assert store.slice_states(AGREEMENT, "api", start, end, 10) == expected
    verdicts = store.slice_verdicts(AGREEMENT, "api", start, end, 10, 2)
    streamed = store.slice_states(AGREEMENT, "api", start, end, 10, 2)
    assert {i: v for i, (v, _) in streamed.items()} == verdicts
    assert {i: ms for i, (_, ms) in streamed.items()} == {i: ms for i, (_, ms) in expected.items()}


# -- SQLite specifics ----------------------------------------------------------------------------

def test_sqlite_file_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    path = sqlite_path(tmp_path)
    with Store.open(str(path)) as store:  # a bare path means an SQLite file
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        store.add_samples(AGREEMENT, samples(1))
    # WAL is a property of the file: a plain sqlite3 connection sees it too
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_samples_survive_closing_and_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{sqlite_path(tmp_path)}"
    store = Store.open(url)
    store.add_samples(AGREEMENT, samples(1000))
    store.close()
    with Store.open(url) as again:
        got = again.samples(AGREEMENT, "api", NOW, NOW + 1000)
    assert got == samples(1000)
    fig = availability(got, NOW, NOW + 1000, slice_seconds=10)
    assert (fig.good_slices, fig.total_slices) == (0, 100)  # every 10 s slice holds one failed check


def test_foreign_tables_without_a_version_are_refused(tmp_path: Path) -> None:
    path = sqlite_path(tmp_path)
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE samples (x)")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="without a schema_version"):
        Store.open(str(path))


def test_locked_database_raises_a_clear_error_and_loses_nothing(tmp_path: Path) -> None:
    path = sqlite_path(tmp_path)
    with Store.open(str(path), busy_timeout_s=0.2) as store:
        store.add_samples(AGREEMENT, samples(5))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        try:
            with pytest.raises(StoreError, match="database is locked"):
                store.add_samples(AGREEMENT, samples(5, start=NOW + 100))
            assert len(store.samples(AGREEMENT, "api", 0, 2 * NOW)) == 5  # WAL: reads still work
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.add_samples(AGREEMENT, samples(5, start=NOW + 100))  # the caller retries: it goes in
        assert len(store.samples(AGREEMENT, "api", 0, 2 * NOW)) == 10


def test_full_disk_raises_a_clear_error_and_keeps_what_was_committed(tmp_path: Path) -> None:
    path = sqlite_path(tmp_path)
    with Store.open(str(path)) as store:
        # A database capped at a few pages behaves as a full disk (SQLITE_FULL).
        @event.listens_for(store.engine, "connect")
        def _cap(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA max_page_count=40")

        store.engine.dispose()
        committed = 0
        with pytest.raises(StoreError, match="disk is full"):
            for i in range(1000):
                committed += store.add_samples(AGREEMENT, samples(100, start=NOW + 100 * i))
        assert 0 < committed < 100_000
    with Store.open(str(path)) as again:
        assert len(again.samples(AGREEMENT, "api", 0, 2 * NOW)) == committed


def test_unopenable_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open store"):
        Store.open("nosuchdialect://x")


def test_insert_ignore_says_whether_it_inserted(store: Store) -> None:
    """Store._insert_ignore ("insert unless present", race-free) must tell the caller whether its
    row went in. psycopg reports rowcount -1 for INSERT ... ON CONFLICT DO NOTHING, so on
    PostgreSQL it answered False even for a fresh row (the old code failed here on PostgreSQL)."""
    from sqlalchemy import func, select

    from oracle.store import sample_run_gaps

    key = ("agreement", "gap")
    with store._tx() as conn:
        assert Store._insert_ignore(conn, sample_run_gaps, {"agreement": "0xab", "gap": 2}, key)
        assert not Store._insert_ignore(conn, sample_run_gaps, {"agreement": "0xab", "gap": 2}, key)
        assert Store._insert_ignore(conn, sample_run_gaps, {"agreement": "0xab", "gap": 3}, key)
        assert conn.execute(select(func.count()).select_from(sample_run_gaps)).scalar() == 2


def test_a_batch_of_reports_moves_all_or_none(store: Store) -> None:
    """Store.transition_reports (a batch's items, one transaction): one report not in its expected
    state (another sender moved it) and nothing moves, so no item names a hash it was not sent in."""
    for period in range(3):
        store.put_computed_report(AGREEMENT, period, {"valuesPpm": [period]})
        store.transition_report(AGREEMENT, period, "computed", "signed", signature="0xsig")
    store.transition_report(AGREEMENT, 1, "signed", "submitted", tx_hash="0xother")
    with pytest.raises(IllegalTransitionError, match="period 1"):
        store.transition_reports([(AGREEMENT, p, "signed") for p in range(3)], "submitted", tx_hash="0xbatch")
    assert [store.report(AGREEMENT, p).state for p in range(3)] == ["signed", "submitted", "signed"]
    assert store.report(AGREEMENT, 0).tx_hash is None
    store.transition_reports([(AGREEMENT, 0, "signed"), (AGREEMENT, 2, "signed")], "submitted", tx_hash="0xbatch")
    store.transition_reports([(AGREEMENT, p, "submitted") for p in range(3)], "confirmed")
    assert [(r.state, r.tx_hash) for r in (store.report(AGREEMENT, p) for p in range(3))] == [
        ("confirmed", "0xbatch"), ("confirmed", "0xother"), ("confirmed", "0xbatch")]
    with pytest.raises(IllegalTransitionError, match="needs the transaction hash"):
        store.transition_reports([(AGREEMENT, 5, "signed")], "submitted")
