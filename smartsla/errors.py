"""Exceptions of the smartsla library, and decoding of the contracts' custom errors."""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from . import artifacts


class SmartSLAError(Exception):
    """Base class of every error the library raises on purpose."""


class ChainUnavailable(SmartSLAError):
    """The chain's JSON-RPC endpoint does not answer."""


class NotAnAgreement(SmartSLAError):
    """An address that the factory did not create."""


class InvalidTermsError(SmartSLAError, ValueError):
    """Terms rejected before anything was sent to the chain."""


class ContractReverted(SmartSLAError):
    """A transaction or call reverted. ``name`` is the contract's custom error (e.g.
    ``PeriodAlreadySettled``) and ``args`` its decoded arguments, when the revert data names one."""

    def __init__(self, name: str, args: tuple[Any, ...] = (), raw: str | None = None, action: str = ""):
        self.name = name
        self.args_ = args
        self.raw = raw
        self.action = action
        shown = ", ".join(_show(a) for a in args)
        where = f" ({action})" if action else ""
        super().__init__(f"{name}({shown}){where}")


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value) if isinstance(value, str) else str(value)


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in inp["components"])
        return f"({inner}){inp['type'][5:]}"
    return inp["type"]


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {
        function_signature_to_4byte_selector("Error(string)"): ("Error", ["string"]),
        function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["uint256"]),
    }
    for abi in artifacts.all_abis():
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], types)
    # OpenZeppelin errors raised from libraries (SafeERC20, Address, ERC20) are in the ABIs of
    # the contracts that use them only when declared there; list the ones we can meet.
    for sig in (
        "SafeERC20FailedOperation(address)",
        "FailedCall()",
        "InsufficientBalance(uint256,uint256)",
        "ERC20InsufficientAllowance(address,uint256,uint256)",
        "ERC20InsufficientBalance(address,uint256,uint256)",
        "ReentrancyGuardReentrantCall()",
    ):
        name, _, rest = sig.partition("(")
        types = [t for t in rest.rstrip(")").split(",") if t]
        table.setdefault(function_signature_to_4byte_selector(sig), (name, types))
    return table


def decode_revert(data: str | bytes | None, action: str = "") -> ContractReverted:
    """Turn raw revert data into a ContractReverted naming the custom error."""
    data_bytes = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data or b""
    if len(data_bytes) < 4:
        return ContractReverted("Reverted", (), raw="0x" + data_bytes.hex(), action=action)
    entry = _error_table().get(data_bytes[:4])
    if entry is None:
        return ContractReverted("UnknownError", (), raw="0x" + data_bytes.hex(), action=action)
    name, types = entry
    try:
        args = tuple(abi_decode(types, data_bytes[4:])) if types else ()
    except Exception:  # malformed payload: still report the name
        args = ()
    args = tuple(to_checksum_address(a) if t == "address" else a for t, a in zip(types, args, strict=False))
    return ContractReverted(name, args, raw="0x" + data_bytes.hex(), action=action)
