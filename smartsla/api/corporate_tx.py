"""Unsigned transactions for the actions on a multi-level agreement (CorporateAgreement), in the
style of smartsla.api.tx: the contract is the authority on who may do what, and when. Each
transaction is run against the chain as its sender (a gas estimate) before it is handed out; a
request the contract would refuse is a 409 naming its error in its own words (its NatSpec). The
index only phrases the description (amounts, names, the default period); the rules are not
re-coded here.

What a department can rely on: `withdraw()` takes no argument and pays `msg.sender`, so the
unsigned transaction cannot send its credit anywhere else; `settleDepartment` pays the payout
address held by the contract, never one from the request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from ..chain import Chain
from ..corporate_index import CONTRACT, terms_from_json
from ..presentation import fmt_amount
from .tx import ActionRefused, Prepared, _ask_chain

CORPORATE_ACTIONS = ("deposit-fees", "deposit-collateral", "settle", "settle-period", "expire", "withdraw")


@dataclass(frozen=True)
class CorporateAction:
    action: str
    sender: str
    department: int | None = None
    period: int | None = None


def prepare_corporate(row: dict[str, Any], req: CorporateAction, *, chain: Chain | None, chain_id: int,
                      lock: threading.RLock, rpc_url: str | None) -> Prepared:
    """The transaction `req.sender` must send for `req.action` on the multi-level agreement `row`.
    Without a chain nothing is checked here; the wallet's own estimate will be."""
    del rpc_url  # no CLI equivalent is offered for these actions
    terms = terms_from_json(row["terms"])
    state = row["state"] or {}
    address = row["address"]
    sender = req.sender
    n = len(terms.departments)
    asset = terms.asset
    settled = [int(x) for x in state.get("settled", [0] * n)]
    reported: list[list[int]] = state.get("reported", [])
    value = 0
    args: list[Any] = []
    if req.action in ("deposit-fees", "deposit-collateral"):
        fees = req.action == "deposit-fees"
        value = terms.total_fees if fees else terms.collateral
        fn = "depositFees" if fees else "depositCollateral"
        description = (f"Deposit the fees of the {n} departments for the whole term: {fmt_amount(value, asset)}"
                       if fees else
                       f"Deposit the collateral pool: {fmt_amount(value, asset)} backing {n} departments (worst case "
                       f"{fmt_amount(terms.worst_case, asset)}; the excess is released to you at once)")
    elif req.action == "settle":
        i = 0 if req.department is None else req.department
        period = (settled[i] if i < n else 0) if req.period is None else req.period
        fn, args = "settleDepartment", [i, period]
        if i < n:
            dep = terms.departments[i]
            credit = (f"a credit of {fmt_amount(terms.department_credit(i, reported[period])[1], asset)}"
                      if period < len(reported) else "its credit")
            description = (f"Settle department {i} ({dep.name}) for period {period}: {credit} to its payout address "
                           f"{dep.payout} (the address the contract holds), its fee "
                           f"{fmt_amount(dep.fee_per_period, asset)} to the provider")
        else:
            description = f"Settle department {i} for period {period}"
    elif req.action == "settle-period":
        period = min(settled, default=0) if req.period is None else req.period
        fn, args = "settleDepartments", [period, 0, n]
        todo = [i for i, x in enumerate(settled) if x == period]
        if state and not todo and all(x > period for x in settled):
            # Not a refusal of the contract's (it skips settled departments): a no-op we decline.
            raise ActionRefused(f"every department has already settled period {period}: the transaction would "
                                "change nothing")
        total = (fmt_amount(sum(terms.department_credit(i, reported[period])[1] for i in todo), asset)
                 if period < len(reported) else "as reported")
        description = (f"Settle period {period} for {len(todo)} department(s) at once: credits {total} in all, "
                       "each to its own payout address")
    elif req.action == "expire":
        fn = "expire"
        unreported = terms.period_count - int(state.get("reported_periods", 0))
        per_period_fees = sum(d.fee_per_period for d in terms.departments)
        description = (f"Expire: the oracle left {unreported} period(s) unreported; their fees "
                       f"{fmt_amount(per_period_fees * unreported, asset)} go back to the organisation, their pool "
                       "reservations to the provider (reported periods still settle)")
    elif req.action == "withdraw":
        owed = int(state.get("owed", {}).get(sender, "0"))
        roles = [f"department {i} ({d.name})" for i, d in enumerate(terms.departments) if d.payout == sender]
        roles += ["the provider"] if sender == terms.provider else []
        roles += ["the organisation"] if sender == terms.organisation else []
        fn = "withdraw"
        description = (f"Withdraw {fmt_amount(owed, asset)} owed to {sender} ({', '.join(roles) or 'no role'}); "
                       "the contract pays the sender, nobody else")
    else:  # pragma: no cover - routes only pass known actions
        raise ValueError(req.action)
    w3 = chain.w3 if chain is not None else Web3()
    contract = w3.eth.contract(address=address, abi=_abi())
    tx: dict[str, Any] = {"from": sender, "to": address, "value": hex(value), "chainId": hex(chain_id),
                          "data": contract.encode_abi(fn, args=args)}
    if chain is not None:
        with lock:
            gas = _ask_chain(chain, tx, fn)  # ActionRefused in the contract's words
        if gas is not None:
            tx["gas"] = hex(gas)
    return Prepared(description, [tx], None)


_ABI: list[Any] = []


def _abi() -> Any:
    if not _ABI:
        from .. import artifacts

        _ABI.extend(artifacts.load(CONTRACT)["abi"])
    return _ABI
