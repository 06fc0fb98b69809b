"""The FastAPI application: REST API under /api, the dashboard pages, OpenAPI at /docs.

Read endpoints and pages are `async def`: they do short index reads and CPU-bound rendering,
which a thread pool only slows down (measured: 655 against 500 requests a second, p99 55 against
118 ms, bench/api_bench.py). Endpoints that talk to the chain stay in the thread pool.

Every API call and page reads the index (smartsla.index_store); the chain is touched only by
the indexer thread, by the transaction builder's gas estimate, and by the demo-only
server-signing mode (off by default). All of them take the same lock, as the embedded chain is
not thread-safe.

Layout: dependencies (settings, state, read check, parameter types) in smartsla.api.deps; the
routes as routers in smartsla.api.routes (agreements, transactions, health); the dashboard's
pages in smartsla.web.pages. create_app builds the state and includes them.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from .. import __version__
from ..chain import Chain
from ..index_store import IndexStore, IndexStoreError
from ..indexer import Indexer
from ..web.corporate_pages import mount_corporate_pages
from ..web.pages import mount_dashboard
from .deps import ERRORS, ApiSettings, AppState, require_read
from .models import ADDRESS_PATTERN
from .oracle_feed import OracleFeed
from .routes import agreements, health, transactions
from .routes import corporate as corporate_routes
from .security import RateLimitMiddleware

__all__ = ["ApiSettings", "AppState", "create_app"]


def _validation_handler(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        err = dict(err)
        ctx = err.get("ctx") or {}
        if err.get("type") == "string_pattern_mismatch" and ctx.get("pattern") == ADDRESS_PATTERN:
            err["msg"] = (f"{err.get('loc', ['', 'value'])[-1]} is not an Ethereum address: expected 0x followed "
                          f"by 40 hexadecimal digits, got {err.get('input')!r}")
        elif isinstance(err.get("msg"), str):
            err["msg"] = err["msg"].removeprefix("Value error, ")
        err.pop("ctx", None)
        err.pop("url", None)
        errors.append(err)
    return JSONResponse({"detail": errors}, status_code=422)


async def _store_down(_request: Request, exc: IndexStoreError) -> JSONResponse:
    return JSONResponse({"detail": f"index unavailable: {exc}"}, status_code=503)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the indexer in a background thread for the app's lifetime, when asked to."""
    state: AppState = app.state.smartsla
    if state.run_indexer and state.indexer is not None:
        state.thread, state.stop = state.indexer.start_thread(poll_s=state.settings.poll_s)
    corp = state.corporate.indexer if state.run_indexer and state.corporate is not None else None
    corp_thread, corp_stop = corp.start_thread(poll_s=state.settings.poll_s) if corp is not None else (None, None)
    if state.settings.gc_freeze:
        # Everything alive at start-up (web3, pydantic's schemas, SQLAlchemy, templates: ~160,000
        # objects) lives as long as the process: out of the cyclic collector's full passes, which
        # otherwise stopped every request for 50-150 ms each (the dashboard's p99 under load).
        gc.collect()
        gc.freeze()
    try:
        yield
    finally:
        if corp_stop is not None and corp_thread is not None:
            corp_stop.set()
            corp_thread.join(timeout=10)
        if state.stop is not None and state.thread is not None:
            state.stop.set()
            state.thread.join(timeout=10)


def create_app(store: IndexStore, *, settings: ApiSettings | None = None, chain: Chain | None = None,
               indexer: Indexer | None = None, lock: threading.RLock | None = None,
               run_indexer: bool = False, corporate: Any = None) -> FastAPI:
    """The app over `store`. With `run_indexer`, `indexer` runs in a background thread for the
    app's lifetime (and the multi-level agreements' indexer of `corporate`, a
    smartsla.corporate_index.CorporateIndex, too)."""
    settings = settings or ApiSettings()
    state = AppState(store=store, settings=settings, chain=chain, indexer=indexer,
                     lock=lock or (indexer.lock if indexer else threading.RLock()),
                     feed=OracleFeed(settings.oracle_metrics_url) if settings.oracle_metrics_url else None,
                     run_indexer=run_indexer, corporate=corporate)
    app = FastAPI(
        title="smartsla",
        version=__version__,
        description="Service Level Agreements that enforce themselves: the index of every agreement of one "
        "factory, its periods, credits and events, and unsigned transactions for a wallet. Amounts are decimal "
        "strings in the asset's smallest unit (wei for ETH); measured values in ppm, shares in bps.",
        lifespan=_lifespan,
    )
    app.state.smartsla = state
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(IndexStoreError, _store_down)  # type: ignore[arg-type]

    # Outermost first: rate limit before anything else does work.
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False)
    app.add_middleware(RateLimitMiddleware, rate=settings.rate_limit_per_s, burst=settings.rate_limit_burst)

    # Health is public even when reads need a token (it shows no agreement data).
    app.include_router(health.router, prefix="/api")
    reads = [Depends(require_read)] if settings.read_token else []
    app.include_router(agreements.router, prefix="/api", dependencies=reads, responses=ERRORS)
    app.include_router(transactions.router, prefix="/api", dependencies=reads, responses=ERRORS)
    app.include_router(corporate_routes.router, prefix="/api", dependencies=reads, responses=ERRORS)
    if settings.server_signing:  # demo only: the node signs for accounts it holds
        app.include_router(transactions.demo_router, prefix="/api", dependencies=reads, responses=ERRORS)
        app.include_router(corporate_routes.demo_router, prefix="/api", dependencies=reads, responses=ERRORS)
    mount_dashboard(app)
    mount_corporate_pages(app)
    return app
