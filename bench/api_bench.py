"""Requests per second and p99 latency of the API's agreement status endpoint and the dashboard's
status page, with 1,000 agreements x 12 settled periods in the index.

    .venv/bin/python bench/api_bench.py [--agreements 1000] [--periods 12] [--duration 10] [--concurrency 16]

The index is filled directly with synthetic rows (SQLite, in a temporary directory): the bench
measures serving, not indexing. The server (uvicorn, one worker, no chain, no rate limit) and
the load generator run as two separate processes on 127.0.0.1; the load generator is `wrk` when
it is installed, else a Python asyncio/httpx client (which then competes for the same two cores
and is itself often the limit: its figures are a floor). Every run is bounded in time and count.

Every sampled URL is requested once before the timed run (`--cold` skips that): the dashboard
keeps each agreement's settled history rendered until the index changes, and the steady state of
a dashboard is pages viewed again between two index writes. Wall-clock figures depend on what
else runs on the machine; the in-process CPU time per request (`cpu ms/req`, the app called as
ASGI without sockets, time.process_time) does much less, and caps one worker at 1000/ms req/s.
The figures measured before issue 15 item 7 (same load, 2 cores) are printed next to them.

Before and after, back to back on the same machine and index:

    .venv/bin/python bench/api_bench.py --baseline 006b6fa --runs 3

serves git revision 006b6fa's smartsla (extracted with git archive; uvicorn on h11/asyncio, as it
was installed then) beside this checkout's, alternates the two run by run, and prints a table:
req/s and p99 (median and range over the runs), CPU per request, the machine's 1-minute load,
and the after/before ratios. Each run also says what the server saw: the share of a core it got
(a CPU-bound server below 100 % waited for the CPU, i.e. for the other processes of the
machine) and its garbage-collector pauses of 1 ms or more — to tell a slow app from a busy
machine when p99 moves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVICES = ("compute", "storage", "api")
DAY = 86_400
ETHER = 10**18


def _address(rng: random.Random) -> str:
    from web3 import Web3

    return Web3.to_checksum_address("0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40)))


def fill(db: Path, agreements: int, periods: int, seed: int = 7) -> list[str]:
    """Synthetic index rows: `agreements` agreements (50 providers, 200 customers), each with
    `periods` settled periods and the events that go with them."""
    from smartsla.index_store import IndexStore, idx_agreements, idx_events, idx_periods
    from smartsla.presentation import period_services
    from smartsla.terms import Service, Terms, Tier

    rng = random.Random(seed)
    providers = [_address(rng) for _ in range(50)]
    customers = [_address(rng) for _ in range(200)]
    oracle = _address(rng)
    factory = _address(rng)
    tiers = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=990_000, credit_bps=3_000),
             Tier(threshold=950_000, credit_bps=10_000))
    services = tuple(Service(name=n, objective=999_900, weight_bps=w, tiers=tiers)
                     for n, w in zip(SERVICES, (5_000, 3_000, 2_000), strict=True))
    store = IndexStore.open(str(db))
    store.init_cursor(31337, factory, 0)
    block = 1
    rows, period_rows, event_rows, addresses = [], [], [], []
    start = 1_700_000_000
    fee = 3 * ETHER // 2
    for i in range(agreements):
        address = _address(rng)
        addresses.append(address)
        terms = Terms(provider=providers[i % len(providers)], customer=customers[i % len(customers)], oracle=oracle,
                      start=start, period_length=30 * DAY, period_count=periods + 6, fee_per_period=fee,
                      collateral=4 * ETHER, credit_cap_bps=5_000, termination_ppm=900_000, services=services)
        created = block
        credits_paid = 0
        for p in range(periods):
            values = [rng.choice((1_000_000, 999_950, 998_000, 985_000, 940_000)) for _ in SERVICES]
            details = period_services(terms, values, [0, 0, 0])
            credits = [fee * s.weight_bps * d["tier_credit_bps"] // 10_000**2 for s, d in zip(services, details,
                                                                                             strict=True)]
            paid = min(sum(credits), fee // 2)
            credits_paid += paid
            block += 1
            period_rows.append({"agreement": address, "period": p, "values_ppm": values,
                                "service_credits": [str(c) for c in credits], "credit_paid": str(paid),
                                "fee_earned": str(fee), "shortfall": "0", "disaster": False, "block_number": block,
                                "tx_hash": f"0x{block:064x}", "log_index": 0, "timestamp": start + (p + 1) * 30 * DAY})
            event_rows.append({"address": address, "agreement": address, "block_number": block,
                               "block_hash": f"0x{block:064x}", "tx_hash": f"0x{block:064x}",
                               "log_index": 0, "name": "PeriodSettled", "topic0": "0x" + "00" * 32,
                               "args": {"period": str(p), "valuesPpm": values,
                                        "serviceCredits": [str(c) for c in credits], "creditPaid": str(paid),
                                        "feeEarned": str(fee), "disaster": False},
                               "timestamp": start + (p + 1) * 30 * DAY})
        for k, name in enumerate(("AgreementCreated", "FeesDeposited", "CollateralDeposited", "Activated")):
            event_rows.append({"address": factory if k == 0 else address, "agreement": address,
                               "block_number": created, "block_hash": f"0x{created:064x}",
                               "tx_hash": f"0x{created:064x}", "log_index": k + 1, "name": name,
                               "topic0": "0x" + "00" * 32, "args": {}, "timestamp": start})
        block += 1
        rows.append({
            "address": address, "factory": factory, "created_block": created, "created_tx": f"0x{created:064x}",
            "created_timestamp": start, "provider": terms.provider, "customer": terms.customer, "asset": terms.asset,
            "terms": terms.model_dump(mode="json"), "start": start, "period_length": terms.period_length,
            "period_count": terms.period_count, "fee_per_period": str(fee), "collateral": str(terms.collateral),
            "credit_cap_bps": terms.credit_cap_bps, "status": "Active", "settled_periods": periods,
            "fees_deposited": True, "collateral_deposited": True, "disaster_occurred": False,
            "fees_escrowed": str(fee * 6), "collateral_escrowed": str(terms.collateral - credits_paid),
            "owed_to_customer": str(credits_paid), "owed_to_provider": str(fee * periods), "snapshot_block": block,
            "credits_earned": str(credits_paid), "credits_paid": str(credits_paid), "shortfall": "0",
            "fees_earned": str(fee * periods), "withdrawn_customer": "0", "withdrawn_provider": "0",
            "updated_at": time.time(),
        })
    for table, data in ((idx_agreements, rows), (idx_periods, period_rows), (idx_events, event_rows)):
        for i in range(0, len(data), 2_000):
            store.insert_rows(table, data[i:i + 2_000])
    from smartsla.index_store import Batch

    store.apply(Batch(from_block=0, to_block=block, to_hash=f"0x{block:064x}", to_timestamp=start + 400 * DAY,
                      head_block=block, head_timestamp=start + 400 * DAY))
    counts = store.counts()
    store.close()
    print(f"index: {counts['idx_agreements']} agreements, {counts['idx_periods']} periods, "
          f"{counts['idx_events']} events in {db}", flush=True)
    return addresses


# ---------------------------------------------------------------------------- the two processes
def _log_gc_pauses(path: str) -> None:
    """Append every garbage-collector pass of 1 ms or more to `path` ("generation ms"): the bench
    reads them after each run, to tell the server's own pauses from the machine's."""
    import gc

    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - started[0]) * 1000
        if ms >= 1.0:
            with open(path, "a") as fh:
                fh.write(f"{info['generation']} {ms:.2f}\n")

    gc.callbacks.append(callback)


def run_server(db: str, port: int, http: str = "auto", loop: str = "auto") -> None:
    """The server, importing smartsla from sys.path[0] (this checkout, or --baseline's tree)."""
    import uvicorn

    from smartsla.api.app import ApiSettings, create_app
    from smartsla.index_store import IndexStore

    app = create_app(IndexStore.open(db), settings=ApiSettings(rate_limit_per_s=0))
    # "auto": httptools and uvloop when installed (pip install 'uvicorn[standard]'), else h11/asyncio
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http=http,  # type: ignore[arg-type]
                loop=loop)  # type: ignore[arg-type]


