"""A fleet of oracle daemons (one key) sharing agreements through PostgreSQL, on Anvil.

Run: .venv/bin/python bench/fleet_sim.py [--agreements N] [--daemons D] [--period S] [--periods P]
         [--slice S] [--interval S] [--probe http|tcp] [--lease S] [--setup-s S] [--drain-s S]
         [--batch] [--kill]
The fifth-session runs (docs/oracle.md "Fleet"): --daemons 3 --period 120 --periods 2 --slice 10
  --interval 10 --probe tcp --lease 15 --batch --kill with --agreements 2000 --setup-s 240 (done)
  and --agreements 10000 --setup-s 600 (not done on the 2-core machine: the daemons' start-up,
  ~75 ms per agreement, outlasted the set-up budget). Sixth session, after the start-up, memory
  and per-member fixes (docs/oracle.md "Fleet"): --agreements 200 (sanity) and --agreements 10000
  --setup-s 600 --drain-s 1000, same other options, run niced (the 10,000 set-up did not finish).
  Seventh session (wave 8): the start is planned from a measured pilot (no --setup-s), the set-up
  mined a window of 500 transactions per block; --agreements 300 (--period 60), 2000 and 10000,
  same other options, niced (figures in docs/oracle.md "Fleet").
Needs PostgreSQL server binaries (Debian package postgresql; scripts/setup.sh) and Anvil.
Creates N single-service agreements (one HTTP or TCP service on 127.0.0.1 that is always up; the
3N set-up transactions are sent pipelined, 500 at a time with the node's automine off and one
block mined per window, and every receipt's status is checked before the run goes on; the start
is planned from a pilot's measured rate so the funding cannot outrun it), starts D
daemons in fleet mode on one throwaway PostgreSQL, optionally SIGKILLs the sender in the middle
of period 0, waits until every period settled (or --drain-s after the last end) and prints:
* period-end-to-settlement delay (block timestamp of PeriodSettled - period end) p50 / p99 / max;
* gas per agreement-period (sum of the oracle's mined transactions / settled periods);
* PeriodSettled count against the expected count (and any period settled twice), the oracle's nonce;
* set-up time (creation, deposits, daemons holding every lease) and each daemon's CPU seconds.
Real time, no time warp: the probes measure real seconds, so an agreement's period must last as
long as its slices. At 10,000 agreements, 1 check/s per target would be 10,000 checks/s on 2 cores
next to Anvil and PostgreSQL, so the full-size run uses 10-s slices and checks (--slice, --interval)
and 120-s periods (12 slices each).
Not run by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml
from sqlalchemy import text
from web3 import Web3

# tests/oracle/conftest.py imports tests/node_helpers.py: both folders on the path.
sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / d) for d in ("oracle", ".")]
from conftest import PgServer, _pg_bindir  # noqa: E402 - the tests' throwaway PostgreSQL

from oracle.store import Store  # noqa: E402
from smartsla.chain import Chain  # noqa: E402
from smartsla.client import Agreement, Factory  # noqa: E402
from smartsla.localnode import start_node  # noqa: E402
from smartsla.terms import Service, Terms, Tier  # noqa: E402

ETHER = 10**18


class Up(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def limit_wal(pg: PgServer) -> None:
    """Keep PostgreSQL's write-ahead log small (the default lets it grow to 1 GB between
    checkpoints; the bench machine's disk is shared and was full once)."""
    import psycopg

    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET max_wal_size = '96MB'")
        conn.execute("SELECT pg_reload_conf()")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]


def serve_tcp() -> int:
    """An always-up TCP service on 127.0.0.1 (accept and close, in its own event loop thread):
    far cheaper than an HTTP server at 1,000 checks/s on this machine. Returns the port."""
    loop = asyncio.new_event_loop()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(accept, "127.0.0.1", 0, backlog=4096))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return int(server.sockets[0].getsockname()[1])


def rpc_batch(url: str, calls: list[tuple[str, list[Any]]], chunk: int = 500) -> list[Any]:
    """JSON-RPC batch requests of `chunk` calls; any error aborts the run loudly (a set-up
    transaction the node refused must never be silently missing)."""
    results: list[Any] = []
    session = requests.Session()
    for i in range(0, len(calls), chunk):
        body = [{"jsonrpc": "2.0", "id": i + j, "method": m, "params": p}
                for j, (m, p) in enumerate(calls[i:i + chunk])]
        replies = sorted(session.post(url, json=body, timeout=600).json(), key=lambda r: r["id"])
        errors = [r for r in replies if "error" in r]
        if errors or len(replies) != len(body):
            sys.exit(f"set-up aborted: {len(errors)} of {len(body)} calls refused, first: {errors[:1]}")
        results += [r["result"] for r in replies]
    return results


