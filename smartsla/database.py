"""What the oracle's store and the event index share about databases: URLs, opening an engine,
SQLite settings, transactions and readable error reasons. SQLite by default (one file),
PostgreSQL by URL, same code. Schema versions: smartsla.versioned_schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError


def normalise_url(url: str) -> str:
    """Plain `postgresql://` would pick psycopg2, which we do not ship; psycopg 3 it is. A bare
    path means an SQLite file."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{url}"
    return url


def error_reason(exc: SQLAlchemyError) -> str:
    """One line that says what went wrong: locked, disk full, read-only, or the driver's words."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()[0]
    lowered = text.lower()
    if "locked" in lowered or "could not obtain lock" in lowered or "lock timeout" in lowered:
        return f"database is locked by another writer ({text})"
    if "disk is full" in lowered or "no space left" in lowered or "disk full" in lowered:
        return f"disk is full ({text})"
    if "readonly" in lowered or "read-only" in lowered:
        return f"database is read-only ({text})"
    return text


def sqlite_pragmas(engine: Engine, busy_timeout_s: float, synchronous: Literal["FULL", "NORMAL"] = "FULL",
                   foreign_keys: bool = True) -> None:
    """Set per-connection SQLite settings as each connection opens.

    WAL lets readers (a status page, a report export) read while a writer writes; synchronous=FULL
    makes each commit durable across a power cut (NORMAL suffices for what can be rebuilt, like
    the event index); busy_timeout makes a writer wait for a brief lock instead of failing at once.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would BEGIN only before
        # writes, so a read-then-write would not be one transaction); we BEGIN ourselves below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            if foreign_keys:
                cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def open_engine(url: str, *, what: str, error: type[Exception], busy_timeout_s: float,
                synchronous: Literal["FULL", "NORMAL"] = "FULL", foreign_keys: bool = True,
                threads: bool = False, pg_lock_timeout: bool = False, pg_pre_ping: bool = False) -> Engine:
    """An engine for `url` (an SQLAlchemy URL or an SQLite file path), or `error` saying why not
    (`what`: "store", "index", for the message). SQLite gets `sqlite_pragmas`; `threads`: an
    SQLite connection may be used from another thread than its creator's (the API's workers);
    `pg_lock_timeout`: a PostgreSQL write waits at most `busy_timeout_s` for a lock;
    `pg_pre_ping`: PostgreSQL connections are checked before use (a restarted server)."""
    url = normalise_url(url)
    connect_args: dict[str, Any] = {}
    postgres = url.startswith("postgresql")
    if postgres and pg_lock_timeout:
        connect_args["options"] = f"-c lock_timeout={int(busy_timeout_s * 1000)}"
    if url.startswith("sqlite") and threads:
        connect_args["check_same_thread"] = False
    try:
        engine = create_engine(url, connect_args=connect_args, pool_pre_ping=postgres and pg_pre_ping)
    except ModuleNotFoundError as exc:  # the driver is not a hard dependency
        hint = " (pip install 'psycopg[binary]')" if "psycopg" in str(exc) else ""
        raise error(f"cannot open {what} {url!r}: {exc}{hint}") from exc
    except Exception as exc:  # bad URL
        raise error(f"cannot open {what} {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        sqlite_pragmas(engine, busy_timeout_s, synchronous=synchronous, foreign_keys=foreign_keys)
    return engine


@contextlib.contextmanager
def transaction(engine: Engine, error: type[Exception]) -> Iterator[Connection]:
    """One transaction, committed on exit; database errors become `error` with the reason."""
    try:
        with engine.begin() as conn:
            yield conn
    except error:
        raise
    except SQLAlchemyError as exc:
        raise error(error_reason(exc)) from exc
