"""What the API's routes and the dashboard's pages depend on, in one module: the settings, the
application state (index store, chain, indexer, oracle feed), the read-token check, and the
shared parameter types. Routes take them as `Annotated[..., Depends(...)]` parameters.

This module imports no route module and no page module, so both can import it without a cycle.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Body, Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator

from ..addresses import parse_address
from ..chain import Chain
from ..index_store import IndexStore
from ..indexer import Indexer
from . import views
from .models import ADDRESS_PATTERN, ErrorOut, TxRequest
from .oracle_feed import OracleFeed
from .security import TOKEN_COOKIE, token_matches


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
    # Where /evidence/{agreement}/{period} is served; default: the oracle of the two URLs above.
    evidence_url: str | None = None
    confirmations: int = 0
    poll_s: float = 1.0
    server_signing: bool = False  # demo only: the node signs for accounts it holds
    max_lag_blocks: int = 50  # health is "ok" within this many blocks of the head
    spec_files: tuple[str, ...] = ()  # spec files/folders: the dashboard shows the scope of the one whose hash matches
    gc_freeze: bool = True  # at start-up, move the objects alive then out of the garbage collector's passes (app.py)


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
    run_indexer: bool = False  # run `indexer` in a background thread for the app's lifetime
    # the dashboard's agreement pages: address -> (index change key, lists and charts), see web.pages
    page_cache: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    # multi-level agreements (smartsla.corporate_index.CorporateIndex); None: none configured
    corporate: Any = None

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


def get_state(request: Request) -> AppState:
    """The state create_app attached to the application."""
    return request.app.state.smartsla


def get_settings(request: Request) -> ApiSettings:
    return get_state(request).settings


def get_store(request: Request) -> IndexStore:
    return get_state(request).store


# What routes depend on is `async def` although it does no I/O: FastAPI runs a plain `def`
# dependency in the thread pool, and those hops (three per request) cost the status endpoint
# about a sixth of its CPU (bench/api_bench.py). The plain functions above stay for direct calls.
async def _state_dep(request: Request) -> AppState:
    return get_state(request)


async def _settings_dep(request: Request) -> ApiSettings:
    return get_state(request).settings


async def _store_dep(request: Request) -> IndexStore:
    return get_state(request).store


@functools.lru_cache(maxsize=16_384)
def checked_address(value: str) -> str:
    """parse_address, memoised: an address's checksum never changes, and computing it (two
    Keccak hashes) was a fifth of the status endpoint's CPU. Refusals are not cached (the
    cache holds only addresses that passed); bounded, least recently used first out."""
    return parse_address(value)


State = Annotated[AppState, Depends(_state_dep)]
Settings = Annotated[ApiSettings, Depends(_settings_dep)]
Store = Annotated[IndexStore, Depends(_store_dep)]


AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN, description="agreement address (0x + 40 hex digits; "
                                  "mixed case must be a valid EIP-55 checksum)"), AfterValidator(checked_address)]
AddressQuery = Annotated[str | None, Query(pattern=ADDRESS_PATTERN, description="filter by this address"),
                         AfterValidator(lambda v: None if v is None else checked_address(v))]
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


async def require_read(request: Request,
                       creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_security)] = None) -> None:
    """401 unless the request carries the configured read token (Bearer header, or the cookie
    the login page sets)."""
    expected = get_settings(request).read_token
    token = creds.credentials if creds else request.cookies.get(TOKEN_COOKIE)
    if not token_matches(token, expected):
        raise HTTPException(401, "a valid Bearer token is required to read this index",
                            headers={"WWW-Authenticate": "Bearer"})


def row_or_404(store: IndexStore, address: str) -> dict[str, Any]:
    row = store.agreement(address)
    if row is None:
        raise HTTPException(404, f"no agreement {address} in the index (not created by the indexed factory, "
                            "or not indexed yet)")
    return row
