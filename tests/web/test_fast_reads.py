"""The index's hot reads on plain sqlite3 connections (IndexStore._SqliteReads: the status
endpoint and the agreement page) return exactly what the SQLAlchemy engine returns — JSON
columns as objects, booleans as booleans, NULLs as None — and never hold an old snapshot: a
write committed by another IndexStore (the indexer's) is seen by the very next read. And the
agreement page, whose parts are kept as markup per index change key, still follows the chain's
time: the period in progress starts without any write to the index."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sla_helpers import make_terms
from web3 import Web3

from smartsla.api import views
from smartsla.api.app import ApiSettings, create_app
from smartsla.index_store import (
    Batch,
    IndexStore,
    IndexStoreError,
    idx_agreements,
    idx_events,
    idx_periods,
    idx_withdrawals,
)

A1 = Web3.to_checksum_address("0x" + "a1" * 20)  # as the indexer stores them
A2 = Web3.to_checksum_address("0x" + "b2" * 20)
ROLES = {"provider": "0x" + "11" * 20, "customer": "0x" + "22" * 20, "oracle": "0x" + "33" * 20}


def _agreement(address: str, block: int, *, disaster: bool) -> dict[str, Any]:
    terms = make_terms(ROLES, 1_700_000_000)
    return {"address": address, "factory": "0x" + "ff" * 20, "created_block": block, "created_tx": f"0x{block:064x}",
            "created_timestamp": 1_700_000_000, "provider": terms.provider, "customer": terms.customer,
            "asset": terms.asset, "terms": terms.model_dump(mode="json"), "start": terms.start,
            "period_length": terms.period_length, "period_count": terms.period_count,
            "fee_per_period": str(terms.fee_per_period), "collateral": str(terms.collateral),
            "credit_cap_bps": terms.credit_cap_bps, "status": "Active", "settled_periods": 1,
            "fees_deposited": True, "collateral_deposited": not disaster, "disaster_occurred": disaster,
            "snapshot_block": None if disaster else block, "updated_at": 1.5}


def _event(address: str, block: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"address": address, "agreement": address, "block_number": block, "block_hash": f"0x{block:064x}",
            "tx_hash": f"0x{block:064x}", "log_index": 0, "name": name, "topic0": None, "args": args,
            "timestamp": 1_700_000_000 + block}


@pytest.fixture()
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "index.db")
    with IndexStore.open(path) as store:
        store.init_cursor(31337, "0x" + "ff" * 20, 0)
        store.insert_rows(idx_agreements, [_agreement(A1, 1, disaster=False), _agreement(A2, 2, disaster=True)])
        store.insert_rows(idx_periods, [{
            "agreement": A1, "period": 0, "values_ppm": [999_000], "service_credits": ["12"], "credit_paid": "12",
            "fee_earned": "100", "disaster": True, "resolved": False, "state": "disputed", "disputed_by": A2,
            "final_after": None, "block_number": 3, "tx_hash": "0x" + "03" * 32, "log_index": 0,
            "timestamp": 1_700_000_003}])
        store.insert_rows(idx_events, [
            _event(A1, 3, "PeriodSettled", {"period": "0", "valuesPpm": [999_000], "serviceCredits": ["12"],
                                             "creditPaid": "12", "feeEarned": "100", "disaster": True}),
            _event(A1, 4, "MaintenanceDeclared", {"start": 1, "end": 2, "nested": {"x": [1, None]}}),
            _event(A1, 5, "Disputed", {"period": 0, "by": A2}),
            _event(A1, 6, "Unknown", {"topics": [], "data": "0x"})])
        store.insert_rows(idx_withdrawals, [{"agreement": A1, "party": ROLES["customer"], "role": "customer",
                                             "recipient": None, "amount": "12", "block_number": 7,
                                             "tx_hash": "0x" + "07" * 32, "log_index": 1, "timestamp": 1}])
        store.apply(Batch(from_block=0, to_block=7, to_hash="0x" + "07" * 32, to_timestamp=1_700_000_007))
    return path


def _page(store: IndexStore, address: str) -> dict[str, Any] | None:
    return store.agreement_page(address, lambda _key: False, maintenance_words=("Maintenance",),
                                dispute_words=("dispute",))


def test_fast_reads_equal_the_engine_s(db: str) -> None:
    fast, engine = IndexStore.open(db), IndexStore.open(db, fast_reads=False)
    assert fast._fast is not None and engine._fast is None  # the two paths really differ
    try:
        assert fast.cursor() == engine.cursor() and fast.cursor() is not None
        for address in (A1, A2, "0x" + "00" * 20):
            assert fast.agreement(address) == engine.agreement(address)
            assert fast.agreement_and_cursor(address) == engine.agreement_and_cursor(address)
            assert _page(fast, address) == _page(engine, address)
        for query in ({}, {"customer": ROLES["customer"]}, {"provider": ROLES["customer"]}, {"status": "Active"},
                      {"provider": ROLES["provider"], "status": "Ended"}, {"limit": 1, "offset": 1}):
            assert fast.list_agreements(**query) == engine.list_agreements(**query)  # type: ignore[arg-type]
        assert [r["address"] for r in fast.list_agreements()[0]] == [A2, A1]  # newest first
        row = fast.agreement(A1)
        assert row is not None and row["fees_deposited"] is True and row["disaster_occurred"] is False
        assert row["terms"]["provider"] == ROLES["provider"]  # JSON as an object
        page = _page(fast, A1)
        assert page is not None and page["periods"][0]["disaster"] is True
        assert page["periods"][0]["values_ppm"] == [999_000] and page["periods"][0]["final_after"] is None
        assert [e["name"] for e in page["maintenance"]] == ["MaintenanceDeclared"]
        assert [e["name"] for e in page["disputes"]] == ["Disputed"]  # case-insensitive, like ilike
        assert page["events_total"] == 4 and page["events"][0]["name"] == "Unknown"  # newest first
        assert page["maintenance"][0]["args"]["nested"] == {"x": [1, None]}
        # the cache hit: the row and the key only
        assert fast.agreement_page(A1, lambda _key: True, maintenance_words=(), dispute_words=())["loaded"] is False
    finally:
        fast.close()
        engine.close()


def test_a_write_by_another_store_is_seen_by_the_next_fast_read(db: str) -> None:
    reader, writer = IndexStore.open(db), IndexStore.open(db)
    try:
        before = reader.agreement_page(A1, lambda _key: False, maintenance_words=(), dispute_words=())
        assert before is not None and reader.agreement(A1)["owed_to_customer"] == "0"  # type: ignore[index]
        writer.update_snapshots({A1: {"owed_to_customer": "12", "settled_periods": 2}}, block=7)
        row, _ = reader.agreement_and_cursor(A1)
        assert row is not None and row["owed_to_customer"] == "12" and row["settled_periods"] == 2
        after = reader.agreement_page(A1, lambda key: key == before["key"], maintenance_words=(), dispute_words=())
        assert after is not None and after["key"] != before["key"] and after["loaded"]
    finally:
        reader.close()
        writer.close()


def test_a_broken_index_file_is_an_index_store_error(db: str, tmp_path: Path) -> None:
    store = IndexStore.open(db)
    try:
        assert store.agreement(A1) is not None
        store.close()  # idle connections closed; the next read opens a new one on the damaged file
        Path(db).write_bytes(b"not a database" * 100)
        for suffix in ("-wal", "-shm"):
            Path(db + suffix).unlink(missing_ok=True)
        with pytest.raises(IndexStoreError):
            store.agreement(A1)
    finally:
        store.close()


def test_the_page_follows_the_chain_s_time_between_two_index_writes(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = IndexStore.open(db)
    try:
        start = 1_700_000_000
        store.note_head(8, start + 3600 - 100)  # 100 s before period 1 (of 3 hourly periods) starts
        seen_at = store.cursor()["head_seen_at"]  # type: ignore[index]
        client = TestClient(create_app(store, settings=ApiSettings(rate_limit_per_s=0, gc_freeze=False)))
        before = client.get(f"/agreements/{A1}")
        assert before.status_code == 200
        assert 'data-state="future" data-period="1"' in before.text
        assert before.text == client.get(f"/agreements/{A1}").text  # the same moment, from the kept parts
        # 200 s later by the chain's clock, with no write to the index (the same change key)
        monkeypatch.setattr(views, "time", types.SimpleNamespace(time=lambda: seen_at + 200))
        after = client.get(f"/agreements/{A1}")
        assert 'data-state="current" data-period="1"' in after.text, "the bars were served for another moment"
        assert 'data-state="future" data-period="2"' in after.text
    finally:
        store.close()


@pytest.mark.parametrize("fast_reads", [True, False])
def test_the_page_key_moves_with_the_agreement_not_with_every_poll(db: str, fast_reads: bool) -> None:
    """The indexer writes the cursor on every poll (each second). A key holding the cursor's
    stamp made every agreement page render again each second; the key must move only when
    something the page shows from the index does: its events, its row, a rollback."""
    store = IndexStore.open(db, fast_reads=fast_reads)

    def page(held: Any) -> dict[str, Any]:
        got = store.agreement_page(A1, lambda key: key == held, maintenance_words=("Maintenance",),
                                   dispute_words=("Dispute",))
        assert got is not None
        return got

    try:
        key = page(None)["key"]
        store.note_head(9, 1_700_000_100)  # a poll that found nothing new
        assert page(key)["loaded"] is False, "a poll with nothing new made the page render again"
        store.apply(Batch(from_block=8, to_block=8, to_hash="0x" + "08" * 32, to_timestamp=1_700_000_008,
                          events=[_event(A2, 8, "FeesDeposited", {})]))  # another agreement's event
        assert page(key)["loaded"] is False
        store.apply(Batch(from_block=9, to_block=9, to_hash="0x" + "09" * 32, to_timestamp=1_700_000_009,
                          events=[_event(A1, 9, "FeesDeposited", {})]))  # its own event
        moved = page(key)
        assert moved["loaded"] is True and moved["events_total"] == 5
        store.update_snapshots({A1: {"owed_to_customer": "7"}}, block=9)  # its balances
        assert page(moved["key"])["loaded"] is True
        latest = page(None)["key"]
        store.rollback_to(8)  # its event is undone
        back = page(latest)
        assert back["loaded"] is True and back["events_total"] == 4
    finally:
        store.close()
