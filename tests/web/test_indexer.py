"""The event indexer against real chains: what it stores matches the chain; a restarted (or
crashed) indexer misses nothing and counts nothing twice; a reorganised or restarted chain is
detected by block hash and read again."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from node_helpers import start_or_skip
from sla_helpers import ETHER, EVIDENCE_ROOT, make_terms
from web3 import Web3

from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.index_store import IndexStore, IndexStoreError
from smartsla.indexer import EventDecoder, Indexer
from smartsla.localnode import LocalNode


def _roles(chain: Chain) -> dict[str, str]:
    a = chain.accounts
    return {"deployer": a[0], "provider": a[1], "customer": a[2], "oracle": a[3]}


def _open(chain: Chain, roles: dict[str, str], factory: Factory, **overrides: Any) -> Agreement:
    agreement = factory.create_agreement(make_terms(roles, chain.now() + 60, **overrides), roles["deployer"])
    agreement.deposit_fees(roles["customer"])
    agreement.deposit_collateral(roles["provider"])
    return agreement


def _settle(chain: Chain, agreement: Agreement, period: int, value: int, oracle: str) -> None:
    chain.mine_at(agreement.terms.period_end(period))
    agreement.settle(period, [value], 1_000_000, EVIDENCE_ROOT, oracle)


def _chain_logs(chain: Chain, factory: str, agreements: list[str]) -> list[tuple[int, int]]:
    logs = chain.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": [factory, *agreements]})
    return sorted((int(x["blockNumber"]), int(x["logIndex"])) for x in logs)


def _assert_matches_chain(store: IndexStore, chain: Chain, factory: Factory) -> None:
    """Every log once, every snapshot, period and withdrawal as the chain has them."""
    agreements = store.known_agreements()
    assert sorted(agreements) == sorted(a.address for a in factory.agreements_of_provider(_roles(chain)["provider"]))
    events, total = store.events(limit=10_000)
    assert [(e["block_number"], e["log_index"]) for e in events] == _chain_logs(chain, factory.address, agreements)
    assert total == len(events)
    for address in agreements:
        agreement = Agreement(chain, address)
        row = store.agreement(address)
        assert row is not None
        snap = agreement.snapshot()
        assert (row["status"], row["settled_periods"], int(row["owed_to_customer"]), int(row["owed_to_provider"]),
                int(row["fees_escrowed"]), int(row["collateral_escrowed"])) == (
            snap.status.name, snap.settled_periods, snap.owed_to_customer, snap.owed_to_provider,
            snap.fees_escrowed, snap.collateral_escrowed)
        periods, _ = store.periods(address)
        settlements = agreement.settlements()
        assert [(p["period"], tuple(p["values_ppm"]), int(p["credit_paid"])) for p in periods] == [
            (s.period, s.values_ppm, s.credit_paid) for s in settlements]
        assert int(row["credits_paid"]) == sum(s.credit_paid for s in settlements)
        withdrawn = agreement.contract.events.Withdrawn().get_logs(from_block=0)
        assert int(row["withdrawn_customer"]) + int(row["withdrawn_provider"]) == sum(
            int(w["args"]["amount"]) for w in withdrawn)


@pytest.fixture
def world(chain: Chain) -> tuple[Chain, dict[str, str], Factory]:
    roles = _roles(chain)
    return chain, roles, Factory.deploy(chain, roles["deployer"])


def test_index_matches_the_chain_in_small_pages(world: tuple[Chain, dict[str, str], Factory],
                                                 tmp_path: Path) -> None:
    chain, roles, factory = world
    first = _open(chain, roles, factory)
    second = _open(chain, roles, factory, period_count=2)
    _settle(chain, first, 0, 999_000, roles["oracle"])  # tier 1: 10 %
    _settle(chain, second, 0, 940_000, roles["oracle"])  # harshest tier: 100 %, disaster below 90 %? no
    first.withdraw(roles["customer"])
    _settle(chain, second, 1, 1_000_000, roles["oracle"])  # last period: Ended
    second.withdraw(roles["provider"])
    store = IndexStore.open(str(tmp_path / "index.db"))
    # Three-block ranges and one address per log query: the paging paths, not one big query.
    indexer = Indexer(chain, store, factory.address, chunk_blocks=3, address_batch=1)
    result = indexer.sync()
    assert result.caught_up and result.agreements == 2
    _assert_matches_chain(store, chain, factory)
    assert store.agreement(second.address)["status"] == "Ended"  # type: ignore[index]
    again = indexer.sync()
    assert again.events == 0 and again.from_block is None


def test_restart_and_crash_miss_nothing_and_count_nothing_twice(world: tuple[Chain, dict[str, str], Factory],
                                                                tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    chain, roles, factory = world
    db = str(tmp_path / "index.db")
    first = _open(chain, roles, factory)
    _settle(chain, first, 0, 985_000, roles["oracle"])

    # 1. An indexer stops part-way (two ranges of two blocks), and is thrown away.
    store = IndexStore.open(db)
    partial = Indexer(chain, store, factory.address, chunk_blocks=2).sync(max_ranges=2)
    assert not partial.caught_up
    stopped_at = store.cursor()["last_block"]  # type: ignore[index]
    store.close()

    # 2. The chain moves on meanwhile.
    second = _open(chain, roles, factory)
    _settle(chain, first, 1, 1_000_000, roles["oracle"])
    first.withdraw(roles["customer"])
    _settle(chain, second, 0, 960_000, roles["oracle"])

    # 3. A new indexer crashes while writing its second range: that range is not half-written.
    store = IndexStore.open(db)
    assert store.cursor()["last_block"] == stopped_at  # type: ignore[index]
    real_apply = IndexStore.apply
    calls = {"n": 0}

    def crashing_apply(self: IndexStore, batch: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise IndexStoreError("simulated crash")
        real_apply(self, batch)

    monkeypatch.setattr(IndexStore, "apply", crashing_apply)
    with pytest.raises(IndexStoreError, match="simulated crash"):
        Indexer(chain, store, factory.address, chunk_blocks=2).sync()
    monkeypatch.setattr(IndexStore, "apply", real_apply)
    store.close()

    # 4. Another indexer resumes from the store and finishes: the index equals the chain.
    store = IndexStore.open(db)
    resumed_from = store.cursor()["last_block"]  # type: ignore[index]
    assert resumed_from == stopped_at + 2
    result = Indexer(chain, store, factory.address, chunk_blocks=2).sync()
    assert result.from_block == resumed_from + 1 and result.caught_up
    _assert_matches_chain(store, chain, factory)
    store.close()


def test_unknown_events_are_kept_raw(world: tuple[Chain, dict[str, str], Factory], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An event the ABI does not know (a contract newer than the package) is stored with its
    topics and data, and the rest still decodes."""
    chain, roles, factory = world
    agreement = _open(chain, roles, factory)
    real_init = EventDecoder.__init__

    def forgetful_init(self: EventDecoder, w3: Web3) -> None:
        real_init(self, w3)
        self.by_topic = {t: abi for t, abi in self.by_topic.items() if abi["name"] != "Activated"}

    monkeypatch.setattr(EventDecoder, "__init__", forgetful_init)
    store = IndexStore.open(str(tmp_path / "index.db"))
    Indexer(chain, store, factory.address).sync()
    events, _ = store.events(agreement.address)
    names = [e["name"] for e in events]
    assert names == ["AgreementCreated", "FeesDeposited", "CollateralDeposited", "Unknown"]
    raw = events[-1]
    activated_topic = Web3.keccak(text="Activated(uint256)").to_0x_hex()
    assert raw["topic0"] == activated_topic and raw["args"]["topics"] == [activated_topic]
    assert int(raw["args"]["data"], 16) == chain.w3.eth.get_block(raw["block_number"])["timestamp"]
    assert store.agreement(agreement.address)["status"] == "Active"  # type: ignore[index]


