"""Contract logs as JSON, through web3's public event API: the one decoder of both indexers.

`EventDecoder` maps topic0 to the event's ABI (read from the artifacts, so events added to the
contracts are decoded once the artifacts are rebuilt) and decodes a log with
`ContractEvent.process_log`, web3's public counterpart of the private `get_event_data`.
`json_value` turns each decoded argument into what the index stores and the API serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3

from . import artifacts


def json_value(abi_type: str, components: list[dict[str, Any]] | None, value: Any) -> Any:
    """One ABI value as JSON: addresses checksummed, bytes as 0x hex, integers wider than 53
    bits as decimal strings (JavaScript cannot hold them), tuples as objects."""
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        return [json_value(inner, components, v) for v in value]
    if abi_type == "tuple":
        comps = components or []
        return {c["name"] or str(i): json_value(c["type"], c.get("components"), v)
                for i, (c, v) in enumerate(zip(comps, value, strict=False))}
    if abi_type.startswith(("uint", "int")):
        bits = int(abi_type.lstrip("uint") or 256)
        return str(int(value)) if bits > 53 else int(value)
    if abi_type == "address":
        return Web3.to_checksum_address(value)
    if abi_type.startswith("bytes"):
        return "0x" + bytes(value).hex()
    if abi_type == "bool":
        return bool(value)
    return value if isinstance(value, (str, int, float)) or value is None else str(value)


def hex0x(value: Any) -> str:
    return HexBytes(value).to_0x_hex()


class EventDecoder:
    """topic0 -> event ABI of the named contracts' events, and the decoding of their logs."""

    def __init__(self, w3: Web3, contracts: Sequence[str] = ("AgreementFactory", "Agreement")) -> None:
        self.w3 = w3
        self.by_topic: dict[str, dict[str, Any]] = {}
        for name in contracts:
            for item in artifacts.load(name)["abi"]:
                if item.get("type") == "event" and not item.get("anonymous"):
                    self.by_topic[hex0x(event_abi_to_log_topic(item))] = item
        # topic0 -> web3 ContractEvent, made on first use (by_topic may be narrowed after __init__).
        self._events: dict[str, Any] = {}

    def topic(self, name: str) -> str:
        for topic, abi in self.by_topic.items():
            if abi["name"] == name:
                return topic
        raise KeyError(name)

    def _event(self, topic0: str, abi: dict[str, Any]) -> Any:
        event = self._events.get(topic0)
        if event is None:
            event = self._events[topic0] = self.w3.eth.contract(abi=[abi]).events[abi["name"]]()
        return event

    def decode(self, raw: Any, *, strict: bool = False) -> tuple[str, str | None, dict[str, Any]]:
        """(event name, topic0, JSON args). Logs of unknown events: ("Unknown", topic0, {"topics":
        [...], "data": "0x..."}). A known topic0 whose log does not decode (the ABI changed under
        us: same signature, other indexing) is kept raw the same way, or raises with `strict`."""
        topics = [hex0x(t) for t in raw["topics"]]
        topic0 = topics[0] if topics else None
        abi = self.by_topic.get(topic0) if topic0 else None
        if abi is not None and topic0 is not None:
            try:
                decoded = self._event(topic0, abi).process_log(raw)
            except Exception:
                if strict:
                    raise
                decoded = None
            if decoded is not None:
                args = {inp["name"]: json_value(inp["type"], inp.get("components"), decoded["args"][inp["name"]])
                        for inp in abi["inputs"]}
                return abi["name"], topic0, args
        return "Unknown", topic0, {"topics": topics, "data": hex0x(raw["data"])}
