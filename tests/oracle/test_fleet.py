"""Fleet mode (oracle.fleet): daemons with one key sharing agreements through a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml

from oracle.config import ConfigError, load_config
from oracle.fleet import Fleet
from oracle.store import IllegalTransitionError, Store, StoreError

AGREEMENTS = [f"0x{i:040x}" for i in range(1, 31)]
LEASE_S = 1.0  # short, so expiry is quick to test (the configuration's minimum is 3 s)


@pytest.fixture
def pg_stores(pg_url: str) -> list[Store]:
    stores = [Store.open(pg_url) for _ in range(3)]  # one engine per "daemon"
    yield stores
    for s in stores:
        s.close()


def test_two_members_split_the_agreements_without_overlap(pg_stores: list[Store]) -> None:
    a, b = (Fleet(s, LEASE_S, m) for s, m in zip(pg_stores, ("a", "b"), strict=False))
    # Both start together, concurrently: SKIP LOCKED hands each row to one of them only.
    results: dict[str, set[str]] = {}
    barrier = threading.Barrier(2)

    def go(f: Fleet) -> None:
        barrier.wait()
        f.step(AGREEMENTS)
        results[f.member] = set(f.step(AGREEMENTS).held)  # second step: both see 2 live members

    threads = [threading.Thread(target=go, args=(f,)) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not results["a"] & results["b"], "an agreement leased to two members"
    # The second member may find everything taken at first; the holder gives its surplus back on
    # its next step, and the other claims it on the one after: balanced within two rounds.
    for _ in range(2):
        a.step(AGREEMENTS)
        b.step(AGREEMENTS)
    held_a, held_b = a.status.held, b.status.held
    assert not held_a & held_b
    assert held_a | held_b == set(AGREEMENTS)
    assert (len(held_a), len(held_b)) == (15, 15)
    assert a.status.live == b.status.live == 2
    # exactly one sender
    assert [a.is_sender(), b.is_sender()].count(True) == 1
    assert all(a.holds(x) for x in held_a) and not any(a.holds(x) for x in held_b)


def test_a_dead_members_agreements_and_sender_role_are_taken_over_within_a_lease(pg_stores: list[Store]) -> None:
    a, b = Fleet(pg_stores[0], LEASE_S, "a"), Fleet(pg_stores[1], LEASE_S, "b")
    a.step(AGREEMENTS)
    for _ in range(2):
        b.step(AGREEMENTS)
        a.step(AGREEMENTS)
    assert a.is_sender() and len(a.status.held) == 15
    # `a` dies (stops renewing). Before its lease runs out nobody may take its agreements...
    status = b.step(AGREEMENTS)
    assert len(status.held) == 15 and not status.sender
    # ...and `a` itself stops acting once its local deadline passes, before the database expiry.
    time.sleep(LEASE_S - a.renew_every_s + 0.05)
    assert not a.is_sender() and not any(a.holds(x) for x in AGREEMENTS)
    t0 = time.monotonic()
    while True:
        status = b.step(AGREEMENTS)
        if len(status.held) == 30:
            break
        assert time.monotonic() - t0 < LEASE_S + 1, "agreements not taken over within a lease"
        time.sleep(b.renew_every_s)
    assert status.sender and status.live == 1 and status.taken_over == 15


def test_a_joining_member_gets_its_share(pg_stores: list[Store]) -> None:
    fleets = [Fleet(s, LEASE_S, m) for s, m in zip(pg_stores, "abc", strict=True)]
    fleets[0].step(AGREEMENTS)
    assert len(fleets[0].status.held) == 30
    for _ in range(3):  # a few rounds: surplus given back, then claimed
        for f in fleets:
            f.step(AGREEMENTS)
    held = [f.status.held for f in fleets]
    assert [len(h) for h in held] == [10, 10, 10]
    assert set().union(*held) == set(AGREEMENTS)
    assert sum(f.is_sender() for f in fleets) == 1


def test_a_clean_stop_frees_everything_at_once(pg_stores: list[Store]) -> None:
    a, b = Fleet(pg_stores[0], 60, "a"), Fleet(pg_stores[1], 60, "b")
    a.step(AGREEMENTS)
    a.leave()
    status = b.step(AGREEMENTS)  # no waiting for a 60-s lease
    assert len(status.held) == 30 and status.sender and status.live == 1


def test_two_members_cannot_both_move_a_report_to_submitted(pg_stores: list[Store]) -> None:
    agreement = AGREEMENTS[0]
    pg_stores[0].put_computed_report(agreement, 0, {"valuesPpm": [1]})
    pg_stores[0].transition_report(agreement, 0, "computed", "signed", signature="0xsig")
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def submit(store: Store, tx: str) -> None:
        barrier.wait()
        try:
            store.transition_report(agreement, 0, "signed", "submitted", tx_hash=tx)
            outcomes.append(tx)
        except IllegalTransitionError:
            outcomes.append("refused")

    threads = [threading.Thread(target=submit, args=(s, f"0x{i}")) for i, s in enumerate(pg_stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes).count("refused") == 2
    winner = next(o for o in outcomes if o != "refused")
    assert pg_stores[0].report(agreement, 0).tx_hash == winner  # type: ignore[union-attr]


def test_fleet_on_sqlite_is_refused(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "o.db")) as s, pytest.raises(StoreError, match="needs a PostgreSQL store"):
        Fleet(s, 15)
    path = tmp_path / "oracle.yaml"
    base = {"key": {"env": "K"}, "store": str(tmp_path / "o.db"), "discover": True,
            "discover_providers": [AGREEMENTS[0]]}
    path.write_text(yaml.safe_dump({**base, "fleet": {"lease_s": 15}}))
    with pytest.raises(ConfigError, match=r"fleet.*needs a PostgreSQL store"):
        load_config(path)
    path.write_text(yaml.safe_dump({**base, "fleet": {"lease_s": 1}}))
    with pytest.raises(ConfigError, match="lease_s"):
        load_config(path)
    # the same file with a PostgreSQL store is accepted
    path.write_text(yaml.safe_dump({**base, "store": "postgresql://u@127.0.0.1/db", "fleet": {"lease_s": 15}}))
    assert load_config(path).fleet.lease_s == 15  # type: ignore[union-attr]


# ---------------------------------------------------------------- two daemons, one key, one SIGKILL
FLEET_AGREEMENTS = 20
FLEET_PERIODS = 2
FLEET_PERIOD_S = 10
FLEET_LEASE_S = 3.0


@pytest.mark.anvil
def test_two_daemons_share_agreements_and_survive_a_sigkill(pg_url: str, tmp_path: Path) -> None:
    """20 agreements x 2 periods, 2 daemons with the same key on one PostgreSQL; the sender is
    SIGKILLed in the middle of period 0. Every period settles exactly once, the dead daemon's
    agreements are probed again within a lease, and the oracle's nonce equals the number of
    settlement transactions (no transaction sent twice, no nonce clash)."""
    import os
    import signal
    import subprocess
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from node_helpers import start_or_skip

    from smartsla.chain import Chain
    from smartsla.client import Factory, Status
    from smartsla.terms import Service, Terms, Tier

    class Up(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Up)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    node = start_or_skip("anvil")
    procs: list[subprocess.Popen[bytes]] = []
    ether = 10**18
    try:
        chain = Chain.connect(node.url)
        deployer, provider, customer = chain.accounts[:3]
        factory = Factory.deploy(chain, deployer)
        oracle, key = chain.new_account(fund_from=deployer, amount=ether)
        start = int(time.time()) + 14
        service = Service(name="web", objective=999_900, tiers=(Tier(threshold=999_900, credit_bps=1_000),))
        agreements = []
        for _ in range(FLEET_AGREEMENTS):
            terms = Terms(provider=provider, customer=customer, start=start, period_length=FLEET_PERIOD_S,
                          period_count=FLEET_PERIODS, fee_per_period=ether // 100,
                          collateral=FLEET_PERIODS * ether // 100, termination_ppm=0, services=(service,),
                          oracles=(oracle,), slice_seconds=1, min_measured_ppm=300_000)
            ag = factory.create_agreement(terms, deployer)
            ag.deposit_fees(customer)
            ag.deposit_collateral(provider)
            agreements.append(ag)
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        logs = [tmp_path / f"oracle{i}.log" for i in range(2)]
        for i in range(2):
            cfg = {"chain": {"rpc_url": node.url, "factory": factory.address, "timeout_s": 2},
                   "key": {"env": "SMARTSLA_ORACLE_KEY"}, "store": pg_url, "slice_seconds": 1, "grace_s": 1,
                   "report_check_s": 0.5, "listen": "127.0.0.1:0",
                   "agreements": [{"address": ag.address} for ag in agreements],
                   "services": {"web": {"http": {"url": url, "timeout_s": 0.25}, "interval_s": 0.5}},
                   "fleet": {"lease_s": FLEET_LEASE_S, "id": f"d{i}"}}
            path = tmp_path / f"oracle{i}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            out = open(logs[i], "ab")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen([sys.executable, "-m", "oracle", "--config", str(path)],
                                          env=dict(os.environ, SMARTSLA_ORACLE_KEY=key),
                                          stdout=out, stderr=subprocess.STDOUT))

        def tail() -> str:
            return "\n".join(p.read_text(errors="replace")[-2000:] for p in logs)

        def wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
            deadline = time.time() + timeout
            while not pred():
                assert time.time() < deadline, f"timed out waiting for {what}:\n{tail()}"
                time.sleep(0.2)

        store = Store.open(pg_url)

        def holders() -> dict[str, str | None]:
            with store.engine.connect() as conn:
                return dict(conn.execute(text("SELECT name, holder FROM fleet_leases")).all())

        from sqlalchemy import text
        wait(lambda: sum('"msg": "listening"' in p.read_text(errors="replace") for p in logs) == 2, 30,
             "both daemons listening")
        # balanced: 10 agreements each, before the agreements start
        wait(lambda: sorted(list(holders().values()).count(d) for d in ("d0", "d1")) in ([10, 11], [11, 10], [10, 10])
             and len(holders()) == FLEET_AGREEMENTS + 1, 15, "balanced leases")
        wait(lambda: time.time() >= start + 4, 30, "the middle of period 0")
        h = holders()
        victim = 0 if h["sender"] == "d0" else 1
        victims = {n.split(":", 1)[1] for n, d in h.items() if d == f"d{victim}" and n != "sender"}
        procs[victim].send_signal(signal.SIGKILL)
        killed_at = time.time()
        procs[victim].wait(10)
        wait(lambda: all(ag.snapshot().status is Status.Ended for ag in agreements),
             FLEET_PERIODS * FLEET_PERIOD_S + 30, "every period settled")
        with store.engine.connect() as conn:
            first_after = dict(conn.execute(text(
                "SELECT agreement, min(ts) FROM samples WHERE ts > :t GROUP BY agreement"), {"t": killed_at}).all())
        store.close()
        # exactly once: one PeriodSettled per period of each agreement
        for ag in agreements:
            assert [s.period for s in ag.settlements()] == list(range(FLEET_PERIODS)), ag.address
        # the dead daemon's agreements were probed again within a lease (plus a renewal and a check)
        assert victims and victims <= set(first_after)
        late = {a: first_after[a] - killed_at for a in victims if first_after[a] - killed_at > FLEET_LEASE_S + 2}
        assert not late, f"taken over too late: {late}"
        # one transaction per settlement: no duplicate, no clash of nonces between the two daemons
        assert chain.w3.eth.get_transaction_count(oracle) == FLEET_AGREEMENTS * FLEET_PERIODS
    finally:
        for p in procs:  # the checks are done: no need for a graceful stop
            if p.poll() is None:
                p.kill()
                p.wait(15)
        node.stop()
        server.shutdown()


def test_long_dead_members_are_pruned(pg_stores: list[Store]) -> None:
    from sqlalchemy import text

    a = Fleet(pg_stores[0], LEASE_S, "a")
    a.step(AGREEMENTS)
    with pg_stores[0].engine.begin() as conn:  # a member that died long ago (restarts get new ids)
        conn.execute(text("INSERT INTO fleet_members (member, heartbeat_at, started_at) VALUES ('old', 0, 0)"))
    a.step(AGREEMENTS)
    with pg_stores[0].engine.connect() as conn:
        assert [m for (m,) in conn.execute(text("SELECT member FROM fleet_members"))] == ["a"]