def test_confirmations_hold_back_the_newest_blocks(world: tuple[Chain, dict[str, str], Factory],
                                                   tmp_path: Path) -> None:
    chain, roles, factory = world
    _open(chain, roles, factory)
    store = IndexStore.open(str(tmp_path / "index.db"))
    result = Indexer(chain, store, factory.address, confirmations=3).sync()
    head = chain.w3.eth.block_number
    assert result.to_block == head - 3 == store.cursor()["last_block"]  # type: ignore[index]
    assert store.cursor()["head_block"] == head  # type: ignore[index]


def test_background_thread_follows_new_events(world: tuple[Chain, dict[str, str], Factory], tmp_path: Path) -> None:
    chain, roles, factory = world
    lock = threading.RLock()
    store = IndexStore.open(str(tmp_path / "index.db"))
    indexer = Indexer(chain, store, factory.address, lock=lock)
    thread, stop = indexer.start_thread(poll_s=0.05)
    try:
        with lock:  # the embedded chain is not thread-safe
            agreement = _open(chain, roles, factory)
        deadline = time.monotonic() + 20
        while (row := store.agreement(agreement.address)) is None or row["status"] != "Active":
            assert time.monotonic() < deadline, "the indexer thread did not pick up the agreement"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_index_refuses_another_factory(world: tuple[Chain, dict[str, str], Factory], tmp_path: Path) -> None:
    chain, roles, factory = world
    store = IndexStore.open(str(tmp_path / "index.db"))
    Indexer(chain, store, factory.address).sync()
    other = Factory.deploy(chain, roles["deployer"])
    with pytest.raises(IndexStoreError, match="use another database"):
        Indexer(chain, store, other.address).sync()


