"""The evidence behind a report: one record per service, committed on-chain by a Merkle root.

Every report (direct or signed) carries `evidenceRoot`, the root of a Merkle tree over the
period's per-service records; the contract refuses a zero root and emits the root in
`EvidenceCommitted`, so anyone holding the records can check them against the chain.

The tree is OpenZeppelin-compatible (`MerkleProof.verify` accepts its proofs):
* leaf i = keccak256(bytes.concat(keccak256(abi.encode(uint256 i, bytes32 recordHash)))), the
  double hash of OpenZeppelin's StandardMerkleTree, so a leaf can never pass for an inner node;
* an inner node = keccak256 of its two children sorted (commutative pair hashing);
* levels are built bottom-up, pairing neighbours; an odd last node moves up unchanged.

`period_root(records)` is the one function the daemon calls. What a record holds is decided by
the daemon today (the slice states it counted, see oracle.daemon.Daemon.evidence_records); the
run-length-encoded slice record of issue 12 replaces it without changing the root's rules.
"""

from __future__ import annotations

from eth_abi import encode
from web3 import Web3


def leaf(service_index: int, record_hash: bytes) -> bytes:
    """The Merkle leaf of service `service_index` whose record hashes to `record_hash`."""
    if len(record_hash) != 32:
        raise ValueError(f"a record hash is 32 bytes, got {len(record_hash)}")
    return bytes(Web3.keccak(Web3.keccak(encode(["uint256", "bytes32"], [service_index, record_hash]))))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative pair hash (Hashes.commutativeKeccak256)."""
    return bytes(Web3.keccak(a + b if a < b else b + a))


def root_of_leaves(leaves: list[bytes]) -> bytes:
    """The root over `leaves` in order; ValueError when there are none (no evidence is not a
    zero root: the contract refuses one)."""
    if not leaves:
        raise ValueError("no records: a period's evidence needs at least one service")
    level = list(leaves)
    while len(level) > 1:
        nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def period_root(records: list[bytes]) -> bytes:
    """The evidence root of one period: `records[i]` is service i's record (terms order)."""
    return root_of_leaves([leaf(i, bytes(Web3.keccak(r))) for i, r in enumerate(records)])


def proof(leaves: list[bytes], index: int) -> list[bytes]:
    """The sibling path from leaf `index` to the root (for MerkleProof.verify)."""
    path: list[bytes] = []
    level, i = list(leaves), index
    while len(level) > 1:
        sibling = i ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        nxt = [hash_pair(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, i = nxt, i // 2
    return path


def verify(proof_path: list[bytes], root: bytes, leaf_hash: bytes) -> bool:
    """MerkleProof.verify in Python."""
    node = leaf_hash
    for sibling in proof_path:
        node = hash_pair(node, sibling)
    return node == root
