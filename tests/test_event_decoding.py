"""smartsla.event_decoding: the one log decoder of both indexers (web3's public process_log)."""

from __future__ import annotations

import pytest
from eth_abi import encode
from web3 import Web3
from web3.exceptions import LogTopicError

from smartsla.event_decoding import EventDecoder

PARTY = "0x000000000000000000000000000000000000b0B1"
TO = "0x000000000000000000000000000000000000d000"


def _log(topics: list[bytes], data: bytes) -> dict[str, object]:
    return {"address": "0x" + "11" * 20, "topics": topics, "data": data, "logIndex": 0, "transactionIndex": 0,
            "transactionHash": b"\x22" * 32, "blockHash": b"\x33" * 32, "blockNumber": 1}


def _topic(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def test_known_unknown_and_undecodable_logs() -> None:
    decoder = EventDecoder(Web3())
    withdrawn = decoder.topic("Withdrawn")
    topics = [bytes.fromhex(withdrawn[2:]), _topic(PARTY), _topic(TO)]
    amount = 2**200  # wider than 53 bits: a decimal string for JavaScript
    assert decoder.decode(_log(topics, encode(["uint256"], [amount]))) == (
        "Withdrawn", withdrawn, {"party": Web3.to_checksum_address(PARTY), "to": Web3.to_checksum_address(TO),
                                 "amount": str(amount)})
    # an event no contract of ours emits: kept raw
    stranger = Web3.keccak(text="Stranger(uint256)")
    assert decoder.decode(_log([stranger], b"\x01" * 32)) == (
        "Unknown", stranger.to_0x_hex(), {"topics": [stranger.to_0x_hex()], "data": "0x" + "01" * 32})
    # a known signature whose log does not fit the ABI (one indexed topic missing): raw, or an error when strict
    short = _log(topics[:2], encode(["uint256"], [1]))
    name, topic0, args = decoder.decode(short)
    assert (name, topic0, args["topics"]) == ("Unknown", withdrawn, [withdrawn, "0x" + _topic(PARTY).hex()])
    with pytest.raises(LogTopicError, match="Expected 2 log topics"):
        decoder.decode(short, strict=True)


def test_the_multi_level_decoder_knows_its_own_events_only() -> None:
    corporate = EventDecoder(Web3(), ("CorporateAgreement",))
    assert corporate.topic("DepartmentSettled")
    with pytest.raises(KeyError):
        corporate.topic("AgreementCreated")