# ---------------------------------------------------------------------------- Anvil: reorgs and restarts
def _anvil(port: int | None = None) -> LocalNode:
    return start_or_skip("anvil", port=port)


@pytest.mark.anvil
def test_reorg_is_detected_and_read_again(anvil: LocalNode, tmp_path: Path) -> None:
    """A settlement the indexer saw disappears (evm_revert) and the period settles again with
    another value on a shorter branch: the index rolls back to the fork and shows the new one."""
    chain = Chain.connect(anvil.url)
    roles = _roles(chain)
    factory = Factory.deploy(chain, roles["deployer"])
    agreement = _open(chain, roles, factory)
    fork_block = chain.w3.eth.block_number
    snapshot_id = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    _settle(chain, agreement, 0, 999_000, roles["oracle"])  # tier 1: 10 % credit
    for _ in range(3):
        chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    store = IndexStore.open(str(tmp_path / "index.db"))
    indexer = Indexer(chain, store, factory.address, chunk_blocks=2)
    indexer.sync()
    (before,), _ = store.periods(agreement.address)
    assert before["values_ppm"] == [999_000] and int(before["credit_paid"]) == ETHER // 10
    old_head = chain.w3.eth.block_number

    assert chain.w3.provider.make_request("evm_revert", [snapshot_id])["result"] is True  # type: ignore[arg-type]
    _settle(chain, agreement, 0, 940_000, roles["oracle"])  # the other branch: 100 % credit
    assert chain.w3.eth.block_number < old_head  # shorter: the indexed head no longer exists

    result = indexer.sync()
    assert result.reorg and result.rolled_back_to is not None and result.rolled_back_to <= fork_block
    (after,), total = store.periods(agreement.address)
    assert total == 1 and after["values_ppm"] == [940_000] and int(after["credit_paid"]) == ETHER
    _assert_matches_chain(store, chain, factory)
    assert store.cursor()["reorgs"] == 1  # type: ignore[index]
    head = chain.w3.eth.get_block("latest")
    assert store.cursor()["last_hash"] == head["hash"].to_0x_hex()  # type: ignore[index]


@pytest.mark.anvil
def test_chain_restarted_without_state_is_read_again(tmp_path: Path) -> None:
    """Anvil stops and starts again empty on the same port; the same deployer redeploys the
    factory at the same address and the chain grows past the indexed height. Block hashes
    differ, so the indexer throws the old index away and reads the new chain."""
    node = _anvil()
    port = node.port
    store = IndexStore.open(str(tmp_path / "index.db"))
    try:
        chain = Chain.connect(node.url)
        roles = _roles(chain)
        factory = Factory.deploy(chain, roles["deployer"])
        old = _open(chain, roles, factory)
        _settle(chain, old, 0, 999_000, roles["oracle"])
        indexer = Indexer(chain, store, factory.address)
        indexer.sync()
        old_head = chain.w3.eth.block_number
        assert store.known_agreements() == [old.address]
    finally:
        node.stop()

    node = _anvil(port)
    try:
        chain2 = Chain.connect(node.url)
        factory2 = Factory.deploy(chain2, roles["deployer"])
        assert factory2.address == factory.address  # same deployer, same nonce
        new = _open(chain2, roles, factory2, period_count=5)
        while chain2.w3.eth.block_number <= old_head + 2:
            chain2.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        result = indexer.sync()  # the same indexer object, talking to the new node at the same URL
        assert result.reorg and result.rolled_back_to is None
        # The clone lands at the same address too (same factory nonce), with other terms and
        # no settled period: nothing of the old chain survives.
        assert new.address == old.address and store.known_agreements() == [new.address]
        assert store.agreement(new.address)["period_count"] == 5  # type: ignore[index]
        assert store.periods(new.address)[1] == 0
        _assert_matches_chain(store, chain2, factory2)
    finally:
        node.stop()
        store.close()


