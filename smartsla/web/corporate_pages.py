"""The dashboard's pages for multi-level agreements (CorporateAgreement):

* `/corporate` every indexed organisation;
* `/corporate/{address}` an organisation: the pool and the provider's exposure, every
  department with its credits and payout address, the corporate services, the actions;
* `/corporate/{address}/departments/{index}` a department: its own terms, what its payout
  address is owed, its compliance report per period, its actions.

Same templates environment, security headers and read gate as smartsla.web.pages; the data is
smartsla.api.routes.corporate's (one home for the views: smartsla.corporate_index).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from ..api.deps import AppState, State
from ..api.routes.corporate import corporate_now, row_and_events
from ..corporate_index import department_view, organisation_view, with_spec_names
from ..presentation import fmt_amount
from .pages import open_page, render_page

router = APIRouter(include_in_schema=False)


def _cursor(state: AppState) -> dict[str, Any] | None:
    """The footer's cursor: the multi-level index's own (it has no factory)."""
    if state.corporate is None:
        return state.store.cursor()
    cursor = state.corporate.store.cursor()
    return {**cursor, "factory": "(multi-level agreements)"} if cursor else None


def _error(request: Request, state: AppState, exc: HTTPException) -> Response:
    return render_page(request, state, "error.html", {"title": "Not found", "message": exc.detail}, exc.status_code,
                       cursor=_cursor(state))


def _organisation(request: Request, state: AppState, address: str) -> Response | tuple[dict[str, Any], list[Any]]:
    """An organisation page's start: the gate, the address, its row and events (or the page to send instead)."""
    if isinstance(opened := open_page(request, state, address), Response):
        return opened
    try:
        return row_and_events(state, opened)
    except HTTPException as exc:
        return _error(request, state, exc)


def _final(org: dict[str, Any], period: int) -> bool:
    """Whether `period` is reported and final: departments settle it (whatever the agreement's
    status: Ended means every period reported, and an expired one's reported periods still settle)."""
    states = org.get("period_states", [])
    return org["status"] in ("Active", "Ended", "Expired") and period < len(states) and \
        states[period]["state"] == "Final"


def _org_actions(org: dict[str, Any], now: int) -> list[dict[str, Any]]:
    """The buttons on an organisation page: deposits, settling the next period, the parties' withdrawals."""
    asset = org["asset"]
    out: list[dict[str, Any]] = []
    if org["status"] == "Pending":
        if not org["fees_deposited"]:
            out.append({"action": "deposit-fees", "from": org["organisation"],
                        "label": f"Organisation: deposit the fees {fmt_amount(org['total_fees'], asset)}"})
        if not org["collateral_deposited"]:
            out.append({"action": "deposit-collateral", "from": org["provider"],
                        "label": f"Provider: deposit the pool {fmt_amount(org['collateral'], asset)}"})
    settled = [d["settled_periods"] for d in org["departments"] if d.get("terminated_at") is None]
    if settled and _final(org, min(settled)):
        out.append({"action": "settle-period", "from": None, "period": min(settled),
                    "label": f"Settle period {min(settled)} for every department"})
    if (org["status"] == "Active" and org["expires_at"] is not None and now >= int(org["expires_at"])
            and org["reported_periods"] < org["period_count"]):
        out.append({"action": "expire", "from": None,
                    "label": f"Expire: the oracle left {org['period_count'] - org['reported_periods']} period(s) "
                             "unreported"})
    for who in ("provider", "organisation"):
        owed = int(org["owed"].get(org[who], "0"))
        if owed:
            out.append({"action": "withdraw", "from": org[who],
                        "label": f"{who.capitalize()}: withdraw {fmt_amount(owed, asset)}"})
    return out


def _department_actions(org: dict[str, Any], dep: dict[str, Any]) -> list[dict[str, Any]]:
    asset = org["asset"]
    out: list[dict[str, Any]] = []
    if dep.get("terminated_at") is None and _final(org, dep["settled_periods"]):
        p = dep["settled_periods"]
        expected = dep["compliance"][p]["credit_expected"]
        out.append({"action": "settle", "from": None, "department": dep["index"], "period": p,
                    "label": f"Settle period {p}: credit {fmt_amount(expected or 0, asset)} to the payout address"})
    if int(dep["owed_to_payout"]):
        out.append({"action": "withdraw", "from": dep["payout"],
                    "label": f"Withdraw {fmt_amount(dep['owed_to_payout'], asset)} to {dep['payout']}"})
    return out


@router.get("/corporate", response_class=HTMLResponse)
async def corporate_list(request: Request, state: State) -> Response:
    if isinstance(opened := open_page(request, state), Response):
        return opened
    items = []
    if state.corporate is not None:
        now = corporate_now(state)
        store = state.corporate.store
        items = [organisation_view(with_spec_names(r, state.settings.spec_files), store.events(r["address"]), now)
                 for r in store.agreements() if r["state"] is not None]
    return render_page(request, state, "corporate_list.html", {"items": items}, cursor=_cursor(state))


@router.get("/corporate/{address}", response_class=HTMLResponse)
async def corporate_page(request: Request, state: State, address: str) -> Response:
    if isinstance(found := _organisation(request, state, address), Response):
        return found
    row, events = found
    now = corporate_now(state)
    org = organisation_view(row, events, now)
    return render_page(request, state, "corporate.html", {"org": org, "actions": _org_actions(org, now)},
                       cursor=_cursor(state))


@router.get("/corporate/{address}/departments/{index}", response_class=HTMLResponse)
async def department_page(request: Request, state: State, address: str, index: int) -> Response:
    if isinstance(found := _organisation(request, state, address), Response):
        return found
    row, events = found
    n = len(row["terms"]["departments"])
    if not 0 <= index < n:
        return _error(request, state, HTTPException(404, f"agreement {row['address']} has {n} departments "
                                                         f"(0..{n - 1}), not {index}"))
    now = corporate_now(state)
    org = organisation_view(row, events, now)
    dep = department_view(row, events, index, now)
    return render_page(request, state, "corporate_department.html",
                       {"org": org, "dep": dep, "actions": _department_actions(org, dep)}, cursor=_cursor(state))


def mount_corporate_pages(app: FastAPI) -> None:
    app.include_router(router)