async def _load(urls: list[str], duration: float, concurrency: int, max_requests: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop_at and len(latencies) + errors < max_requests:
                t0 = time.perf_counter()
                try:
                    r = await client.get(urls[i % len(urls)])
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1
                i += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "errors": errors, "seconds": round(elapsed, 2), "rps": round(n / elapsed, 1),
            "p50_ms": round(latencies[n // 2] * 1000, 2) if n else None,
            "p99_ms": round(latencies[min(n - 1, int(n * 0.99))] * 1000, 2) if n else None, "tool": "httpx"}


def run_load(url_file: str, duration: float, concurrency: int, max_requests: int) -> None:
    urls = Path(url_file).read_text().split()
    print(json.dumps(asyncio.run(_load(urls, duration, concurrency, max_requests))))


def _wrk(urls: list[str], duration: float, concurrency: int, nice: int = 0) -> dict[str, Any]:
    """wrk with a Lua script cycling through the URLs; p99 from its latency distribution."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        paths = ", ".join(json.dumps(u.split("/", 3)[3].join(["/", ""])) for u in urls)
        fh.write(f"local paths = {{{paths}}}\nlocal i = 0\n"
                 "request = function() i = i % #paths + 1; return wrk.format('GET', paths[i]) end\n")
        script = fh.name
    base = "/".join(urls[0].split("/", 3)[:3])
    out = subprocess.run(["wrk", "-t2", f"-c{concurrency}", f"-d{int(duration)}s", "--latency", "-s", script, base],
                         capture_output=True, text=True, timeout=duration + 60,
                         preexec_fn=(lambda: os.nice(nice)) if nice else None).stdout
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None,
            "p50_ms": round(float(p50.group(1)) * scale[p50.group(2)], 2) if p50 else None,
            "tool": "wrk", "non_2xx": int(bad.group(1)) if bad else 0}


# Measured before issue 15 item 7 (wrk, 16 connections; 2 cores): what the new figures compare to.
BEFORE = {  # the figures; then an A/B run of the old code on the same loaded machine (load ~6)
    "GET /api/agreements/{address} (status)": "800-865 req/s, p99 24-40 ms; A/B: 454 req/s, p99 248 ms, "
                                              "cpu 1.12 ms/req",
    "GET /agreements/{address} (dashboard page)": "99-167 pages/s, p99 190-320 ms; A/B: 98 pages/s, p99 396 ms, "
                                                  "cpu 7.42 ms/req",
    "GET /api/agreements?customer=...&limit=50": "723 req/s, p99 39 ms; A/B: 684 req/s, p99 41 ms, cpu 1.07 ms/req",
}


def cpu_per_request(db: str, paths: list[str], rounds: int = 2) -> float:
    """CPU milliseconds per request with the app called in-process (no sockets, no load
    generator): the figure other processes on the machine disturb least."""
    from smartsla.api.app import ApiSettings, create_app
    from smartsla.index_store import IndexStore

    store = IndexStore.open(db)
    app = create_app(store, settings=ApiSettings(rate_limit_per_s=0))

    async def get(path: str) -> None:
        target, _, query = path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": target, "raw_path": target.encode(), "query_string": query.encode(),
                 "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80)}
        status: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        assert status == [200], (path, status)

    async def run() -> float:
        for p in paths:  # warm: the same state as the timed wrk run
            await get(p)
        t0 = time.process_time()
        for _ in range(rounds):
            for p in paths:
                await get(p)
        return (time.process_time() - t0) / (rounds * len(paths)) * 1000

    try:
        return round(asyncio.run(run()), 3)
    finally:
        store.close()


def _start(root: Path, db: Path, http: str, loop: str, nice: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    """One server process importing smartsla from `root`; returns it and its base URL once it answers.
    `nice` < 0 (root only) makes the scheduler favour it over the machine's other processes."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--role", "server", "--root", str(root), "--db", str(db),
                               "--port", str(port), "--http", http, "--loop", loop, "--gc-log", f"{db}.{port}.gc"],
                              preexec_fn=(lambda: os.nice(nice)) if nice else None)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/api/agreements?limit=1", timeout=1.0)
            return server, base
        except httpx.HTTPError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit(f"the server of {root} did not start") from None
            time.sleep(0.2)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure_server(work: Path, urls: list[str], args: argparse.Namespace, server: subprocess.Popen[bytes],
                    gc_log: Path) -> dict[str, Any]:
    """One run, plus what the server itself saw: the share of a core it got (a CPU-bound server
    short of 100 % waited for the CPU: other processes), and its garbage-collector pauses."""
    seen = gc_log.read_text().splitlines() if gc_log.exists() else []
    cpu0, t0 = _cpu_seconds(server.pid), time.perf_counter()
    r = _measure(work, urls, args)
    r["server_cpu_percent"] = round((_cpu_seconds(server.pid) - cpu0) / (time.perf_counter() - t0) * 100)
    pauses = [float(line.split()[1]) for line in (gc_log.read_text().splitlines() if gc_log.exists() else [])
              [len(seen):]]
    r["gc_pauses_ms"] = {"count": len(pauses), "max": max(pauses, default=0.0), "sum": round(sum(pauses), 1)}
    return r