@pytest.mark.anvil
def test_disputes_maintenance_latency_and_calendar_periods(anvil: LocalNode, tmp_path: Path) -> None:
    """Agreements with options: a dispute window with an arbiter, maintenance declared with notice,
    a latency service (ms, lower is better) and calendar periods of unequal length. The arbiter's
    correction replaces the period's figures; a reorganisation that removes the correction puts
    the period back to disputed (periods are rebuilt from the events left)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from smartsla.api.app import ApiSettings, create_app
    from smartsla.terms import Service, Tier

    chain = Chain.connect(anvil.url)
    a = chain.accounts
    roles = {"deployer": a[0], "provider": a[1], "customer": a[2], "oracle": a[3]}
    arbiter = a[5]
    services = (
        Service(name="compute", objective=999_900, weight_bps=7_000, tiers=(
            Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=990_000, credit_bps=3_000))),
        Service(name="latency", kind="latency", objective=200, weight_bps=3_000, tiers=(
            Tier(threshold=200, credit_bps=1_000), Tier(threshold=500, credit_bps=3_000))),
    )
    factory = Factory.deploy(chain, roles["deployer"])
    start = chain.now() + 60  # deposits close at the start
    agreement = factory.create_agreement(make_terms(
        roles, start, services=services, period_length=0, period_count=2, period_ends=(3_600, 10_800),
        dispute_window=1_800, arbiter=arbiter, maintenance_notice=600, maintenance_budget=3_600), roles["deployer"])
    agreement.deposit_fees(roles["customer"])
    agreement.deposit_collateral(roles["provider"])
    agreement.declare_maintenance(start + 3_960, start + 4_560, roles["provider"])  # in period 1, with notice
    chain.mine_at(start + 3_600)
    # compute below 99 %: 30 %; 600 ms > 500: 30 %
    agreement.settle(0, [989_000, 600], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    agreement.dispute(0, b"\x01" * 32, roles["customer"])
    before_resolution = chain.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    agreement.resolve_dispute(0, [999_950, 150], arbiter)  # both met: no credit

    store = IndexStore.open(str(tmp_path / "index.db"))
    indexer = Indexer(chain, store, factory.address)
    indexer.sync()
    (p0,), _ = store.periods(agreement.address)
    assert p0["state"] == "final" and p0["resolved"] and p0["values_ppm"] == [999_950, 150]
    assert p0["credit_paid"] == "0" and int(p0["previous_credit"]) == ETHER * 3 // 10  # 30 % x (70 % + 30 %)
    assert p0["disputed_by"] == roles["customer"]

    app = create_app(store, settings=ApiSettings(rate_limit_per_s=0), chain=chain, indexer=indexer)
    with TestClient(app) as c:
        d = c.get(f"/api/agreements/{agreement.address}").json()
        assert d["terms"]["period_ends"] == [3_600, 10_800] and d["terms"]["dispute_window"] == 1_800
        assert d["progress"]["current_period"] == 1 and d["progress"]["current_period_end"] == start + 10_800
        latency = c.get(f"/api/agreements/{agreement.address}/periods").json()["items"][0]["services"][1]
        assert latency["kind"] == "latency" and latency["measured"] == "150 ms" and latency["met"]
        report = c.get(f"/api/agreements/{agreement.address}/report", params={"format": "csv"}).text
        assert ",latency,ms,200,150,true," in report
        page = c.get(f"/agreements/{agreement.address}")
        assert page.status_code == 200
        assert "with notice: excluded from the figures" in page.text and "Disputed" in page.text
        assert "corrected by the arbiter" in page.text and "150 ms" in page.text

    # The resolution disappears with a reorganisation: the period is disputed again.
    assert chain.w3.provider.make_request("evm_revert", [before_resolution])["result"] is True  # type: ignore[arg-type]
    result = indexer.sync()
    assert result.reorg
    (p0,), _ = store.periods(agreement.address)
    assert p0["state"] == "disputed" and not p0["resolved"] and p0["values_ppm"] == [989_000, 600]
    assert int(p0["credit_paid"]) == ETHER * 3 // 10
    row = store.agreement(agreement.address)
    assert row is not None and int(row["pending_to_customer"]) == ETHER * 3 // 10 and row["owed_to_customer"] == "0"
    store.close()
