"""The FastAPI application: REST API under /api, the dashboard pages, OpenAPI at /docs.

Read endpoints and pages are `async def`: they do short index reads and CPU-bound rendering,
which a thread pool only slows down (measured: 655 against 500 requests a second, p99 55 against
118 ms, bench/api_bench.py). Endpoints that talk to the chain stay in the thread pool.

Every API call and page reads the index (smartsla.index_store); the chain is touched only by
the indexer thread, by the transaction builder's gas estimate, and by the demo-only
server-signing mode (off by default). All of them take the same lock, as the embedded chain is
not thread-safe.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator

from oracle.evidence import MAX_BUNDLE_BYTES, EvidenceError, counts_of, parse_bundle

from .. import __version__
from ..chain import Chain
from ..index_store import IndexStore, IndexStoreError
from ..indexer import Indexer
from . import views
from .models import (
    ADDRESS_PATTERN,
    AgreementDetail,
    AgreementPage,
    ErrorOut,
    EventPage,
    ForecastOut,
    HealthOut,
    PeriodPage,
    ReportOut,
    SentOut,
    StatusName,
    TxOut,
    TxRequest,
    WithdrawalPage,
)
from .oracle_feed import OracleFeed
from .security import TOKEN_COOKIE, RateLimitMiddleware, token_matches
from .tx import ActionRefused, prepare, send_from_node


@dataclass
class ApiSettings:
    """How the server behaves; every field has a safe default."""

    rpc_url: str | None = None  # shown in CLI hints
    cors_origins: tuple[str, ...] = ()  # none: no cross-origin access
    rate_limit_per_s: float = 20.0  # per client IP; 0 disables
    rate_limit_burst: int = 60
    read_token: str | None = None  # None: read access is public
    oracle_health_url: str | None = None  # e.g. http://127.0.0.1:9105/healthz
    oracle_metrics_url: str | None = None  # e.g. http://127.0.0.1:9105/metrics: the running period's forecast
    confirmations: int = 0
    poll_s: float = 1.0
    server_signing: bool = False  # demo only: the node signs for accounts it holds
    max_lag_blocks: int = 50  # health is "ok" within this many blocks of the head
    spec_files: tuple[str, ...] = ()  # spec files/folders: the dashboard shows the scope of the one whose hash matches


@dataclass
class AppState:
    store: IndexStore
    settings: ApiSettings
    chain: Chain | None = None
    indexer: Indexer | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    thread: threading.Thread | None = None
    stop: threading.Event | None = None
    _oracle_cache: tuple[float, dict[str, Any]] | None = None
    feed: OracleFeed | None = None

    async def forecast(self, row: dict[str, Any]) -> dict[str, Any]:
        """The running period's forecast of `row` from the oracle's /metrics (views.forecast_json)."""
        if self.feed is None:
            return views.forecast_json(row, None, None, None)
        data, error = await self.feed.read()
        return views.forecast_json(row, data, error, self.feed.url)

    def cursor(self) -> dict[str, Any] | None:
        return self.store.cursor()

    def chain_id(self) -> int:
        cursor = self.cursor()
        if cursor is not None:
            return int(cursor["chain_id"])
        if self.chain is not None:
            with self.lock:
                return self.chain.chain_id
        raise HTTPException(503, "the index has not seen the chain yet")


def _address(value: str) -> str:
    return views.parse_address(value)


AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN, description="agreement address (0x + 40 hex digits; "
                                  "mixed case must be a valid EIP-55 checksum)"), AfterValidator(_address)]
AddressQuery = Annotated[str | None, Query(pattern=ADDRESS_PATTERN, description="filter by this address"),
                         AfterValidator(lambda v: None if v is None else _address(v))]
TxBody = Annotated[TxRequest, Body(examples=[{"from": "0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69"}])]
Limit = Annotated[int, Query(ge=1, le=200, description="page size, 1..200")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="rows to skip")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "a Bearer token is required (when configured)"},
    422: {"model": ErrorOut, "description": "invalid input; the message says which field and why"},
    429: {"model": ErrorOut, "description": "rate limit exceeded; see Retry-After"},
    503: {"model": ErrorOut, "description": "the index database is unavailable"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "no such agreement in the "
                                                     "index"}}


_security = HTTPBearer(auto_error=False, description="the read token configured on the server")


def require_read(request: Request,
                 creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_security)] = None) -> None:
    """401 unless the request carries the configured read token (Bearer header, or the cookie
    the login page sets)."""
    expected = request.app.state.smartsla.settings.read_token
    token = creds.credentials if creds else request.cookies.get(TOKEN_COOKIE)
    if not token_matches(token, expected):
        raise HTTPException(401, "a valid Bearer token is required to read this index",
                            headers={"WWW-Authenticate": "Bearer"})


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


def evidence_base_url(settings: ApiSettings) -> str | None:
    """The oracle's HTTP address, from the /metrics or /healthz URL the API was given."""
    for url in (settings.oracle_metrics_url, settings.oracle_health_url):
        if url:
            base = url.rstrip("/")
            for suffix in ("/metrics", "/healthz"):
                if base.endswith(suffix):
                    base = base[: -len(suffix)]
            return base
    return None


