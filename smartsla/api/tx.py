"""Unsigned transactions for a wallet: the server never holds a party's key.

Each action is checked against the index first (who may do it, in which state), so the answer
to a request that the contract would refuse is a clear 409 rather than a transaction that fails.
When the server can reach the chain it also asks the node for a gas estimate; a revert there is
reported the same way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.types import Wei

from .. import artifacts
from ..chain import REVERTS, Chain, _revert_data
from ..errors import decode_revert
from ..presentation import fmt_amount
from .views import terms_of

ACTIONS = ("withdraw", "terminate", "deposit-fees", "deposit-collateral")


class ActionRefused(Exception):
    """The index says the contract would refuse this action (HTTP 409)."""


@dataclass(frozen=True)
class Prepared:
    description: str
    transactions: list[dict[str, Any]]
    cli: str | None


def _hex(n: int) -> str:
    return hex(int(n))


def cli_command(action: str, agreement: str, rpc_url: str | None) -> str | None:
    if action not in ("withdraw", "terminate"):
        return None
    rpc = f" --rpc-url {rpc_url}" if rpc_url and rpc_url != "embedded" else " --rpc-url URL"
    return f"smartsla {action} {agreement} --keystore KEYSTORE.json{rpc}"


def prepare(row: dict[str, Any], action: str, sender: str, *, chain: Chain | None, chain_id: int,
            lock: threading.RLock, rpc_url: str | None) -> Prepared:
    """The transactions `sender` must send for `action` on the agreement of index row `row`."""
    terms = terms_of(row)
    address = row["address"]
    status = row["status"]
    role = "customer" if sender == terms.customer else "provider" if sender == terms.provider else None
    w3 = chain.w3 if chain is not None else Web3()
    agreement = w3.eth.contract(address=address, abi=artifacts.load("Agreement")["abi"])
    value = 0
    approve: dict[str, Any] | None = None
    if action == "withdraw":
        if role is None:
            raise ActionRefused(f"{sender} is neither the customer nor the provider of {address}")
        owed = int(row[f"owed_to_{role}"])
        if owed == 0:
            raise ActionRefused(f"nothing is owed to the {role} {sender} (as of block {row['snapshot_block']})")
        fn, description = "withdraw", f"Withdraw {fmt_amount(owed, terms.asset)} owed to the {role}"
    elif action == "terminate":
        if role != "customer":
            raise ActionRefused(f"only the customer {terms.customer} may invoke the disaster clause")
        if status != "Active":
            raise ActionRefused(f"the agreement is {status}, not Active")
        if not row["disaster_occurred"]:
            raise ActionRefused("no settled period fell below the disaster threshold: the clause cannot be invoked")
        fn = "terminate"
        description = (f"Terminate under the disaster clause: of {fmt_amount(int(row['fees_escrowed']), terms.asset)} "
                       "of prepaid fees, the customer gets back all but the served part of the period in progress "
                       "(pro rata by the second)")
    elif action in ("deposit-fees", "deposit-collateral"):
        fees = action == "deposit-fees"
        needed_role = "customer" if fees else "provider"
        if role != needed_role:
            raise ActionRefused(f"only the {needed_role} {getattr(terms, needed_role)} deposits the "
                                f"{'fees' if fees else 'collateral'}")
        if status != "Pending":
            raise ActionRefused(f"the agreement is {status}: deposits are taken only while Pending")
        if row["fees_deposited" if fees else "collateral_deposited"]:
            raise ActionRefused(f"the {'fees are' if fees else 'collateral is'} already deposited")
        now = chain.now() if chain is not None else int(time.time())
        if now >= terms.start:
            # Agreement.TermStarted: deposits close at the start, so nobody joins with hindsight.
            raise ActionRefused(f"the term started at {terms.start}: deposits are closed (cancel the agreement)")
        amount = terms.total_fees if fees else terms.collateral
        fn = "depositFees" if fees else "depositCollateral"
        description = f"Deposit {'the prepaid fees' if fees else 'the collateral'}: {fmt_amount(amount, terms.asset)}"
        if terms.is_native:
            value = amount
        else:
            token = w3.eth.contract(address=Web3.to_checksum_address(terms.asset),
                                    abi=artifacts.load("IERC20Metadata")["abi"])
            approve = {"from": sender, "to": terms.asset, "value": "0x0", "chainId": _hex(chain_id),
                       "data": token.encode_abi("approve", args=[address, amount])}
            description += " (approve the token first)"
    else:  # pragma: no cover - routes only pass known actions
        raise ValueError(action)
    tx: dict[str, Any] = {"from": sender, "to": address, "value": _hex(value), "chainId": _hex(chain_id),
                          "data": agreement.encode_abi(fn, args=[])}
    txs = [approve, tx] if approve else [tx]
    if chain is not None:
        for t in txs:
            if approve is not None and t is tx:
                break  # the deposit cannot be estimated before the approval is mined
            with lock:
                try:
                    gas = chain.w3.eth.estimate_gas({"from": t["from"], "to": t["to"], "data": t["data"],
                                                     "value": Wei(int(t["value"], 16))})
                except REVERTS as exc:
                    raise ActionRefused(f"the contract would refuse: {decode_revert(_revert_data(exc), fn)}") from exc
                except Exception:  # node unreachable or unable to estimate: the wallet will estimate
                    continue
            t["gas"] = _hex(gas)
    return Prepared(description, txs, cli_command(action, address, rpc_url))


def send_from_node(chain: Chain, lock: threading.RLock, tx: dict[str, Any]) -> tuple[str, int]:
    """Demo mode only: the node (the embedded chain) holds the key of `from` and sends `tx`."""
    with lock:
        if Web3.to_checksum_address(tx["from"]) not in chain.w3.eth.accounts:
            raise ActionRefused(f"the node holds no key for {tx['from']}")
        params = {"from": tx["from"], "to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16)}
        try:
            tx_hash = chain.w3.eth.send_transaction(params)  # type: ignore[arg-type]
        except REVERTS as exc:
            raise ActionRefused(f"the contract refused: {decode_revert(_revert_data(exc), 'send')}") from exc
        receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1:
        raise ActionRefused("the transaction reverted")
    return receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"])
