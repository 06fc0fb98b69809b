"""A fleet for 10,000 agreements (issue 15 item 5): what a daemon does per configured agreement.

At 10,000 agreements the daemons did not start (each read every agreement with three calls of its
own, ~55 ms each), and every member kept probe tasks, running-period gauges and a maintenance
read a minute for all of them, though it probed only its share. These tests pin the fixes with
a real Anvil and a real PostgreSQL, counting the requests that reach the node.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import batch_set_up, measure_period_up
from sqlalchemy import event, select
from web3 import Web3

from oracle.config import OracleConfig
from oracle.daemon import Daemon
from oracle.fleet import Fleet
from oracle.probes import Sample
from oracle.store import Store, sample_runs
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.terms import Service, Terms, Tier

pytestmark = pytest.mark.anvil

ETHER = 10**18
SELECTORS = {Web3.keccak(text=f"{name}()")[:4].to_0x_hex(): name
             for name in ("terms", "options", "snapshot", "maintenanceCount")}


class Requests:
    """Counts the HTTP requests that reach the node through a chain's provider: single requests
    by method (for eth_call, by the called function; a cached eth_chainId is no request), and
    batch requests."""

    def __init__(self, chain: Chain) -> None:
        self.single: Counter[str] = Counter()
        self.batches = 0
        provider: Any = chain.w3.provider
        post, make_batch = provider._make_request, provider.make_batch_request  # noqa: SLF001

        def counted(method: str, request_data: bytes) -> Any:
            name = method
            if method == "eth_call":
                data = json.loads(request_data)["params"][0]
                name = f"eth_call {SELECTORS.get(str(data.get('data') or data.get('input'))[:10], 'other')}"
            self.single[name] += 1
            return post(method, request_data)

        def counted_batch(requests: Any) -> Any:
            self.batches += 1
            return make_batch(requests)

        provider._make_request, provider.make_batch_request = counted, counted_batch  # noqa: SLF001

    def calls(self) -> int:
        return sum(n for m, n in self.single.items() if m.startswith("eth_call"))


def counting_daemon(config: OracleConfig) -> tuple[Daemon, list[Requests]]:
    """A Daemon whose node requests are counted from the moment it connects."""
    seen: list[Requests] = []

    class Counted(Daemon):
        def _connect(self, wait_s: float) -> Chain:
            chain = super()._connect(wait_s)
            seen.append(Requests(chain))
            return chain

    return Counted(config), seen


def agreements(chain: Chain, factory: Factory, oracle: str, n: int, start: int, funded: bool = False,
               period: int = 10) -> list[Agreement]:
    a = chain.accounts
    terms = Terms(provider=a[1], customer=a[2], start=start, period_length=period, period_count=2,
                  fee_per_period=ETHER // 100, collateral=2 * ETHER // 100, termination_ppm=0,
                  services=(Service(name="web", objective=999_900,
                                    tiers=(Tier(threshold=999_900, credit_bps=1_000),)),),
                  oracles=(oracle,), slice_seconds=1, min_measured_ppm=300_000)
    out = []
    for _ in range(n):
        ag = factory.create_agreement(terms, a[0])
        if funded:
            ag.deposit_fees(a[2])
            ag.deposit_collateral(a[1])
        out.append(ag)
    return out


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections (the kernel's backlog does it)."""
    with socket.create_server(("127.0.0.1", 0), backlog=512) as server:
        yield server.getsockname()[1]


def config_for(node_url: str, factory: Factory, ags: list[Agreement], store: str, port: int,
               **extra: Any) -> OracleConfig:
    return OracleConfig.model_validate({
        "chain": {"rpc_url": node_url, "factory": factory.address, "timeout_s": 5, **extra.pop("chain", {})},
        "key": {"env": "SMARTSLA_ORACLE_KEY"}, "store": store, "slice_seconds": 1, "grace_s": 0,
        "listen": "127.0.0.1:0", "agreements": [{"address": ag.address} for ag in ags],
        "services": {"web": {"tcp": {"host": "127.0.0.1", "port": port, "timeout_s": 0.25}, "interval_s": 0.5}},
        **extra})


def test_prepare_reads_many_agreements_in_a_few_batch_requests(anvil, tmp_path: Path, monkeypatch,
                                                                 listening_port: int) -> None:
    """Start-up no longer costs three calls (and three eth_chainId) per configured agreement:
    the terms come in batch requests, and they are the same terms. (Before: 3 single eth_calls an
    agreement, 36 here, each after an eth_chainId.)"""
    chain = Chain.connect(anvil.url)
    factory = Factory.deploy(chain, chain.accounts[0])
    oracle, key = chain.new_account(fund_from=chain.accounts[0], amount=ETHER)
    ags = agreements(chain, factory, oracle, 12, chain.now() + 600)
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", key)
    daemon, seen = counting_daemon(config_for(anvil.url, factory, ags, f"sqlite:///{tmp_path / 'o.db'}",
                                              listening_port))
    daemon.prepare(wait_for_chain_s=5)
    (requests,) = seen
    assert requests.calls() <= 2, requests.single  # e.g. a token's decimals; not one per agreement
    assert requests.single["eth_chainId"] <= 2, requests.single  # before: 74 (one before every call)
    assert 1 <= requests.batches <= 2
    for ag in ags:
        assert daemon.served[ag.address].agreement.terms == Agreement(chain, ag.address).terms
    daemon.store.close()


