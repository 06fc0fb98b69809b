"""The oracle's transaction log (oracle.transactions: the tx-attempts table) has a schema version of
its own like the other stores (smartsla.versioned_schema), on an SQLite file and on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from oracle.store import SchemaTooNewError, Store, StoreError
from oracle.transactions import TX_SCHEMA_VERSION, TxLogTooNewError, ensure_tx_schema
from smartsla.database import normalise_url


def _previous_release_attempts(md: sa.MetaData) -> sa.Table:
    """The attempts table exactly as the releases before versions made it (a frozen copy)."""
    return sa.Table(
        "oracle_tx_attempts", md,
        sa.Column("tx_hash", sa.String(66), primary_key=True),
        sa.Column("sender", sa.String(42), nullable=False, index=True),
        sa.Column("nonce", sa.BigInteger, nullable=False, index=True),
        sa.Column("max_fee", sa.BigInteger, nullable=False),
        sa.Column("priority_fee", sa.BigInteger, nullable=False),
        sa.Column("gas", sa.Integer, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


ROW = {"tx_hash": "0x" + "ab" * 32, "sender": "0x" + "12" * 20, "nonce": 7, "max_fee": 3, "priority_fee": 1,
       "gas": 21_000, "raw": "0x02", "label": "settle 0", "created_at": 1.0}


def _versions(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return [int(v) for (v,) in conn.execute(sa.text("SELECT version FROM oracle_tx_schema_version "
                                                        "ORDER BY version"))]


def test_fresh_store_records_the_transaction_logs_version(store_url: str) -> None:
    with Store.open(store_url) as store:
        assert _versions(store.engine) == [TX_SCHEMA_VERSION]
        ensure_tx_schema(store.engine)  # TxManager's own check finds it as it is
        assert _versions(store.engine) == [TX_SCHEMA_VERSION]


def test_an_unversioned_attempts_table_is_adopted_with_its_rows(store_url: str) -> None:
    """A database of the previous release: the store's tables versioned, the attempts table not.
    It opens as version 1 and every attempt (a hash that may still land on-chain) is kept."""
    with Store.open(store_url) as store, store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE oracle_tx_schema_version"))
        conn.execute(sa.text("DROP TABLE oracle_tx_attempts"))
        attempts = _previous_release_attempts(sa.MetaData())
        attempts.create(conn)
        conn.execute(attempts.insert().values(**ROW))
    with Store.open(store_url) as store:
        assert _versions(store.engine) == [1]
        with store.engine.connect() as conn:
            assert dict(conn.execute(sa.text("SELECT * FROM oracle_tx_attempts")).mappings().one()) == ROW


def test_the_attempts_table_alone_is_adopted_by_the_transaction_manager(store_url: str) -> None:
    engine = sa.create_engine(normalise_url(store_url))
    try:
        md = sa.MetaData()
        _previous_release_attempts(md)
        md.create_all(engine)
        ensure_tx_schema(engine)
        assert _versions(engine) == [1]
    finally:
        engine.dispose()


def test_a_newer_or_damaged_transaction_log_is_refused(store_url: str) -> None:
    Store.open(store_url).close()
    engine = sa.create_engine(normalise_url(store_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO oracle_tx_schema_version (version, applied_at) VALUES (2, 0)"))
        with pytest.raises(SchemaTooNewError, match="oracle transaction log schema version 2 is newer than this "
                                                    "oracle's 1"):
            Store.open(store_url)
        with pytest.raises(TxLogTooNewError):
            ensure_tx_schema(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM oracle_tx_schema_version"))
        with pytest.raises(StoreError, match="oracle_tx_schema_version table is empty"):
            Store.open(store_url)
    finally:
        engine.dispose()

