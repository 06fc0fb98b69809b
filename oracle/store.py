"""Durable measurement store: raw samples, per-period results, and crash-safe report states.

SQLAlchemy 2 Core over SQLite by default (one file, WAL journal, synchronous=FULL so a commit
survives a power cut) or PostgreSQL through the same code (`postgresql://...` URLs use psycopg 3).

* samples: raw probe results, kept at least `min_sample_retention_s` (the dispute window) and
  then prunable;
* period_results: one figure per (agreement, period, service), kept forever, saved idempotently;
* evidence: the evidence bundle (oracle.evidence) of each reported period, kept forever: the
  oracle serves it to anyone checking the root it committed on-chain;
* reports: one row per (agreement, period) walking computed -> signed -> submitted -> confirmed,
  so a restarted daemon knows what it already signed or sent and never signs twice.

Every database failure surfaces as `StoreError` with the reason (database locked, disk full...);
a method that returned has committed, and a failed one leaves earlier commits untouched.
Agreement addresses are stored lower-case, so checksummed and plain spellings meet.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy import Boolean as Bool
from sqlalchemy.dialects import postgresql, sqlite

from smartsla.database import open_engine, transaction
from smartsla.versioned_schema import LOCK_KEY, VersionedSchema, version_table

from . import sample_runs as runs_
from .evidence import SliceData, index_runs
from .probes import Sample
from .sli import PeriodFigure, Window, maintenance_slices
from .transactions import TX_SCHEMA, TxLogError, TxLogTooNewError

# 2: period_results.measured_ppm; index of failed checks. 3: fleet leases (oracle.fleet).
# 4: evidence bundles (oracle.evidence), one per reported period. 5: sample runs (oracle.sample_runs).
SCHEMA_VERSION = 5
SCHEMA_LOCK_KEY = LOCK_KEY  # PostgreSQL advisory lock held while the schema is created or migrated
# PostgreSQL advisory lock class (with hashtext(agreement)) held while an agreement's sample runs
# change: two writers of one agreement (a fleet handing it over) must not both extend a run.
RUNS_LOCK_CLASS = 0x5A5A_0002
# Raw samples are evidence until a period can no longer be disputed: a monthly period plus a
# two-week dispute window. Pruning anything newer is refused.
DEFAULT_MIN_SAMPLE_RETENTION_S = 45 * 86_400

REPORT_STATES = ("computed", "signed", "submitted", "confirmed")
# submitted -> submitted: a replacement transaction (dropped, re-priced) gets a new tx_hash.
# Nothing leaves 'confirmed', and nothing goes back to an earlier state: a signed report stays
# the one that was signed.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "computed": frozenset({"signed"}),
    # signed -> confirmed: another committee member settled the period before we sent ours.
    "signed": frozenset({"submitted", "confirmed"}),
    "submitted": frozenset({"submitted", "confirmed"}),
    "confirmed": frozenset(),
}


class StoreError(RuntimeError):
    """A database operation failed; the message says why (locked, disk full, schema...)."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer oracle; refusing to touch it."""


class IllegalTransitionError(StoreError):
    """A report state change that does not follow computed -> signed -> submitted -> confirmed."""


metadata = MetaData()

schema_version = version_table(metadata, "schema_version")

samples = Table(
    "samples", metadata,
    Column("id", Integer, primary_key=True),
    Column("agreement", String(42), nullable=False),
    Column("service", String(64), nullable=False),
    Column("ts", Double, nullable=False),
    Column("ok", Bool, nullable=False),
    Column("latency_ms", Double),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_samples_agreement_service_ts", "agreement", "service", "ts"),
    Index("ix_samples_ts", "ts"),  # for pruning by age
    # The failed checks of a period are an index seek (ok = false), not a scan of the period.
    Index("ix_samples_failed", "agreement", "service", "ok", "ts"),
)

# The samples of an agreement's services chained into runs (oracle.sample_runs), at each gap the
# agreement is tracked with (sample_run_gaps); written in the transaction of the samples they
# summarise, so a period's measured slices are read from a few runs, not a month of samples.
sample_runs = Table(
    "sample_runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("agreement", String(42), nullable=False),
    Column("service", String(64), nullable=False),
    Column("gap", Integer, nullable=False),
    Column("t0", Double, nullable=False),
    Column("t1", Double, nullable=False),
    Index("ix_sample_runs", "agreement", "service", "gap", "t1"),
)

sample_run_gaps = Table(
    "sample_run_gaps", metadata,
    Column("agreement", String(42), primary_key=True),
    Column("gap", Integer, primary_key=True, autoincrement=False),
)

period_results = Table(
    "period_results", metadata,
    Column("id", Integer, primary_key=True),
    Column("agreement", String(42), nullable=False),
    Column("period", Integer, nullable=False),
    Column("service", String(64), nullable=False),
    Column("value_ppm", Integer, nullable=False),
    Column("good_slices", Integer, nullable=False),
    Column("total_slices", Integer, nullable=False),
    Column("excluded_slices", Integer, nullable=False),
    Column("maintenance_slices", Integer, nullable=False),
    Column("missing_slices", Integer, nullable=False),
    # Schema 1 recorded a missing-data policy; since schema 2 slices without data are always
    # "not measured" (left out), so new rows say 'exclude'. Kept so old rows stay readable.
    Column("missing_policy", String(16), nullable=False, default="exclude"),
    Column("measured_ppm", Integer, nullable=False, default=1_000_000),
    Column("slice_seconds", Integer, nullable=False),
    Column("p50_ms", Double),
    Column("p95_ms", Double),
    Column("p99_ms", Double),
    Column("computed_at", Double, nullable=False),
    UniqueConstraint("agreement", "period", "service", name="uq_period_results"),
)

