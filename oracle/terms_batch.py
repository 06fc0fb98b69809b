"""Read many agreements' terms in a few JSON-RPC batch requests (issue 15 item 5).

A daemon configured with 10,000 agreements used to read each one with three calls of its own
(`isAgreement`, `terms`, `options`), each preceded by an `eth_chainId` of web3's validation and
followed by web3's result formatting (a namedtuple class built per decoded struct, every
address checksummed through several layers): ~55 ms an agreement, minutes before the daemon
served anything. Here the calls go `CHUNK` agreements to one request, straight to the provider
(Anvil answers ~12,000 batched calls a second against ~1,000 single ones), and the results are
decoded with the ABI codec into the same named tuples `Terms.from_abi` reads. The terms are
immutable, so they are read once.

Anything unusual (an error reply, an address the factory did not create, terms the library
refuses) is left out of the result: the caller reads those one by one the usual way, which names
the problem (or finds a multi-level agreement). Batching is an optimisation, never a second
opinion on what an agreement is.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

from eth_utils.abi import collapse_if_tuple
from web3 import Web3

from smartsla import artifacts
from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.terms import Terms

log = logging.getLogger("oracle")

CHUNK = 200  # agreements per batch request
IS_AGREEMENT = Web3.keccak(text="isAgreement(address)")[:4].to_0x_hex()


def _shape(component: dict[str, Any]) -> Callable[[Any], Any]:
    """What web3's `decode_tuples=True` makes of one decoded ABI value: structs as named tuples
    (by the Solidity field names), addresses checksummed. Built once per ABI component."""
    kind: str = component["type"]
    if kind.endswith("]"):  # an array: shape each element
        inner = _shape({**component, "type": kind[:kind.rindex("[")]})
        return lambda value: [inner(v) for v in value]
    if kind == "tuple":
        fields = component["components"]
        cls = namedtuple("Struct", [f["name"] for f in fields], rename=True)  # type: ignore[misc]
        shapers = [_shape(f) for f in fields]
        return lambda value: cls(*(s(v) for s, v in zip(shapers, value, strict=True)))
    if kind == "address":
        return Web3.to_checksum_address
    return lambda value: value


class _Reader:
    """One view function of an ABI: its selector, output types and shaper."""

    def __init__(self, abi: list[dict[str, Any]], name: str) -> None:
        (fn,) = [e for e in abi if e.get("type") == "function" and e["name"] == name and not e.get("inputs")]
        self.selector = Web3.keccak(text=f"{name}()")[:4].to_0x_hex()
        self.types = [collapse_if_tuple(o) for o in fn["outputs"]]
        (self.shape,) = [_shape(o) for o in fn["outputs"]]  # our readers return one value


def _batch(chain: Chain, calls: list[tuple[str, str]], attempts: int = 2) -> list[bytes]:
    """eth_call each (to, data) at the latest block in one request; raises on any error reply
    after `attempts` tries. Read-only, so a retry is harmless: Anvil answered a batch with
    "BlockOutOfRangeError: block height is 13 but requested was 12" while another request mined a
    block (bench/fleet_sim.py's set-up), and 200 agreements were then read one by one."""
    for attempt in range(attempts):
        replies = chain.w3.provider.make_batch_request(  # type: ignore[attr-defined]
            [("eth_call", [{"to": to, "data": data}, "latest"]) for to, data in calls])
        if not isinstance(replies, list) or len(replies) != len(calls):
            raise ValueError(f"batch reply: {str(replies)[:200]}")
        bad = next((r for r in replies if "error" in r or "result" not in r), None)
        if bad is None:
            return [bytes.fromhex(r["result"][2:]) for r in replies]
        if attempt == attempts - 1:
            raise ValueError(f"batched call failed: {bad.get('error')}")
    raise AssertionError("unreachable")


def read_views(chain: Chain, addresses: Sequence[str], name: str, contract: str = "Agreement") -> dict[str, Any]:
    """checksum address -> what `contract.name()` (a view without arguments) returns at the latest
    block, shaped as web3 would (named tuples), for many contracts in a few batch requests. A
    chunk that fails is left out (the caller reads those one by one)."""
    reader = _Reader(artifacts.load(contract)["abi"], name)
    out: dict[str, Any] = {}
    valid = [Web3.to_checksum_address(a) for a in addresses]
    if not hasattr(chain.w3.provider, "make_batch_request"):
        return out
    for i in range(0, len(valid), CHUNK):
        part = valid[i:i + CHUNK]
        try:
            for a, raw in zip(part, _batch(chain, [(a, reader.selector) for a in part]), strict=True):
                out[a] = reader.shape(chain.w3.codec.decode(reader.types, raw)[0])
        except Exception as exc:  # noqa: BLE001 - the one-by-one path decides
            log.warning("batched read failed", extra={"call": name, "first": part[0], "count": len(part),
                                                       "error": f"{type(exc).__name__}: {exc}"})
    return out


def read_terms_many(chain: Chain, factory: Factory, addresses: Sequence[str]) -> dict[str, Terms]:
    """checksum address -> terms, for each of `addresses` that `factory` created and whose terms
    read cleanly; the others are absent (read them one by one)."""
    valid = list(dict.fromkeys(Web3.to_checksum_address(a) for a in addresses if Web3.is_address(a)))
    if not valid or not hasattr(chain.w3.provider, "make_batch_request"):
        return {}
    abi = artifacts.load("Agreement")["abi"]
    terms_fn, options_fn = _Reader(abi, "terms"), _Reader(abi, "options")
    codec = chain.w3.codec
    out: dict[str, Terms] = {}
    for i in range(0, len(valid), CHUNK):
        part = valid[i:i + CHUNK]
        try:
            # isAgreement(address): the selector and the address as one 32-byte word
            flags = _batch(chain, [(factory.address, IS_AGREEMENT + a[2:].lower().rjust(64, "0")) for a in part])
            ours = [a for a, flag in zip(part, flags, strict=True) if codec.decode(["bool"], flag)[0] is True]
            if not ours:
                continue
            raw = _batch(chain, [(a, r.selector) for a in ours for r in (terms_fn, options_fn)])
            for k, a in enumerate(ours):
                (t,) = codec.decode(terms_fn.types, raw[2 * k])
                (o,) = codec.decode(options_fn.types, raw[2 * k + 1])
                out[a] = Terms.from_abi(terms_fn.shape(t), options_fn.shape(o))
        except Exception as exc:  # noqa: BLE001 - any surprise: the one-by-one path decides
            log.warning("batched terms read failed; reading these agreements one by one",
                        extra={"first": part[0], "count": len(part), "error": f"{type(exc).__name__}: {exc}"})
    return out
