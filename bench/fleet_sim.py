"""A fleet of oracle daemons (one key) sharing agreements through PostgreSQL, on Anvil.

Run: .venv/bin/python bench/fleet_sim.py [--agreements N] [--daemons D] [--period S] [--periods P]
         [--batch] [--kill]
Needs PostgreSQL server binaries (Debian package postgresql; scripts/setup.sh) and Anvil.
Creates N single-service agreements (one HTTP service on 127.0.0.1 that is always up), starts D
daemons in fleet mode on one throwaway PostgreSQL, optionally SIGKILLs the sender in the middle
of period 0, waits until every agreement ended and prints:
* period-end-to-settlement delay (block timestamp of PeriodSettled - period end) p50 / p99 / max;
* gas per agreement-period (sum of the oracle's mined transactions / settled periods);
* PeriodSettled count against the expected count, and the oracle's nonce.
Real time, no time warp: the probes measure real seconds, so an agreement's period must last as
long as its slices (the full-size run, 10,000 agreements, needs a machine that can create 30,000
set-up transactions and probe 10,000 targets per slice; see docs/oracle.md "Fleet").
Not run by pytest.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "oracle"))
from conftest import PgServer, _pg_bindir  # noqa: E402 - the tests' throwaway PostgreSQL

from oracle.store import Store  # noqa: E402
from smartsla.chain import Chain  # noqa: E402
from smartsla.client import Factory, Status  # noqa: E402
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


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agreements", type=int, default=200)
    ap.add_argument("--daemons", type=int, default=3)
    ap.add_argument("--period", type=int, default=30)
    ap.add_argument("--periods", type=int, default=2)
    ap.add_argument("--lease", type=float, default=5.0)
    ap.add_argument("--batch", action="store_true", help="settle through a SettlementBatch contract")
    ap.add_argument("--kill", action="store_true", help="SIGKILL the sender in the middle of period 0")
    args = ap.parse_args()
    bindir = _pg_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries not found (Debian package postgresql)")
    pg = PgServer(bindir)
    pg.start()
    pg_url = pg.new_database()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Up)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    node = start_node("anvil")
    tmp = Path(tempfile.mkdtemp(prefix="fleet-sim-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        chain = Chain.connect(node.url)
        deployer, provider, customer = chain.accounts[:3]
        factory = Factory.deploy(chain, deployer)
        oracle, key = chain.new_account(fund_from=deployer, amount=100 * ETHER)
        batch_address = chain.deploy("SettlementBatch", deployer)[0].address if args.batch else None
        t0 = time.time()
        setup_s = 0.12 * args.agreements + 20  # measured: ~0.1 s per agreement (3 transactions)
        start = int(time.time() + setup_s)
        service = Service(name="web", objective_ppm=999_900, tiers=(Tier(below_ppm=999_900, credit_bps=1_000),))
        agreements = []
        for _ in range(args.agreements):
            terms = Terms(provider=provider, customer=customer, start=start, period_length=args.period,
                          period_count=args.periods, fee_per_period=ETHER // 1000,
                          collateral=args.periods * ETHER // 1000, termination_ppm=0, services=(service,),
                          oracles=(oracle,), slice_seconds=1, min_measured_ppm=300_000)
            ag = factory.create_agreement(terms, deployer)
            ag.deposit_fees(customer)
            ag.deposit_collateral(provider)
            agreements.append(ag)
        print(f"created {args.agreements} agreements in {time.time() - t0:.1f} s", flush=True)
        if time.time() > start - 5:
            sys.exit("set-up took longer than planned: raise setup_s")
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        chain_cfg: dict[str, object] = {"rpc_url": node.url, "factory": factory.address, "timeout_s": 5}
        if batch_address:
            chain_cfg["batch_contract"] = batch_address
        for i in range(args.daemons):
            cfg = {"chain": chain_cfg, "key": {"env": "SMARTSLA_ORACLE_KEY"}, "store": pg_url,
                   "slice_seconds": 1, "grace_s": 1, "report_check_s": 0.5, "listen": "127.0.0.1:0",
                   "agreements": [{"address": ag.address} for ag in agreements],
                   "services": {"web": {"http": {"url": url, "timeout_s": 0.5}, "interval_s": 1}},
                   "max_in_flight": 256, "fleet": {"lease_s": args.lease, "id": f"d{i}"}}
            path = tmp / f"oracle{i}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            out = open(tmp / f"oracle{i}.log", "ab")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen([sys.executable, "-m", "oracle", "--config", str(path)],
                                          env=dict(os.environ, SMARTSLA_ORACLE_KEY=key),
                                          stdout=out, stderr=subprocess.STDOUT))
        store = Store.open(pg_url)
        if args.kill:
            while time.time() < start + args.period / 2:
                time.sleep(0.2)
            with store.engine.connect() as conn:
                sender = conn.execute(text("SELECT holder FROM fleet_leases WHERE name = 'sender'")).scalar()
            victim = int(str(sender)[1:])
            procs[victim].send_signal(signal.SIGKILL)
            print(f"SIGKILLed d{victim} (the sender) at period 0 + {time.time() - start:.1f} s", flush=True)
        deadline = start + args.period * args.periods + 600
        pending = list(agreements)
        while pending and time.time() < deadline:
            time.sleep(2)
            pending = [ag for ag in pending if ag.snapshot().status is not Status.Ended]
        delays: list[float] = []
        settled = 0
        for ag in agreements:
            for log in ag.contract.events.PeriodSettled().get_logs(from_block=0):
                settled += 1
                block = chain.w3.eth.get_block(log["blockNumber"])
                delays.append(block["timestamp"] - ag.terms.period_end(log["args"]["period"]))
        with store.engine.connect() as conn:
            hashes = [h for (h,) in conn.execute(text("SELECT tx_hash FROM oracle_tx_attempts"))]
        store.close()
        gas = 0
        for h in hashes:
            try:
                gas += chain.w3.eth.get_transaction_receipt(h)["gasUsed"]
            except Exception:  # a replaced or dropped attempt was never mined
                continue
        expected = args.agreements * args.periods
        nonce = chain.w3.eth.get_transaction_count(oracle)
        print(f"daemons {args.daemons}, agreements {args.agreements}, periods {args.periods} x {args.period} s, "
              f"batch {bool(batch_address)}, kill {args.kill}")
        print(f"PeriodSettled {settled} / expected {expected}; unfinished agreements {len(pending)}")
        if delays:
            print(f"period end -> settlement: p50 {statistics.median(delays):.1f} s, p99 {pct(delays, 99):.1f} s, "
                  f"max {max(delays):.1f} s")
        print(f"oracle transactions (nonce) {nonce}; gas per agreement-period {gas / max(settled, 1):,.0f}")
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
