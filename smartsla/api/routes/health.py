"""GET /api/health: indexer lag, chain reachability, the oracle's health. Public even when reads
need a token (it shows no agreement data): create_app includes this router without the read check."""

from __future__ import annotations

import time
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import ERRORS, AppState, State
from ..models import HealthOut

router = APIRouter()


async def _oracle_health(state: AppState) -> dict[str, Any] | None:
    """The oracle's /healthz, asked at most every 5 s."""
    url = state.settings.oracle_health_url
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


@router.get("/health", response_model=HealthOut, tags=["health"],
         responses={503: {"model": HealthOut, "description": "not healthy: the body says why"},
                    429: ERRORS[429]})
async def health(state: State) -> JSONResponse:
    """Indexer lag, chain reachability, last indexed block; the oracle's health when configured.
    Public even when reads need a token (it shows no agreement data)."""
    store, settings = state.store, state.settings
    cursor = store.cursor()
    ix = state.indexer
    running = bool(state.thread and state.thread.is_alive())
    sync_age = None if ix is None or ix.last_sync_at is None else round(time.time() - ix.last_sync_at, 3)
    reachable = ix is not None and ix.last_error is None and sync_age is not None and (
        sync_age < max(15.0, 5 * settings.poll_s) or not running)
    head = cursor["head_block"] if cursor else None
    last = cursor["last_block"] if cursor else None
    lag = None if head is None else head - (last if last is not None else -1)
    oracle = await _oracle_health(state)
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
