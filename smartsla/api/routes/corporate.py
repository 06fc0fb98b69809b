"""Multi-level agreements (CorporateAgreement) in the API: the organisations, a department with
its compliance report, and unsigned transactions for the department actions.

The index of these agreements is smartsla.corporate_index (its own tables and sync); the app
holds it as `AppState.corporate` (None: no multi-level agreement configured, every route 404s).
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import Field

from ...addresses import parse_address
from ...corporate_index import CorporateStore, department_view, organisation_view, with_spec_names
from ..corporate_tx import CORPORATE_ACTIONS, CorporateAction, prepare_corporate
from ..deps import AddressPath, AppState, State
from ..models import ErrorOut, SentOut, TxOut, TxRequest
from ..tx import ActionRefused, send_from_node
from ..views import chain_now

router = APIRouter(tags=["multi-level"])
demo_router = APIRouter(tags=["demo"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "no such multi-level "
                                                     "agreement or department in the index"}}
TX_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND, 409: {"model": ErrorOut, "description": "the contract would refuse: the message names its error"}}
DepartmentPath = Annotated[int, Path(ge=0, le=65_535, description="department index (0-based, as on-chain)")]


class CorporateTxRequest(TxRequest):
    department: int | None = Field(None, ge=0, le=65_535, description="settle: the department's index")
    period: int | None = Field(None, ge=0, le=65_535, description="settle / settle-period: the period (default: "
                                                                  "the next one to settle)")


def corporate_store(state: AppState) -> CorporateStore:
    if state.corporate is None:
        raise HTTPException(404, "no multi-level agreement is indexed (smartsla serve --corporate ADDRESS)")
    store: CorporateStore = state.corporate.store
    return store


def corporate_now(state: AppState) -> int:
    return chain_now(corporate_store(state).cursor())


def row_and_events(state: AppState, address: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    store = corporate_store(state)
    row = store.agreement(address)
    if row is None or row["state"] is None:
        raise HTTPException(404, f"no multi-level agreement {address} in the index (not configured, or not "
                            "indexed yet)")
    return with_spec_names(row, state.settings.spec_files), store.events(address)


def _department(state: AppState, address: str, index: int) -> dict[str, Any]:
    row, events = row_and_events(state, address)
    n = len(row["terms"]["departments"])
    if index >= n:
        raise HTTPException(404, f"agreement {address} has {n} departments (0..{n - 1}), not {index}")
    return department_view(row, events, index, corporate_now(state))


@router.get("/corporate", summary="Every indexed multi-level agreement (organisation, pool, exposure).")
async def list_corporate(state: State) -> dict[str, Any]:
    if state.corporate is None:
        return {"items": [], "total": 0}  # none configured: an empty list, as an empty index gives
    store = corporate_store(state)
    now = corporate_now(state)
    items = []
    for row in store.agreements():
        if row["state"] is None:
            continue
        view = organisation_view(with_spec_names(row, state.settings.spec_files), store.events(row["address"]), now)
        items.append({k: view[k] for k in ("address", "status", "provider", "organisation", "asset",
                                           "collateral_pool", "exposure", "fees_escrowed", "period_count",
                                           "reported_periods", "snapshot_block")} | {"departments":
                                                                                     len(view["departments"])})
    return {"items": items, "total": len(items)}


@router.get("/corporate/{address}", responses=NOT_FOUND,
            summary="An organisation: terms, pool, exposure, departments with their credits and payout addresses.")
async def get_corporate(address: AddressPath, state: State) -> dict[str, Any]:
    row, events = row_and_events(state, address)
    return organisation_view(row, events, corporate_now(state))


@router.get("/corporate/{address}/departments/{index}", responses=NOT_FOUND,
            summary="A department: its terms, credits, what its payout address is owed, its compliance report.")
async def get_department(address: AddressPath, index: DepartmentPath, state: State) -> dict[str, Any]:
    return _department(state, address, index)


COMPLIANCE_COLUMNS = ("period", "start", "end", "status", "service", "weight_bps", "objective_ppm", "own_objective",
                      "measured_ppm", "met", "tier", "tier_credit_bps", "service_credit", "credit_paid",
                      "credit_expected", "fee")


@router.get("/corporate/{address}/departments/{index}/compliance", responses={
    **NOT_FOUND, 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                       "description": "per period (JSON), or one row per period and service (CSV, format=csv)"}},
            summary="A department's compliance report: per period, per service the measured value, its own "
                    "objective, the tier, and the credit paid.")
async def get_compliance(address: AddressPath, index: DepartmentPath, state: State,
                         from_period: Annotated[int, Query(ge=0, le=65_535, description="first period")] = 0,
                         to_period: Annotated[int | None, Query(ge=0, le=65_535, description="last period, "
                                                                "included; default: the last one")] = None,
                         format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
                         ) -> Any:
    view = _department(state, address, index)
    last = len(view["compliance"]) - 1 if to_period is None else to_period
    if last < from_period:
        raise HTTPException(422, f"to_period {last} is before from_period {from_period}")
    periods = [p for p in view["compliance"] if from_period <= p["period"] <= last]
    if format == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(COMPLIANCE_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for p in periods:
            for s in p["services"]:
                r = {**{k: p[k] for k in ("period", "start", "end", "status", "credit_paid", "credit_expected",
                                          "fee")}, **s, "service_credit": s["credit"]}
                writer.writerow({k: ("" if r[k] is None else str(r[k]).lower() if isinstance(r[k], bool)
                                     else r[k]) for k in COMPLIANCE_COLUMNS})
        name = f"smartsla-compliance-{address}-department-{index}-{from_period}-{last}.csv"
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return {"agreement": address, "department": index, "name": view["name"], "payout": view["payout"],
            "snapshot_block": view["snapshot_block"], "from_period": from_period, "to_period": last,
            "periods": periods}


def corporate_tx(state: AppState, address: str, action: str, body: CorporateTxRequest) -> dict[str, Any]:
    sender = parse_address(body.from_, "from")
    row, _ = row_and_events(state, address)
    try:
        prepared = prepare_corporate(row, CorporateAction(action, sender, body.department, body.period),
                                     chain=state.chain, chain_id=state.chain_id(), lock=state.lock,
                                     rpc_url=state.settings.rpc_url)
    except ActionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return {"action": action, "agreement": address, "description": prepared.description,
            "transactions": prepared.transactions, "cli": prepared.cli}


def _add(action: str, summary: str) -> None:
    def handler(address: AddressPath, body: CorporateTxRequest, state: State) -> dict[str, Any]:
        return corporate_tx(state, address, action, body)

    handler.__doc__ = summary + " Returns the unsigned transaction for the sender's wallet to sign."
    router.add_api_route(f"/corporate/{{address}}/tx/{action}", handler, methods=["POST"], response_model=TxOut,
                         response_model_by_alias=True, responses=TX_RESPONSES, summary=summary,
                         name=f"corporate_tx_{action.replace('-', '_')}")

    def send(address: AddressPath, body: CorporateTxRequest, state: State) -> dict[str, Any]:
        if state.chain is None:
            raise HTTPException(409, "no chain connected")
        built = corporate_tx(state, address, action, body)
        try:
            tx_hash, block = send_from_node(state.chain, state.lock, built["transactions"][0])
        except ActionRefused as exc:
            raise HTTPException(409, str(exc)) from None
        if state.corporate is not None and state.corporate.indexer is not None:
            state.corporate.indexer.sync()  # show the result at once
        return {"action": action, "tx_hash": tx_hash, "block_number": block}

    send.__doc__ = "DEMO ONLY: the node signs with the key it holds for `from` and sends."
    demo_router.add_api_route(f"/corporate/{{address}}/tx/{action}/send", send, methods=["POST"],
                              response_model=SentOut, responses=TX_RESPONSES, summary=f"{summary} (demo)",
                              name=f"corporate_send_{action.replace('-', '_')}")


_SUMMARIES = {
    "deposit-fees": "Deposit every department's fees for the term (organisation).",
    "deposit-collateral": "Deposit the collateral pool (provider).",
    "settle": "Settle a department's next period (anyone): its credit to its payout address.",
    "settle-period": "Settle one period for every department in one transaction (anyone).",
    "expire": "End an agreement whose oracle went silent (anyone, after the report deadline): unreported "
              "periods' fees back to the organisation, their pool to the provider.",
    "withdraw": "Withdraw what the agreement owes the sender (a department's payout address, the organisation "
                "or the provider).",
}
for _action in CORPORATE_ACTIONS:
    _add(_action, _SUMMARIES[_action])
