"""Evidence records at full size: a 30-day period at one-minute slices (43,200 slices), one sample a
minute, built the way the daemon does it (Store.slice_data -> oracle.evidence.build_record ->
figure_from_record), and the bundle sizes for a steady, a flapping and a latency service.

    .venv/bin/python bench/evidence_bench.py

Not a test (tests/oracle/test_evidence.py asserts the sizes at the same scale without a store).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
import zlib

from oracle import evidence as ev
from oracle.probes import Sample
from oracle.store import Store

AGREEMENT, ORACLE = "0x" + "ab" * 20, "0x" + "cd" * 20
START, N, L = 1_700_000_000, 43_200, 60


def main() -> None:
    rng = random.Random(1)
    store = Store.open(os.path.join(tempfile.mkdtemp(), "bench.db"))
    store.add_samples(AGREEMENT, [Sample("web", START + i * L + 5, not 1_000 <= i < 1_030, rng.uniform(10, 100), "")
                                  for i in range(N)])
    store.add_samples(AGREEMENT, [Sample("flap", START + i * L + 5, rng.random() < 0.5, 20.0, "") for i in range(N)])
    end = START + N * L
    t = time.perf_counter()
    data = store.slice_data(AGREEMENT, "web", START, end, L)
    data_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    slices = store.slice_data(AGREEMENT, "web", START, end, L, latency=True)
    states_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    rec = ev.build_record(chain_id=1, agreement=AGREEMENT, period=0, start=START, end=end, slice_seconds=L, index=0,
                          name="web", kind="availability", slices=data)
    ev.figure_from_record(rec)
    record_ms = (time.perf_counter() - t) * 1000
    lat = ev.build_record(chain_id=1, agreement=AGREEMENT, period=0, start=START, end=end, slice_seconds=L, index=1,
                          name="web-p95", kind="latency", slices=slices)
    flap = ev.build_record(chain_id=1, agreement=AGREEMENT, period=0, start=START, end=end, slice_seconds=L, index=2,
                           name="flap", kind="availability", slices=store.slice_data(AGREEMENT, "flap", START, end, L))
    print(f"per service and period: slice_data {data_ms:.0f} ms (availability), {states_ms:.0f} ms (latency: a "
          f"value per slice) + record and figure {record_ms:.0f} ms (bench/period_bench.py times it at scale)")
    for name, r in (("steady availability (1 outage)", rec), ("latency (one value per up slice)", lat),
                    ("flapping every minute", flap)):
        text = ev.dumps_bundle(ev.Bundle(ORACLE, (r,))).encode()
        print(f"{name:36s} {len(text):>9,} bytes, gzip {len(zlib.compress(text)):>8,} bytes, {len(r.runs):,} runs")


if __name__ == "__main__":
    main()
