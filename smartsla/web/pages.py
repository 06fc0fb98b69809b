"""The dashboard: server-rendered pages (Jinja2) over the index, with the app's own CSS.

* `/` every agreement, newest first, with a status filter and links to the party views;
* `/agreements/{address}` a status page: a bar of periods per service, the current period and
  its forecast (from the oracle's /metrics, when configured), credits earned and paid, escrow
  left, maintenance windows and disputes, charts, events;
* `/customer/{address}` what a customer is owed, with withdraw (and terminate) actions;
* `/provider/{address}` a provider's agreements and exposure.

Pages read the index (and, for the forecast, the oracle's /metrics). Nothing is loaded from
elsewhere: the Content-Security-Policy allows this origin only.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from ..addresses import parse_address
from ..api import views
from ..api.deps import AppState, State, checked_address
from ..api.security import TOKEN_COOKIE, bearer, token_matches
from ..api.tx import cli_command
from ..presentation import fmt_amount, fmt_duration, fmt_time, measure, short_address, value_unit
from ..units import bps_to_percent, ppm_to_percent
from . import charts, evidence_view

WEB_DIR = resources.files("smartsla.web")
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
MAINTENANCE_WORDS = ("Maintenance",)
DISPUTE_WORDS = ("Dispute",)
PAGE_CACHE_SIZE = 4096  # agreements whose page data is kept; cleared at once when full (bounded memory)


@functools.cache  # one environment for the process: filters and compiled templates are shared
def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    env = templates.env
    env.filters.update(time=fmt_time, duration=fmt_duration, short=short_address, pct=ppm_to_percent,
                       bps=lambda b: bps_to_percent(int(b)))
    env.globals.update(amount=fmt_amount, state_labels=charts.STATE_LABELS, colors=charts.COLORS)
    return templates


def _windows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """MaintenanceDeclared events as windows (start, end, with notice)."""
    out = []
    for e in events:
        if e["name"] != "MaintenanceDeclared":
            continue
        a = e["args"]
        try:
            out.append({"start": int(a["start"]), "end": int(a["end"]), "declared_at": int(a["declaredAt"]),
                        "with_notice": bool(a.get("withNotice", False)), "index": int(a.get("index", 0))})
        except (KeyError, TypeError, ValueError):  # another shape of the event: shown raw only
            continue
    return out


def _cells(row: dict[str, Any], periods: list[dict[str, Any]], service_index: int, now: int,
           windows: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """One status-bar cell per period of the agreement for one service. A period that met its
    objective with a maintenance window declared with notice shows as maintenance."""
    terms = views.terms_of(row)
    by_period = {p["period"]: p for p in periods}
    count, settled = int(row["period_count"]), int(row["settled_periods"])
    running = row["status"] in ("Pending", "Active")
    cells = []
    for period in range(count):
        p = by_period.get(period)
        p_start, p_end = terms.period_start(period), terms.period_end(period)
        when = f"period {period}, {fmt_time(p_start)} – {fmt_time(p_end)}"
        overlapping = [w for w in windows if w["with_notice"] and w["start"] < p_end and w["end"] > p_start]
        maint = f"; maintenance {fmt_time(overlapping[0]['start'])} – {fmt_time(overlapping[0]['end'])}" \
            if overlapping else ""
        if p is not None and service_index < len(p["services"]):
            s = p["services"][service_index]
            tier = f", tier {s['tier']} ({bps_to_percent(s['tier_credit_bps'])} credit)" if s["tier"] else ""
            state = "maintenance" if overlapping and s["state"] == "operational" else s["state"]
            dispute = {"pending": " (inside the dispute window)", "disputed": " (disputed)"}.get(p["state"], "")
            title = (f"{when}: {s['measured']} against {s['objective']}{tier} — {charts.STATE_LABELS[s['state']]}"
                     f"{maint}{dispute}")
            cells.append({"period": period, "state": state, "title": title})
        elif running and period == settled and now >= p_start:
            active = [w for w in overlapping if w["start"] <= now < w["end"]]
            cells.append({"period": period, "state": "maintenance" if active else "current",
                          "title": f"{when}: in progress{maint}"})
        elif running:
            cells.append({"period": period, "state": "future", "title": f"{when}: not started{maint}"})
        else:
            cells.append({"period": period, "state": "void", "title": f"{when}: never ran"})
    return cells


def _actions(row: dict[str, Any], role: str, state: AppState) -> list[dict[str, Any]]:
    """The buttons a party sees for one agreement."""
    terms = views.terms_of(row)
    me = terms.customer if role == "customer" else terms.provider
    out = []
    owed = int(row[f"owed_to_{role}"])
    if owed:
        out.append({"action": "withdraw", "from": me, "label": f"Withdraw {fmt_amount(owed, row['asset'])}",
                    "cli": cli_command("withdraw", row["address"], state.settings.rpc_url)})
    if role == "customer" and row["status"] == "Active" and row["disaster_occurred"]:
        refund = fmt_amount(row["fees_escrowed"], row["asset"])
        out.append({"action": "terminate", "from": me, "label": f"Terminate (disaster clause): get back {refund}",
                    "cli": cli_command("terminate", row["address"], state.settings.rpc_url)})
    if row["status"] == "Pending":
        kind = "deposit-fees" if role == "customer" else "deposit-collateral"
        done = row["fees_deposited"] if role == "customer" else row["collateral_deposited"]
        if not done:
            amount = terms.total_fees if role == "customer" else terms.collateral
            out.append({"action": kind, "from": me, "cli": None,
                        "label": f"Deposit the {'fees' if role == 'customer' else 'collateral'}: "
                                 f"{fmt_amount(amount, row['asset'])}"})
    return out


def _page_parts(state: AppState, row: dict[str, Any], terms: Any, data: dict[str, Any]) -> dict[str, Any]:
    """What an agreement page keeps under one index change key: the settled history, money and
    terms as markup (rendered once, same environment and autoescaping), and the little the bars
    need to be drawn again when the period in progress changes state."""
    periods = [views.period_json(p, terms) for p in data["periods"]]
    services = [{"name": s.name, "kind": s.kind.name, "objective_value": s.objective, "unit": value_unit(s),
                 "weight_bps": s.weight_bps, "objective": measure(s, s.objective),
                 "tiers": "; ".join(f"{'>' if s.lower_is_better else '<'} {measure(s, t.threshold)} → "
                                    f"{bps_to_percent(t.credit_bps)}" for t in s.tiers)}
                for s in terms.services]
    fmt_units = lambda units: fmt_amount(units, row["asset"])  # noqa: E731
    windows = _windows(data["maintenance"])
    env = _templates().env
    history = env.get_template("_agreement_history.html").render(
        row=row, terms=terms, periods=periods, services=services, maintenance=data["maintenance"],
        windows=windows, disputes=data["disputes"], events=data["events"], events_total=data["events_total"],
        withdrawals=data["withdrawals"], uptime_svg=charts.uptime_chart(services, periods, int(row["period_count"])),
        credits_svg=charts.credits_chart(periods, int(row["period_count"]), fmt_units))
    money = env.get_template("_agreement_money.html").render(
        row=row, terms=terms, detail={"totals": views.totals_json(row)}, server_signing=state.settings.server_signing,
        customer_actions=_actions(row, "customer", state), provider_actions=_actions(row, "provider", state))
    return {"periods": periods, "services": services, "windows": windows, "history": Markup(history),
            "money_html": Markup(money), "period_numbers": [p["period"] for p in periods], "bars": {}}


def _bars_moment(row: dict[str, Any], terms: Any, windows: Sequence[dict[str, Any]], now: int) -> tuple[Any, ...]:
    """Everything of `now` that _cells reads: whether the period in progress (the first one not
    settled, while the agreement runs) has started, and whether a window declared with notice
    covers `now` inside it. Every other cell is the same at any time."""
    settled = int(row["settled_periods"])
    if row["status"] not in ("Pending", "Active") or settled >= int(row["period_count"]):
        return ()
    p_start, p_end = terms.period_start(settled), terms.period_end(settled)
    if now < p_start:
        return (False,)
    return (True, any(w["with_notice"] and w["start"] < p_end and w["end"] > p_start and w["start"] <= now < w["end"]
                      for w in windows))


def _bars_html(row: dict[str, Any], periods: list[dict[str, Any]], services: list[dict[str, Any]],
               windows: Sequence[dict[str, Any]], now: int) -> Markup:
    bars = [{"service": s, "cells": (cells := _cells(row, periods, i, now, windows)),
             "svg": charts.status_bar(cells, label=f"{s['name']}: one cell per period"),
             "met": sum(1 for c in cells if c["state"] in ("operational", "maintenance") and c["period"]
                        < int(row["settled_periods"])),
             "settled": sum(1 for c in cells if c["period"] < int(row["settled_periods"]))}
            for i, s in enumerate(services)]
    return Markup(_templates().env.get_template("_agreement_bars.html").render(bars=bars, row=row))


router = APIRouter(include_in_schema=False)


def _authorised(request: Request, state: AppState) -> bool:
    token = bearer(request.headers) or request.cookies.get(TOKEN_COOKIE)
    return token_matches(token, state.settings.read_token)


def render_page(request: Request, state: AppState, name: str, context: dict[str, Any], status: int = 200,
                cursor: dict[str, Any] | None = None) -> Response:
    cursor = cursor if cursor is not None else state.store.cursor()
    context = {"request": request, "cursor": cursor, "now": views.chain_now(cursor),
               "server_signing": state.settings.server_signing, **context}
    response = _templates().TemplateResponse(request, name, context, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _gate(request: Request, state: AppState) -> Response | None:
    if _authorised(request, state):
        return None
    target = urllib.parse.quote(request.url.path)
    return RedirectResponse(f"/login?next={target}", status_code=303)


def _bad_address(request: Request, state: AppState, value: str) -> Response:
    try:
        parse_address(value)
    except ValueError as exc:
        return render_page(request, state, "error.html", {"title": "Not an address", "message": str(exc)}, 422)
    raise AssertionError("unreachable")


def open_page(request: Request, state: AppState, address: str | None = None,
              check: Callable[[str], str] = parse_address) -> Response | str:
    """What every dashboard page (here and in corporate_pages) does first: the read gate (a
    redirect to the login), then the address of its path checked with `check` (an error page
    naming what is wrong). Returns the response to send instead, or the checked address ("" for
    a page without one)."""
    if (redirect := _gate(request, state)) is not None:
        return redirect
    if address is None:
        return ""
    try:
        return check(address)
    except ValueError:
        return _bad_address(request, state, address)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, state: State, status: str | None = None, page: int = 1) -> Response:
    if isinstance(opened := open_page(request, state), Response):
        return opened
    status = status if status in ("Pending", "Active", "Ended", "Terminated", "Cancelled", "Expired") else None
    page = max(1, min(page, 10_000_000))
    per_page = 50
    rows, total = state.store.list_agreements(status=status, limit=per_page, offset=(page - 1) * per_page)
    return render_page(request, state, "index.html", {"rows": rows, "total": total, "page": page,
                                                      "per_page": per_page, "status": status,
                                                      "pages": max(1, -(-total // per_page))})


@router.get("/party")
async def party(request: Request, state: State, role: str = "customer", address: str = "") -> Response:
    try:
        checked = parse_address(address.strip())
    except ValueError:
        return _bad_address(request, state, address)
    return RedirectResponse(f"/{'provider' if role == 'provider' else 'customer'}/{checked}", status_code=303)


@router.get("/agreements/{address}", response_class=HTMLResponse)
async def agreement_page(request: Request, state: State, address: str) -> Response:
    if isinstance(opened := open_page(request, state, address, checked_address), Response):
        return opened
    address = opened
    # One read transaction; what only changes when the index does is kept per agreement under
    # the index's change key (see IndexStore.agreement_page) as rendered markup, not as lists of
    # dicts: the page's CPU went mostly to re-rendering the bars, money and terms, and the cyclic
    # garbage collector's full passes over a cache of dicts were its p99 (bench/api_bench.py).
    held = state.page_cache.get(address)
    data = state.store.agreement_page(address, lambda key: held is not None and held[0] == key,
                                      maintenance_words=MAINTENANCE_WORDS, dispute_words=DISPUTE_WORDS)
    if data is None:
        return render_page(request, state, "error.html", {"title": "Unknown agreement", "message":
                           f"No agreement {address} in the index."}, 404)
    row, cursor = data["row"], data["cursor"]
    terms = views.terms_of(row)
    now = views.chain_now(cursor)
    if data["loaded"] or held is None:
        held = (data["key"], _page_parts(state, row, terms, data))
        if len(state.page_cache) >= PAGE_CACHE_SIZE:
            state.page_cache.clear()
        state.page_cache[address] = held
    kept = held[1]
    # the bars depend on the chain's time only through the period in progress: rendered once per
    # change key and state of that period
    moment = _bars_moment(row, terms, kept["windows"], now)
    bars_html = kept["bars"].get(moment)
    if bars_html is None:
        bars_html = kept["bars"][moment] = _bars_html(row, kept["periods"], kept["services"], kept["windows"], now)
    context = {
        "row": row, "terms": terms, "detail": {"progress": views.progress(row, now)},
        "bars_html": bars_html, "money_html": kept["money_html"], "history": kept["history"],
        # the period in progress as the oracle measures it (its /metrics), when one is configured
        "forecast": await state.forecast(row) if state.feed is not None and row["status"] == "Active" else None,
        # issue 12: method, spec hash, scope, and each settled period's evidence (evidence_view)
        "method": evidence_view.method_context(terms, evidence_view.load_spec_scopes(state.settings.spec_files)),
        "evidence": await evidence_view.settled_evidence(state, row, terms, kept["period_numbers"], data["key"]),
    }
    return render_page(request, state, "agreement.html", context, cursor=cursor)


def _party_page(request: Request, state: AppState, address: str, role: str) -> Response:
    if isinstance(opened := open_page(request, state, address), Response):
        return opened
    address = opened
    rows = state.store.all_agreements_of(**{role: address}, limit=500)
    now = views.chain_now(state.store.cursor())
    items = []
    totals: dict[str, dict[str, int]] = {}
    for row in rows:
        t = totals.setdefault(row["asset"], {"owed": 0, "credits": 0, "exposure": 0, "collateral": 0,
                                             "withdrawn": 0})
        t["owed"] += int(row[f"owed_to_{role}"])
        t["credits"] += int(row["credits_paid"])
        t["exposure"] += views.exposure(row)
        t["collateral"] += int(row["collateral_escrowed"])
        t["withdrawn"] += int(row[f"withdrawn_{role}"])
        items.append({"row": row, "exposure": views.exposure(row), "progress": views.progress(row, now),
                      "actions": _actions(row, role, state)})
    return render_page(request, state, "party.html",
                       {"role": role, "address": address, "items": items, "totals": totals})


@router.get("/customer/{address}", response_class=HTMLResponse)
async def customer_page(request: Request, state: State, address: str) -> Response:
    return _party_page(request, state, address, "customer")


@router.get("/provider/{address}", response_class=HTMLResponse)
async def provider_page(request: Request, state: State, address: str) -> Response:
    return _party_page(request, state, address, "provider")


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, state: State, next: str = "/") -> Response:
    return render_page(request, state, "login.html", {"next": next if next.startswith("/") else "/", "failed": False})


@router.post("/login")
async def login(request: Request, state: State) -> Response:
    form = urllib.parse.parse_qs((await request.body()).decode(errors="replace"))
    token = (form.get("token") or [""])[0]
    target = (form.get("next") or ["/"])[0]
    target = target if target.startswith("/") and not target.startswith("//") else "/"
    if not token_matches(token, state.settings.read_token):
        return render_page(request, state, "login.html", {"next": target, "failed": True}, 401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def mount_dashboard(app: FastAPI) -> None:
    """The dashboard's static files and pages on `app` (its state: smartsla.api.deps.AppState)."""
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    app.include_router(router)
