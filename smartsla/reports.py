"""Oracle reports as EIP-712 typed data: what a committee member signs for one period.

The domain binds a signature to one chain and one agreement (verifyingContract), and the message
to one period, so a report cannot be replayed anywhere else. The message also carries the share
of the period that was measured (the contract refuses reports below the agreed minimum), the
Merkle root of the oracle's evidence for the period (its slice records; a signature over one root
is invalid with any other, and the contract refuses a zero root), and a deadline after which the
contract refuses the report, so a signature cannot be held back and used later.
`Agreement.reportDigest` computes the same digest on-chain; the tests check both agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import keys as eth_keys
from web3 import Web3

DOMAIN_NAME = "smartsla Agreement"
DOMAIN_VERSION = "1"
REPORT_TYPES = {"Report": [{"name": "period", "type": "uint256"}, {"name": "valuesPpm", "type": "uint32[]"},
                           {"name": "measuredPpm", "type": "uint32"}, {"name": "evidenceRoot", "type": "bytes32"},
                           {"name": "deadline", "type": "uint64"}]}


def root_bytes(evidence_root: bytes | str) -> bytes:
    """A 32-byte evidence root from bytes or 0x-hex; ValueError otherwise (a zero root is
    accepted here and refused by the contract with MissingEvidence)."""
    raw = bytes.fromhex(evidence_root.removeprefix("0x")) if isinstance(evidence_root, str) else bytes(evidence_root)
    if len(raw) != 32:
        raise ValueError(f"an evidence root is 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class SignedReport:
    """One member's signed report; `to_abi()` gives the contract's SignedReport struct."""

    agreement: str
    chain_id: int
    period: int
    values_ppm: tuple[int, ...]
    measured_ppm: int
    evidence_root: bytes
    deadline: int
    signer: str
    signature: bytes

    def to_abi(self) -> tuple[list[int], int, bytes, int, bytes]:
        return (list(self.values_ppm), self.measured_ppm, self.evidence_root, self.deadline, self.signature)


def typed_data(chain_id: int, agreement: str, period: int, values_ppm: list[int] | tuple[int, ...],
               measured_ppm: int, evidence_root: bytes | str, deadline: int) -> dict:
    """The full EIP-712 structure (what a wallet would display)."""
    return {
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": Web3.to_checksum_address(agreement),
        },
        "types": REPORT_TYPES,
        "primaryType": "Report",
        "message": {"period": period, "valuesPpm": list(values_ppm), "measuredPpm": measured_ppm,
                    "evidenceRoot": root_bytes(evidence_root), "deadline": deadline},
    }


def digest(chain_id: int, agreement: str, period: int, values_ppm: list[int] | tuple[int, ...],
           measured_ppm: int, evidence_root: bytes | str, deadline: int) -> bytes:
    """The 32-byte EIP-712 digest (equals Agreement.reportDigest on-chain)."""
    signable = encode_typed_data(full_message=typed_data(chain_id, agreement, period, values_ppm, measured_ppm,
                                                         evidence_root, deadline))
    return Web3.keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_report(private_key: str | bytes | ReportSigner, chain_id: int, agreement: str, period: int,
                values_ppm: list[int] | tuple[int, ...], measured_ppm: int, evidence_root: bytes | str,
                deadline: int) -> SignedReport:
    """Sign a report with an oracle's key. The key never leaves this function. `measured_ppm`:
    the share of the period's countable time measured (least over the services);
    `evidence_root`: the Merkle root of the oracle's evidence for the period
    (oracle.evidence.period_root); `deadline`: unix time after which the contract refuses the
    report. `private_key` may be a ReportSigner (a daemon signing thousands of reports)."""
    signer = private_key if isinstance(private_key, ReportSigner) else ReportSigner(private_key)
    root = root_bytes(evidence_root)
    signature = signer.sign_digest(digest(chain_id, agreement, period, values_ppm, measured_ppm, root, deadline))
    return SignedReport(Web3.to_checksum_address(agreement), chain_id, period, tuple(values_ppm), measured_ppm,
                        root, deadline, signer.address, signature)


class ReportSigner:
    """An oracle key ready to sign EIP-712 digests: its public key derived once. eth_account derives
    it again on every signature (`Account.from_key`, then `sign_typed_data` parses the key anew):
    two elliptic-curve multiplications, about 5 ms of CPU a report in pure Python, a third of the
    sender's work per agreement-period at 10,000 agreements (bench/fleet_profile.py)."""

    def __init__(self, private_key: str | bytes) -> None:
        raw = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else bytes(private_key)
        self._key = eth_keys.PrivateKey(raw)
        self.address = self._key.public_key.to_checksum_address()

    def sign_digest(self, message_hash: bytes) -> bytes:
        """r || s || v (v = 27 or 28), the signature eth_account returns and the contract recovers."""
        sig = self._key.sign_msg_hash(message_hash)
        return sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v + 27])


def recover_signer(report: SignedReport) -> str:
    """Who signed `report` (for checking a report received from another member)."""
    signable = encode_typed_data(full_message=typed_data(report.chain_id, report.agreement, report.period,
                                                         report.values_ppm, report.measured_ppm,
                                                         report.evidence_root, report.deadline))
    return Account.recover_message(signable, signature=report.signature)
