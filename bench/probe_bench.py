"""Prober throughput: checks/s, the prober's CPU and start lag, before and after the rewrite.

    .venv/bin/python bench/probe_bench.py                 # every scenario, new and old engine
    .venv/bin/python bench/probe_bench.py --impl new --scenario http-faulty --seconds 10

Targets run in a separate process (an aiohttp server: /ok answers at once, /hang never; a port
where nothing listens refuses; a TCP listener accepts). The prober runs in a process of its own,
exactly as the daemon runs it (samples to a real SQLite store through the batching writer), so
its CPU time is its own. 100 agreements x 10 services = 1,000 targets, interval 1 s, timeout 1 s.

"old" is the engine of commit BEFORE (the daemon's `_probe_loop`: each agreement's round awaited
in turn, a new httpx client per check, one store transaction per round), run from a `git archive`
of that commit with the same targets, to compare like with like. Not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "4b3329e"  # the last commit with the old probe loop
SCENARIOS = {
    "http-healthy": "100x10 HTTP, all healthy",
    "http-faulty": "100x10 HTTP, 10 % hanging + 10 % refusing",
    "tcp": "100x10 TCP, all healthy",
    "http-2x": "100x10 HTTP healthy, interval 0.5 s (2,000/s wanted)",
    "tcp-5x": "100x10 TCP, interval 0.2 s (5,000/s wanted)",
}
INTERVALS = {"http-2x": 0.5, "tcp-5x": 0.2}


# ----------------------------------------------------------------------------- targets
def _serve_targets(port_q: mp.Queue) -> None:  # type: ignore[type-arg]
    from aiohttp import web

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(text="late")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ok", ok)
        app.router.add_get("/hang", hang)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        http_port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001

        class Close(asyncio.Protocol):
            """Accept and close: no stream objects per connection (asyncio.start_server's cost
            per connection was about the prober's own, on the same two cores)."""

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                transport.close()

        tcp = await asyncio.get_running_loop().create_server(Close, "127.0.0.1", 0, backlog=4096)
        port_q.put((http_port, tcp.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    asyncio.run(main())


def _refusing_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plan(scenario: str, http_port: int, tcp_port: int) -> list[tuple[str, str, str]]:
    """(agreement, service, url-or-host:port) for 100 x 10 targets."""
    refused = _refusing_port()
    out = []
    for a in range(100):
        for s in range(10):
            i = a * 10 + s
            if scenario.startswith("tcp"):
                where = f"tcp://127.0.0.1:{tcp_port}"
            elif scenario == "http-faulty" and i % 10 == 3:
                where = f"http://127.0.0.1:{http_port}/hang"
            elif scenario == "http-faulty" and i % 10 == 7:
                where = f"http://127.0.0.1:{refused}/"
            else:
                where = f"http://127.0.0.1:{http_port}/ok"
            out.append((f"0x{a:040x}", f"s{s}", where))
    return out


# ----------------------------------------------------------------------------- engines
def _probe(where: str, service: str, probes_mod: object, timeout: float) -> object:
    if where.startswith("tcp://"):
        host, port = where[6:].rsplit(":", 1)
        return probes_mod.TcpProbe(service, host, int(port), timeout=timeout)  # type: ignore[attr-defined]
    return probes_mod.HttpProbe(service, where, timeout=timeout)  # type: ignore[attr-defined]


def _run_new(plan: list[tuple[str, str, str]], seconds: float, warmup: float, db: str, interval: float) -> dict:
    from oracle import probes
    from oracle.daemon import SampleWriter
    from oracle.store import Store

    store = Store.open(db)
    writer = SampleWriter(store)
    writer.start()
    counted = {"checks": 0, "skips": 0, "failed": 0}
    lags: list[float] = []
    measuring = False

    def on_sample(key: object, sample: object, lag: float) -> None:
        writer.put(key[0], sample)  # type: ignore[index]
        if measuring:
            counted["checks"] += 1
            counted["failed"] += not sample.ok  # type: ignore[attr-defined]
            lags.append(lag)

    def on_skip(key: object, n: int) -> None:
        if measuring:
            counted["skips"] += n

    targets = [probes.Target((a, s), _probe(w, s, probes, interval), interval) for a, s, w in plan]
    prober = probes.Prober(targets, max_in_flight=int(os.environ.get("BENCH_MAX_IN_FLIGHT", "64")),
                           on_sample=on_sample, on_skip=on_skip)

    async def main() -> tuple[float, float]:
        nonlocal measuring
        stop = asyncio.Event()
        task = asyncio.create_task(prober.run(stop))
        await asyncio.sleep(warmup)
        measuring = True
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        measuring = False
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        stop.set()
        await task
        return cpu, wall

    cpu, wall = asyncio.run(main())
    writer.close()
    store.close()
    return {"checks": counted["checks"], "not_measured": counted["skips"], "failed": counted["failed"], "cpu": cpu,
            "wall": wall, "lags": lags}


def _run_old(plan: list[tuple[str, str, str]], seconds: float, warmup: float, db: str, interval: float) -> dict:
    # The old daemon's _probe_loop, in structure: due services per agreement, each agreement's
    # round awaited in turn, samples stored per round in a worker thread.
    from oracle import probes
    from oracle.store import Store

    store = Store.open(db)
    by_agreement: dict[str, dict[str, object]] = {}
    for a, s, w in plan:
        by_agreement.setdefault(a, {})[s] = _probe(w, s, probes, interval)
    schedules = {a: probes.ProbeSchedule(intervals={s: interval for s in runners})
                 for a, runners in by_agreement.items()}
    counted = {"checks": 0, "failed": 0}
    lags: list[float] = []
    measuring = False

    async def loop() -> None:
        planned: dict[tuple[str, str], float] = {}
        while True:
            now = time.time()
            rounds = []
            for a, sched in schedules.items():
                due = sched.due(now)
                if due:
                    for s in due:
                        planned[(a, s)] = sched._next.get(s, now)  # noqa: SLF001 - bench only
                    sched.mark_run(due, now)
                    rounds.append((a, probes.run_round([by_agreement[a][s] for s in due])))
            for a, pending in rounds:
                samples = await pending
                if measuring:
                    counted["checks"] += len(samples)
                    counted["failed"] += sum(not smp.ok for smp in samples)
                    lags.extend(max(0.0, smp.ts - planned[(a, smp.service)]) for smp in samples)
                await asyncio.to_thread(store.add_samples, a, samples)
            waits = [sched.seconds_until_next(time.time()) for sched in schedules.values()]
            await asyncio.sleep(max(0.05, min([1.0, *waits])))

    async def main() -> tuple[float, float]:
        nonlocal measuring
        task = asyncio.create_task(loop())
        await asyncio.sleep(warmup)
        measuring = True
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        measuring = False
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return cpu, wall

    cpu, wall = asyncio.run(main())
    store.close()
    return {"checks": counted["checks"], "not_measured": 0, "failed": counted["failed"], "cpu": cpu, "wall": wall,
            "lags": lags}


def _worker(impl: str, src: str, scenario: str, ports: tuple[int, int], seconds: float, warmup: float,
            out_q: mp.Queue) -> None:  # type: ignore[type-arg]
    sys.path.insert(0, src)
    os.chdir(src)
    plan = _plan(scenario, *ports)
    db = os.path.join(tempfile.mkdtemp(prefix="probe-bench-"), "oracle.db")
    run = _run_new if impl == "new" else _run_old
    out_q.put(run(plan, seconds, warmup, db, INTERVALS.get(scenario, 1.0)))


def _old_source() -> str:
    d = tempfile.mkdtemp(prefix="probe-bench-old-")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE, "oracle", "smartsla"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
    return d


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, -(-int(p * len(ordered)) // 100) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", choices=["new", "old", "both"], default="both")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    port_q = ctx.Queue()
    server = ctx.Process(target=_serve_targets, args=(port_q,), daemon=True)
    server.start()
    ports = port_q.get(timeout=30)
    impls = ["old", "new"] if args.impl == "both" else [args.impl]
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    if args.impl == "both":  # the old engine only for the table
        pairs = [(sc, impl) for sc in scenarios for impl in (["old", "new"] if sc not in INTERVALS else ["new"])]
    else:
        pairs = [(sc, impl) for sc in scenarios for impl in impls]
    old_src = _old_source() if "old" in impls else ""
    rows = []
    try:
        for scenario, impl in pairs:
            out_q = ctx.Queue()
            src = str(ROOT) if impl == "new" else old_src
            p = ctx.Process(target=_worker, args=(impl, src, scenario, ports, args.seconds, args.warmup, out_q))
            p.start()
            r = out_q.get(timeout=args.seconds + args.warmup + 120)
            p.join(30)
            row = {"scenario": scenario, "impl": impl, "checks_per_s": r["checks"] / r["wall"],
                   "not_measured_per_s": r["not_measured"] / r["wall"], "failed_per_s": r["failed"] / r["wall"],
                   "cpu_percent_of_one_core": 100 * r["cpu"] / r["wall"],
                   "lag_p50_s": pct(r["lags"], 50), "lag_p99_s": pct(r["lags"], 99)}
            rows.append(row)
            print(json.dumps(row) if args.json else
                  f"{SCENARIOS[scenario]:<52} {impl:<4} {row['checks_per_s']:7.1f} checks/s "
                  f"({row['failed_per_s']:.0f} failed, {row['not_measured_per_s']:.0f} not measured /s) "
                  f"CPU {row['cpu_percent_of_one_core']:5.1f} % lag p50 {row['lag_p50_s'] * 1000:7.1f} ms "
                  f"p99 {row['lag_p99_s'] * 1000:8.1f} ms", flush=True)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
