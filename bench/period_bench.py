"""Period figures at scale: a 30-day period at one sample a minute per service, computed the way
the daemon does it: the store's per-slice data -> the evidence record (oracle.evidence.build_record)
-> its figure (figure_from_record) -> its hash (record_hash), so the figure is what the evidence
shows. Against the old way (load every sample, then oracle.sli.availability) for a few services.

    .venv/bin/python bench/period_bench.py --services 100          # builds 4.32 M samples
    .venv/bin/python bench/period_bench.py --services 1000 --db /tmp/p.db   # the issue's size

The record path of the code before the fast path (Store.slice_states and the slice-by-slice
build_record) is timed by running this script against that checkout: it uses slice_states when
the store has no slice_data. Prints seconds per service-month, the extrapolation to 1,000
services, and the process' peak memory. Not a test.

Since schema 5 the store chains an agreement's samples into runs (oracle.sample_runs) once it is
tracked at its slice length (`Store.track_slices`, what the daemon does when it serves the
agreement): the samples are inserted here directly (fast), then tracked, which builds the runs
from them the way an upgraded store does (its time is printed: a one-time cost). `--write`
also times the daemon's write path (one sample per service per batch) with and without runs.
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
from typing import Any

from oracle import evidence as ev
from oracle.probes import Sample
from oracle.sli import availability
from oracle.store import READ_WORKERS, Store

AGREEMENT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
MINUTES = 30 * 1_440
START = 1_800_000_000
END = START + MINUTES * 60


def build(path: Path, services: int) -> float:
    Store.open(f"sqlite:///{path}").close()  # the real schema and indexes
    t0 = time.perf_counter()
    conn = sqlite3.connect(path)
    # A throwaway file: no journal, a big cache, and the samples' indexes built once at the end
    # (sorting 43 M entries once is minutes faster than inserting them into three B-trees).
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    indexes = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'samples' AND sql IS NOT NULL")]
    ddl = [sql for (sql,) in conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'samples' AND sql IS NOT NULL")]
    for name in indexes:
        conn.execute(f"DROP INDEX {name}")
    rng = random.Random(1)
    for s in range(services):
        bad = set(rng.sample(range(MINUTES), 30))
        gap = rng.randrange(MINUTES - 60)  # an hour the daemon was down: two measured runs
        rows = [(AGREEMENT, f"svc{s}", START + 60 * i + 1.5, i not in bad, None if i in bad else rng.uniform(5, 90), "")
                for i in range(MINUTES) if not gap <= i < gap + 60]
        conn.executemany("INSERT INTO samples (agreement, service, ts, ok, latency_ms, detail) "
                         "VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    for sql in ddl:
        conn.execute(sql)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - t0


def slices_of(store: Store, services: list[str], kind: str, workers: int) -> list[Any]:
    """The daemon's read: slice_data_many (fast path), or slice_states one by one (older code)."""
    if hasattr(store, "slice_data_many"):
        return store.slice_data_many([(AGREEMENT, s, START, END, 60, 1, kind == "latency") for s in services], workers)
    return [store.slice_states(AGREEMENT, s, START, END, 60) for s in services]


