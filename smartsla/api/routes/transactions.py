"""Unsigned transactions for a wallet (POST /api/agreements/{address}/tx/{action}) and, for the
demo only, their server-signing twins (.../send), on a router of their own that create_app
includes only when `ApiSettings.server_signing` is set."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from ...addresses import parse_address
from ..deps import NOT_FOUND, AddressPath, AppState, State, TxBody, row_or_404
from ..models import ErrorOut, SentOut, TxOut, TxRequest
from ..tx import ActionRefused, prepare, send_from_node

router = APIRouter()
demo_router = APIRouter()

TX_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND, 409: {"model": ErrorOut, "description": "the contract would refuse (wrong party or state)"}}


def _tx(state: AppState, address: str, action: str, body: TxRequest) -> dict[str, Any]:
    sender = parse_address(body.from_, "from")
    row = row_or_404(state.store, address)
    try:
        prepared = prepare(row, action, sender, chain=state.chain, chain_id=state.chain_id(), lock=state.lock,
                           rpc_url=state.settings.rpc_url)
    except ActionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return {"action": action, "agreement": address, "description": prepared.description,
            "transactions": prepared.transactions, "cli": prepared.cli}


def _send(state: AppState, address: str, action: str, body: TxRequest) -> dict[str, Any]:
    if state.chain is None:
        raise HTTPException(409, "no chain connected")
    built = _tx(state, address, action, body)
    try:
        last: tuple[str, int] = ("", 0)
        for t in built["transactions"]:
            last = send_from_node(state.chain, state.lock, t)
    except ActionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    if state.indexer is not None:  # show the result at once
        state.indexer.sync()
    return {"action": action, "tx_hash": last[0], "block_number": last[1]}


def _add_routes(action: str, summary: str) -> None:
    """One named route per action (own summary and operation id in the OpenAPI document) on each router."""

    def handler(address: AddressPath, body: TxBody, state: State) -> dict[str, Any]:
        return _tx(state, address, action, body)

    handler.__doc__ = summary + " Returns the unsigned transaction(s) for the sender's wallet to sign."
    router.add_api_route(f"/agreements/{{address}}/tx/{action}", handler, methods=["POST"], response_model=TxOut,
                         response_model_by_alias=True, responses=TX_RESPONSES, tags=["transactions"],
                         name=f"tx_{action.replace('-', '_')}", summary=summary)

    def send(address: AddressPath, body: TxBody, state: State) -> dict[str, Any]:
        return _send(state, address, action, body)

    send.__doc__ = "DEMO ONLY: the node signs with the key it holds for `from` and sends."
    demo_router.add_api_route(f"/agreements/{{address}}/tx/{action}/send", send, methods=["POST"],
                              response_model=SentOut, responses=TX_RESPONSES, tags=["demo"],
                              name=f"send_{action.replace('-', '_')}", summary=f"{summary} (demo: server signs)")


_add_routes("withdraw", "Withdraw what the agreement owes the sender (customer or provider).")
_add_routes("terminate", "Terminate under the disaster clause (customer only).")
_add_routes("deposit-fees", "Deposit the prepaid fees (customer).")
_add_routes("deposit-collateral", "Deposit the collateral (provider).")
