"""Read endpoints of the index: agreements, periods, forecast, events, withdrawals, reports."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response

from .. import views
from ..deps import (
    NOT_FOUND,
    AddressPath,
    AddressQuery,
    Limit,
    Offset,
    State,
    Store,
    row_or_404,
)
from ..evidence import evidence_counts, period_evidence
from ..models import (
    AgreementDetail,
    AgreementPage,
    EventPage,
    ForecastOut,
    PeriodPage,
    ReportOut,
    StatusName,
    WithdrawalPage,
)

router = APIRouter()


@router.get("/agreements", response_model=AgreementPage, tags=["agreements"])
async def list_agreements(store: Store, provider: AddressQuery = None, customer: AddressQuery = None,
                    status: Annotated[StatusName | None, Query(description="filter by status")] = None,
                    limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Agreements of the indexed factory, newest first, filtered by provider, customer and status."""
    rows, total = store.list_agreements(provider=provider, customer=customer,
                                        status=status.value if status else None, limit=limit, offset=offset)
    return {"items": [views.summary(r) for r in rows], "total": total, "limit": limit, "offset": offset}

@router.get("/agreements/{address}", response_model=AgreementDetail, responses=NOT_FOUND, tags=["agreements"])
async def get_agreement(address: AddressPath, store: Store) -> dict[str, Any]:
    """Terms, the latest snapshot (status and balances), totals and progress of one agreement."""
    row, cursor = store.agreement_and_cursor(address)
    if row is None:
        row_or_404(store, address)  # the one 404 message
    return views.detail(row, views.chain_now(cursor))  # type: ignore[arg-type]

@router.get("/agreements/{address}/periods", response_model=PeriodPage, responses=NOT_FOUND, tags=["agreements"])
async def get_periods(address: AddressPath, store: Store, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Settled periods, oldest first: each service's value, tier and credit; paid credit and fee."""
    row = row_or_404(store, address)
    terms = views.terms_of(row)
    rows, total = store.periods(address, limit=limit, offset=offset)
    return {"items": [views.period_json(p, terms) for p in rows], "total": total, "limit": limit,
            "offset": offset}

@router.get("/agreements/{address}/periods/{period}/evidence", responses=NOT_FOUND, tags=["agreements"])
async def get_evidence(address: AddressPath, period: Annotated[int, Path(ge=0, le=2**32)], store: Store,
                       state: State) -> dict[str, Any]:
    """The oracle's evidence bundle of a period (docs/evidence.md), fetched from the oracle the
    API knows (the address of `--oracle-metrics-url`/`--oracle-health-url`), its hashes
    recomputed, and its root compared with the indexed `EvidenceCommitted` event of that
    oracle: `matches` true/false, or null when no such event is indexed yet."""
    row_or_404(store, address)
    return await period_evidence(state.settings, store, address, period)


@router.get("/agreements/{address}/forecast", response_model=ForecastOut, responses=NOT_FOUND,
         tags=["agreements"])
async def get_forecast(address: AddressPath, state: State) -> dict[str, Any]:
    """The period in progress, per service: the figure so far, the downtime budget left before
    the next credit tier (in seconds and in words), the projected tier and credit — from the
    oracle's /metrics (`--oracle-metrics-url`) and smartsla.forecast, so the numbers equal
    the oracle's `smartsla_oracle_period_*` gauges."""
    return await state.forecast(row_or_404(state.store, address))

@router.get("/agreements/{address}/events", response_model=EventPage, responses=NOT_FOUND, tags=["agreements"])
async def get_events(address: AddressPath, store: Store, limit: Limit = 50, offset: Offset = 0,
               name: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_]+$",
                                                 description="only events of this name")] = None
               ) -> dict[str, Any]:
    """Every event of the agreement (and its AgreementCreated), oldest first, decoded to JSON."""
    row_or_404(store, address)
    rows, total = store.events(address, names=[name] if name else None, limit=limit, offset=offset)
    return {"items": [views.event_json(e) for e in rows], "total": total, "limit": limit, "offset": offset}

@router.get("/agreements/{address}/withdrawals", response_model=WithdrawalPage, responses=NOT_FOUND,
         tags=["agreements"])
async def get_withdrawals(address: AddressPath, store: Store, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Withdrawals from the agreement, oldest first."""
    row_or_404(store, address)
    rows, total = store.withdrawals(address, limit=limit, offset=offset)
    return {"items": [views.withdrawal_json(w) for w in rows], "total": total, "limit": limit,
            "offset": offset}

@router.get("/agreements/{address}/report", response_model=ReportOut, tags=["reports"], responses={
    **NOT_FOUND, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                       "description": "one row per period and service (JSON, or CSV with format=csv)"}})
async def get_report(address: AddressPath, store: Store, state: State,
               from_period: Annotated[int, Query(ge=0, le=65_535, description="first period")] = 0,
               to_period: Annotated[int | None, Query(ge=0, le=65_535, description="last period, included; "
                                                      "default: the last one")] = None,
               format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
               ) -> Any:
    """Compliance report over a period range: period, service, objective, measured, met, tier,
    credit and what was paid. Only settled periods appear."""
    row = row_or_404(store, address)
    last = int(row["period_count"]) - 1 if to_period is None else to_period
    if last < from_period:
        raise HTTPException(422, f"to_period {last} is before from_period {from_period}")
    terms = views.terms_of(row)
    periods, _ = store.periods(address, from_period=from_period, to_period=last)
    events, _ = store.events(address, names=["EvidenceCommitted"], limit=100_000)
    counts = await evidence_counts(state.settings, address, [int(p["period"]) for p in periods])
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
