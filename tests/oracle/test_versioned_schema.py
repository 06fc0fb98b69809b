"""smartsla.versioned_schema: the schema versions of the event index and the multi-level index
(the oracle store's are in test_store.py), on an SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from oracle.store import Store
from smartsla import index_store
from smartsla.corporate_index import CorporateStore
from smartsla.database import normalise_url
from smartsla.index_store import IndexStore, IndexStoreError
from smartsla.versioned_schema import VersionedSchema, version_table


def _previous_release_corporate_tables() -> sa.MetaData:
    """The multi-level tables exactly as the release before versions made them (a frozen copy of
    its definitions: `metadata.create_all` and no version table)."""
    md = sa.MetaData()
    sa.Table("idx_corp_cursor", md,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("chain_id", sa.BigInteger, nullable=False),
             sa.Column("last_block", sa.BigInteger), sa.Column("last_hash", sa.String(66)),
             sa.Column("head_block", sa.BigInteger), sa.Column("head_timestamp", sa.BigInteger),
             sa.Column("head_seen_at", sa.Double), sa.Column("last_error", sa.Text))
    sa.Table("idx_corp_agreements", md,
             sa.Column("address", sa.String(42), primary_key=True), sa.Column("terms", sa.JSON, nullable=False),
             sa.Column("state", sa.JSON), sa.Column("snapshot_block", sa.BigInteger))
    sa.Table("idx_corp_events", md,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("address", sa.String(42), nullable=False, index=True),
             sa.Column("block_number", sa.BigInteger, nullable=False),
             sa.Column("log_index", sa.Integer, nullable=False),
             sa.Column("tx_hash", sa.String(66), nullable=False), sa.Column("name", sa.String(64), nullable=False),
             sa.Column("args", sa.JSON, nullable=False), sa.Column("timestamp", sa.BigInteger, nullable=False),
             sa.UniqueConstraint("block_number", "log_index", name="uq_idx_corp_events_log"))
    return md


def _versions(url: str, table: str) -> list[int]:
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return [int(v) for (v,) in conn.execute(sa.text(f"SELECT version FROM {table} ORDER BY version"))]
    finally:
        engine.dispose()


def test_corporate_tables_of_the_previous_release_are_adopted(store_url: str) -> None:
    """A database whose multi-level tables were made without a version (the previous release)
    opens as version 1 with its rows kept; a fresh one is created at version 1."""
    with IndexStore.open(store_url) as store:
        with store.engine.begin() as conn:
            _previous_release_corporate_tables().create_all(conn)
            conn.execute(sa.text("INSERT INTO idx_corp_agreements (address, terms) VALUES ('0xab', '{\"a\": 1}')"))
        corp = CorporateStore(store.engine)
        assert corp.agreement("0xab") == {"address": "0xab", "terms": {"a": 1}, "state": None, "snapshot_block": None}
        CorporateStore(store.engine)  # reopening the adopted version is fine
    assert _versions(store_url, "idx_corp_schema_version") == [1]
    assert _versions(store_url, "idx_schema_version") == [index_store.SCHEMA_VERSION]


def test_newer_or_foreign_corporate_tables_are_refused(store_url: str) -> None:
    with IndexStore.open(store_url) as store:
        CorporateStore(store.engine)
        with store.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO idx_corp_schema_version (version, applied_at) VALUES (2, 0)"))
        with pytest.raises(index_store.SchemaTooNewError,
                           match="multi-level index schema version 2 is newer than this smartsla's 1"):
            CorporateStore(store.engine)
        with store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM idx_corp_schema_version"))
        with pytest.raises(IndexStoreError, match="idx_corp_schema_version table is empty"):
            CorporateStore(store.engine)
        with store.engine.begin() as conn:  # some of our tables, unversioned: not the previous release
            conn.execute(sa.text("DROP TABLE idx_corp_schema_version"))
            conn.execute(sa.text("DROP TABLE idx_corp_events"))
        with pytest.raises(IndexStoreError, match=r"tables \['idx_corp_agreements', 'idx_corp_cursor'\] "
                                                      "exist without a idx_corp_schema_version"):
            CorporateStore(store.engine)


def test_event_index_versions(store_url: str) -> None:
    """The event index: too new, empty version table and unversioned tables are refused; a
    version-1 index is upgraded (its columns added, its rows kept)."""
    IndexStore.open(store_url).close()
    engine = sa.create_engine(normalise_url(store_url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO idx_schema_version (version, applied_at) VALUES (3, 0)"))
        with pytest.raises(index_store.SchemaTooNewError,
                           match="event index schema version 3 is newer than this smartsla's 2"):
            IndexStore.open(store_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM idx_schema_version"))
            conn.execute(sa.text("INSERT INTO idx_schema_version (version, applied_at) VALUES (1, 0)"))
            conn.execute(sa.text("ALTER TABLE idx_periods DROP COLUMN measured_ppm"))
            conn.execute(sa.text("ALTER TABLE idx_withdrawals DROP COLUMN recipient"))
        with IndexStore.open(store_url) as store:
            columns = {c["name"] for c in sa.inspect(store.engine).get_columns("idx_withdrawals")}
            assert "recipient" in columns
        assert _versions(store_url, "idx_schema_version") == [1, 2]
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM idx_schema_version"))
        with pytest.raises(IndexStoreError, match="idx_schema_version table is empty"):
            IndexStore.open(store_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE idx_schema_version"))
        with pytest.raises(IndexStoreError, match="exist without a idx_schema_version"):
            IndexStore.open(store_url)
    finally:
        engine.dispose()


def test_three_components_share_one_database(store_url: str) -> None:
    """The oracle's store, the event index and the multi-level index in one database: each keeps
    its own version table, and none mistakes the others' tables for its own."""
    with Store.open(store_url) as oracle_store, IndexStore.open(store_url) as index:
        CorporateStore(index.engine)
        assert oracle_store.schema_version() >= 4
    with Store.open(store_url), IndexStore.open(store_url) as index:  # and they reopen
        CorporateStore(index.engine)
    for table in ("schema_version", "idx_schema_version", "idx_corp_schema_version"):
        assert _versions(store_url, table)


def test_a_missing_upgrade_step_is_refused_at_definition() -> None:
    md = sa.MetaData()
    table = version_table(md, "v")
    with pytest.raises(ValueError, match=r"upgrade steps \[2\] do not match versions \[2, 3\]"):
        VersionedSchema(component="x", owner="x", metadata=md, table=table, version=3,
                        upgrades={2: lambda conn: None}, error=RuntimeError, too_new=RuntimeError)
