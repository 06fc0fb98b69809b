"""The event index: what the indexer read from the chain, for the API and the dashboard.

SQLAlchemy 2 Core over SQLite by default (one file, WAL journal) or PostgreSQL through the same
code (`postgresql://...` URLs use psycopg 3), like the oracle's store. Every table is prefixed
`idx_` so the index can share a database with the oracle's tables; its own `idx_schema_version`
table versions it.

* idx_cursor: one row: the chain id and factory indexed, the last indexed block and its hash,
  the chain head last seen and the last error;
* idx_blocks: hashes of recently indexed blocks (range ends and blocks with events), to find
  where a reorganised or restarted chain parts from what was indexed;
* idx_agreements: per agreement its terms (read once), its current snapshot (refreshed after
  each of its events) and running totals (recomputed from the rows below);
* idx_events: every log of the factory and of every agreement, decoded generically to JSON
  (events the ABI does not know are kept raw: topics and data), so new contract events are
  recorded before anyone writes code for them;
* idx_periods: one row per settled period (values, per-service credits, paid credit, fee,
  dispute state) and idx_withdrawals: one row per Withdrawn event. Both are derived from
  idx_events (see `derive`): after every write and every rollback they are rebuilt for the
  agreements concerned, so a dispute resolved in a block that a reorganisation removes is
  undone with it.

Amounts are kept as decimal strings: uint128 values do not fit SQLite's 64-bit integers.
Every row derived from a log carries its block number, so a rollback deletes by block number.
Writes of one indexed block range happen in one transaction: a crash leaves the previous cursor
and the whole range is read again, never half of it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from .credit import service_credit
from .database import error_reason, open_engine, transaction
from .terms import Kind, Terms
from .versioned_schema import VersionedSchema, version_table

SCHEMA_VERSION = 2  # 2: idx_periods.measured_ppm, idx_withdrawals.recipient (contracts of review 2)
STATUSES = ("Pending", "Active", "Ended", "Terminated", "Cancelled", "Expired")
KEEP_BLOCK_HASHES = 512  # how far back a reorganisation can be matched before a full re-index


class IndexStoreError(RuntimeError):
    """A database operation on the index failed; the message says why."""


class SchemaTooNewError(IndexStoreError):
    """The index was written by a newer smartsla."""


metadata = MetaData()

idx_schema_version = version_table(metadata, "idx_schema_version")

idx_cursor = Table(
    "idx_cursor", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("factory", String(42), nullable=False),
    Column("start_block", BigInteger, nullable=False),
    Column("last_block", BigInteger),  # NULL: nothing indexed yet
    Column("last_hash", String(66)),
    Column("last_timestamp", BigInteger),
    Column("head_block", BigInteger),
    Column("head_timestamp", BigInteger),
    Column("head_seen_at", Double),
    Column("last_error", Text),
    Column("reorgs", Integer, nullable=False, default=0),
    Column("updated_at", Double, nullable=False),
)

idx_blocks = Table(
    "idx_blocks", metadata,
    Column("number", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(66), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

idx_agreements = Table(
    "idx_agreements", metadata,
    Column("address", String(42), primary_key=True),
    Column("factory", String(42), nullable=False),
    Column("created_block", BigInteger, nullable=False),
    Column("created_tx", String(66), nullable=False),
    Column("created_timestamp", BigInteger, nullable=False),
    Column("provider", String(42), nullable=False),
    Column("customer", String(42), nullable=False),
    Column("asset", String(42), nullable=False),
    Column("terms", JSON, nullable=False),  # Terms.model_dump(mode="json")
    Column("start", BigInteger, nullable=False),
    Column("period_length", BigInteger, nullable=False),
    Column("period_count", Integer, nullable=False),
    Column("fee_per_period", String(40), nullable=False),
    Column("collateral", String(40), nullable=False),
    Column("credit_cap_bps", Integer, nullable=False),
    # snapshot, as of snapshot_block
    Column("status", String(16), nullable=False),
    Column("settled_periods", Integer, nullable=False, default=0),
    Column("fees_deposited", Boolean, nullable=False, default=False),
    Column("collateral_deposited", Boolean, nullable=False, default=False),
    Column("disaster_occurred", Boolean, nullable=False, default=False),
    Column("fees_escrowed", String(40), nullable=False, default="0"),
    Column("collateral_escrowed", String(40), nullable=False, default="0"),
    Column("owed_to_customer", String(40), nullable=False, default="0"),
    Column("owed_to_provider", String(40), nullable=False, default="0"),
    Column("pending_to_customer", String(40), nullable=False, default="0"),  # waiting for a dispute window
    Column("pending_to_provider", String(40), nullable=False, default="0"),
    Column("pending_periods", Integer, nullable=False, default=0),
    Column("snapshot_block", BigInteger),  # NULL or above the cursor: stale, refresh
    # totals recomputed from idx_periods and idx_withdrawals
    Column("credits_earned", String(40), nullable=False, default="0"),  # after the cap, before the collateral limit
    Column("credits_paid", String(40), nullable=False, default="0"),
    Column("shortfall", String(40), nullable=False, default="0"),
    Column("fees_earned", String(40), nullable=False, default="0"),
    Column("withdrawn_customer", String(40), nullable=False, default="0"),
    Column("withdrawn_provider", String(40), nullable=False, default="0"),
    Column("updated_at", Double, nullable=False),
    Index("ix_idx_agreements_provider", "provider", "created_block"),
    Index("ix_idx_agreements_customer", "customer", "created_block"),
    Index("ix_idx_agreements_status", "status"),
    Index("ix_idx_agreements_created", "created_block"),
)

idx_periods = Table(
    "idx_periods", metadata,
    Column("id", Integer, primary_key=True),
    Column("agreement", String(42), nullable=False),
    Column("period", Integer, nullable=False),
    Column("values_ppm", JSON, nullable=False),
    Column("service_credits", JSON, nullable=False),  # decimal strings
    Column("credit_paid", String(40), nullable=False),
    Column("fee_earned", String(40), nullable=False),
    Column("shortfall", String(40), nullable=False, default="0"),
    Column("disaster", Boolean, nullable=False),
    # share of the period's countable time the oracles measured (PeriodSettled.measuredPpm)
    Column("measured_ppm", Integer, nullable=False, default=1_000_000),
    # final | pending (inside the dispute window) | disputed
    Column("state", String(16), nullable=False, default="final"),
    Column("final_after", BigInteger),  # end of the dispute window, when there is one
    Column("disputed_by", String(42)),
    Column("resolved", Boolean, nullable=False, default=False),  # corrected by the arbiter
    Column("previous_credit", String(40)),  # the credit before the arbiter's correction
    Column("block_number", BigInteger, nullable=False),  # of the PeriodSettled event
    Column("tx_hash", String(66), nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    UniqueConstraint("agreement", "period", name="uq_idx_periods"),
    Index("ix_idx_periods_block", "block_number"),
)

idx_events = Table(
    "idx_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("address", String(42), nullable=False),  # the emitting contract
    Column("agreement", String(42)),  # the agreement it concerns (for AgreementCreated: the new one)
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", String(66), nullable=False),
    Column("tx_hash", String(66), nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("name", String(64), nullable=False),  # "Unknown" when the ABI has no such event
    Column("topic0", String(66)),
    Column("args", JSON, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    UniqueConstraint("block_number", "log_index", name="uq_idx_events"),
    Index("ix_idx_events_agreement", "agreement", "block_number", "log_index"),
    Index("ix_idx_events_name", "name"),
)

idx_withdrawals = Table(
    "idx_withdrawals", metadata,
    Column("id", Integer, primary_key=True),
    Column("agreement", String(42), nullable=False),
    Column("party", String(42), nullable=False),
    Column("role", String(16), nullable=False),  # customer | provider | other
    Column("recipient", String(42)),  # where it was paid (withdrawTo), the party itself by default
    Column("amount", String(40), nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("tx_hash", String(66), nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    UniqueConstraint("block_number", "log_index", name="uq_idx_withdrawals"),
    Index("ix_idx_withdrawals_agreement", "agreement"),
)

DERIVED = (idx_events, idx_periods, idx_withdrawals)


def _upgrade_to_2(conn: Connection) -> None:
    """idx_periods.measured_ppm, idx_withdrawals.recipient (the contracts of review 2)."""
    conn.execute(text("ALTER TABLE idx_periods ADD COLUMN measured_ppm INTEGER NOT NULL DEFAULT 1000000"))
    conn.execute(text("ALTER TABLE idx_withdrawals ADD COLUMN recipient VARCHAR(42)"))


SCHEMA = VersionedSchema(
    component="event index", owner="smartsla", metadata=metadata, table=idx_schema_version,
    version=SCHEMA_VERSION, upgrades={2: _upgrade_to_2}, error=IndexStoreError, too_new=SchemaTooNewError,
)


# ---------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """Everything read from one block range, written in one transaction."""

    from_block: int
    to_block: int
    to_hash: str
    to_timestamp: int
    blocks: dict[int, tuple[str, int]] = field(default_factory=dict)  # number -> (hash, timestamp)
    agreements: list[dict[str, Any]] = field(default_factory=list)  # new idx_agreements rows
    events: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)  # address -> snapshot columns
    head_block: int | None = None
    head_timestamp: int | None = None


def _sum(values: Iterable[str | int]) -> str:
    return str(sum(int(v) for v in values))


class _SqliteReads:
    """The reads of every status request and agreement page, on plain sqlite3 connections.

    Through SQLAlchemy Core these reads cost about 0.45 ms of CPU a request (pool checkout with
    its reset, BEGIN event, statement building and cache lookup, result proxy) against ~0.05 ms
    here: they were the largest part of the status endpoint's time (profile: bench/api_bench.py
    --profile). Same SQL, same snapshot rules (each call is one read transaction), and the
    values pass through the very result processors of the tables' SQLAlchemy types (JSON text to
    objects, 0/1 to booleans), so a row read here equals the one read through the engine (test:
    test_fast_reads_equal_the_engine_s). Read-only (`PRAGMA query_only`); writes stay on the
    engine. Connections are kept in a small idle list: the event loop uses one at a time, and
    the few threads that read at once take their own."""

    KEEP_IDLE = 8

    def __init__(self, engine: Engine, path: str, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_ms = int(busy_timeout_s * 1000)
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        dialect = engine.dialect
        self.columns: dict[str, list[tuple[str, Callable[[Any], Any] | None]]] = {}
        self.select: dict[str, str] = {}
        for table in (idx_cursor, idx_agreements, idx_periods, idx_events, idx_withdrawals):
            cols: list[tuple[str, Callable[[Any], Any] | None]] = [
                (c.name, c.type.dialect_impl(dialect).result_processor(dialect, None)) for c in table.columns]
            self.columns[table.name] = cols
            self.select[table.name] = f"SELECT {', '.join(f'{table.name}.{n}' for n, _ in cols)} FROM {table.name}"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={self.busy_ms}")
        conn.execute("PRAGMA query_only=1")
        return conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction (one snapshot of the file) on an idle connection."""
        try:
            conn = self._idle.pop()  # list.pop/append are atomic: no lock needed
        except IndexError:
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise IndexStoreError(str(exc)) from exc
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.close()  # whatever went wrong, this connection is not reused
            if isinstance(exc, sqlite3.Error):
                raise IndexStoreError(str(exc)) from exc
            raise
        if self._closed or len(self._idle) >= self.KEEP_IDLE:
            conn.close()
        else:
            self._idle.append(conn)

    def rows(self, conn: sqlite3.Connection, table: str, tail: str, params: Sequence[Any] = ()
             ) -> list[dict[str, Any]]:
        cols = self.columns[table]
        out = []
        for values in conn.execute(f"{self.select[table]} {tail}", params):
            out.append({name: (value if proc is None or value is None else proc(value))
                        for (name, proc), value in zip(cols, values, strict=True)})
        return out

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class IndexStore:
    """Open with `IndexStore.open(url)`; close with `close()` or use it as a context manager."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._fast: _SqliteReads | None = None

    @classmethod
    def open(cls, url: str, *, busy_timeout_s: float = 10.0, fast_reads: bool = True) -> IndexStore:
        """Create the schema or check its version. `url`: an SQLAlchemy URL or an SQLite file path.
        `fast_reads`: an SQLite file's hot reads on plain sqlite3 connections (_SqliteReads);
        False reads everything through the engine (the reference the fast reads are tested against)."""
        # threads: the API reads from worker threads
        engine = open_engine(url, what="index", error=IndexStoreError, busy_timeout_s=busy_timeout_s,
                             synchronous="NORMAL", foreign_keys=False, threads=True, pg_pre_ping=True)
        store = cls(engine)
        try:
            store._init_schema()
        except BaseException:
            engine.dispose()
            raise
        path = engine.url.database
        if fast_reads and engine.dialect.name == "sqlite" and path and path != ":memory:" \
                and not path.startswith("file:"):
            store._fast = _SqliteReads(engine, path, busy_timeout_s)
        return store

    def _init_schema(self) -> None:
        with self._tx() as conn:
            SCHEMA.ensure(conn)

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        self.engine.dispose()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> contextlib.AbstractContextManager[Connection]:
        return transaction(self.engine, IndexStoreError)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise IndexStoreError(error_reason(exc)) from exc

    # ------------------------------------------------------------------ cursor
    def cursor(self) -> dict[str, Any] | None:
        if self._fast is not None:
            with self._fast.read() as raw:
                found = self._fast.rows(raw, "idx_cursor", "WHERE id = 1")
            return found[0] if found else None
        with self._read() as conn:
            row = conn.execute(select(idx_cursor).where(idx_cursor.c.id == 1)).mappings().first()
        return dict(row) if row else None

    def init_cursor(self, chain_id: int, factory: str, start_block: int) -> dict[str, Any]:
        """Start indexing `factory` on `chain_id`, or check that this index is about them."""
        with self._tx() as conn:
            row = conn.execute(select(idx_cursor).where(idx_cursor.c.id == 1)).mappings().first()
            if row is None:
                conn.execute(idx_cursor.insert().values(id=1, chain_id=chain_id, factory=factory,
                                                        start_block=start_block, reorgs=0, updated_at=time.time()))
            elif row["chain_id"] != chain_id or row["factory"].lower() != factory.lower():
                raise IndexStoreError(
                    f"this index holds factory {row['factory']} on chain id {row['chain_id']}, not {factory} on "
                    f"chain id {chain_id}: use another database")
        cursor = self.cursor()
        assert cursor is not None
        return cursor

    def note_head(self, head_block: int, head_timestamp: int, error: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(update(idx_cursor).where(idx_cursor.c.id == 1).values(
                head_block=head_block, head_timestamp=head_timestamp, head_seen_at=time.time(), last_error=error,
                updated_at=time.time()))

    def note_error(self, error: str | None) -> None:
        with self._tx() as conn:
            conn.execute(update(idx_cursor).where(idx_cursor.c.id == 1).values(last_error=error,
                                                                               updated_at=time.time()))

    def recent_blocks(self, limit: int = KEEP_BLOCK_HASHES) -> list[tuple[int, str]]:
        with self._read() as conn:
            rows = conn.execute(select(idx_blocks.c.number, idx_blocks.c.hash)
                                .order_by(idx_blocks.c.number.desc()).limit(limit)).all()
        return [(int(n), str(h)) for n, h in rows]

    def known_agreements(self) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(select(idx_agreements.c.address).order_by(idx_agreements.c.created_block)
                                     ).scalars())

    def stale_agreements(self, up_to_block: int) -> list[str]:
        """Agreements whose snapshot was read after `up_to_block` (rolled back) or never."""
        with self._read() as conn:
            return list(conn.execute(select(idx_agreements.c.address).where(
                (idx_agreements.c.snapshot_block.is_(None)) | (idx_agreements.c.snapshot_block > up_to_block)
            )).scalars())

    # ------------------------------------------------------------------ writing
    def apply(self, batch: Batch) -> None:
        """Write one block range and move the cursor to its end, in one transaction."""
        now = time.time()
        with self._tx() as conn:
            cur = conn.execute(select(idx_cursor.c.last_block).where(idx_cursor.c.id == 1)).scalar()
            if cur is not None and batch.from_block != cur + 1:
                raise IndexStoreError(f"batch starts at block {batch.from_block}, the index is at {cur}")
            for row in batch.agreements:
                conn.execute(idx_agreements.insert().values(**row, updated_at=now))
            if batch.events:
                conn.execute(idx_events.insert(), batch.events)
            for address, snap in batch.snapshots.items():
                conn.execute(update(idx_agreements).where(idx_agreements.c.address == address)
                             .values(**snap, snapshot_block=batch.to_block, updated_at=now))
            touched = {e["agreement"] for e in batch.events if e.get("agreement") and e["name"] in DERIVING}
            self._rederive(conn, touched)
            blocks = dict(batch.blocks)
            blocks[batch.to_block] = (batch.to_hash, batch.to_timestamp)
            existing = set(conn.execute(select(idx_blocks.c.number).where(
                idx_blocks.c.number.in_(list(blocks)))).scalars())
            new_blocks = [{"number": n, "hash": h, "timestamp": ts} for n, (h, ts) in blocks.items()
                          if n not in existing]
            if new_blocks:
                conn.execute(idx_blocks.insert(), new_blocks)
            # keep the newest KEEP_BLOCK_HASHES hashes
            cutoff = conn.execute(select(idx_blocks.c.number).order_by(idx_blocks.c.number.desc())
                                  .offset(KEEP_BLOCK_HASHES).limit(1)).scalar()
            if cutoff is not None:
                conn.execute(delete(idx_blocks).where(idx_blocks.c.number <= cutoff))
            values: dict[str, Any] = dict(last_block=batch.to_block, last_hash=batch.to_hash,
                                          last_timestamp=batch.to_timestamp, last_error=None, updated_at=now)
            if batch.head_block is not None:
                values.update(head_block=batch.head_block, head_timestamp=batch.head_timestamp, head_seen_at=now)
            conn.execute(update(idx_cursor).where(idx_cursor.c.id == 1).values(**values))

    def update_snapshots(self, snapshots: dict[str, dict[str, Any]], block: int) -> None:
        """Snapshots read at `block` (refreshing stale ones after a rollback)."""
        with self._tx() as conn:
            for address, snap in snapshots.items():
                conn.execute(update(idx_agreements).where(idx_agreements.c.address == address)
                             .values(**snap, snapshot_block=block, updated_at=time.time()))

    def rollback_to(self, block: int | None) -> int:
        """Forget everything indexed after `block` (None: everything); returns the rows deleted.
        Derived rows are rebuilt from the events left; agreements whose snapshot was read later
        become stale, to be read again."""
        after = -1 if block is None else block
        deleted = 0
        with self._tx() as conn:
            touched = set(conn.execute(select(idx_events.c.agreement).where(
                idx_events.c.block_number > after, idx_events.c.agreement.is_not(None))).scalars())
            for table in DERIVED:
                deleted += conn.execute(delete(table).where(table.c.block_number > after)).rowcount or 0
            deleted += conn.execute(delete(idx_agreements).where(idx_agreements.c.created_block > after)).rowcount or 0
            conn.execute(delete(idx_blocks).where(idx_blocks.c.number > after))
            self._rederive(conn, touched)
            last = None if block is None else conn.execute(
                select(idx_blocks.c.hash, idx_blocks.c.timestamp).where(idx_blocks.c.number == block)).first()
            conn.execute(update(idx_cursor).where(idx_cursor.c.id == 1).values(
                last_block=block, last_hash=last[0] if last else None, last_timestamp=last[1] if last else None,
                reorgs=idx_cursor.c.reorgs + 1, updated_at=time.time()))
        return deleted

    def _rederive(self, conn: Connection, addresses: Iterable[str]) -> None:
        """Rebuild idx_periods and idx_withdrawals of `addresses` from their events, then totals."""
        for address in sorted(addresses):
            terms_json = conn.execute(select(idx_agreements.c.terms).where(
                idx_agreements.c.address == address)).scalar()
            conn.execute(delete(idx_periods).where(idx_periods.c.agreement == address))
            conn.execute(delete(idx_withdrawals).where(idx_withdrawals.c.agreement == address))
            if terms_json is None:  # the agreement itself was rolled back
                continue
            events = conn.execute(select(idx_events).where(
                idx_events.c.agreement == address, idx_events.c.name.in_(DERIVING)).order_by(
                idx_events.c.block_number, idx_events.c.log_index)).mappings().all()
            periods, withdrawals = derive(address, Terms.model_validate(terms_json), [dict(e) for e in events])
            if periods:
                conn.execute(idx_periods.insert(), periods)
            if withdrawals:
                conn.execute(idx_withdrawals.insert(), withdrawals)
        self._recompute_totals(conn, addresses)

    def _recompute_totals(self, conn: Connection, addresses: Iterable[str]) -> None:
        for address in addresses:
            periods = conn.execute(select(idx_periods.c.credit_paid, idx_periods.c.shortfall,
                                          idx_periods.c.fee_earned).where(idx_periods.c.agreement == address)).all()
            withdrawals = conn.execute(select(idx_withdrawals.c.role, idx_withdrawals.c.amount).where(
                idx_withdrawals.c.agreement == address)).all()
            conn.execute(update(idx_agreements).where(idx_agreements.c.address == address).values(
                credits_paid=_sum(p[0] for p in periods),
                shortfall=_sum(p[1] for p in periods),
                credits_earned=str(sum(int(p[0]) + int(p[1]) for p in periods)),
                fees_earned=_sum(p[2] for p in periods),
                withdrawn_customer=_sum(w[1] for w in withdrawals if w[0] == "customer"),
                withdrawn_provider=_sum(w[1] for w in withdrawals if w[0] == "provider"),
            ))

    # ------------------------------------------------------------------ reading
    def list_agreements(self, *, provider: str | None = None, customer: str | None = None,
                        status: str | None = None, limit: int = 50, offset: int = 0
                        ) -> tuple[list[dict[str, Any]], int]:
        conds = []
        if provider:
            conds.append(idx_agreements.c.provider == provider)
        if customer:
            conds.append(idx_agreements.c.customer == customer)
        if status:
            conds.append(idx_agreements.c.status == status)
        if self._fast is not None:  # the same query on the sqlite3 reader (_SqliteReads)
            given = [(n, v) for n, v in (("provider", provider), ("customer", customer), ("status", status)) if v]
            where = ("WHERE " + " AND ".join(f"{n} = ?" for n, _ in given)) if given else ""
            values = [v for _, v in given]
            with self._fast.read() as raw:
                count = raw.execute(f"SELECT count(*) FROM idx_agreements {where}", values).fetchone()[0]
                found = self._fast.rows(raw, "idx_agreements", f"{where} ORDER BY created_block DESC, address "
                                        "LIMIT ? OFFSET ?", (*values, limit, offset))
            return found, int(count)
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(idx_agreements).where(*conds)).scalar() or 0
            rows = conn.execute(select(idx_agreements).where(*conds)
                                .order_by(idx_agreements.c.created_block.desc(), idx_agreements.c.address)
                                .limit(limit).offset(offset)).mappings().all()
        return [dict(r) for r in rows], int(total)

    def all_agreements_of(self, *, provider: str | None = None, customer: str | None = None,
                          limit: int = 1000) -> list[dict[str, Any]]:
        rows, _ = self.list_agreements(provider=provider, customer=customer, limit=limit)
        return rows

    def agreement(self, address: str) -> dict[str, Any] | None:
        if self._fast is not None:
            with self._fast.read() as raw:
                found = self._fast.rows(raw, "idx_agreements", "WHERE address = ?", (address,))
            return found[0] if found else None
        with self._read() as conn:
            row = conn.execute(select(idx_agreements).where(idx_agreements.c.address == address)).mappings().first()
        return dict(row) if row else None

    def agreement_and_cursor(self, address: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The agreement's row and the cursor (for the chain's time) on one connection: the
        status endpoint's whole read (two connection checkouts cost it a third of its time)."""
        if self._fast is not None:
            with self._fast.read() as raw:
                cursors = self._fast.rows(raw, "idx_cursor", "WHERE id = 1")
                rows = self._fast.rows(raw, "idx_agreements", "WHERE address = ?", (address,))
            return (rows[0] if rows else None), (cursors[0] if cursors else None)
        with self._read() as conn:
            cur = conn.execute(select(idx_cursor).where(idx_cursor.c.id == 1)).mappings().first()
            row = conn.execute(select(idx_agreements).where(idx_agreements.c.address == address)).mappings().first()
        return (dict(row) if row else None), (dict(cur) if cur else None)

    def agreement_page(self, address: str, cached: Callable[[tuple[Any, ...]], bool], *,
                       maintenance_words: Sequence[str], dispute_words: Sequence[str], events_limit: int = 30,
                       withdrawals_limit: int = 200) -> dict[str, Any] | None:
        """Everything the dashboard's agreement page reads, on one connection (it used eight).

        The change key (see _page_key: the agreement's row, the count and newest id of its events,
        the cursor's reorg count) is read FIRST; `cached(key)` says whether the caller holds the
        lists for that key, and only then are periods, events and withdrawals skipped. Reading
        the key before the data means data can only be newer than its key, never older: a later
        request with a newer key reloads."""
        if self._fast is not None:
            return self._fast_agreement_page(address, cached, maintenance_words, dispute_words, events_limit,
                                             withdrawals_limit)
        with self._read() as conn:
            cur = conn.execute(select(idx_cursor).where(idx_cursor.c.id == 1)).mappings().first()
            row = conn.execute(select(idx_agreements).where(idx_agreements.c.address == address)).mappings().first()
            if row is None:
                return None
            cursor = dict(cur) if cur else None
            stats = conn.execute(select(func.count(), func.max(idx_events.c.id)).where(
                idx_events.c.agreement == address)).one()
            key = self._page_key(cursor, dict(row), (int(stats[0]), stats[1]))
            out: dict[str, Any] = {"cursor": cursor, "row": dict(row), "key": key, "loaded": False}
            if cached(key):
                return out
            periods = conn.execute(select(idx_periods).where(idx_periods.c.agreement == address)
                                   .order_by(idx_periods.c.period)).mappings().all()

            def named(words: Sequence[str]) -> list[dict[str, Any]]:
                conds = [idx_events.c.name.ilike(f"%{w}%") for w in words]
                return [dict(r) for r in conn.execute(
                    select(idx_events).where(idx_events.c.agreement == address, or_(*conds))
                    .order_by(idx_events.c.block_number, idx_events.c.log_index)).mappings()]

            events_total = conn.execute(select(func.count()).select_from(idx_events)
                                        .where(idx_events.c.agreement == address)).scalar() or 0
            events = conn.execute(select(idx_events).where(idx_events.c.agreement == address).order_by(
                idx_events.c.block_number.desc(), idx_events.c.log_index.desc()).limit(events_limit)).mappings().all()
            withdrawals = conn.execute(select(idx_withdrawals).where(idx_withdrawals.c.agreement == address).order_by(
                idx_withdrawals.c.block_number, idx_withdrawals.c.log_index).limit(withdrawals_limit)).mappings().all()
            out.update(loaded=True, periods=[dict(r) for r in periods], maintenance=named(maintenance_words),
                       disputes=named(dispute_words), events=[dict(r) for r in events],
                       events_total=int(events_total), withdrawals=[dict(r) for r in withdrawals])
        return out

    @staticmethod
    def _page_key(cursor: dict[str, Any] | None, row: dict[str, Any], events: tuple[int, Any]) -> tuple[Any, ...]:
        """What an agreement page's kept parts are derived from, and nothing else: every column of
        its row but the immutable terms (status, balances, totals, snapshot stamp), the count and
        newest id of its events (its periods, disputes and withdrawals are derived from them) and
        the cursor's reorg count (a rollback rebuilds derived rows, and ids may then be reused).
        Not the cursor's block or stamp: the indexer moves them on every poll (each second), and
        a key holding them made every page render again each second, whatever changed."""
        return (None if cursor is None else cursor["reorgs"], events,
                tuple(v for k, v in row.items() if k != "terms"))

    def _fast_agreement_page(self, address: str, cached: Callable[[tuple[Any, ...]], bool],
                             maintenance_words: Sequence[str], dispute_words: Sequence[str], events_limit: int,
                             withdrawals_limit: int) -> dict[str, Any] | None:
        """agreement_page on the sqlite3 reader: the same queries in one read transaction."""
        fast = self._fast
        assert fast is not None
        with fast.read() as raw:
            cursors = fast.rows(raw, "idx_cursor", "WHERE id = 1")
            rows = fast.rows(raw, "idx_agreements", "WHERE address = ?", (address,))
            if not rows:
                return None
            cursor, row = (cursors[0] if cursors else None), rows[0]
            count, newest = raw.execute("SELECT count(*), max(id) FROM idx_events WHERE agreement = ?",
                                        (address,)).fetchone()
            key = self._page_key(cursor, row, (int(count), newest))
            out: dict[str, Any] = {"cursor": cursor, "row": row, "key": key, "loaded": False}
            if cached(key):
                return out
            order = "ORDER BY idx_events.block_number, idx_events.log_index"

            def named(words: Sequence[str]) -> list[dict[str, Any]]:
                # what SQLAlchemy's ilike compiles to on SQLite
                like = " OR ".join("lower(idx_events.name) LIKE lower(?)" for _ in words) or "0"
                return fast.rows(raw, "idx_events", f"WHERE idx_events.agreement = ? AND ({like}) {order}",
                                 (address, *(f"%{w}%" for w in words)))

            periods = fast.rows(raw, "idx_periods", "WHERE agreement = ? ORDER BY period", (address,))
            maintenance, disputes = named(maintenance_words), named(dispute_words)
            events_total = raw.execute("SELECT count(*) FROM idx_events WHERE agreement = ?", (address,)).fetchone()[0]
            events = fast.rows(raw, "idx_events", "WHERE agreement = ? ORDER BY block_number DESC, log_index DESC "
                               "LIMIT ?", (address, events_limit))
            withdrawals = fast.rows(raw, "idx_withdrawals", "WHERE agreement = ? ORDER BY block_number, log_index "
                                    "LIMIT ?", (address, withdrawals_limit))
        out.update(loaded=True, periods=periods, maintenance=maintenance, disputes=disputes, events=events,
                   events_total=int(events_total), withdrawals=withdrawals)
        return out

    def periods(self, address: str, *, from_period: int | None = None, to_period: int | None = None,
                limit: int | None = None, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        conds = [idx_periods.c.agreement == address]
        if from_period is not None:
            conds.append(idx_periods.c.period >= from_period)
        if to_period is not None:
            conds.append(idx_periods.c.period <= to_period)
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(idx_periods).where(*conds)).scalar() or 0
            q = select(idx_periods).where(*conds).order_by(idx_periods.c.period).offset(offset)
            if limit is not None:
                q = q.limit(limit)
            rows = conn.execute(q).mappings().all()
        return [dict(r) for r in rows], int(total)

    def events(self, address: str | None = None, *, names: Sequence[str] | None = None, limit: int = 50,
               offset: int = 0, newest_first: bool = False) -> tuple[list[dict[str, Any]], int]:
        conds = []
        if address is not None:
            conds.append(idx_events.c.agreement == address)
        if names:
            conds.append(idx_events.c.name.in_(list(names)))
        order = (idx_events.c.block_number.desc(), idx_events.c.log_index.desc()) if newest_first else (
            idx_events.c.block_number, idx_events.c.log_index)
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(idx_events).where(*conds)).scalar() or 0
            rows = conn.execute(select(idx_events).where(*conds).order_by(*order).limit(limit).offset(offset)
                                ).mappings().all()
        return [dict(r) for r in rows], int(total)

    def event_names_like(self, address: str, words: Sequence[str]) -> list[dict[str, Any]]:
        """Events of `address` whose name contains one of `words` (maintenance, dispute...)."""
        conds = [idx_events.c.name.ilike(f"%{w}%") for w in words]
        with self._read() as conn:
            rows = conn.execute(select(idx_events).where(idx_events.c.agreement == address, or_(*conds))
                                .order_by(idx_events.c.block_number, idx_events.c.log_index)).mappings().all()
        return [dict(r) for r in rows]

    def withdrawals(self, address: str, *, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        conds = [idx_withdrawals.c.agreement == address]
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(idx_withdrawals).where(*conds)).scalar() or 0
            rows = conn.execute(select(idx_withdrawals).where(*conds).order_by(
                idx_withdrawals.c.block_number, idx_withdrawals.c.log_index).limit(limit).offset(offset)
            ).mappings().all()
        return [dict(r) for r in rows], int(total)

    def counts(self) -> dict[str, int]:
        with self._read() as conn:
            return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
                    for t in (idx_agreements, idx_periods, idx_events, idx_withdrawals)}

    # ------------------------------------------------------------------ bulk (benchmarks, tests)
    def insert_rows(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows straight into one index table (synthetic data for benchmarks)."""
        if rows:
            with self._tx() as conn:
                conn.execute(table.insert(), list(rows))


# ---------------------------------------------------------------------------- derived rows
DERIVING = ("PeriodSettled", "CollateralExhausted", "Disputed", "DisputeResolved", "PeriodFinalized", "Withdrawn")


def derive(address: str, terms: Terms, events: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                                  list[dict[str, Any]]]:
    """Period and withdrawal rows of one agreement from its events, oldest first.

    PeriodSettled opens a period (final at once, or pending for the dispute window);
    CollateralExhausted just before it records the unpaid part; Disputed marks it; the arbiter's
    DisputeResolved replaces its values and credit; PeriodFinalized makes it final."""
    periods: dict[int, dict[str, Any]] = {}
    withdrawals: list[dict[str, Any]] = []
    shortfalls: dict[int, int] = {}
    window = terms.dispute_window
    for e in events:
        name, a = e["name"], e["args"]
        where = {"block_number": e["block_number"], "tx_hash": e["tx_hash"], "log_index": e["log_index"],
                 "timestamp": e["timestamp"]}
        if name == "Withdrawn":
            party = a["party"]
            role = "customer" if party == terms.customer else "provider" if party == terms.provider else "other"
            withdrawals.append({"agreement": address, "party": party, "role": role, "amount": str(a["amount"]),
                                "recipient": a.get("to", party), **where})
            continue
        period = int(a["period"])
        if name == "CollateralExhausted":
            shortfalls[period] = int(a["shortfall"])
        elif name == "PeriodSettled":
            periods[period] = {
                "agreement": address, "period": period, "values_ppm": [int(v) for v in a["valuesPpm"]],
                "service_credits": [str(c) for c in a["serviceCredits"]], "credit_paid": str(a["creditPaid"]),
                "fee_earned": str(a["feeEarned"]), "shortfall": str(shortfalls.pop(period, 0)),
                "disaster": bool(a["disaster"]), "measured_ppm": int(a.get("measuredPpm", 1_000_000)),
                "state": "pending" if window else "final",
                "final_after": int(e["timestamp"]) + window if window else None, "disputed_by": None,
                "resolved": False, "previous_credit": None, **where,
            }
        elif (row := periods.get(period)) is None:
            continue  # a period settled before the start block
        elif name == "Disputed":
            row.update(state="disputed", disputed_by=a["by"])
        elif name == "DisputeResolved":
            values = [int(v) for v in a["valuesPpm"]]
            row.update(values_ppm=values, credit_paid=str(a["creditPaid"]), previous_credit=str(a["previousCredit"]),
                       resolved=True, shortfall=str(shortfalls.pop(period, 0)), state="final",
                       service_credits=[str(service_credit(s, v, terms.fee_per_period))
                                        for s, v in zip(terms.services, values, strict=False)],
                       disaster=any(v < terms.termination_ppm for s, v in zip(terms.services, values, strict=False)
                                    if s.kind in (Kind.availability, Kind.composite)))
        elif name == "PeriodFinalized":
            row.update(state="final", credit_paid=str(a["creditPaid"]))
    return [periods[p] for p in sorted(periods)], withdrawals


