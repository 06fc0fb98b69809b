"""The oracle's evidence bundles as the API sees them (docs/evidence.md): where the oracle serves
them, one bundle checked against the indexed `EvidenceCommitted` root, and the slice counts of a
range of periods for the compliance report.

The API holds no evidence of its own: it asks the oracle it was pointed at (`--oracle-metrics-url`
or `--oracle-health-url`) and recomputes every hash, so a bundle is shown only for what it proves.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from fastapi import HTTPException

from oracle.evidence import MAX_BUNDLE_BYTES, EvidenceError, counts_of, parse_bundle

from ..index_store import IndexStore
from .deps import ApiSettings

# At most this many periods' bundles are fetched for one compliance report (one request each).
MAX_REPORT_BUNDLES = 500


def evidence_base_url(settings: ApiSettings) -> str | None:
    """Where the evidence is served: `evidence_url` when given, else the oracle's HTTP address,
    from the /metrics or /healthz URL the API was given."""
    if settings.evidence_url:
        return settings.evidence_url.rstrip("/")
    for url in (settings.oracle_metrics_url, settings.oracle_health_url):
        if url:
            base = url.rstrip("/")
            for suffix in ("/metrics", "/healthz"):
                if base.endswith(suffix):
                    base = base[: -len(suffix)]
            return base
    return None


async def evidence_counts(settings: ApiSettings, address: str,
                          periods: list[int]) -> dict[int, dict[str, dict[str, int]]]:
    """period -> service -> slice counts, from the bundles of the oracle the API knows; a period
    whose bundle cannot be had (or is not valid evidence) is left out."""
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
        await asyncio.gather(*(one(p) for p in periods[:MAX_REPORT_BUNDLES]))
    return out


async def period_evidence(settings: ApiSettings, store: IndexStore, address: str, period: int) -> dict[str, Any]:
    """The oracle's bundle of `period`, its hashes recomputed, and its root compared with the
    indexed `EvidenceCommitted` event of that oracle: `matches` true/false, or None when no such
    event is indexed yet. Raises HTTPException (404 none, 502 the oracle failed us)."""
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