def create_app(store: IndexStore, *, settings: ApiSettings | None = None, chain: Chain | None = None,
               indexer: Indexer | None = None, lock: threading.RLock | None = None,
               run_indexer: bool = False) -> FastAPI:
    """The app over `store`. With `run_indexer`, `indexer` runs in a background thread for the
    app's lifetime."""
    settings = settings or ApiSettings()
    state = AppState(store=store, settings=settings, chain=chain, indexer=indexer,
                     lock=lock or (indexer.lock if indexer else threading.RLock()),
                     feed=OracleFeed(settings.oracle_metrics_url) if settings.oracle_metrics_url else None)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        if run_indexer and indexer is not None:
            state.thread, state.stop = indexer.start_thread(poll_s=settings.poll_s)
        try:
            yield
        finally:
            if state.stop is not None and state.thread is not None:
                state.stop.set()
                state.thread.join(timeout=10)

    app = FastAPI(
        title="smartsla",
        version=__version__,
        description="Service Level Agreements that enforce themselves: the index of every agreement of one "
        "factory, its periods, credits and events, and unsigned transactions for a wallet. Amounts are decimal "
        "strings in the asset's smallest unit (wei for ETH); measured values in ppm, shares in bps.",
        lifespan=lifespan,
    )
    app.state.smartsla = state
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]

    @app.exception_handler(IndexStoreError)
    async def _store_down(_request: Request, exc: IndexStoreError) -> JSONResponse:
        return JSONResponse({"detail": f"index unavailable: {exc}"}, status_code=503)

    # Outermost first: rate limit before anything else does work.
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False)
    app.add_middleware(RateLimitMiddleware, rate=settings.rate_limit_per_s, burst=settings.rate_limit_burst)

    deps = [Depends(require_read)] if settings.read_token else []
    api = APIRouter(prefix="/api", dependencies=deps, responses=ERRORS)

    def row_or_404(address: str) -> dict[str, Any]:
        row = store.agreement(address)
        if row is None:
            raise HTTPException(404, f"no agreement {address} in the index (not created by the indexed factory, "
                                "or not indexed yet)")
        return row

    @api.get("/agreements", response_model=AgreementPage, tags=["agreements"])
    async def list_agreements(provider: AddressQuery = None, customer: AddressQuery = None,
                        status: Annotated[StatusName | None, Query(description="filter by status")] = None,
                        limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
        """Agreements of the indexed factory, newest first, filtered by provider, customer and status."""
        rows, total = store.list_agreements(provider=provider, customer=customer,
                                            status=status.value if status else None, limit=limit, offset=offset)
        return {"items": [views.summary(r) for r in rows], "total": total, "limit": limit, "offset": offset}

    @api.get("/agreements/{address}", response_model=AgreementDetail, responses=NOT_FOUND, tags=["agreements"])
    async def get_agreement(address: AddressPath) -> dict[str, Any]:
        """Terms, the latest snapshot (status and balances), totals and progress of one agreement."""
        row, cursor = store.agreement_and_cursor(address)
        if row is None:
            row_or_404(address)  # the one 404 message
        return views.detail(row, views.chain_now(cursor))  # type: ignore[arg-type]

    @api.get("/agreements/{address}/periods", response_model=PeriodPage, responses=NOT_FOUND, tags=["agreements"])
    async def get_periods(address: AddressPath, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
        """Settled periods, oldest first: each service's value, tier and credit; paid credit and fee."""
        row = row_or_404(address)
        terms = views.terms_of(row)
        rows, total = store.periods(address, limit=limit, offset=offset)
        return {"items": [views.period_json(p, terms) for p in rows], "total": total, "limit": limit,
                "offset": offset}

    async def evidence_counts(address: str, periods: list[int]) -> dict[int, dict[str, dict[str, int]]]:
        """period -> service -> slice counts, from the bundles of the oracle the API knows; a
        period whose bundle cannot be had (or is not valid evidence) is left out."""
        base = evidence_base_url(settings)
        if base is None or not periods:
            return {}
        out: dict[int, dict[str, dict[str, int]]] = {}
        async with httpx.AsyncClient(timeout=2.0) as client:
            async def one(period: int) -> None:
                try:
                    resp = await client.get(f"{base}/evidence/{address}/{period}")
                    if resp.status_code != 200 or len(resp.content) > MAX_BUNDLE_BYTES:
                        return
                    bundle = parse_bundle(resp.content)
                except (httpx.HTTPError, EvidenceError):
                    return
                out[period] = {r.name: counts_of(r) for r in bundle.records}
            await asyncio.gather(*(one(p) for p in periods[:500]))
        return out

    @api.get("/agreements/{address}/periods/{period}/evidence", responses=NOT_FOUND, tags=["agreements"])
    async def get_evidence(address: AddressPath, period: Annotated[int, Path(ge=0, le=2**32)]) -> dict[str, Any]:
        """The oracle's evidence bundle of a period (docs/evidence.md), fetched from the oracle the
        API knows (the address of `--oracle-metrics-url`/`--oracle-health-url`), its hashes
        recomputed, and its root compared with the indexed `EvidenceCommitted` event of that
        oracle: `matches` true/false, or null when no such event is indexed yet."""
        row_or_404(address)
        base = evidence_base_url(settings)
        if base is None:
            raise HTTPException(404, "no oracle URL configured (--oracle-metrics-url): the API cannot fetch evidence")
        url = f"{base}/evidence/{address}/{period}"
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                resp = await client.get(url)
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"the oracle at {base} did not answer: {exc.__class__.__name__}") from None
        if resp.status_code == 404:
            raise HTTPException(404, f"the oracle has no evidence for period {period} of {address}")
        if resp.status_code != 200 or len(resp.content) > MAX_BUNDLE_BYTES:
            raise HTTPException(502, f"the oracle answered HTTP {resp.status_code} ({len(resp.content)} bytes)")
        try:
            bundle = parse_bundle(resp.content)
        except EvidenceError as exc:
            raise HTTPException(502, f"the oracle's bundle is not valid evidence: {exc}") from None
        root = "0x" + bundle.root.hex()
        committed = None
        events, _ = store.events(address, names=["EvidenceCommitted"], limit=1_000)
        for e in events:
            args = e["args"] if isinstance(e["args"], dict) else json.loads(e["args"])
            if int(args["period"]) == period and str(args["oracle"]).lower() == bundle.oracle.lower():
                committed = str(args["evidenceRoot"]).lower()
        return {"agreement": address, "period": period, "oracle": bundle.oracle, "root": root,
                "committed_root": committed, "matches": None if committed is None else committed == root,
                "bundle": json.loads(resp.content)}

    @api.get("/agreements/{address}/forecast", response_model=ForecastOut, responses=NOT_FOUND,
             tags=["agreements"])
    async def get_forecast(address: AddressPath) -> dict[str, Any]:
        """The period in progress, per service: the figure so far, the downtime budget left before
        the next credit tier (in seconds and in words), the projected tier and credit — from the
        oracle's /metrics (`--oracle-metrics-url`) and smartsla.forecast, so the numbers equal
        the oracle's `smartsla_oracle_period_*` gauges."""
        return await state.forecast(row_or_404(address))

    @api.get("/agreements/{address}/events", response_model=EventPage, responses=NOT_FOUND, tags=["agreements"])
    async def get_events(address: AddressPath, limit: Limit = 50, offset: Offset = 0,
                   name: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_]+$",
                                                     description="only events of this name")] = None
                   ) -> dict[str, Any]:
        """Every event of the agreement (and its AgreementCreated), oldest first, decoded to JSON."""
        row_or_404(address)
        rows, total = store.events(address, names=[name] if name else None, limit=limit, offset=offset)
        return {"items": [views.event_json(e) for e in rows], "total": total, "limit": limit, "offset": offset}

    @api.get("/agreements/{address}/withdrawals", response_model=WithdrawalPage, responses=NOT_FOUND,
             tags=["agreements"])
    async def get_withdrawals(address: AddressPath, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
        """Withdrawals from the agreement, oldest first."""
        row_or_404(address)
        rows, total = store.withdrawals(address, limit=limit, offset=offset)
        return {"items": [views.withdrawal_json(w) for w in rows], "total": total, "limit": limit,
                "offset": offset}

    @api.get("/agreements/{address}/report", response_model=ReportOut, tags=["reports"], responses={
        **NOT_FOUND, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                           "description": "one row per period and service (JSON, or CSV with format=csv)"}})
    async def get_report(address: AddressPath,
                   from_period: Annotated[int, Query(ge=0, le=65_535, description="first period")] = 0,
                   to_period: Annotated[int | None, Query(ge=0, le=65_535, description="last period, included; "
                                                          "default: the last one")] = None,
                   format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
                   ) -> Any:
        """Compliance report over a period range: period, service, objective, measured, met, tier,
        credit and what was paid. Only settled periods appear."""
        row = row_or_404(address)
        last = int(row["period_count"]) - 1 if to_period is None else to_period
        if last < from_period:
            raise HTTPException(422, f"to_period {last} is before from_period {from_period}")
        terms = views.terms_of(row)
        periods, _ = store.periods(address, from_period=from_period, to_period=last)
        events, _ = store.events(address, names=["EvidenceCommitted"], limit=100_000)
        counts = await evidence_counts(address, [int(p["period"]) for p in periods])
        rows = views.report_rows(periods, terms, views.evidence_roots(events), counts)
        if format == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(views.REPORT_COLUMNS), lineterminator="\n")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v)
                                 for k, v in r.items()})
            name = f"smartsla-report-{address}-{from_period}-{last}.csv"
            return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return {"agreement": address, "asset": row["asset"], "from_period": from_period, "to_period": last,
                "rows": rows}

    # ---------------------------------------------------------------- unsigned transactions
    def _tx(address: str, action: str, body: TxRequest) -> dict[str, Any]:
        sender = views.parse_address(body.from_, "from")
        row = row_or_404(address)
        try:
            prepared = prepare(row, action, sender, chain=state.chain, chain_id=state.chain_id(), lock=state.lock,
                               rpc_url=settings.rpc_url)
        except ActionRefused as exc:
            raise HTTPException(409, str(exc)) from None
        return {"action": action, "agreement": address, "description": prepared.description,
                "transactions": prepared.transactions, "cli": prepared.cli}

    tx_responses: dict[int | str, dict[str, Any]] = {
        **NOT_FOUND, 409: {"model": ErrorOut, "description": "the contract would refuse (wrong party or state)"}}

    def _tx_route(action: str, summary: str) -> None:
        def handler(address: AddressPath, body: TxBody) -> dict[str, Any]:
            return _tx(address, action, body)

        handler.__doc__ = summary + " Returns the unsigned transaction(s) for the sender's wallet to sign."
        api.add_api_route(f"/agreements/{{address}}/tx/{action}", handler, methods=["POST"], response_model=TxOut,
                          response_model_by_alias=True, responses=tx_responses, tags=["transactions"],
                          name=f"tx_{action.replace('-', '_')}", summary=summary)

        if settings.server_signing:
            def send(address: AddressPath, body: TxBody) -> dict[str, Any]:
                if state.chain is None:
                    raise HTTPException(409, "no chain connected")
                built = _tx(address, action, body)
                try:
                    last: tuple[str, int] = ("", 0)
                    for t in built["transactions"]:
                        last = send_from_node(state.chain, state.lock, t)
                except ActionRefused as exc:
                    raise HTTPException(409, str(exc)) from None
                if state.indexer is not None:  # show the result at once
                    state.indexer.sync()
                return {"action": action, "tx_hash": last[0], "block_number": last[1]}

            send.__doc__ = "DEMO ONLY: the node signs with the key it holds for `from` and sends."
            api.add_api_route(f"/agreements/{{address}}/tx/{action}/send", send, methods=["POST"],
                              response_model=SentOut, responses=tx_responses, tags=["demo"],
                              name=f"send_{action.replace('-', '_')}", summary=f"{summary} (demo: server signs)")

    _tx_route("withdraw", "Withdraw what the agreement owes the sender (customer or provider).")
    _tx_route("terminate", "Terminate under the disaster clause (customer only).")
    _tx_route("deposit-fees", "Deposit the prepaid fees (customer).")
    _tx_route("deposit-collateral", "Deposit the collateral (provider).")

    # ---------------------------------------------------------------- health
    async def _oracle_health() -> dict[str, Any] | None:
        url = settings.oracle_health_url
        if not url:
            return None
        cached = state._oracle_cache
        if cached and time.monotonic() - cached[0] < 5:
            return cached[1]
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                resp = await client.get(url)
            out = {"url": url, "ok": resp.status_code == 200, "status_code": resp.status_code, "error": None}
        except httpx.HTTPError as exc:
            out = {"url": url, "ok": False, "status_code": None, "error": exc.__class__.__name__}
        state._oracle_cache = (time.monotonic(), out)
        return out

    @app.get("/api/health", response_model=HealthOut, tags=["health"],
             responses={503: {"model": HealthOut, "description": "not healthy: the body says why"},
                        429: ERRORS[429]})
    async def health() -> JSONResponse:
        """Indexer lag, chain reachability, last indexed block; the oracle's health when configured.
        Public even when reads need a token (it shows no agreement data)."""
        cursor = store.cursor()
        ix = state.indexer
        running = bool(state.thread and state.thread.is_alive())
        sync_age = None if ix is None or ix.last_sync_at is None else round(time.time() - ix.last_sync_at, 3)
        reachable = ix is not None and ix.last_error is None and sync_age is not None and (
            sync_age < max(15.0, 5 * settings.poll_s) or not running)
        head = cursor["head_block"] if cursor else None
        last = cursor["last_block"] if cursor else None
        lag = None if head is None else head - (last if last is not None else -1)
        oracle = await _oracle_health()
        counts = store.counts()
        ok = bool(reachable and lag is not None and lag <= settings.max_lag_blocks + settings.confirmations
                  and (oracle is None or oracle["ok"]))
        body = {
            "ok": ok, "chain_reachable": reachable, "chain_id": cursor["chain_id"] if cursor else None,
            "factory": cursor["factory"] if cursor else None, "chain_head": head, "last_indexed_block": last,
            "lag_blocks": lag, "confirmations": settings.confirmations, "indexer_running": running,
            "last_sync_age_seconds": sync_age, "reorgs": int(cursor["reorgs"]) if cursor else 0,
            "last_error": (ix.last_error if ix else None) or (cursor["last_error"] if cursor else None),
            "agreements": counts["idx_agreements"], "oracle": oracle,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    app.include_router(api)

    from ..web.pages import mount_dashboard

    mount_dashboard(app, state)
    return app
