"""The multi-level index and pages with 1, 10 and 100 departments (embedded chain, SQLite file):
the first sync (terms and state read from the chain), a sync after one period is settled for
every department (one settleDepartments), and the organisation page, a department page and the
compliance CSV through a real uvicorn (median of 20 requests each).

    .venv/bin/python bench/corporate_index_bench.py
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import uvicorn
from rich.console import Console
from rich.table import Table

from smartsla.api.app import ApiSettings, create_app
from smartsla.chain import Chain
from smartsla.corporate import Corporate, CorporateTerms, DepartmentTerms
from smartsla.corporate_index import CorporateIndex, CorporateIndexer, CorporateStore
from smartsla.index_store import IndexStore
from smartsla.terms import Service, Tier


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """A real uvicorn on a free 127.0.0.1 port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

ETHER = 10**18
SERVICES = (
    Service(name="email", objective=999_000, tiers=(Tier(threshold=999_000, credit_bps=1_000),
                                                         Tier(threshold=990_000, credit_bps=2_500))),
    Service(name="erp", objective=995_000, tiers=(Tier(threshold=995_000, credit_bps=1_000),)),
    Service(name="vpn", objective=990_000, tiers=(Tier(threshold=990_000, credit_bps=2_000),)),
)


def _median_ms(url: str) -> float:
    times = []
    for _ in range(20):
        t = time.perf_counter()
        assert requests.get(url, timeout=30).status_code == 200
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(n: int, tmp: Path) -> dict[str, float]:
    chain = Chain.connect("embedded")
    a = chain.accounts
    deps = tuple(DepartmentTerms(f"d{i}", chain.new_account()[0], ETHER // 10, 0b111, 0, (0, 0, 0),
                                 (4_000, 3_000, 3_000)) for i in range(n))
    terms = CorporateTerms(a[1], a[2], a[3], "0x" + "00" * 20, chain.now() + 10, 3_600, 12, 5_000, 12 * n * ETHER,
                           SERVICES, deps)
    corp = Corporate.deploy(chain, terms, a[0])
    corp.deposit_fees(a[2])
    corp.deposit_collateral(a[1])
    chain.mine_at(terms.period_end(0))
    corp.report(0, [985_000, 999_000, 980_000], a[3], evidence_root=b"\x01" * 32)
    store = IndexStore.open(str(tmp / f"index-{n}.db"))
    cs = CorporateStore(store.engine)
    indexer = CorporateIndexer(chain, cs, [corp.address])
    t = time.perf_counter()
    indexer.sync()
    first = time.perf_counter() - t
    corp.settle_departments(0, 0, n, a[4])
    t = time.perf_counter()
    indexer.sync()
    after = time.perf_counter() - t
    app = create_app(store, chain=chain, corporate=CorporateIndex(cs, indexer), lock=indexer.lock,
                     settings=ApiSettings(rate_limit_per_s=0))
    with serve(app) as url:
        org = _median_ms(f"{url}/corporate/{corp.address}")
        dep = _median_ms(f"{url}/corporate/{corp.address}/departments/{n - 1}")
        csv = _median_ms(f"{url}/api/corporate/{corp.address}/departments/0/compliance?format=csv")
    store.close()
    return {"departments": n, "first_sync_s": first, "sync_after_settle_s": after, "org_page_ms": org,
            "department_page_ms": dep, "compliance_csv_ms": csv}


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        rows = [measure(n, Path(d)) for n in (1, 10, 100)]
    table = Table(title="Multi-level index and pages (12 periods, 3 services)")
    cols = ("departments", "first_sync_s", "sync_after_settle_s", "org_page_ms", "department_page_ms",
            "compliance_csv_ms")
    for c in cols:
        table.add_column(c.replace("_", " "), justify="right")
    for r in rows:
        table.add_row(*(f"{r[c]:.0f}" if c == "departments" else f"{r[c]:.2f}" for c in cols))
    Console().print(table)


if __name__ == "__main__":
    main()
