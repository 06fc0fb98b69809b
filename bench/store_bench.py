"""How fast the measurement store takes samples: inserts per second into a fresh SQLite file (WAL,
synchronous=FULL, as the oracle runs it) in batches of 1,000, one transaction per batch, and how
long reading a month of one service's samples back takes.

    .venv/bin/python bench/store_bench.py [--batches 50] [--url sqlite:///path.db]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from oracle.probes import Sample
from oracle.sli import availability
from oracle.store import Store

BATCH = 1_000
AGREEMENT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--url", help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        with Store.open(url) as store:
            t0 = 1_800_000_000.0
            elapsed = []
            for b in range(args.batches):
                # 30 s checks of one service, like a month of probing at the default interval
                batch = [Sample("api", t0 + 30 * (b * BATCH + i), i % 97 != 0, 20.0 + i % 13, "status 200")
                         for i in range(BATCH)]
                start = time.perf_counter()
                store.add_samples(AGREEMENT, batch)
                elapsed.append(time.perf_counter() - start)
            total = args.batches * BATCH
            per_s = total / sum(elapsed)
            ms = sorted(e * 1000 for e in elapsed)
            print(f"{url.split(':')[0]}: inserted {total:,} samples in batches of {BATCH:,}: "
                  f"{per_s:,.0f} samples/s (batch commit median {ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms)")

            month = 30 * 86_400
            start = time.perf_counter()
            samples = store.samples(AGREEMENT, "api", t0, t0 + month)
            read = time.perf_counter() - start
            start = time.perf_counter()
            fig = availability(samples, t0, t0 + month)
            computed = time.perf_counter() - start
            print(f"read {len(samples):,} samples of a 30-day period in {read:.2f} s; "
                  f"SLI computed in {computed:.2f} s: {fig.explain()}")


if __name__ == "__main__":
    main()