@pytest.mark.slow
def test_a_member_probes_and_follows_only_what_it_holds_and_takes_over_a_dead_members_share(
        anvil, pg_url: str, monkeypatch, listening_port: int) -> None:
    """A member configured with N agreements that holds none of them runs no probe task, no
    running-period gauge and no maintenance read for them (before: all N, each probe returning at
    once); once their holder dies, it takes them over within a lease and probes them."""
    lease_s = 3.0
    chain = Chain.connect(anvil.url)
    factory = Factory.deploy(chain, chain.accounts[0])
    oracle, key = chain.new_account(fund_from=chain.accounts[0], amount=ETHER)
    ags = agreements(chain, factory, oracle, 6, chain.now() + 600)
    addresses = [ag.address for ag in ags]
    other_store = Store.open(pg_url)
    other = Fleet(other_store, lease_s, "other")
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", key)
    daemon, seen = counting_daemon(config_for(anvil.url, factory, ags, pg_url, listening_port,
                                              fleet={"lease_s": lease_s, "id": "me"}))
    daemon.prepare(wait_for_chain_s=5)
    assert len(other.step(addresses).held) == 6  # alone so far: it holds everything
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(target=loop.run_until_complete, args=(daemon.run(stop),), daemon=True)
    died = time.time()  # `other` never steps again
    runner.start()
    try:
        time.sleep(0.8)  # the member's first step is done (it found everything held)
        assert daemon.fleet is not None and daemon.fleet.status.held == set()
        assert daemon.prober is not None and daemon.prober.targets == []
        assert daemon.running is not None
        assert daemon.running._services == {} and daemon.running._windows_of == {}  # noqa: SLF001
        before = seen[0].single["eth_call maintenanceCount"]
        time.sleep(1.0)
        assert seen[0].single["eth_call maintenanceCount"] == before  # no maintenance read for them
        # `other` is dead: within a lease (plus a step) the member holds, probes and follows all six.
        deadline = died + lease_s + daemon.fleet.renew_every_s + 1.5
        while len(daemon.fleet.status.held) < 6:
            assert time.time() < deadline, f"not taken over within a lease: {daemon.fleet.status}"
            time.sleep(0.1)
        taken = time.time()
        assert sorted(t.key[0] for t in daemon.prober.targets) == sorted(addresses)
        assert {a for a, _ in daemon.running._services} == set(addresses)  # noqa: SLF001
        time.sleep(1.5)  # three intervals: every agreement checked and its samples stored
        daemon.writer.flush()  # type: ignore[union-attr]
        for a in addresses:
            assert [s for s in daemon.store.samples(a, "web", taken - 0.5, time.time()) if s.ok], a
        # their maintenance windows are known, counted in a batch request: no call of their own
        while len(daemon.running._maintenance) < 6:  # noqa: SLF001
            assert time.time() < taken + 5, "maintenance windows of the taken-over agreements not read"
            time.sleep(0.1)
        assert seen[0].single["eth_call maintenanceCount"] == 0, seen[0].single
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(30)
        other_store.close()


def test_a_report_pass_reads_snapshots_in_batches_and_sends_one_transaction_per_batch(
        anvil, pg_url: str, tmp_path: Path, monkeypatch, listening_port: int) -> None:
    """The sender's pass reads every due agreement's snapshot and maintenance count in batch
    requests (before: a snapshot and a maintenanceCount call each, ~35 ms of the ~145 ms an
    agreement-period took at 2,000), then sends its batches: every period settles once, one
    transaction per batch."""
    chain = Chain.connect(anvil.url)
    factory, batch, oracle, key = batch_set_up(chain)
    start = chain.now() + 60
    ags = agreements(chain, factory, oracle, 8, start, funded=True)
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", key)
    daemon, seen = counting_daemon(config_for(anvil.url, factory, ags, pg_url, listening_port,
                                              chain={"batch_contract": batch.address, "batch_size": 2}))
    daemon.prepare(wait_for_chain_s=5)
    measure_period_up(daemon.store, ags, start)  # every slice of period 0 measured up
    chain.mine_at(start + 11)
    nonce0 = chain.w3.eth.get_transaction_count(oracle)
    (requests,) = seen
    requests.single.clear()
    daemon.report_due_periods()
    assert requests.single["eth_call maintenanceCount"] == 0, requests.single
    # one snapshot each is still read by the submitter (already settled?), not two
    assert requests.single["eth_call snapshot"] <= len(ags), requests.single
    assert chain.w3.eth.get_transaction_count(oracle) == nonce0 + 4  # 8 due periods, batches of 2
    for ag in ags:
        assert [s.period for s in ag.settlements()] == [0]
        assert daemon.store.report(ag.address, 0).state == "confirmed"
    daemon.report_due_periods()  # nothing more is due: nothing is sent
    assert chain.w3.eth.get_transaction_count(oracle) == nonce0 + 4
    daemon.store.close()


