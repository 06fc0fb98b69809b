"""Unsigned transactions for the actions on a multi-level agreement (CorporateAgreement), in the
style of smartsla.api.tx: checked against the index first, each refusal named after the custom
error the contract would revert with (the chain is the authority: a gas estimate against the
node then catches whatever the index has not seen yet, decoded the same way).

What a department can rely on: `withdraw()` takes no argument and pays `msg.sender`, so the
unsigned transaction cannot send its credit anywhere else; `settleDepartment` pays the payout
address held by the contract, never one from the request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from ..chain import REVERTS, Chain, _revert_data
from ..corporate_index import CONTRACT, status_of, terms_from_json
from ..errors import decode_revert
from ..presentation import fmt_amount
from .tx import ActionRefused, Prepared

CORPORATE_ACTIONS = ("deposit-fees", "deposit-collateral", "settle", "settle-period", "expire", "withdraw")


@dataclass(frozen=True)
class CorporateAction:
    action: str
    sender: str
    department: int | None = None
    period: int | None = None


def _refuse(error: str, why: str) -> ActionRefused:
    """A refusal that names the contract's custom error (docs/security.md, issue 13 item 2)."""
    return ActionRefused(f"the contract would revert with {error}: {why}")


def prepare_corporate(row: dict[str, Any], req: CorporateAction, *, chain: Chain | None, chain_id: int,
                      lock: threading.RLock, rpc_url: str | None) -> Prepared:
    """The transaction `req.sender` must send for `req.action` on the multi-level agreement `row`."""
    terms = terms_from_json(row["terms"])
    state = row["state"] or {}
    address = row["address"]
    sender = req.sender
    block = row["snapshot_block"]
    n = len(terms.departments)
    asset = terms.asset
    status = status_of(state, terms) if state else "Pending"
    value = 0
    if req.action in ("deposit-fees", "deposit-collateral"):
        fees = req.action == "deposit-fees"
        party = terms.organisation if fees else terms.provider
        if sender != party:
            raise _refuse(f"Unauthorized({sender})", f"only the {'organisation' if fees else 'provider'} {party} "
                          f"deposits the {'fees' if fees else 'collateral'}")
        if state.get("cancelled"):
            raise _refuse("AlreadyCancelled()", "the agreement was cancelled")
        if state.get("fees_deposited" if fees else "collateral_deposited"):
            raise _refuse("AlreadyDeposited()", f"the {'fees are' if fees else 'collateral is'} already deposited")
        value = terms.total_fees if fees else terms.collateral
        fn, args = ("depositFees", [value]) if fees else ("depositCollateral", [])
        # depositFees(expectedTotal): a department added after this was prepared makes the
        # contract revert (WrongAmount) instead of charging the organisation for it.
        description = (f"Deposit the fees of the {n} departments for the whole term: {fmt_amount(value, asset)}"
                       if fees else
                       f"Deposit the collateral pool: {fmt_amount(value, asset)} backing {n} departments (worst case "
                       f"{fmt_amount(terms.worst_case, asset)}; the excess is released to you at once)")
    elif req.action in ("settle", "settle-period"):
        if status == "Pending" or not state:
            raise _refuse("PeriodNotReported", "both deposits must be in and the period reported first")
        reported = int(state["reported_periods"])
        settled = [int(s) for s in state["settled"]]
        if req.action == "settle":
            i = req.department
            if i is None or not 0 <= i < n:
                raise _refuse(f"UnknownDepartment({i}, {n})", f"departments are numbered 0..{n - 1}")
            period = settled[i] if req.period is None else req.period
            if period != settled[i]:
                raise _refuse(f"PeriodOutOfOrder({settled[i]}, {period})",
                              f"department {i} settles its periods in order; the next is {settled[i]}")
            if period >= reported:
                raise _refuse(f"PeriodNotReported({period})", f"the oracle has reported {reported} period(s)")
            _, credit = terms.department_credit(i, state["reported"][period])
            dep = terms.departments[i]
            fn, args = "settleDepartment", [i, period]
            description = (f"Settle department {i} ({dep.name}) for period {period}: a credit of "
                           f"{fmt_amount(credit, asset)} to its payout address {dep.payout} (the address the contract "
                           f"holds), its fee {fmt_amount(dep.fee_per_period, asset)} to the provider")
        else:
            period = min(settled) if req.period is None else req.period
            if period >= reported:
                raise _refuse(f"PeriodNotReported({period})", f"the oracle has reported {reported} period(s)")
            behind = [i for i, s in enumerate(settled) if s < period]
            if behind:
                raise _refuse(f"PeriodOutOfOrder({settled[behind[0]]}, {period})",
                              f"department(s) {', '.join(map(str, behind))} must settle earlier periods first")
            todo = [i for i, s in enumerate(settled) if s == period]
            if not todo:
                raise ActionRefused(f"every department has already settled period {period}: the transaction would "
                                    "change nothing")
            total = sum(terms.department_credit(i, state["reported"][period])[1] for i in todo)
            fn, args = "settleDepartments", [period, 0, n]
            description = (f"Settle period {period} for {len(todo)} department(s) at once: credits "
                           f"{fmt_amount(total, asset)} in all, each to its own payout address")
    elif req.action == "expire":
        if status == "Pending" or not state:
            raise _refuse("NotFunded()", "both deposits must be in")
        if state.get("cancelled"):
            raise _refuse("AlreadyCancelled()", "the agreement was cancelled")
        deadline = int(state["expires_at"])
        if state.get("expired"):
            raise _refuse(f"NotExpired({deadline})", "the agreement has already expired")
        # The deadline is checked against the next block's time: the node's estimate below does it
        # (a dev chain's clock moves by jumps); without a node, against this machine's clock.
        if chain is None and time.time() < deadline:
            raise _refuse(f"NotExpired({deadline})", "reports are accepted until then")
        unreported = terms.period_count - int(state["reported_periods"])
        if unreported == 0:
            raise _refuse("NothingToExpire()", "every period was reported")
        fn, args = "expire", []
        per_period_fees = sum(d.fee_per_period for d in terms.departments)
        description = (f"Expire: the oracle left {unreported} period(s) unreported; their fees "
                       f"{fmt_amount(per_period_fees * unreported, asset)} go back to the organisation, their pool "
                       "reservations to the provider (reported periods still settle)")
    elif req.action == "withdraw":
        owed = int(state.get("owed", {}).get(sender, "0")) if state else 0
        if owed == 0:
            raise _refuse(f"NothingToWithdraw({sender})", f"nothing is owed to {sender} (as of block {block})")
        roles = [f"department {i} ({d.name})" for i, d in enumerate(terms.departments) if d.payout == sender]
        roles += ["the provider"] if sender == terms.provider else []
        roles += ["the organisation"] if sender == terms.organisation else []
        fn, args = "withdraw", []
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
            try:
                gas = chain.w3.eth.estimate_gas({"from": sender, "to": address, "data": tx["data"],
                                                 "value": value})  # type: ignore[typeddict-item]
            except REVERTS as exc:
                raise ActionRefused(f"the contract would revert with {decode_revert(_revert_data(exc), fn)} "
                                    f"(the chain has moved since block {block})") from exc
            except Exception:  # node unreachable: the wallet will estimate
                gas = None
        if gas is not None:
            tx["gas"] = hex(gas)
    return Prepared(description, [tx], None)


_ABI: list[Any] = []


def _abi() -> Any:
    if not _ABI:
        from .. import artifacts

        _ABI.extend(artifacts.load(CONTRACT)["abi"])
    return _ABI