def record_path(store: Store, services: list[str], kind: str, workers: int) -> tuple[float, float, list[int]]:
    """(wall s, CPU s, figures) of store -> record -> figure -> hash for `services`."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    values = []
    for k, (name, slices) in enumerate(zip(services, slices_of(store, services, kind, workers), strict=True)):
        rec = ev.build_record(chain_id=1, agreement=AGREEMENT, period=0, start=START, end=END, slice_seconds=60,
                              index=k, name=name, kind=kind, slices=slices, windows=[(0, START + 7_200, START + 9_000)])
        values.append(ev.figure_from_record(rec, percentile=95, objective_ms=300).value_ppm)
        ev.record_hash(rec)
    return time.perf_counter() - t0, time.process_time() - cpu0, values


def write_path(services: int, batches: int = 60) -> None:
    """The daemon's write: `batches` transactions of one sample per service, untracked vs tracked."""
    for tracked in (False, True):
        with tempfile.TemporaryDirectory() as d, Store.open(f"sqlite:///{d}/w.db") as store:
            if tracked:
                store.track_slices(AGREEMENT, 60)
            cpu0, t0 = time.process_time(), time.perf_counter()
            for b in range(batches):
                store.add_samples(AGREEMENT, [Sample(f"svc{s}", START + 30 * b + s / services, True, 12.0, "")
                                              for s in range(services)])
            n = batches * services
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            print(f"write {'with runs   ' if tracked else 'without runs'}: {batches} batches of {services} samples, "
                  f"{1e6 * wall / n:.1f} us a sample (CPU {1e6 * cpu / n:.1f} us)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--db", help="reuse (or build) this SQLite file")
    parser.add_argument("--old", type=int, default=3, help="services to time the every-sample way (0: skip)")
    parser.add_argument("--latency", type=int, default=20, help="services to time as latency services")
    parser.add_argument("--workers", type=int, default=READ_WORKERS, help="threads of slice_data_many")
    parser.add_argument("--write", type=int, default=1000, help="services of the write-path timing (0: skip)")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.db) if args.db else Path(tmp.name) / "period.db"
    if not path.exists():
        print(f"building {args.services} services x {MINUTES:,} samples ...", flush=True)
        print(f"built in {build(path, args.services):.1f} s (measure in a new process: --db {path})", flush=True)
        return
    names = [f"svc{s}" for s in range(args.services)]
    with Store.open(f"sqlite:///{path}") as store:
        tracked = hasattr(store, "track_slices") and 60 in store.tracked_gaps(AGREEMENT)
        if hasattr(store, "track_slices") and not tracked:
            # The store before runs (schema 4, or an agreement not tracked yet): the same data
            # read by the DISTINCT over the samples (slice_data's path when no gap is tracked).
            record_path(store, names[:50], "availability", 1)
            for workers in (1, args.workers):
                wall, cpu, _ = record_path(store, names, "availability", workers)
                print(f"  before runs: availability {workers} thread(s): {len(names)} services in {wall:.2f} s, "
                      f"{1000 * wall / len(names):.1f} ms a service-month (CPU {1000 * cpu / len(names):.1f} ms)",
                      flush=True)
            print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB", flush=True)
            t0 = time.perf_counter()
            store.track_slices(AGREEMENT, 60)
            print(f"chained the stored samples into runs (track_slices, once) in {time.perf_counter() - t0:.1f} s",
                  flush=True)
        record_path(store, names[:50], "availability", 1)  # warm the page cache: every run reads from memory
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"load average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(f"record path (store -> build_record -> figure_from_record -> record_hash), "
              f"{'slice_data_many' if hasattr(store, 'slice_data_many') else 'slice_states (older code)'}:")
        runs = [("availability", 1), ("availability", args.workers)]
        if args.latency:
            runs += [("latency", 1), ("latency", args.workers)]
        first: list[int] | None = None
        for kind, workers in runs:
            chosen = names if kind == "availability" else names[:args.latency]
            wall, cpu, values = record_path(store, chosen, kind, workers)
            if kind == "availability":
                assert first is None or values == first
                first = values
            per = wall / len(chosen)
            print(f"  {kind:12s} {workers} thread(s): {len(chosen)} services in {wall:.2f} s, "
                  f"{1000 * per:.1f} ms a service-month (CPU {1000 * cpu / len(chosen):.1f} ms); "
                  f"1,000 services ~ {per * 1000:.1f} s", flush=True)
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"peak RSS {rss1 // 1024} MiB (+{(rss1 - rss0) // 1024} MiB while computing)")
        if args.write and hasattr(store, "track_slices"):
            write_path(args.write)
        if args.old:
            t0 = time.perf_counter()
            for s in range(args.old):
                availability(store.samples(AGREEMENT, f"svc{s}", START, END), START, END, slice_seconds=60)
            per = (time.perf_counter() - t0) / args.old
            print(f"every sample as a Python object (oracle.sli.availability): {1000 * per:.0f} ms a service; "
                  f"1,000 services ~ {per * 1000:.0f} s")


if __name__ == "__main__":
    main()