def test_track_slices_many_tracks_like_one_by_one(store_url: str) -> None:
    """Start-up starts the sample runs of every configured agreement in a few transactions; the
    result is what track_slices one by one gives: fresh agreements tracked, stored samples
    chained, already tracked ones left alone (nothing chained twice)."""
    t0 = 1_800_000_000.0
    old, fresh, again = (f"0x{i:040x}" for i in (1, 2, 3))
    with Store.open(store_url) as s:
        s.add_samples(old, [Sample("api", t0 + x, True, 1.0, "") for x in (0, 30, 60, 200, 230)])
        s.add_samples(again, [Sample("api", t0, True, 1.0, "")])
        assert s.track_slices(again, 60) is True
        assert s.track_slices_many([(old, 60), (fresh, 60), (again, 60), (fresh, 10)]) == 3
        assert s.track_slices_many([(old, 60), (fresh, 60)]) == 0
        assert [s.tracked_gaps(a) for a in (old, fresh, again)] == [[60], [10, 60], [60]]
        s.add_samples(fresh, [Sample("api", t0 + x, True, 1.0, "") for x in (0, 5)])  # chained as written
        r = sample_runs.c
        with s.engine.begin() as conn:
            runs = sorted((a, g, t1 - t0, t2 - t0) for a, g, t1, t2 in conn.execute(
                select(r.agreement, r.gap, r.t0, r.t1).where(r.service == "api")))
    assert runs == sorted([(old, 60, 0.0, 60.0), (old, 60, 200.0, 230.0), (fresh, 10, 0.0, 5.0),
                           (fresh, 60, 0.0, 5.0), (again, 60, 0.0, 0.0)])


def test_a_fleet_step_inserts_each_lease_row_once(pg_url: str) -> None:
    """Every step used to upsert one row per configured agreement (10,000 every lease/3 from each
    member at full size); the rows are never deleted, so each is inserted once."""
    names = [f"0x{i:040x}" for i in range(1, 101)]
    with Store.open(pg_url) as store:
        rows: list[int] = []

        @event.listens_for(store.engine, "before_cursor_execute")
        def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO FLEET_LEASES"):
                rows.append(len(context.compiled_parameters))

        member = Fleet(store, 3.0, "a")
        assert len(member.step(names).held) == 100
        assert sum(rows) == 101  # every agreement's row, and the sender's
        rows.clear()
        for _ in range(2):
            assert len(member.step(names).held) == 100
        assert sum(rows) == 2, rows  # the sender's row only (an upsert of one)
        assert len(member.step([*names, "0x" + "ff" * 20]).held) == 101  # a new agreement: its row


def test_a_sender_that_loses_its_lease_mid_pass_sends_no_further_batch(
        anvil, pg_url: str, monkeypatch, listening_port: int) -> None:
    """A pass at scale outlasts a lease. The sender lease was checked only at the start of a
    pass, so a member that lost it mid-pass went on broadcasting next to the new sender (seen in
    bench/fleet_sim.py at 2,000: two senders, clashing nonces). Finding F-1."""
    chain = Chain.connect(anvil.url)
    factory, batch, oracle, key = batch_set_up(chain)
    start = chain.now() + 60
    ags = agreements(chain, factory, oracle, 4, start, funded=True)
    monkeypatch.setenv("SMARTSLA_ORACLE_KEY", key)
    daemon = Daemon(config_for(anvil.url, factory, ags, pg_url, listening_port,
                               chain={"batch_contract": batch.address, "batch_size": 2},
                               fleet={"lease_s": 3, "id": "me"}))
    daemon.prepare(wait_for_chain_s=5)
    measure_period_up(daemon.store, ags, start)
    chain.mine_at(start + 11)
    assert daemon.fleet is not None
    daemon.fleet.step([ag.address for ag in ags])
    # held for the pass's first check and its first batch (start, send); then the lease is lost
    answers = iter([True, True, True])
    monkeypatch.setattr(daemon.fleet, "is_sender", lambda: next(answers, False))
    nonce0 = chain.w3.eth.get_transaction_count(oracle)
    daemon.report_due_periods()
    assert chain.w3.eth.get_transaction_count(oracle) == nonce0 + 1  # before: + 2 (both batches)
    assert sorted(ag.snapshot().settled_periods for ag in ags) == [0, 0, 1, 1]
