"""Unsigned transactions for a wallet: the server never holds a party's key.

The contract is the authority on who may do what, and when: each transaction is run against the
chain as its sender (a gas estimate) before it is handed out, and a request the contract would
refuse is a 409 naming the contract's error in its own words (its NatSpec), rather than a
transaction that fails in the wallet. The rules are not re-coded here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.types import Wei

from .. import artifacts
from ..chain import REVERTS, Chain, _revert_data
from ..errors import decode_revert, errors_of
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
    """The transactions `sender` must send for `action` on the agreement of index row `row`.

    Whether the contract accepts it is the contract's answer, not ours: the transaction is run
    against the chain's latest state as `sender` (a gas estimate), and a refusal is reported
    with the contract's named error and its NatSpec words (ActionRefused). The index only
    phrases the description (the amounts). Without a chain nothing is checked here; the wallet's
    own estimate will be."""
    terms = terms_of(row)
    address = row["address"]
    role = "customer" if sender == terms.customer else "provider" if sender == terms.provider else None
    w3 = chain.w3 if chain is not None else Web3()
    agreement = w3.eth.contract(address=address, abi=artifacts.load("Agreement")["abi"])
    value = 0
    approve: dict[str, Any] | None = None
    if action == "withdraw":
        owed = int(row[f"owed_to_{role}"]) if role is not None else 0
        fn = "withdraw"
        description = (f"Withdraw {fmt_amount(owed, terms.asset)} owed to the {role}" if role is not None
                       else f"Withdraw what {address} owes {sender}")
    elif action == "terminate":
        fn = "terminate"
        description = (f"Terminate under the disaster clause: of {fmt_amount(int(row['fees_escrowed']), terms.asset)} "
                       "of prepaid fees, the customer gets back all but the served part of the period in progress "
                       "(pro rata by the second)")
    elif action in ("deposit-fees", "deposit-collateral"):
        fees = action == "deposit-fees"
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
    if chain is not None:
        with lock:
            if approve is not None:
                # The deposit cannot run before the approval is mined, but the contract checks
                # its rules before it pulls the token: a refusal by one of ITS errors is final,
                # the token's own (no allowance yet) means the rules let this deposit through.
                _ask_chain(chain, tx, fn, own_errors=errors_of("Agreement"))
                approve["gas"] = _estimate(chain, approve, "approve")
            else:
                tx["gas"] = _estimate(chain, tx, fn)
    return Prepared(description, [approve, tx] if approve else [tx], cli_command(action, address, rpc_url))


def _ask_chain(chain: Chain, tx: dict[str, Any], action: str, own_errors: frozenset[str] | None = None) -> int | None:
    """Run `tx` as its sender against the latest block: its gas, or ActionRefused with the
    contract's own reason. With `own_errors`, only those errors refuse (others: None). A node
    that cannot estimate (unreachable, no support) returns None: the wallet will estimate."""
    try:
        return int(chain.w3.eth.estimate_gas({"from": tx["from"], "to": tx["to"], "data": tx["data"],
                                              "value": Wei(int(tx["value"], 16))}))
    except REVERTS as exc:
        refusal = decode_revert(_revert_data(exc), action)
        if own_errors is not None and refusal.name not in own_errors:
            return None
        raise ActionRefused(f"the contract would refuse: {refusal.explained()}") from exc
    except Exception:  # noqa: BLE001 - node unreachable or unable to estimate: the wallet will estimate
        return None


def _estimate(chain: Chain, tx: dict[str, Any], action: str) -> str | None:
    gas = _ask_chain(chain, tx, action)
    return _hex(gas) if gas is not None else None


def send_from_node(chain: Chain, lock: threading.RLock, tx: dict[str, Any]) -> tuple[str, int]:
    """Demo mode only: the node (the embedded chain) holds the key of `from` and sends `tx`."""
    with lock:
        if Web3.to_checksum_address(tx["from"]) not in chain.w3.eth.accounts:
            raise ActionRefused(f"the node holds no key for {tx['from']}")
        params = {"from": tx["from"], "to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16)}
        try:
            tx_hash = chain.w3.eth.send_transaction(params)  # type: ignore[arg-type]
        except REVERTS as exc:
            refusal = decode_revert(_revert_data(exc), "send")
            raise ActionRefused(f"the contract refused: {refusal.explained()}") from exc
        receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1:
        raise ActionRefused("the transaction reverted")
    return receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"])