def _measure(work: Path, urls: list[str], args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk"):
        return _wrk(urls, args.duration, args.concurrency, args.nice)
    print("wrk not found (apt-get install wrk): the Python client is the load generator, and "
          "competes with the server for the CPU: its figures are a floor", flush=True)
    url_file = work / "urls.txt"
    url_file.write_text("\n".join(urls))
    out = subprocess.run([sys.executable, __file__, "--role", "load", "--urls", str(url_file),
                          "--duration", str(args.duration), "--concurrency", str(args.concurrency),
                          "--max-requests", str(args.max_requests)],
                         capture_output=True, text=True, timeout=args.duration + 120, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _cpu(root: Path, db: Path, work: Path, paths: list[str]) -> float:
    """cpu_per_request in a fresh process importing smartsla from `root`."""
    path_file = work / "paths.txt"
    path_file.write_text("\n".join(paths))
    out = subprocess.run([sys.executable, __file__, "--role", "cpu", "--root", str(root), "--db", str(db),
                          "--urls", str(path_file)], capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _baseline_tree(rev: str, work: Path) -> Path:
    """The smartsla package of git revision `rev`, extracted beside the index (nothing else is touched)."""
    tree = work / f"baseline-{rev.replace('/', '_')}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "smartsla"], capture_output=True, check=True,
                             timeout=120).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, timeout=120)
    return tree


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def print_table(results: dict[str, dict[str, Any]]) -> None:
    """Per target and side: req/s and p99 over the runs (range, median), CPU per request, the
    machine's 1-minute load during the runs; then after/before ratios of the medians."""
    print(f"\n{'target':<44} {'side':<7} {'req/s (median; range)':<26} {'p99 ms (median; range)':<26} "
          f"{'cpu ms/req':>10} {'load':>10} {'server % core':>14} {'GC max ms':>10}")
    for name, sides in results.items():
        for side, r in sides.items():
            rps, p99 = [x["rps"] for x in r["runs"]], [x["p99_ms"] for x in r["runs"]]
            load = [x["load"] for x in r["runs"]]
            print(f"{name if side == next(iter(sides)) else '':<44} {side:<7} "
                  f"{f'{_median(rps):.0f}; {_span([round(x) for x in rps])}':<26} "
                  f"{f'{_median(p99):.1f}; {_span([round(x, 1) for x in p99])}':<26} {r['cpu_ms_per_req']:>10} "
                  f"{_span(load):>10} {_span([x['server_cpu_percent'] for x in r['runs']]):>14} "
                  f"{max(x['gc_pauses_ms']['max'] for x in r['runs']):>10g}")
        if {"before", "after"} <= set(sides):
            b, a = sides["before"], sides["after"]
            rps = _median([x["rps"] for x in a["runs"]]) / _median([x["rps"] for x in b["runs"]])
            p99 = _median([x["p99_ms"] for x in b["runs"]]) / _median([x["p99_ms"] for x in a["runs"]])
            cpu = b["cpu_ms_per_req"] / a["cpu_ms_per_req"]
            print(f"{'':<44} {'ratio':<7} {f'x{rps:.2f} req/s':<26} {f'/{p99:.2f} p99':<26} {f'/{cpu:.2f}':>10}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agreements", type=int, default=1_000)
    parser.add_argument("--periods", type=int, default=12)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per endpoint and run")
    parser.add_argument("--runs", type=int, default=1, help="runs per endpoint (and side), alternating sides")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=200_000, help="bound per endpoint")
    parser.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"),
                        help="uvicorn's HTTP parser (auto: httptools when installed)")
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"), help="uvicorn's event loop")
    parser.add_argument("--baseline", metavar="REV",
                        help="also serve git revision REV's smartsla (e.g. 006b6fa, before issue 15 item 7) on the "
                             "same index and alternate runs between the two: a before/after table with ratios")
    parser.add_argument("--baseline-http", default="h11", choices=("auto", "h11", "httptools"),
                        help="the baseline server's HTTP parser (h11: what it was installed with)")
    parser.add_argument("--baseline-loop", default="asyncio", choices=("auto", "asyncio", "uvloop"))
    parser.add_argument("--nice", type=int, default=0,
                        help="run both servers and wrk at this niceness (e.g. -10, as root): a diagnosis of what "
                             "the app does when the CPU is there for it, on a machine busy with other work")
    parser.add_argument("--only", help="run only the targets whose name contains this text")
    parser.add_argument("--cold", action="store_true", help="do not request every URL once before timing")
    parser.add_argument("--role", choices=("main", "server", "load", "cpu"), default="main", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--gc-log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.root:  # the tree whose smartsla this process serves or measures
        sys.path.insert(0, args.root)
    if args.role == "server":
        if args.gc_log:
            _log_gc_pauses(args.gc_log)
        run_server(args.db, args.port, args.http, args.loop)
        return 0
    if args.role == "load":
        run_load(args.urls, args.duration, args.concurrency, args.max_requests)
        return 0
    if args.role == "cpu":
        print(cpu_per_request(args.db, Path(args.urls).read_text().split()))
        return 0

    import httpx

    work = Path(tempfile.mkdtemp(prefix="smartsla-api-bench-"))
    db = work / "index.db"
    addresses = fill(db, args.agreements, args.periods)
    sides: dict[str, tuple[Path, str, str]] = {}
    if args.baseline:
        sides["before"] = (_baseline_tree(args.baseline, work), args.baseline_http, args.baseline_loop)
    sides["after"] = (ROOT, args.http, args.loop)
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        for side, (root, http, loop) in sides.items():
            servers[side] = _start(root, db, http, loop, args.nice)
        any_base = servers["after"][1]
        rng = random.Random(1)
        sample = [rng.choice(addresses) for _ in range(500)]
        targets = {
            "GET /api/agreements/{address} (status)": [f"/api/agreements/{a}" for a in sample],
            "GET /agreements/{address} (dashboard page)": [f"/agreements/{a}" for a in sample],
            "GET /api/agreements?customer=...&limit=50": [
                "/api/agreements?customer=" + httpx.get(f"{any_base}/api/agreements/{a}").json()["terms"]["customer"]
                + "&limit=50" for a in sample[:50]],
        }
        for name, paths in targets.items():
            if args.only and args.only not in name:
                continue
            results[name] = {side: {"runs": []} for side in sides}
            for _server, base in servers.values():
                with httpx.Client(timeout=10) as warm:  # check that it answers, and warm (see the docstring)
                    for p in paths[:3] if args.cold else paths:
                        assert warm.get(base + p).status_code == 200, base + p
            for _ in range(args.runs):
                for side, (server, base) in servers.items():  # alternating: both see the same machine
                    load = os.getloadavg()[0]
                    gc_log = Path(f"{db}.{base.rsplit(':', 1)[1]}.gc")
                    r = _measure_server(work, [base + p for p in paths], args, server, gc_log)
                    r["load"] = round(max(load, os.getloadavg()[0]), 2)
                    results[name][side]["runs"].append(r)
                    print(f"{name:<44} {side:<7} {r['rps']:>8.1f} req/s   p50 {r.get('p50_ms')} ms   p99 "
                          f"{r['p99_ms']} ms   load {r['load']}   server {r['server_cpu_percent']} % of a core, "
                          f"GC pauses >= 1 ms: {r['gc_pauses_ms']['count']} (max {r['gc_pauses_ms']['max']} ms)   "
                          f"({r['tool']}, {args.concurrency} connections, {args.duration:g} s)", flush=True)
            for side, (root, _http, _loop) in sides.items():
                results[name][side]["cpu_ms_per_req"] = _cpu(root, db, work, paths)
            if not args.baseline:
                print(f"{'':<44} before issue 15 item 7: {BEFORE.get(name, '-')}", flush=True)
    finally:
        for server, _base in servers.values():
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    print(json.dumps({"agreements": args.agreements, "periods": args.periods, "cpus": os.cpu_count(), "nice": args.nice,
                      "sides": {k: {"tree": str(v[0]) if k == "after" else args.baseline, "http": v[1], "loop": v[2]}
                                for k, v in sides.items()}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