def send_all(url: str, txs: list[dict[str, str]], window: int = 500) -> list[Any]:
    """Send the transactions `window` at a time with the node's automatic mining off, then mine
    blocks until every one of the window is in (its receipts fetched and checked: abort unless
    every one succeeded). One block per window instead of one per transaction: with automine on,
    10,000 agreements' 20,000 deposits went in at ~17/s while the daemons started (seventh
    session), and the agreements' start passed before they were funded. The node (SET_UP_ANVIL)
    has a block gas limit far above a window's gas, so blocks stay under half full and the base
    fee falls (full blocks raise it 12.5 % each: thousands of them would take it far above any
    fee cap). The caller turns automine back on (mining_on_demand) before the daemons send."""
    rpc_batch(url, [("evm_setAutomine", [False])])
    # Our own nonces: the node would give a batch's identical transactions the same one.
    senders = sorted({tx["from"] for tx in txs})
    nonce = dict(zip(senders, (int(n, 16) for n in rpc_batch(
        url, [("eth_getTransactionCount", [a, "pending"]) for a in senders])), strict=True))
    receipts: list[Any] = []
    for w in range(0, len(txs), window):
        numbered = []
        for tx in txs[w:w + window]:
            numbered.append({**tx, "nonce": hex(nonce[tx["from"]])})
            nonce[tx["from"]] += 1
        # One request each, in order (keep-alive): Anvil handles a batch's calls concurrently,
        # and transactions arriving above a nonce gap were left queued.
        hashes = rpc_batch(url, [("eth_sendTransaction", [tx]) for tx in numbered], chunk=1)
        got: list[Any] = [None] * len(hashes)
        for _ in range(60):
            rpc_batch(url, [("evm_mine", [])])
            missing = [i for i, r in enumerate(got) if r is None]
            for i, r in zip(missing, rpc_batch(url, [("eth_getTransactionReceipt", [hashes[i]]) for i in missing]),
                            strict=True):
                got[i] = r
            if all(r is not None for r in got):
                break
        receipts += got
    failed = [i for i, r in enumerate(receipts) if r is None or int(r["status"], 16) != 1]
    if failed:
        sys.exit(f"set-up aborted: {len(failed)} of {len(txs)} transactions failed or not mined "
                 f"(first index {failed[0]})")
    return receipts


def mining_on_demand(url: str) -> None:
    """Automine back on: from now on every transaction (the oracle's) is mined when it arrives."""
    rpc_batch(url, [("evm_setAutomine", [True])])


# The simulation's node: no chain history kept beyond the latest states (--prune-history: 30,000
# set-up transactions must not fill the disk with states nobody reads), and a block gas limit of
# 2,000 M gas (a set-up window of 500 creations is ~140 M; see send_all).
SET_UP_ANVIL = ("--prune-history", "--gas-limit", "2000000000")


