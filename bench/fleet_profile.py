"""Profile one fleet member's costs at N agreements (in-process, Anvil + a throwaway PostgreSQL).

Run: .venv/bin/python bench/fleet_profile.py [--agreements N] [--cprofile]
Prints: Daemon.prepare wall/CPU time and resident memory per agreement, one fleet step, and the
sender's report pass over N due periods (batched, 50 a transaction) with its per-period cost.
Samples are written straight into the store (3 per agreement, all up), so the pass has real
figures to report. --cprofile sees only the calling thread (the store's parallel reads run in
threads of their own). Not run by pytest.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import resource
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "bench"),
                str(Path(__file__).resolve().parents[1] / "tests" / "oracle"),
                str(Path(__file__).resolve().parents[1] / "tests")]
from conftest import PgServer, _pg_bindir  # noqa: E402
from fleet_sim import SET_UP_ANVIL, limit_wal, mining_on_demand, send_all  # noqa: E402
from web3 import Web3  # noqa: E402

from oracle.config import OracleConfig  # noqa: E402
from oracle.daemon import Daemon  # noqa: E402
from oracle.probes import Sample  # noqa: E402
from smartsla.chain import Chain  # noqa: E402
from smartsla.client import Factory  # noqa: E402
from smartsla.localnode import start_node  # noqa: E402
from smartsla.terms import Service, Terms, Tier  # noqa: E402

ETHER = 10**18


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agreements", type=int, default=2000)
    ap.add_argument("--period", type=int, default=40)
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pg = PgServer(_pg_bindir() or sys.exit("no PostgreSQL"))
    pg.start()
    pg_url = pg.new_database()
    limit_wal(pg)
    node = start_node("anvil", extra_args=SET_UP_ANVIL)
    try:
        chain = Chain.connect(node.url, timeout_s=120)
        deployer, provider, customer = chain.accounts[:3]
        factory = Factory.deploy(chain, deployer)
        oracle, key = chain.new_account(fund_from=deployer, amount=1000 * ETHER)
        batch_address = chain.deploy("SettlementBatch", deployer)[0].address
        n = args.agreements
        start = int(time.time() + 30 + 0.03 * n)
        service = Service(name="web", objective=999_900, tiers=(Tier(threshold=999_900, credit_bps=1_000),))
        terms = Terms(provider=provider, customer=customer, start=start, period_length=args.period, period_count=2,
                      fee_per_period=ETHER // 1000, collateral=2 * ETHER // 1000, termination_ppm=0,
                      services=(service,), oracles=(oracle,), slice_seconds=10, min_measured_ppm=300_000)
        create = factory.contract.functions.createAgreementWithOptions(terms.to_abi(), terms.options_abi())
        gas = hex(int(create.estimate_gas({"from": deployer}) * 1.3))
        receipts = send_all(node.url, [{"from": deployer, "to": factory.address,
                                        "data": create._encode_transaction_data(), "gas": gas}] * n)
        topic = Web3.keccak(text="AgreementCreated(address,address,address,address)").to_0x_hex()
        addresses = [Web3.to_checksum_address("0x" + lg["topics"][1][-40:]) for r in receipts for lg in r["logs"]
                     if lg["topics"][0] == topic]
        first = factory.agreement(addresses[0])
        fees_fn, coll_fn = first.contract.functions.depositFees(), first.contract.functions.depositCollateral()
        deposits = []
        for a in addresses:
            deposits.append({"from": customer, "to": a, "data": fees_fn._encode_transaction_data(),
                             "gas": hex(200_000), "value": hex(terms.total_fees)})
            deposits.append({"from": provider, "to": a, "data": coll_fn._encode_transaction_data(),
                             "gas": hex(200_000), "value": hex(terms.collateral)})
        send_all(node.url, deposits)
        mining_on_demand(node.url)
        print(f"{n} agreements created and funded; {start - time.time():.0f} s before period 0", flush=True)
        os.environ["SMARTSLA_ORACLE_KEY"] = key
        config = OracleConfig.model_validate({
            "chain": {"rpc_url": node.url, "factory": factory.address, "timeout_s": 30,
                      "batch_contract": batch_address},
            "key": {"env": "SMARTSLA_ORACLE_KEY"}, "store": pg_url, "slice_seconds": 10, "grace_s": 1,
            "listen": "127.0.0.1:0", "agreements": [{"address": a} for a in addresses],
            "services": {"web": {"tcp": {"host": "127.0.0.1", "port": 9, "timeout_s": 0.5}, "interval_s": 10}},
            "fleet": {"lease_s": 15, "id": "p0"}})
        daemon = Daemon(config)
        rss0, c0, t0 = rss_mb(), cpu(), time.time()
        prof = cProfile.Profile() if args.cprofile else None
        if prof:
            prof.enable()
        daemon.prepare()
        if prof:
            prof.disable()
        t1, c1, rss1 = time.time(), cpu(), rss_mb()
        print(f"prepare: {t1 - t0:.1f} s wall, {c1 - c0:.1f} s CPU ({(t1 - t0) / n * 1000:.1f} ms wall, "
              f"{(c1 - c0) / n * 1000:.1f} ms CPU an agreement); RSS {rss0:.0f} -> {rss1:.0f} MB "
              f"({(rss1 - rss0) / n * 1024:.0f} KB an agreement)", flush=True)
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        assert daemon.fleet is not None
        t0 = time.time()
        status = daemon.fleet.step(list(daemon.served))
        print(f"first fleet step: {time.time() - t0:.2f} s, holds {len(status.held)}, sender {status.sender}")
        t0 = time.time()
        daemon.fleet.step(list(daemon.served))
        print(f"next fleet step: {time.time() - t0:.2f} s")
        # Samples: every agreement up in three slices of period 0.
        daemon.store.add_samples_many({a: [Sample("web", start + 10 * k + 1, True, 1.0, "") for k in range(3)]
                                       for a in addresses})
        wait = terms.period_end(0) + 3 - time.time()
        if wait > 0:
            time.sleep(wait)
        daemon.fleet.step(list(daemon.served))
        c0, t0 = cpu(), time.time()
        prof = cProfile.Profile() if args.cprofile else None
        if prof:
            prof.enable()
        daemon.report_due_periods()
        if prof:
            prof.disable()
        t1, c1 = time.time(), cpu()
        settled = sum(1 for a in addresses[:50] if daemon.factory.agreement(a).snapshot().settled_periods == 1)
        print(f"report pass over {n} due periods: {t1 - t0:.1f} s wall, {c1 - c0:.1f} s CPU "
              f"({(t1 - t0) / n * 1000:.1f} ms wall, {(c1 - c0) / n * 1000:.1f} ms CPU a period); "
              f"first 50 settled: {settled}; RSS {rss_mb():.0f} MB", flush=True)
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        daemon.store.close()
    finally:
        node.stop()
        pg.stop()


if __name__ == "__main__":
    main()