reports = Table(
    "reports", metadata,
    Column("id", Integer, primary_key=True),
    Column("agreement", String(42), nullable=False),
    Column("period", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("signature", Text),
    Column("tx_hash", Text),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("agreement", "period", name="uq_reports"),
)

# The evidence of a reported period (oracle.evidence): the bundle JSON text and its Merkle root.
# Once the period's report is signed, the bundle is what the signed root commits to: never replaced.
evidence = Table(
    "evidence", metadata,
    Column("id", Integer, primary_key=True),
    Column("agreement", String(42), nullable=False),
    Column("period", Integer, nullable=False),
    Column("root", String(66), nullable=False),
    Column("bundle", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("agreement", "period", name="uq_evidence"),
)

# Fleet mode (oracle.fleet): daemons sharing one oracle key and this database. A member row is a
# daemon's heartbeat; a lease row gives one agreement (or the single "sender" role) to one member
# until expires_at (database clock), renewed by its holder every lease/3.
fleet_members = Table(
    "fleet_members", metadata,
    Column("member", String(64), primary_key=True),
    Column("heartbeat_at", Double, nullable=False),
    Column("started_at", Double, nullable=False),
)

fleet_leases = Table(
    "fleet_leases", metadata,
    Column("name", String(80), primary_key=True),  # "agreement:<lower-case address>" or "sender"
    Column("holder", String(64)),  # NULL: free
    Column("expires_at", Double, nullable=False),
    Index("ix_fleet_leases_holder", "holder"),
)


# -- schema upgrades: one function per version, registered in SCHEMA below ----------------------

def _upgrade_to_2(conn: Connection) -> None:
    """period_results.measured_ppm; the index of failed checks."""
    conn.execute(text("ALTER TABLE period_results ADD COLUMN measured_ppm INTEGER NOT NULL DEFAULT 1000000"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_samples_failed ON samples (agreement, service, ok, ts)"))


def _upgrade_to_3(conn: Connection) -> None:
    """Fleet tables (oracle.fleet): new tables only, nothing existing changes."""
    fleet_members.create(conn, checkfirst=True)
    fleet_leases.create(conn, checkfirst=True)


def _upgrade_to_4(conn: Connection) -> None:
    """Evidence bundles (oracle.evidence): a new table, nothing existing changes."""
    evidence.create(conn, checkfirst=True)


def _upgrade_to_5(conn: Connection) -> None:
    """Schema 5: the sample runs tables. New tables only; the runs of an agreement are built from
    its stored samples when it is first tracked (`Store.track_slices`, called by the daemon with
    the agreement's slice length, which the upgrade cannot know)."""
    sample_runs.create(conn, checkfirst=True)
    sample_run_gaps.create(conn, checkfirst=True)


SCHEMA = VersionedSchema(
    component="oracle store", owner="oracle", metadata=metadata, table=schema_version, version=SCHEMA_VERSION,
    upgrades={2: _upgrade_to_2, 3: _upgrade_to_3, 4: _upgrade_to_4, 5: _upgrade_to_5},
    error=StoreError, too_new=SchemaTooNewError,
)

_FIGURE_FIELDS = ("value_ppm", "good_slices", "total_slices", "excluded_slices", "maintenance_slices",
                  "missing_slices", "slice_seconds", "p50_ms", "p95_ms", "p99_ms", "measured_ppm")


# (agreement, service, start, end, slice_seconds, failure_threshold, latency): one slice_data call
DataRequest = tuple[str, str, float, float, int, int, bool]
READ_WORKERS = 2  # threads reading period data side by side (slice_data_many)


@dataclass(frozen=True)
class Report:
    agreement: str
    period: int
    state: str
    payload: Any
    signature: str | None
    tx_hash: str | None
    updated_at: float


@dataclass(frozen=True)
class StoredResult:
    """A saved period figure, with when it was computed."""

    figure: PeriodFigure
    computed_at: float


def _norm(agreement: str) -> str:
    return agreement.lower()


class Store:
    """Open with `Store.open(url)`; close with `close()` or use it as a context manager."""

    def __init__(self, engine: Engine, min_sample_retention_s: float = DEFAULT_MIN_SAMPLE_RETENTION_S) -> None:
        self.engine = engine
        self.min_sample_retention_s = min_sample_retention_s

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, busy_timeout_s: float = 5.0,
             min_sample_retention_s: float = DEFAULT_MIN_SAMPLE_RETENTION_S) -> Store:
        """Create the schema or check its version. `url`: an SQLAlchemy URL or an SQLite file path.

        `busy_timeout_s`: how long a write waits for another writer before failing with
        "database is locked" (SQLite busy_timeout; PostgreSQL lock_timeout).
        """
        engine = open_engine(url, what="store", error=StoreError, busy_timeout_s=busy_timeout_s,
                             pg_lock_timeout=True)
        store = cls(engine, min_sample_retention_s)
        try:
            store._init_schema()
        except BaseException:
            engine.dispose()
            raise
        return store

    def _init_schema(self) -> None:
        with self._tx() as conn:
            SCHEMA.ensure(conn)  # under the schema lock (PostgreSQL) until this transaction ends
            # The transaction manager's table lives in the same database, with its own version
            # table: created, adopted or checked under the same lock (TxManager then finds it).
            try:
                TX_SCHEMA.ensure(conn)
            except TxLogTooNewError as exc:
                raise SchemaTooNewError(str(exc)) from exc
            except TxLogError as exc:
                raise StoreError(str(exc)) from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        with self._tx() as conn:
            return int(SCHEMA.current(conn) or 0)

    def _tx(self) -> contextlib.AbstractContextManager[Connection]:
        """One transaction, committed on exit; database errors become StoreError."""
        return transaction(self.engine, StoreError)

    # -- samples -------------------------------------------------------------------------------

    def add_samples(self, agreement: str, batch: Sequence[Sample]) -> int:
        """Insert samples of one agreement in one transaction; committed when this returns."""
        return self.add_samples_many({agreement: batch})

    def add_samples_many(self, batches: Mapping[str, Sequence[Sample]]) -> int:
        """Insert samples of several agreements (agreement -> samples) in one transaction."""
        rows = [{"agreement": _norm(agreement), "service": s.service, "ts": s.ts, "ok": s.ok,
                 "latency_ms": s.latency_ms, "detail": s.detail}
                for agreement, batch in batches.items() for s in batch]
        if not rows:
            return 0
        with self._tx() as conn:
            conn.execute(samples.insert(), rows)  # first: takes SQLite's write lock before the runs are read
            self._extend_runs(conn, rows)
        return len(rows)

    # -- sample runs (oracle.sample_runs) -------------------------------------------------------

    def track_slices(self, agreement: str, slice_seconds: int) -> bool:
        """Keep the sample runs of `agreement` at gap `slice_seconds` from now on, so its periods'
        measured slices (slice_data) are read from runs. The first call builds the runs from the
        samples already stored, in the same transaction; later calls do nothing. True when it
        started tracking."""
        if slice_seconds < 1:
            raise StoreError(f"slice_seconds must be at least 1, got {slice_seconds}")
        agreement = _norm(agreement)
        with self._tx() as conn:
            self._lock_runs(conn, [agreement])
            return self._track_locked(conn, agreement, slice_seconds)

    def track_slices_many(self, items: Sequence[tuple[str, int]], chunk: int = 200) -> int:
        """`track_slices` of many (agreement, slice_seconds) pairs: the pairs already tracked are
        found with one query, the others are started `chunk` to a transaction (a daemon
        configured with 10,000 agreements used to spend a transaction on each at start-up).
        Returns how many started tracking."""
        wanted = {(_norm(a), int(s)) for a, s in items}
        if any(s < 1 for _, s in wanted):
            raise StoreError("slice_seconds must be at least 1")
        g = sample_run_gaps.c
        with self._tx() as conn:
            tracked = {(a, int(s)) for a, s in conn.execute(select(g.agreement, g.gap))}
        todo = sorted(wanted - tracked)
        started = 0
        c = samples.c
        for i in range(0, len(todo), chunk):
            part = todo[i:i + chunk]
            names = sorted({a for a, _ in part})
            with self._tx() as conn:
                self._lock_runs(conn, names)
                # Under the locks: what is tracked now, and which agreements have samples yet.
                now_tracked = {(a, int(s)) for a, s in conn.execute(
                    select(g.agreement, g.gap).where(g.agreement.in_(names)))}
                with_samples = set(conn.execute(select(c.agreement).where(c.agreement.in_(names)).distinct())
                                   .scalars())
                fresh = [{"agreement": a, "gap": s} for a, s in part
                         if (a, s) not in now_tracked and a not in with_samples]
                if fresh:  # no sample to chain yet: just the rows, in one statement
                    conn.execute(sample_run_gaps.insert(), fresh)
                    started += len(fresh)
                started += sum(self._track_locked(conn, a, s) for a, s in part
                               if (a, s) not in now_tracked and a in with_samples)
        return started

    def _track_locked(self, conn: Connection, agreement: str, slice_seconds: int) -> bool:
        """track_slices' work, in the caller's transaction, the agreement's runs locked."""
        row = {"agreement": agreement, "gap": slice_seconds}
        if not self._insert_ignore(conn, sample_run_gaps, row, ("agreement", "gap")):
            return False
        c = samples.c
        # Streamed in (service, ts) order from the index: memory is one service's open run.
        # (on the statement: Connection.execution_options would make the INSERTs below
        # server-side cursors too, which psycopg refuses for executemany)
        rows = conn.execute(select(c.service, c.ts).where(c.agreement == agreement).order_by(c.service, c.ts)
                            .execution_options(yield_per=50_000))
        pending: list[dict[str, Any]] = []
        service: str | None = None
        t0 = t1 = 0.0
        for svc, ts in rows:
            if svc == service and ts - t1 <= slice_seconds:
                t1 = ts
                continue
            if service is not None:
                pending.append({"agreement": agreement, "service": service, "gap": slice_seconds,
                                "t0": t0, "t1": t1})
            service, t0, t1 = svc, ts, ts
            if len(pending) >= 10_000:
                conn.execute(sample_runs.insert(), pending)
                pending = []
        if service is not None:
            pending.append({"agreement": agreement, "service": service, "gap": slice_seconds, "t0": t0, "t1": t1})
        if pending:
            conn.execute(sample_runs.insert(), pending)
        return True

    def tracked_gaps(self, agreement: str) -> list[int]:
        """The gaps `agreement`'s sample runs are kept at (track_slices), ascending."""
        g = sample_run_gaps.c
        with self._tx() as conn:
            return [int(x) for x in conn.execute(select(g.gap).where(g.agreement == _norm(agreement)).order_by(g.gap))
                    .scalars()]

    @staticmethod
    def _lock_runs(conn: Connection, agreements: Sequence[str]) -> None:
        """PostgreSQL: serialise run changes per agreement (sorted: no deadlock). SQLite has one
        writer at a time already."""
        if conn.dialect.name == "postgresql":
            for a in sorted(set(agreements)):
                conn.execute(text("SELECT pg_advisory_xact_lock(:c, hashtext(:a))"), {"c": RUNS_LOCK_CLASS, "a": a})

    def _extend_runs(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add the timestamps of freshly inserted sample rows to the runs of every gap their
        agreement is tracked at (oracle.sample_runs.merge), in the caller's transaction."""
        g = sample_run_gaps.c
        agreements = sorted({r["agreement"] for r in rows})
        # Locked BEFORE reading which gaps are tracked: a track_slices committing in between
        # would otherwise chain the samples it saw and miss this batch's (PostgreSQL reads
        # committed data statement by statement).
        self._lock_runs(conn, agreements)
        tracked: dict[str, list[int]] = {}
        for a, gap in conn.execute(select(g.agreement, g.gap).where(g.agreement.in_(agreements))):
            tracked.setdefault(a, []).append(int(gap))
        if not tracked:
            return
        by_service: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            if r["agreement"] in tracked:
                by_service.setdefault((r["agreement"], r["service"]), []).append(float(r["ts"]))
        c = sample_runs.c
        updates: list[dict[str, Any]] = []
        deletes: list[int] = []
        inserts: list[dict[str, Any]] = []
        for agreement, gaps in tracked.items():
            services = {s: ts for (a, s), ts in by_service.items() if a == agreement}
            lo = min(min(ts) for ts in services.values())
            hi = max(max(ts) for ts in services.values())
            for gap in gaps:
                # Every stored run within `gap` of a new timestamp (and a few more: the widest range).
                existing: dict[str, list[tuple[int, float, float]]] = {}
                for rid, svc, t0, t1 in conn.execute(select(c.id, c.service, c.t0, c.t1).where(
                        c.agreement == agreement, c.service.in_(sorted(services)), c.gap == gap,
                        c.t1 >= lo - gap, c.t0 <= hi + gap)):
                    existing.setdefault(svc, []).append((rid, t0, t1))
                for svc, ts in services.items():
                    up, dels, ins = runs_.merge(existing.get(svc, []), ts, gap)
                    updates += [{"rid": rid, "a": t0, "b": t1} for rid, t0, t1 in up]
                    deletes += dels
                    inserts += [{"agreement": agreement, "service": svc, "gap": gap, "t0": t0, "t1": t1}
                                for t0, t1 in ins]
        for k in range(0, len(deletes), 10_000):  # runs joined by late samples; SQLite caps bound values
            conn.execute(delete(sample_runs).where(c.id.in_(deletes[k:k + 10_000])))
        if updates:  # one UPDATE per service and gap each batch: compiled once, the driver's executemany
            compiled = _RUN_UPDATE.get(conn.dialect.name)
            if compiled is None:
                compiled = _RUN_UPDATE[conn.dialect.name] = update(sample_runs).where(
                    c.id == bindparam("rid", type_=Integer())).values(
                    t0=bindparam("a", type_=Double()), t1=bindparam("b", type_=Double())).compile(dialect=conn.dialect)
            order: Sequence[str] = compiled.positiontup or ()
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(compiled.string, [tuple(u[k] for k in order) for u in updates]
                                   if compiled.positional else updates)
            finally:
                cursor.close()
        if inserts:
            conn.execute(sample_runs.insert(), inserts)

    def samples(self, agreement: str, service: str, start: float, end: float) -> list[Sample]:
        """Samples with start <= ts < end, oldest first."""
        c = samples.c
        query = (select(c.service, c.ts, c.ok, c.latency_ms, c.detail)
                 .where(c.agreement == _norm(agreement), c.service == service, c.ts >= start, c.ts < end)
                 .order_by(c.ts, c.id))
        with self._tx() as conn:
            return [Sample(r.service, r.ts, bool(r.ok), r.latency_ms, r.detail) for r in conn.execute(query)]

    def slice_verdicts(self, agreement: str, service: str, start: float, end: float, slice_seconds: int,
                       failure_threshold: int = 1) -> dict[int, bool]:
        """Per-slice verdicts of [start, end) computed in the database, without materialising
        the samples: slice index -> True (all checks ok) / False (a failed check). Absent index:
        no sample (not measured).

        With failure_threshold 1 this is one GROUP BY over an index-only range scan; with a
        higher threshold the ordered (ts, ok) rows are streamed through a cursor to count
        consecutive failures (same rule as `oracle.probes.apply_failure_threshold`).
        """
        c = samples.c
        where = (c.agreement == _norm(agreement), c.service == service, c.ts >= start, c.ts < end)
        with self._tx() as conn:
            if failure_threshold <= 1:
                idx = self._slice_index(conn, start, slice_seconds)
                # min(ok) over a slice: false as soon as one check failed.
                query = select(idx.label("i"), func.min(c.ok.cast(Integer)).label("all_ok")).where(
                    *where).group_by(text("1"))
                return {int(i): bool(ok) for i, ok in conn.execute(query)}
            verdicts: dict[int, bool] = {}
            streak = 0
            rows = conn.execution_options(yield_per=10_000).execute(
                select(c.ts, c.ok).where(*where).order_by(c.ts, c.id))
            for ts, ok in rows:
                streak = 0 if ok else streak + 1
                i = int((ts - start) // slice_seconds)
                verdicts[i] = verdicts.get(i, True) and (bool(ok) or streak < failure_threshold)
            return verdicts

    def slice_states(self, agreement: str, service: str, start: float, end: float, slice_seconds: int,
                     failure_threshold: int = 1) -> dict[int, tuple[bool, float | None]]:
        """What the evidence record needs per slice (oracle.evidence.build_record): slice index ->
        (verdict as in `slice_verdicts`, the slowest successful check's latency in ms or None).
        Absent index: no sample (not measured). One GROUP BY row per measured slice."""
        c = samples.c
        where = (c.agreement == _norm(agreement), c.service == service, c.ts >= start, c.ts < end)
        with self._tx() as conn:
            if failure_threshold <= 1:
                return {int(i): (bool(ok), None if ms is None else float(ms))
                        for i, ok, ms in self._slice_rows(conn, where, start, slice_seconds)}
            out: dict[int, tuple[bool, float | None]] = {}
            streak = 0
            rows = conn.execution_options(yield_per=10_000).execute(
                select(c.ts, c.ok, c.latency_ms).where(*where).order_by(c.ts, c.id))
            for ts, ok, ms in rows:
                streak = 0 if ok else streak + 1
                i = int((ts - start) // slice_seconds)
                verdict, slowest = out.get(i, (True, None))
                if ok and ms is not None:
                    slowest = ms if slowest is None else max(slowest, ms)
                out[i] = (verdict and (bool(ok) or streak < failure_threshold), slowest)
            return out

    def slice_data(self, agreement: str, service: str, start: float, end: float, slice_seconds: int,
                   failure_threshold: int = 1, latency: bool = False) -> SliceData:
        """The period's per-slice data for its evidence record (oracle.evidence.build_record), in
        the compact form: the measured slices as runs, the down slices, and (`latency`) the
        slowest successful check per slice. Equal to `SliceData.from_slices(slice_states(...))`
        (tests/oracle/test_period_fast_path.py checks it on random samples).

        Why: a month of one-minute slices is 43,200 GROUP BY rows, and turning them into Python
        rows cost most of the record's time. With threshold 1 and no latency wanted, the database
        returns the distinct slice indexes (plain integers through the driver's own cursor) and
        the few slices holding a failed check (an index seek on ix_samples_failed). A latency
        service needs its per-slice values (one GROUP BY row per slice, taken apart without
        per-slice tuples), and a failure threshold needs the samples in order (`slice_states`)."""
        if failure_threshold > 1:
            return SliceData.from_slices(self.slice_states(agreement, service, start, end, slice_seconds,
                                                           failure_threshold))
        c = samples.c
        with self._tx() as conn:
            if not latency:
                from_runs = self._slice_data_from_runs(conn, _norm(agreement), service, start, end, slice_seconds)
                if from_runs is not None:
                    return from_runs
            where = (c.agreement == _norm(agreement), c.service == service, c.ts >= start, c.ts < end)
            if latency:  # one row per measured slice, taken apart column by column
                rows = self._slice_rows(conn, where, start, slice_seconds)
                ids = list(map(itemgetter(0), rows))
                return SliceData(measured=index_runs(ids), down=frozenset(i for i, ok, _ in rows if not ok),
                                 latency=dict(zip(ids, map(itemgetter(2), rows), strict=True)))
            idx = self._slice_index(conn, start, slice_seconds)
            # Distinct indexes, sorted here (timsort of an almost sorted list is linear): the
            # runs cost one pass. A gaps-and-islands query (i - ROW_NUMBER() OVER (ORDER BY i))
            # returns fewer rows but its window function cost SQLite more than the rows it saves.
            measured = index_runs(map(itemgetter(0), _raw_rows(conn, select(idx).distinct().where(*where))))
            down = frozenset(int(i) for (i,) in _raw_rows(conn, select(idx).distinct().where(*where, c.ok.is_(False))))
        return SliceData(measured=measured, down=down)

    def _slice_data_from_runs(self, conn: Connection, agreement: str, service: str, start: float, end: float,
                              slice_seconds: int) -> SliceData | None:
        """slice_data (threshold 1, no latency) from the sample runs at the widest tracked gap
        <= slice_seconds (oracle.sample_runs says why that is exact); None when the agreement
        has no such gap tracked."""
        gap_q, runs_q, last_q, failed_q = _run_queries(conn)
        params: dict[str, Any] = {"a": agreement, "s": service, "lo": float(start), "hi": float(end),
                                  "L": slice_seconds}
        gap = _compiled_rows(conn, gap_q, params)[0][0]
        if gap is None:
            return None
        spans: list[tuple[int, int]] = []
        for t0, t1 in _compiled_rows(conn, runs_q, {**params, "gap": gap}):
            # A run crossing the period's end: its last sample inside the period, an index seek
            # (it belongs to this run, which holds every sample from t0 to t1; None: the run has
            # no sample in the period). A run crossing the start measures slice 0: its first
            # sample at or after the start follows one before it by at most gap <= slice_seconds.
            last = t1 if t1 < end else _compiled_rows(conn, last_q, params)[0][0]
            if last is None:
                continue
            spans.append(runs_.slice_span(max(t0, start), last, start, slice_seconds))
        down = frozenset(int((ts - start) // slice_seconds) for (ts,) in _compiled_rows(conn, failed_q, params))
        return SliceData(measured=runs_.join_spans(spans), down=down)

    def slice_data_many(self, requests: Sequence[DataRequest], workers: int = READ_WORKERS) -> list[SliceData]:
        """:meth:`slice_data` of several (agreement, service, period) at once, in that order, on
        `workers` threads with a connection each. The database does most of the work (SQLite's
        and psycopg's drivers release the GIL while a statement runs), so on a machine with
        several cores the services of a period end are read side by side."""
        if workers <= 1 or len(requests) <= 1:
            return [self.slice_data(*r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(workers, len(requests)), thread_name_prefix="store-read") as pool:
            return list(pool.map(lambda r: self.slice_data(*r), requests))

    def _slice_rows(self, conn: Connection, where: Sequence[Any], start: float,
                    slice_seconds: int) -> list[tuple[Any, ...]]:
        """(slice index, 1 if every check passed else 0, slowest successful check in ms or NULL)
        per measured slice: one GROUP BY row each."""
        c = samples.c
        idx = self._slice_index(conn, start, slice_seconds)
        ok_latency = case((c.ok.is_(True), c.latency_ms), else_=None)
        return _raw_rows(conn, select(idx.label("i"), func.min(c.ok.cast(Integer)).label("all_ok"),
                                      func.max(ok_latency).label("slowest")).where(*where).group_by(text("1")))

    @staticmethod
    def _slice_index(conn: Connection, start: float, slice_seconds: int) -> Any:
        """The slice index of a sample as SQL (ts >= start, so truncation is the floor; the
        numbers are ours, float and int, never input text)."""
        if conn.dialect.name == "postgresql":
            return literal_column(f"FLOOR((ts - {float(start)!r}) / {int(slice_seconds)})::bigint")
        return literal_column(f"CAST((ts - {float(start)!r}) / {int(slice_seconds)} AS INTEGER)")

    def latency_percentiles(self, agreement: str, service: str, start: float, end: float, slice_seconds: int,
                            maintenance: Sequence[Window] = (), percentiles: Sequence[int] = (50, 95, 99)
                            ) -> tuple[float | None, ...]:
        """Nearest-rank percentiles of the ok checks' latencies in [start, end), leaving out the
        slices that overlap a maintenance window, computed by the database (ORDER BY + OFFSET)
        so a month of samples is never loaded into Python."""
        c = samples.c
        where = [c.agreement == _norm(agreement), c.service == service, c.ts >= start, c.ts < end,
                 c.ok.is_(True), c.latency_ms.is_not(None)]
        # Maintenance slices as [a, b) ranges of whole slices (the same slices count_slices excludes).
        for first, last in index_runs(maintenance_slices(start, end, slice_seconds, maintenance)):
            a, b = start + first * slice_seconds, start + (last + 1) * slice_seconds
            where.append((c.ts < a) | (c.ts >= b))
        with self._tx() as conn:
            n = conn.execute(select(func.count()).where(*where)).scalar_one()
            out: list[float | None] = []
            for p in percentiles:
                if n == 0:
                    out.append(None)
                    continue
                rank = max(math.ceil(p / 100 * n), 1)
                out.append(conn.execute(select(c.latency_ms).where(*where).order_by(c.latency_ms)
                                        .offset(rank - 1).limit(1)).scalar_one())
            return tuple(out)

    def prune_samples(self, older_than_ts: float, *, now: float | None = None) -> int:
        """Delete samples with ts < older_than_ts; returns how many. Refuses to cut into the
        retention window (now - min_sample_retention_s): those samples may still be disputed."""
        now = time.time() if now is None else now
        floor = now - self.min_sample_retention_s
        if older_than_ts > floor:
            raise StoreError(f"refusing to prune samples newer than {floor:.0f} "
                             f"(retention {self.min_sample_retention_s:.0f} s); asked for {older_than_ts:.0f}")
        r, c = sample_runs.c, samples.c
        with self._tx() as conn:
            # Every tracked agreement's runs change: no writer may extend them from an older read.
            self._lock_runs(conn, list(conn.execute(select(sample_run_gaps.c.agreement).distinct()).scalars()))
            pruned = conn.execute(delete(samples).where(c.ts < older_than_ts)).rowcount
            # The runs follow the samples: a run wholly before the cut goes; a run crossing it now
            # starts at its first sample left (a chain without its head is still a chain).
            conn.execute(delete(sample_runs).where(r.t1 < older_than_ts))
            first_left = (select(func.min(c.ts)).where(c.agreement == r.agreement, c.service == r.service,
                                                       c.ts >= older_than_ts).scalar_subquery())
            conn.execute(update(sample_runs).where(r.t0 < older_than_ts).values(t0=first_left))
            return pruned

    # -- period results ------------------------------------------------------------------------

    def save_period_results(self, agreement: str, period: int, figures: Mapping[str, PeriodFigure],
                            *, computed_at: float | None = None) -> None:
        """Save one figure per service for a period; saving again replaces them (idempotent).

        Once the period's report is signed, the figures are what was attested: changing them
        then raises StoreError (saving the same figures again is fine).
        """
        agreement = _norm(agreement)
        computed_at = time.time() if computed_at is None else computed_at
        rows = [{"agreement": agreement, "period": period, "service": service, "computed_at": computed_at,
                 **{f: getattr(fig, f) for f in _FIGURE_FIELDS}, "missing_policy": "exclude"}
                for service, fig in figures.items()]
        if not rows:
            return
        with self._tx() as conn:
            state = conn.execute(select(reports.c.state).where(
                reports.c.agreement == agreement, reports.c.period == period)).scalar()
            if state is not None and state != "computed":
                current = self._results(conn, agreement, period)
                changed = [s for s, fig in figures.items() if s not in current or current[s].figure != fig]
                if changed:
                    raise StoreError(f"period {period} of {agreement} is already {state}: "
                                     f"refusing to change its figures for {changed}")
                return
            self._upsert(conn, period_results, rows, ("agreement", "period", "service"))

    def period_results(self, agreement: str, period: int) -> dict[str, StoredResult]:
        with self._tx() as conn:
            return self._results(conn, _norm(agreement), period)

    @staticmethod
    def _results(conn: Connection, agreement: str, period: int) -> dict[str, StoredResult]:
        c = period_results.c
        rows = conn.execute(select(period_results).where(c.agreement == agreement, c.period == period)
                            .order_by(c.service))
        out: dict[str, StoredResult] = {}
        for r in rows:
            m = r._mapping
            fields = {f: m[f] for f in _FIGURE_FIELDS}
            out[r.service] = StoredResult(PeriodFigure(**fields), m["computed_at"])
        return out

    def _upsert(self, conn: Connection, table: Table, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
            stmt = insert(table)
            updates = {k: stmt.excluded[k] for k in rows[0] if k not in keys}
            conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=updates), rows)
            return
        for row in rows:  # portable fallback for other databases
            where = [table.c[k] == row[k] for k in keys]
            if conn.execute(update(table).where(*where).values(**row)).rowcount == 0:
                conn.execute(table.insert().values(**row))

    @staticmethod
    def _insert_ignore(conn: Connection, table: Table, row: dict[str, Any], keys: tuple[str, ...]) -> bool:
        """Insert `row` unless a row with the same keys exists; True when it inserted."""
        dialect = conn.dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
            # RETURNING yields the row only when it went in: exact on both engines, where rowcount
            # is not (psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING).
            stmt = (insert(table).values(**row).on_conflict_do_nothing(index_elements=list(keys))
                    .returning(table.c[keys[0]]))
            return conn.execute(stmt).first() is not None
        if conn.execute(select(table.c[keys[0]]).where(*[table.c[k] == row[k] for k in keys])).first() is None:
            conn.execute(table.insert().values(**row))
            return True
        return False

    # -- evidence ------------------------------------------------------------------------------

    def save_evidence(self, agreement: str, period: int, root: str, bundle: str) -> str:
        """Keep the evidence bundle of a period; returns the root kept. Saving again before the
        report is signed replaces it (the figures may be recomputed); once signed, the bundle the
        signed root commits to is kept whatever is offered (returned unchanged, so the caller can
        see and log a difference), so the bundle served is always the one that was signed."""
        agreement = _norm(agreement)
        row = {"agreement": agreement, "period": period, "root": root, "bundle": bundle, "created_at": time.time()}
        with self._tx() as conn:
            state = conn.execute(select(reports.c.state).where(
                reports.c.agreement == agreement, reports.c.period == period)).scalar()
            if state is not None and state != "computed":
                current = conn.execute(select(evidence.c.root).where(
                    evidence.c.agreement == agreement, evidence.c.period == period)).scalar()
                if current is not None:
                    return str(current)
            self._upsert(conn, evidence, [row], ("agreement", "period"))
        return root

    def evidence(self, agreement: str, period: int) -> tuple[str, str] | None:
        """(root, bundle JSON text) of a period, or None."""
        c = evidence.c
        with self._tx() as conn:
            row = conn.execute(select(c.root, c.bundle).where(c.agreement == _norm(agreement),
                                                               c.period == period)).first()
        return None if row is None else (row.root, row.bundle)

    # -- reports -------------------------------------------------------------------------------

    def put_computed_report(self, agreement: str, period: int, payload: Any) -> Report:
        """Record a computed report (state 'computed'). Re-computing before signing replaces the
        payload; once signed, the same payload is accepted (idempotent) and a different one raises."""
        agreement = _norm(agreement)
        now = time.time()
        with self._tx() as conn:
            row = {"agreement": agreement, "period": period, "state": "computed", "payload": payload,
                   "updated_at": now}
            # "Insert unless present", so two processes racing here do not both insert.
            if self._insert_ignore(conn, reports, row, ("agreement", "period")):
                return self._report(conn, agreement, period)  # type: ignore[return-value]
            current = self._report(conn, agreement, period)
            assert current is not None
            if current.state == "computed":
                conn.execute(update(reports).where(reports.c.agreement == agreement, reports.c.period == period,
                                                   reports.c.state == "computed")
                             .values(payload=payload, updated_at=now))
                return self._report(conn, agreement, period)  # type: ignore[return-value]
            if current.payload == payload:
                return current
            raise IllegalTransitionError(f"report for period {period} of {agreement} is already "
                                         f"{current.state}: refusing a different payload")

    def transition_report(self, agreement: str, period: int, from_state: str, to_state: str, *,
                          signature: str | None = None, tx_hash: str | None = None) -> Report:
        """Move a report from `from_state` to `to_state`, atomically.

        Raises IllegalTransitionError when the move is not allowed, or when the report is not in
        `from_state` (another process moved it, or the caller's view is stale). 'signed' needs a
        signature, 'submitted' a tx_hash.
        """
        if to_state not in ALLOWED_TRANSITIONS.get(from_state, frozenset()):
            raise IllegalTransitionError(f"report transition {from_state} -> {to_state} is not allowed")
        if to_state == "signed" and not signature:
            raise IllegalTransitionError("moving a report to 'signed' needs its signature")
        if to_state == "submitted" and not tx_hash:
            raise IllegalTransitionError("moving a report to 'submitted' needs the transaction hash")
        agreement = _norm(agreement)
        values: dict[str, Any] = {"state": to_state, "updated_at": time.time()}
        if signature is not None:
            values["signature"] = signature
        if tx_hash is not None:
            values["tx_hash"] = tx_hash
        with self._tx() as conn:
            self._move_report(conn, agreement, period, from_state, values)
            return self._report(conn, agreement, period)  # type: ignore[return-value]

    def _move_report(self, conn: Any, agreement: str, period: int, from_state: str, values: dict[str, Any]) -> None:
        """One report's move inside `conn`'s transaction. The state check is in the WHERE clause,
        so two processes cannot both make the move; IllegalTransitionError when it did not apply."""
        c = reports.c
        moved = conn.execute(update(reports).where(c.agreement == agreement, c.period == period,
                                                   c.state == from_state).values(**values)).rowcount
        if moved != 1:
            current = self._report(conn, agreement, period)
            found = "no report" if current is None else f"it is {current.state}"
            raise IllegalTransitionError(f"report for period {period} of {agreement}: expected state "
                                         f"{from_state}, but {found}")

    def transition_reports(self, moves: Sequence[tuple[str, int, str]], to_state: str, *,
                           tx_hash: str | None = None) -> None:
        """`transition_report` for many reports in ONE transaction (a batch's items): each
        (agreement, period, from_state) moved to `to_state` by a conditional update, all or none
        (IllegalTransitionError names the first report not in its expected state, and nothing
        moves). One commit instead of one per report: the sender's pass at 10,000 agreements."""
        for _, _, from_state in moves:
            if to_state not in ALLOWED_TRANSITIONS.get(from_state, frozenset()):
                raise IllegalTransitionError(f"report transition {from_state} -> {to_state} is not allowed")
        if to_state == "signed":
            raise IllegalTransitionError("moving a report to 'signed' needs its signature: use transition_report")
        if to_state == "submitted" and not tx_hash:
            raise IllegalTransitionError("moving a report to 'submitted' needs the transaction hash")
        if not moves:
            return
        values: dict[str, Any] = {"state": to_state, "updated_at": time.time()}
        if tx_hash is not None:
            values["tx_hash"] = tx_hash
        with self._tx() as conn:
            for agreement, period, from_state in moves:
                self._move_report(conn, _norm(agreement), period, from_state, values)

    def report(self, agreement: str, period: int) -> Report | None:
        with self._tx() as conn:
            return self._report(conn, _norm(agreement), period)

    def reports(self, state: str | None = None) -> list[Report]:
        """All reports (or those in `state`), e.g. 'signed'/'submitted' ones to resume after a crash."""
        query = select(reports).order_by(reports.c.agreement, reports.c.period)
        if state is not None:
            query = query.where(reports.c.state == state)
        with self._tx() as conn:
            return [_to_report(r) for r in conn.execute(query)]

    def unconfirmed_reports(self, agreement: str) -> list[Report]:
        """The agreement's reports signed or submitted but not confirmed, oldest period first."""
        query = (select(reports).where(reports.c.agreement == _norm(agreement),
                                       reports.c.state.in_(("signed", "submitted")))
                 .order_by(reports.c.period))
        with self._tx() as conn:
            return [_to_report(r) for r in conn.execute(query)]

    @staticmethod
    def _report(conn: Connection, agreement: str, period: int) -> Report | None:
        row = conn.execute(select(reports).where(reports.c.agreement == agreement,
                                                 reports.c.period == period)).first()
        return None if row is None else _to_report(row)


def _raw_rows(conn: Connection, query: Any) -> list[tuple[Any, ...]]:
    """Rows of `query` as plain tuples from the driver's own cursor, in the transaction of
    `conn`: tens of thousands of per-slice rows cost several times more as SQLAlchemy rows.
    Only for queries whose columns need no type conversion (integers, floats, NULL)."""
    compiled = query.compile(dialect=conn.dialect)
    return _compiled_rows(conn, compiled, compiled.construct_params())


def _compiled_rows(conn: Connection, compiled: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Rows of an already compiled statement with these bound values (as `_raw_rows`)."""
    args: Any = tuple(params[k] for k in compiled.positiontup) if compiled.positional else dict(params)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


_RUN_UPDATE: dict[str, Any] = {}  # dialect name -> the compiled run UPDATE of Store._extend_runs
_RUN_QUERIES: dict[str, tuple[Any, ...]] = {}  # dialect name -> the compiled statements of _run_queries


def _run_queries(conn: Connection) -> tuple[Any, ...]:
    """The statements of Store._slice_data_from_runs, compiled once per dialect: building and
    compiling them cost several times more than running them (a service-month is 3-4 index
    seeks). Bound values: a(greement), s(ervice), lo/hi (period), L (slice length), gap."""
    name = conn.dialect.name
    compiled = _RUN_QUERIES.get(name)
    if compiled is None:
        g, r, c = sample_run_gaps.c, sample_runs.c, samples.c
        a, s = bindparam("a", type_=String()), bindparam("s", type_=String())
        lo: Any = bindparam("lo", type_=Double())
        hi: Any = bindparam("hi", type_=Double())
        own = (c.agreement == a, c.service == s, c.ts >= lo, c.ts < hi)
        compiled = tuple(q.compile(dialect=conn.dialect) for q in (
            select(func.max(g.gap)).where(g.agreement == a, g.gap <= bindparam("L", type_=Integer())),
            select(r.t0, r.t1).where(r.agreement == a, r.service == s, r.gap == bindparam("gap", type_=Integer()),
                                     r.t1 >= lo, r.t0 < hi).order_by(r.t1),
            select(func.max(c.ts)).where(*own),
            select(c.ts).where(*own, c.ok.is_(False))))
        _RUN_QUERIES[name] = compiled
    return compiled


def _to_report(row: Any) -> Report:
    return Report(row.agreement, row.period, row.state, row.payload, row.signature, row.tx_hash, row.updated_at)


