"""Period figures at scale: a 30-day period at one sample a minute per service, computed the way
the daemon does it (per-slice verdicts aggregated by the database, never a month of samples as
Python objects), against the old way (load every sample, then oracle.sli.availability).

    .venv/bin/python bench/period_bench.py --services 100          # builds 4.32 M samples
    .venv/bin/python bench/period_bench.py --services 1000 --db /tmp/p.db   # the issue's size

Prints the build time, seconds per service and for all services, the extrapolation to 1,000
services, and the process' peak memory. Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

from oracle.sli import availability, figure_from_counts
from oracle.store import READ_WORKERS, Store

AGREEMENT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
MINUTES = 30 * 1_440
START = 1_800_000_000


def build(path: Path, services: int) -> float:
    Store.open(f"sqlite:///{path}").close()  # the real schema and indexes
    t0 = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(1)
    for s in range(services):
        bad = set(rng.sample(range(MINUTES), 30))
        rows = [(AGREEMENT, f"svc{s}", START + 60 * i + 1.5, i not in bad, None if i in bad else 20.0, "")
                for i in range(MINUTES)]
        conn.executemany("INSERT INTO samples (agreement, service, ts, ok, latency_ms, detail) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--db", help="reuse (or build) this SQLite file")
    parser.add_argument("--old", type=int, default=3, help="services to time the old way (0: skip)")
    parser.add_argument("--workers", type=int, default=READ_WORKERS, help="threads of slice_counts_many")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.db) if args.db else Path(tmp.name) / "period.db"
    if not path.exists():
        print(f"building {args.services} services x {MINUTES:,} samples ...", flush=True)
        print(f"built in {build(path, args.services):.1f} s", flush=True)
    end = START + MINUTES * 60
    with Store.open(f"sqlite:///{path}") as store:
        requests = [(AGREEMENT, f"svc{s}", START, end, 60, ()) for s in range(args.services)]
        want = {(MINUTES - 30) * 1_000_000 // MINUTES}
        for s in range(min(args.services, 50)):  # warm the page cache: both runs read from memory
            store.slice_counts(*requests[s])
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu0, t0 = time.process_time(), time.perf_counter()
        values = [figure_from_counts(store.slice_counts(*r), 60).value_ppm for r in requests]
        seq, seq_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert set(values) == want, set(values)
        cpu0, t0 = time.process_time(), time.perf_counter()
        many = [figure_from_counts(c, 60).value_ppm for c in store.slice_counts_many(requests, args.workers)]
        new, new_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert many == values
        print(f"load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(f"before (one service after another): {args.services} services in {seq:.2f} s "
              f"({1000 * seq / args.services:.1f} ms a service, CPU {seq_cpu:.2f} s; 1,000 services ~ "
              f"{seq / args.services * 1000:.1f} s)")
        print(f"after (slice_counts_many, {args.workers} threads): {args.services} services in {new:.2f} s "
              f"({1000 * new / args.services:.1f} ms a service, CPU {new_cpu:.2f} s; 1,000 services ~ "
              f"{new / args.services * 1000:.1f} s); peak RSS {rss1 // 1024} MiB "
              f"(+{(rss1 - rss0) // 1024} MiB while computing)")
        t0 = time.perf_counter()
        latency = store.latency_percentiles(AGREEMENT, "svc0", START, end, 60)
        lat_s = time.perf_counter() - t0
        print(f"latency percentiles of one service (latency services only): {1000 * lat_s:.1f} ms {latency}")
        if args.old:
            t0 = time.perf_counter()
            for s in range(args.old):
                old = availability(store.samples(AGREEMENT, f"svc{s}", START, end), START, end, slice_seconds=60)
            per = (time.perf_counter() - t0) / args.old
            assert old.value_ppm == values[0]
            print(f"old (every sample as a Python object): {1000 * per:.0f} ms a service; "
                  f"1,000 services ~ {per * 1000:.0f} s")


if __name__ == "__main__":
    main()
