"""`smartsla demo --serve`: keep the demo's embedded chain and show it on the dashboard.

After the demo's lifecycle (an agreement terminated under the disaster clause, everything
withdrawn) a second agreement is started between the same parties and left running with a
credit owed to the customer, so that the customer view has something to withdraw. Both are
indexed before the server starts; the indexer then keeps following the chain (the embedded
chain is in this process: every access takes one lock).
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response

from oracle.evidence import Bundle, dumps_bundle, period_root

from ..api.app import ApiSettings, create_app
from ..chain import Chain
from ..client import Agreement, Factory
from ..demo import DemoMismatch, DemoResult, Minutes, bundle_figures, demo_bundle, demo_terms, scenario_figures
from ..errors import SmartSLAError
from ..index_store import IndexStore
from ..indexer import Indexer
from ..verify import Source, verify_period

# (minutes down, minutes not measured) of compute, storage, api per period, of 43,200: period 0
# meets every objective (compute 2 minutes down: 99.9953 %; api 43: 99.9004 %); period 1 is an
# outage of compute (3,024 minutes: 93 %, the harshest tier, 100 % credit, capped at half the fee)
# with storage degraded (216 minutes: 99.5 %, 10 %). The figures come from the slice records.
LIVE_MINUTES: tuple[tuple[Minutes, ...], ...] = (((2, 0), (0, 0), (43, 0)), ((3_024, 0), (216, 0), (0, 0)))
LIVE_PERIODS = scenario_figures(LIVE_MINUTES)[0]


@dataclass
class DemoServer:
    app: FastAPI
    store: IndexStore
    indexer: Indexer
    lock: threading.RLock
    db_path: Path
    live_agreement: str
    demo: DemoResult
    live_bundles: tuple[Bundle, ...] = ()  # the evidence of the live agreement's settled periods

    def publish_evidence(self, base: str) -> None:
        """Serve the demo oracle's bundles (both agreements' settled periods) at
        `base`/evidence/{agreement}/{period}, as a daemon does, and point the dashboard at them, so
        its evidence cards verify each period against the chain. `base` is this app's own address."""
        bundles = (*self.demo.bundles, *self.live_bundles)
        served = {(b.head.agreement.lower(), b.head.period): dumps_bundle(b) for b in bundles}

        @self.app.get("/evidence/{agreement}/{period}", include_in_schema=False)
        async def evidence(agreement: str, period: int) -> Response:
            body = served.get((agreement.lower(), period))
            if body is None:
                return Response(f"no evidence for period {period} of {agreement}", status_code=404)
            return Response(body, media_type="application/json")

        self.app.state.smartsla.settings.evidence_url = base

    def urls(self, base: str) -> dict[str, str]:
        roles = self.demo.accounts
        return {
            "dashboard": f"{base}/",
            "demo agreement (terminated)": f"{base}/agreements/{self.demo.agreement}",
            "live agreement": f"{base}/agreements/{self.live_agreement}",
            "customer view": f"{base}/customer/{roles['customer']}",
            "provider view": f"{base}/provider/{roles['provider']}",
            "API docs": f"{base}/docs",
        }


def start_live_agreement(chain: Chain, factory_address: str, roles: dict[str, str]
                         ) -> tuple[Agreement, tuple[Bundle, ...]]:
    """A second agreement: deposited, two periods settled (one outage), a third in progress; with
    the evidence of each settled period, checked as `smartsla verify` does."""
    factory = Factory(chain, factory_address)
    terms = demo_terms(roles["provider"], roles["customer"], roles["oracle"], chain.now() + 60)  # deposits first
    agreement = factory.create_agreement(terms, roles["deployer"])
    agreement.deposit_fees(roles["customer"])
    agreement.deposit_collateral(roles["provider"])
    bundles: list[Bundle] = []
    for period, minutes in enumerate(LIVE_MINUTES):
        chain.mine_at(terms.period_end(period))
        bundle = demo_bundle(terms, period, minutes, chain_id=chain.chain_id, agreement=agreement.address)
        values, measured = bundle_figures(bundle)
        agreement.settle(period, list(values), measured, period_root(bundle.records), roles["oracle"])
        verdict = verify_period(agreement, chain.chain_id, period, [Source(f"live period {period}", bundle=bundle)])
        if verdict.outcome != "verified":
            raise DemoMismatch(f"live period {period} does not verify: {verdict.problems + verdict.missing}")
        bundles.append(bundle)
    chain.mine_at(terms.period_end(len(LIVE_PERIODS) - 1) + terms.period_length * 2 // 5)  # 40 % into the next
    return agreement, tuple(bundles)


def build_demo_server(demo: DemoResult, *, db_path: Path | None = None, server_signing: bool = True,
                      poll_s: float = 1.0, run_indexer: bool = True, rate_limit_per_s: float = 20.0) -> DemoServer:
    if demo.chain is None:
        raise ValueError("the demo result carries no chain")
    chain = demo.chain
    lock = threading.RLock()
    with lock:
        live, bundles = start_live_agreement(chain, demo.factory, demo.accounts)
    if db_path is None:
        db_path = Path(tempfile.mkdtemp(prefix="smartsla-demo-")) / "index.db"
    store = IndexStore.open(str(db_path))
    indexer = Indexer(chain, store, demo.factory, lock=lock)
    indexer.sync()  # index everything before the first page is served
    settings = ApiSettings(rpc_url="embedded", server_signing=server_signing, poll_s=poll_s,
                           rate_limit_per_s=rate_limit_per_s)
    app = create_app(store, settings=settings, chain=chain, indexer=indexer, lock=lock, run_indexer=run_indexer)
    return DemoServer(app, store, indexer, lock, db_path, live.address, demo, bundles)


def serve_demo(demo: DemoResult, *, host: str = "127.0.0.1", port: int = 8000, console: Any = None) -> None:
    """Index the demo's chain and serve the dashboard until interrupted."""
    import socket

    import uvicorn
    from rich.console import Console

    console = console or Console()
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SmartSLAError(f"cannot listen on {host}:{port} ({exc.strerror}): pass --port") from None
    server = build_demo_server(demo)
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    server.publish_evidence(base)
    console.rule("Dashboard")
    console.print("A second agreement between the same parties is running, with a credit owed to the customer.")
    for label, url in server.urls(base).items():
        console.print(f"  {label:<28} {url}")
    console.print("Demo mode: the server signs for the chain's unlocked accounts when no browser wallet is there. "
                  "Ctrl-C stops.")
    uvicorn.run(server.app, host=host, port=port, log_level="warning")
