"""Exceptions of the smartsla library, and decoding of the contracts' custom errors."""

from __future__ import annotations

from dataclasses import dataclass, field
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

    def __init__(self, name: str, args: tuple[Any, ...] = (), raw: str | None = None, action: str = "",
                 notice: str = ""):
        self.name = name
        self.args_ = args
        self.raw = raw
        self.action = action
        self.explanation = notice
        shown = ", ".join(_show(a) for a in args)
        where = f" ({action})" if action else ""
        super().__init__(f"{name}({shown}){where}")

    def explained(self) -> str:
        """The error with the contract's own words for it (its NatSpec notice, the arguments put
        in): `NothingToWithdraw(0xAb...): Nothing is owed to 0xAb....` The contract is the
        authority on what it refuses; callers do not re-code its rules to phrase a refusal."""
        return f"{self}: {self.explanation}" if self.explanation else str(self)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value) if isinstance(value, str) else str(value)


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in inp["components"])
        return f"({inner}){inp['type'][5:]}"
    return inp["type"]


def _enum_name(param: dict[str, Any]) -> str:
    internal = param.get("internalType", "")
    return internal[5:].split(".")[-1] if internal.startswith("enum ") else ""


class _Member(str):
    """An enum argument shown by its member's name (WrongStatus(Ended)); compares as that name."""

    def __repr__(self) -> str:
        return str(self)


def _member(members: list[str] | None, value: Any) -> Any:
    if members is None or not isinstance(value, int) or not 0 <= value < len(members):
        return value
    return _Member(members[value])


@dataclass(frozen=True)
class _ErrorInfo:
    name: str
    types: list[str]
    params: list[str] = field(default_factory=list)
    notice: str = ""  # the NatSpec notice, with `param` where an argument goes
    enums: list[list[str] | None] = field(default_factory=list)  # each argument's enum members, if an enum


@cache
def _error_table() -> dict[bytes, _ErrorInfo]:
    table: dict[bytes, _ErrorInfo] = {
        function_signature_to_4byte_selector("Error(string)"): _ErrorInfo("Error", ["string"]),
        function_signature_to_4byte_selector("Panic(uint256)"): _ErrorInfo("Panic", ["uint256"]),
    }
    for name in artifacts.names():  # sorted: Agreement's wording first where contracts share an error
        art = artifacts.load(name)
        notices, enums = art.get("errorNotices", {}), art.get("enums", {})
        for item in art["abi"]:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            table.setdefault(function_signature_to_4byte_selector(signature),
                             _ErrorInfo(item["name"], types, [i["name"] for i in item["inputs"]],
                                        notices.get(signature, ""),
                                        [enums.get(_enum_name(i)) for i in item["inputs"]]))
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
        table.setdefault(function_signature_to_4byte_selector(sig), _ErrorInfo(name, types))
    return table


@cache
def errors_of(contract: str) -> frozenset[str]:
    """The names of the custom errors that are `contract`'s own rules: those its sources document
    (a NatSpec notice), not the libraries' it links (SafeERC20, ECDSA...) nor a token's. Tells
    the contract's refusal of an action from, e.g., a token's missing allowance."""
    return frozenset(sig.partition("(")[0] for sig in artifacts.load(contract).get("errorNotices", {}))


def decode_revert(data: str | bytes | None, action: str = "") -> ContractReverted:
    """Turn raw revert data into a ContractReverted naming the custom error."""
    data_bytes = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data or b""
    if len(data_bytes) < 4:
        return ContractReverted("Reverted", (), raw="0x" + data_bytes.hex(), action=action)
    entry = _error_table().get(data_bytes[:4])
    if entry is None:
        return ContractReverted("UnknownError", (), raw="0x" + data_bytes.hex(), action=action)
    types = entry.types
    try:
        args = tuple(abi_decode(types, data_bytes[4:])) if types else ()
    except Exception:  # malformed payload: still report the name
        args = ()
    args = tuple(to_checksum_address(a) if t == "address" else a for t, a in zip(types, args, strict=False))
    args = tuple(_member(members, a) for members, a in zip(entry.enums or [None] * len(args), args, strict=False))
    notice = entry.notice
    for param, value in zip(entry.params, args, strict=False):
        notice = notice.replace(f"`{param}`", _show(value) if not isinstance(value, str) else value)
    return ContractReverted(entry.name, args, raw="0x" + data_bytes.hex(), action=action, notice=notice)
