"""The one way an address given by a person (command line, spec, API, dashboard, oracle
configuration) becomes a checksummed address, with one wording of what is wrong with it."""

from __future__ import annotations

from typing import Any

from web3 import Web3

__all__ = ["parse_address"]


def parse_address(value: Any, what: str | None = "address") -> str:
    """A checksummed address, or ValueError naming `what` (None: the message starts with "is not",
    for callers that put the field's path in front of it themselves).

    0x and 40 hexadecimal digits. An address written in mixed case carries an EIP-55 checksum: a
    wrong one is a typo, and is refused rather than "corrected"; all lower or all upper case
    carries none and is accepted."""
    subject = f"{what} " if what else ""
    if not isinstance(value, str) or len(value) != 42 or not value.startswith(("0x", "0X")):
        raise ValueError(f"{subject}is not an Ethereum address: expected 0x followed by 40 hexadecimal digits, "
                         f"got {value!r}")
    digits = value[2:]
    try:
        int(digits, 16)
    except ValueError:
        raise ValueError(f"{subject}is not an Ethereum address: expected 0x followed by 40 hexadecimal digits, "
                         f"got {value!r}") from None
    if digits != digits.lower() and digits != digits.upper() and not Web3.is_checksum_address(value):
        raise ValueError(f"{subject}has a wrong EIP-55 checksum (mixed case that does not match): {value!r}; "
                         "check for a typo, or give it all lower-case")
    return Web3.to_checksum_address(value)