def set_up(url: str, factory: Factory, terms: Terms, n: int, deployer: Any, customer: Any, provider: Any,
           on_created: Callable[[list[Any]], None] | None = None) -> tuple[list[Any], float]:
    """Create `n` agreements with `terms` (each its own clone), call `on_created(addresses)`, then
    deposit their fees and collateral; every receipt checked (send_all). Returns the addresses and
    the seconds it took."""
    t0 = time.time()
    # One calldata and one gas estimate serve every creation (+30 %: no estimate per transaction).
    create = factory.contract.functions.createAgreementWithOptions(terms.to_abi(), terms.options_abi())
    create_gas = hex(int(create.estimate_gas({"from": deployer}) * 1.3))
    receipts = send_all(url, [{"from": deployer, "to": factory.address, "data": create._encode_transaction_data(),
                               "gas": create_gas}] * n)
    created_topic = Web3.keccak(text="AgreementCreated(address,address,address,address)").to_0x_hex()
    addresses = []
    for r in receipts:  # the agreement is the event's first indexed argument
        logs = [lg for lg in r["logs"] if lg["address"].lower() == factory.address.lower()
                and lg["topics"][0] == created_topic]
        if len(logs) != 1:
            sys.exit(f"set-up aborted: creation {r['transactionHash']} has {len(logs)} AgreementCreated events")
        addresses.append(Web3.to_checksum_address("0x" + logs[0]["topics"][1][-40:]))
    if len(set(addresses)) != n:
        sys.exit(f"set-up aborted: {len(set(addresses))} distinct agreements for {n} creations")
    if on_created is not None:
        on_created(addresses)
    first = Agreement(factory.chain, addresses[0], factory=factory, terms=terms)
    fees_fn, coll_fn = first.contract.functions.depositFees(), first.contract.functions.depositCollateral()
    fees_gas = hex(int(fees_fn.estimate_gas({"from": customer, "value": terms.total_fees}) * 1.3))
    coll_gas = hex(int(coll_fn.estimate_gas({"from": provider, "value": terms.collateral}) * 1.3))
    fees_data, coll_data = fees_fn._encode_transaction_data(), coll_fn._encode_transaction_data()
    deposits: list[dict[str, str]] = []
    for a in addresses:
        deposits.append({"from": customer, "to": a, "data": fees_data, "gas": fees_gas,
                         "value": hex(terms.total_fees)})
        deposits.append({"from": provider, "to": a, "data": coll_data, "gas": coll_gas,
                         "value": hex(terms.collateral)})
    send_all(url, deposits)
    return addresses, time.time() - t0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a live process in MB (Linux /proc); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agreements", type=int, default=200)
    ap.add_argument("--daemons", type=int, default=3)
    ap.add_argument("--period", type=int, default=30)
    ap.add_argument("--periods", type=int, default=2)
    ap.add_argument("--slice", type=int, default=1, help="slice length in seconds (terms and daemons)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between two checks of one target")
    ap.add_argument("--probe", choices=("http", "tcp"), default="http", help="the always-up service's kind")
    ap.add_argument("--lease", type=float, default=5.0)
    ap.add_argument("--setup-s", type=float, default=None,
                    help="seconds from launch to the agreements' start (default 0.02 s per agreement + 40 s)")
    ap.add_argument("--drain-s", type=float, default=600, help="how long to wait after the last period end")
    ap.add_argument("--batch", action="store_true", help="settle through a SettlementBatch contract")
    ap.add_argument("--kill", action="store_true", help="SIGKILL the sender in the middle of period 0")
    args = ap.parse_args()
    # SIGTERM (or Ctrl-C) still runs the clean-up below: no orphaned daemons, Anvil or PostgreSQL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    bindir = _pg_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries not found (Debian package postgresql)")
    pg = PgServer(bindir)
    pg.start()
    pg_url = pg.new_database()
    limit_wal(pg)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Up)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    node = start_node("anvil", extra_args=SET_UP_ANVIL)
    tmp = Path(tempfile.mkdtemp(prefix="fleet-sim-"))
    procs: list[subprocess.Popen[bytes]] = []
    cpu: dict[int, float] = {}
    try:
        chain = Chain.connect(node.url, timeout_s=120)
        deployer, provider, customer = chain.accounts[:3]
        factory = Factory.deploy(chain, deployer)
        oracle, key = chain.new_account(fund_from=deployer, amount=1000 * ETHER)
        batch_address = chain.deploy("SettlementBatch", deployer)[0].address if args.batch else None
        service = Service(name="web", objective=999_900, tiers=(Tier(threshold=999_900, credit_bps=1_000),))

        def terms_at(start: int) -> Terms:
            return Terms(provider=provider, customer=customer, start=start, period_length=args.period,
                         period_count=args.periods, fee_per_period=ETHER // 1000,
                         collateral=args.periods * ETHER // 1000, termination_ppm=0, services=(service,),
                         oracles=(oracle,), slice_seconds=args.slice, min_measured_ppm=300_000)

        t0 = time.time()
        if args.setup_s is not None:
            setup_s = args.setup_s
        else:
            # The start must not pass before every agreement is funded and the daemons hold their
            # leases: measure this machine's set-up rate on a pilot (agreements starting in a day,
            # not part of the run), then plan twice the predicted set-up plus the daemons' start-up
            # (they start after the creations, in parallel with the deposits; ~30 ms an agreement).
            pilot = min(100, args.agreements)
            pilot_rate = 3 * pilot / set_up(node.url, factory, terms_at(int(t0) + 86_400), pilot, deployer,
                                            customer, provider)[1]
            setup_s = 2 * 3 * args.agreements / pilot_rate + 0.03 * args.agreements + 30
            print(f"pilot: {3 * pilot} set-up transactions at {pilot_rate:.0f}/s; period 0 starts in {setup_s:.0f} s",
                  flush=True)
            t0 = time.time()
        start = int(t0 + setup_s)
        terms = terms_at(start)
        t_created = 0.0

        def created(_: list[str]) -> None:
            nonlocal t_created
            t_created = time.time()
            print(f"created {args.agreements} agreements in {t_created - t0:.1f} s", flush=True)
            launch(_)

        # The daemons start once the agreements exist: they read their terms while the deposits go in.
        def launch(addresses: list[str]) -> None:
            if args.probe == "http":
                probe: dict[str, object] = {"http": {"url": f"http://127.0.0.1:{server.server_address[1]}/health",
                                                     "timeout_s": 0.5}}
            else:
                probe = {"tcp": {"host": "127.0.0.1", "port": serve_tcp(), "timeout_s": 0.5}}
            chain_cfg: dict[str, object] = {"rpc_url": node.url, "factory": factory.address, "timeout_s": 30}
            if batch_address:
                chain_cfg["batch_contract"] = batch_address
            for i in range(args.daemons):
                cfg = {"chain": chain_cfg, "key": {"env": "SMARTSLA_ORACLE_KEY"}, "store": pg_url,
                       "slice_seconds": args.slice, "grace_s": 1, "report_check_s": 0.5, "listen": "127.0.0.1:0",
                       "agreements": [{"address": a} for a in addresses],
                       "services": {"web": {**probe, "interval_s": args.interval}},
                       "max_in_flight": 256, "fleet": {"lease_s": args.lease, "id": f"d{i}"}}
                path = tmp / f"oracle{i}.yaml"
                path.write_text(yaml.safe_dump(cfg))
                out = open(tmp / f"oracle{i}.log", "ab")  # noqa: SIM115 - closed with the process
                procs.append(subprocess.Popen([sys.executable, "-m", "oracle", "--config", str(path)],
                                              env=dict(os.environ, SMARTSLA_ORACLE_KEY=key),
                                              stdout=out, stderr=subprocess.STDOUT))
        addresses, _ = set_up(node.url, factory, terms, args.agreements, deployer, customer, provider,
                              on_created=created)
        mining_on_demand(node.url)
        t_funded = time.time()
        print(f"funded {args.agreements} agreements ({2 * args.agreements} deposits) in {t_funded - t_created:.1f} s; "
              f"set-up transactions {3 * args.agreements} in {t_funded - t0:.1f} s", flush=True)
        if time.time() > start - 5:
            sys.exit("set-up took longer than planned: raise --setup-s")
        store = Store.open(pg_url)
        # Ready: every agreement's lease held by a live daemon (the table exists once one started).
        held = 0
        while time.time() < start:
            time.sleep(1)
            with store.engine.connect() as conn:
                try:
                    held = conn.execute(text(
                        "SELECT count(*) FROM fleet_leases WHERE name <> 'sender' AND holder IS NOT NULL "
                        "AND expires_at > extract(epoch FROM now())")).scalar() or 0
                except Exception:  # the schema is not created yet
                    conn.rollback()
                    continue
            if held >= args.agreements:
                break
        t_ready = time.time()
        print(f"daemons hold {held} leases {t_ready - t_created:.1f} s after their launch; "
              f"{start - t_ready:.1f} s before period 0 starts; logs in {tmp}", flush=True)
        if held < args.agreements:
            print(f"WARNING: only {held} of {args.agreements} leases held at the start", flush=True)
        cpu_at_start = {p.pid: cpu_seconds(p.pid) for p in procs}
        rss_at_start = {p.pid: rss_mb(p.pid) for p in procs}
        rss_peak = dict(rss_at_start)
        if args.kill:
            while time.time() < start + args.period / 2:
                time.sleep(0.2)
            with store.engine.connect() as conn:
                sender = conn.execute(text("SELECT holder FROM fleet_leases WHERE name = 'sender'")).scalar()
            victim = int(str(sender)[1:])
            cpu[procs[victim].pid] = cpu_seconds(procs[victim].pid)
            procs[victim].send_signal(signal.SIGKILL)
            print(f"SIGKILLed d{victim} (the sender) at period 0 + {time.time() - start:.1f} s", flush=True)
        # Wait for the settlements from the logs (one query per poll, not a call per agreement).
        expected = args.agreements * args.periods
        deadline = start + args.period * args.periods + args.drain_s
        topic = Web3.keccak(text="PeriodSettled(uint256,uint32[],uint256[],uint256,uint256,bool,uint32)").to_0x_hex()
        ours = {a.lower() for a in addresses}
        settled: dict[tuple[str, int], list[int]] = {}
        next_block = 0
        while time.time() < deadline:
            latest = chain.w3.eth.block_number
            if latest >= next_block:
                (logs,) = rpc_batch(node.url, [("eth_getLogs", [{"fromBlock": hex(next_block), "toBlock": hex(latest),
                                                                  "topics": [topic]}])])
                for lg in logs:  # the period is the event's indexed argument
                    if lg["address"].lower() in ours:
                        settled.setdefault((lg["address"].lower(), int(lg["topics"][1], 16)), []).append(
                            int(lg["blockNumber"], 16))
                next_block = latest + 1
            for p in procs:
                rss_peak[p.pid] = max(rss_peak[p.pid], rss_mb(p.pid))
            if len(settled) >= expected and time.time() > start + args.period * args.periods:
                break
            time.sleep(5)
        for p in procs:
            if p.poll() is None:
                cpu[p.pid] = cpu_seconds(p.pid)
        times: dict[int, int] = {}
        delays: list[float] = []
        for (_, period), blocks in settled.items():
            for b in blocks:
                if b not in times:
                    times[b] = chain.w3.eth.get_block(b)["timestamp"]
                delays.append(times[b] - terms.period_end(period))
        twice = sum(1 for blocks in settled.values() if len(blocks) > 1)
        with store.engine.connect() as conn:
            hashes = [h for (h,) in conn.execute(text("SELECT tx_hash FROM oracle_tx_attempts"))]
        store.close()
        gas = 0
        for h in hashes:
            try:
                gas += chain.w3.eth.get_transaction_receipt(h)["gasUsed"]
            except Exception:  # a replaced or dropped attempt was never mined
                continue
        count = sum(len(b) for b in settled.values())
        nonce = chain.w3.eth.get_transaction_count(oracle)
        pending_nonce = chain.w3.eth.get_transaction_count(oracle, "pending")
        (pool,) = rpc_batch(node.url, [("txpool_status", [])])
        base_fee = chain.w3.eth.fee_history(1, "latest", [])["baseFeePerGas"][-1]
        said: dict[str, int] = {}
        for i in range(len(procs)):  # what the daemons said about sending (F8-1)
            for line in (tmp / f"oracle{i}.log").read_text(errors="replace").splitlines():
                for what in ("sending blocked", "replaced a transaction", "dropped by the node", "broadcast refused"):
                    if what in line:
                        said[what] = said.get(what, 0) + 1
        run_s = time.time() - start
        print(f"daemons {args.daemons}, agreements {args.agreements}, periods {args.periods} x {args.period} s, "
              f"slice {args.slice} s, interval {args.interval} s, probe {args.probe}, lease {args.lease} s, "
              f"batch {bool(batch_address)}, kill {args.kill}")
        print(f"PeriodSettled {count} / expected {expected}; distinct periods {len(settled)}; settled twice {twice}")
        if delays:
            print(f"period end -> settlement: p50 {statistics.median(delays):.1f} s, p99 {pct(delays, 99):.1f} s, "
                  f"max {max(delays):.1f} s")
        print(f"oracle transactions (nonce) {nonce}; gas per agreement-period {gas / max(count, 1):,.0f}")
        print(f"at the end: oracle pending nonce {pending_nonce}, node pool {pool}, next base fee "
              f"{base_fee / 1e9:.9f} gwei; daemon logs: {said or 'no sending trouble'}")
        print(f"set-up: {3 * args.agreements} transactions {t_funded - t0:.1f} s, daemons ready "
              f"{t_ready - t_created:.1f} s after launch (in parallel with the deposits)")
        print("daemon CPU s, start-up (until all leases held): " + ", ".join(
            f"d{i} {cpu_at_start[p.pid]:.0f}" for i, p in enumerate(procs)))
        print("daemon RSS MB, when ready / peak: " + ", ".join(
            f"d{i} {rss_at_start[p.pid]:.0f} / {rss_peak[p.pid]:.0f}" for i, p in enumerate(procs)))
        print(f"daemon CPU s, from then to the end ({run_s + start - t_ready:.0f} s; the killed one until its kill): "
              + ", ".join(f"d{i} {cpu.get(p.pid, 0) - cpu_at_start[p.pid]:.0f}" for i, p in enumerate(procs)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        node.stop()
        server.shutdown()
        pg.stop()


if __name__ == "__main__":
    main()
