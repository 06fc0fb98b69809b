"""Sending the oracle's transactions on a real network: EIP-1559 fees under a cap, nonces for many
transactions in flight from one key, replacement of a stuck transaction, rebroadcast of a dropped
one, and a confirmation depth that survives reorganisations.

Every attempt (hash, nonce, fees, raw signed bytes) is written to the store's database BEFORE it
is broadcast, so after a crash the daemon still knows every hash that may land on-chain for a
nonce: the attempts sharing one nonce are one "family", at most one of which can ever be mined.

Why money stays safe: the agreement settles a period at most once, whatever we send; this module
only makes sure we neither pay more than `max_fee_gwei` per gas, nor lose track of a transaction,
nor count a settlement before it is `confirmations` blocks deep (a reorg can undo a shallower one,
and then the same signed transaction is simply broadcast again).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text, select
from sqlalchemy.engine import Engine
from web3 import Web3
from web3.exceptions import TransactionNotFound

from smartsla.versioned_schema import VersionedSchema, version_table

log = logging.getLogger("oracle.transactions")

GWEI = 10**9
# Dev chains (Anvil, Ganache) neither reorganise nor drop transactions by themselves: a receipt is
# final. Anywhere else a settlement counts only once this many blocks deep (post-merge Ethereum
# reorgs deeper than 2 blocks are very rare; rollups' sequencers do not reorg their soft blocks).
DEV_CHAIN_IDS = frozenset({1337, 31337})
DEV_CONFIRMATIONS = 1
NETWORK_CONFIRMATIONS = 3
# Nodes refuse a replacement unless both fee fields rise by at least 10 % (geth's
# txpool.pricebump); 12.5 % leaves a margin for rounding.
BUMP_NUM, BUMP_DEN = 1125, 1000
FALLBACK_PRIORITY_WEI = 1 * GWEI

_meta = MetaData()
# One row per signed transaction ever broadcast (or about to be).
ATTEMPTS = Table(
    "oracle_tx_attempts", _meta,
    Column("tx_hash", String(66), primary_key=True),
    Column("sender", String(42), nullable=False, index=True),
    Column("nonce", BigInteger, nullable=False, index=True),
    Column("max_fee", BigInteger, nullable=False),
    Column("priority_fee", BigInteger, nullable=False),
    Column("gas", Integer, nullable=False),
    Column("raw", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
# Its own schema version (smartsla.versioned_schema): the attempts table shares the store's
# database but is this module's, and changes with it. Version 1 is the table as the releases
# before versions made it (adopted as is).
TX_SCHEMA_VERSION = 1


class TxLogError(RuntimeError):
    """The transaction log's tables are damaged or foreign (oracle.store re-raises as StoreError)."""


class TxLogTooNewError(TxLogError):
    """The transaction log was written by a newer oracle."""


TX_SCHEMA = VersionedSchema(
    component="oracle transaction log", owner="oracle", metadata=_meta,
    table=version_table(_meta, "oracle_tx_schema_version"), version=TX_SCHEMA_VERSION, upgrades={},
    error=TxLogError, too_new=TxLogTooNewError, unversioned=(1, frozenset({ATTEMPTS.name})),
)


def ensure_tx_schema(engine: Engine) -> None:
    """Create, adopt or check the attempts table's schema in a transaction of its own (the store
    does it inside its opening transaction instead: oracle.store.Store.open)."""
    with engine.begin() as conn:
        TX_SCHEMA.ensure(conn)


def default_confirmations(chain_id: int) -> int:
    return DEV_CONFIRMATIONS if chain_id in DEV_CHAIN_IDS else NETWORK_CONFIRMATIONS


class FeeCapExceeded(RuntimeError):
    """The network's base fee is above the configured cap: nothing is sent until it falls."""

    def __init__(self, message: str, base_fee: int = 0) -> None:
        super().__init__(message)
        self.base_fee = base_fee


@dataclass(frozen=True)
class SendBlock:
    """Why the sender cannot get a transaction mined now (F8-1): the network's base fee is at or
    above the operator's cap ('fee_cap': nothing is sent), or a sent transaction is stuck below
    the base fee and a replacement within the cap is impossible ('stuck'). Reports wait; the
    customer's fees go back to them at expiry if this lasts, so it must never be silent."""

    reason: str
    detail: str
    base_fee: int
    cap: int
    since: float


# While blocked, the error is logged again at most this often (and at once on any change).
BLOCKED_LOG_EVERY_S = 60.0


@dataclass(frozen=True)
class Fees:
    max_fee: int
    priority_fee: int
    base_fee: int = 0  # the next block's base fee they were computed from (0: not known)


def suggest_fees(w3: Web3, cap_wei: int) -> Fees:
    """Fees for the next block: its base fee (from eth_feeHistory, whose last entry is the next
    block's) doubled to survive a few full blocks, plus the node's priority fee, never above
    `cap_wei`. Raises FeeCapExceeded when even the base fee alone is above the cap."""
    history = w3.eth.fee_history(1, "latest", [])
    base = int(history["baseFeePerGas"][-1])
    try:
        priority = int(w3.eth.max_priority_fee)
    except Exception:  # noqa: BLE001 - a node without eth_maxPriorityFeePerGas: a common tip
        priority = FALLBACK_PRIORITY_WEI
    if base >= cap_wei:
        raise FeeCapExceeded(f"base fee {base / GWEI:.3f} gwei is at or above the cap {cap_wei / GWEI:.3f} gwei",
                             base)
    max_fee = min(cap_wei, 2 * base + priority)
    return Fees(max_fee=max_fee, priority_fee=min(priority, max_fee - base), base_fee=base)


def bumped(old: Fees, fresh: Fees, cap_wei: int) -> Fees | None:
    """Fees for a replacement of `old`: at least +12.5 % on both fields and no less than what the
    network asks now; None when that would exceed the cap."""
    priority = max(math.ceil(old.priority_fee * BUMP_NUM / BUMP_DEN), fresh.priority_fee, old.priority_fee + 1)
    max_fee = max(math.ceil(old.max_fee * BUMP_NUM / BUMP_DEN), fresh.max_fee, priority)
    if max_fee > cap_wei:
        return None
    return Fees(max_fee=max_fee, priority_fee=priority)


@dataclass(frozen=True)
class TxStatus:
    """Where a family of attempts stands. kind: 'confirmed' (mined `confirmations` deep, `ok`
    tells whether it succeeded), 'mined' (not deep enough yet), 'pending' (in the pool, possibly
    replaced or rebroadcast just now), 'gone' (its nonce was used by another transaction: send
    anew)."""

    kind: str
    tx_hash: str
    ok: bool = False
    block: int | None = None


class TxManager:
    """Sends and follows the transactions of one key. Thread-safe for sending."""

    def __init__(self, w3: Web3, account: LocalAccount, engine: Engine, *, max_fee_gwei: float,
                 confirmations: int | None = None, chain_id: int | None = None,
                 before_broadcast: Callable[[str], None] | None = None) -> None:
        self.w3 = w3
        self.account = account
        self.engine = engine
        self.cap_wei = int(max_fee_gwei * GWEI)
        cid = chain_id if chain_id is not None else int(w3.eth.chain_id)
        self.chain_id = cid
        self.confirmations = confirmations if confirmations is not None else default_confirmations(cid)
        self._lock = threading.Lock()
        self._crash_hook = before_broadcast
        # Why nothing can be mined now (None: sending works); read by the daemon's /metrics and
        # /healthz (oracle.daemon), set and cleared by every send and follow-up.
        self.blocked: SendBlock | None = None
        self.last_base_fee: int | None = None
        self.replacements = 0  # stuck transactions replaced (same nonce, bumped fees)
        self._stuck_nonce: int | None = None
        self._blocked_logged = 0.0
        ensure_tx_schema(engine)

    # --------------------------------------------------------------- blocked or not
    def _block(self, reason: str, detail: str, base: int) -> None:
        """Record that sending is blocked and say so loudly: an ERROR log on the first time and
        every BLOCKED_LOG_EVERY_S while it lasts (reports wait; nothing is lost yet)."""
        now = time.time()
        old = self.blocked
        since = old.since if old is not None and old.reason == reason else now
        self.blocked = SendBlock(reason, detail, base, self.cap_wei, since)
        if old is None or old.reason != reason or now - self._blocked_logged >= BLOCKED_LOG_EVERY_S:
            self._blocked_logged = now
            log.error("sending blocked: reports wait until the base fee falls below the cap (chain.max_fee_gwei)",
                      extra={"reason": reason, "detail": detail, "base_fee_gwei": base / GWEI,
                             "cap_gwei": self.cap_wei / GWEI, "blocked_s": round(now - since, 1)})

    def _unblock(self) -> None:
        if self.blocked is not None:
            log.warning("sending unblocked: the base fee is below the cap again",
                        extra={"was": self.blocked.reason, "blocked_s": round(time.time() - self.blocked.since, 1)})
            self.blocked = None

    def _fees(self) -> Fees:
        """suggest_fees, recording the base fee seen and a cap block (FeeCapExceeded re-raised)."""
        try:
            fees = suggest_fees(self.w3, self.cap_wei)
        except FeeCapExceeded as exc:
            self.last_base_fee = exc.base_fee
            self._block("fee_cap", str(exc), exc.base_fee)
            raise
        self.last_base_fee = fees.base_fee
        if self.blocked is not None and self.blocked.reason == "fee_cap":
            self._unblock()
        return fees

    # --------------------------------------------------------------- nonces
    def _next_nonce(self) -> int:
        """The node's pending count is the truth: it counts our transactions in its pool, so a
        dropped one leaves a gap that this fills (rather than stalling every later nonce), and a
        restart needs no local counter. The lock keeps two threads off the same nonce."""
        return int(self.w3.eth.get_transaction_count(self.account.address, "pending"))

    # --------------------------------------------------------------- sending
    def send(self, tx: dict[str, Any], label: str, on_hash: Callable[[str], None]) -> str:
        """Sign `tx` (to, data, gas; no nonce or fees) with a fresh nonce and current fees, call
        `on_hash(hash)` (the caller records it), record the attempt, then broadcast."""
        with self._lock:
            fees = self._fees()
            nonce = self._next_nonce()
            return self._sign_record_send(dict(tx), nonce, fees, label, on_hash)

    def _sign_record_send(self, tx: dict[str, Any], nonce: int, fees: Fees, label: str,
                          on_hash: Callable[[str], None] | None) -> str:
        tx.pop("gasPrice", None)
        tx.update(nonce=nonce, maxFeePerGas=fees.max_fee, maxPriorityFeePerGas=fees.priority_fee,
                  chainId=self.chain_id, type=2)
        signed = self.account.sign_transaction(tx)
        tx_hash = "0x" + bytes(signed.hash).hex()
        raw = "0x" + bytes(signed.raw_transaction).hex()
        with self.engine.begin() as conn:
            conn.execute(ATTEMPTS.insert().values(
                tx_hash=tx_hash, sender=self.account.address, nonce=nonce, max_fee=fees.max_fee,
                priority_fee=fees.priority_fee, gas=int(tx["gas"]), raw=raw, label=label, created_at=time.time()))
        if on_hash is not None:
            on_hash(tx_hash)
        if self._crash_hook is not None:
            self._crash_hook(tx_hash)
        self._broadcast(raw, tx_hash)
        return tx_hash

    def _broadcast(self, raw: str, tx_hash: str) -> None:
        try:
            self.w3.eth.send_raw_transaction(HexStr(raw))
        except Exception as exc:  # noqa: BLE001 - 'already known' and friends: status() decides
            log.warning("broadcast refused", extra={"tx": tx_hash, "error": str(exc)})

    # --------------------------------------------------------------- following
    def family(self, tx_hash: str) -> list[dict[str, Any]]:
        """Every attempt sharing `tx_hash`'s nonce, oldest first."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.tx_hash == tx_hash)).mappings().first()
            if row is None:
                return []
            rows = conn.execute(select(ATTEMPTS).where(ATTEMPTS.c.sender == row["sender"],
                                                       ATTEMPTS.c.nonce == row["nonce"])
                                .order_by(ATTEMPTS.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    def status(self, tx_hash: str) -> TxStatus:
        """Follow up a transaction we sent (any attempt of its family): mined deep enough, mined,
        still pending (replaced if stuck below the base fee, rebroadcast if dropped), or gone."""
        attempts = self.family(tx_hash)
        if not attempts:
            return TxStatus("gone", tx_hash)
        latest_block = int(self.w3.eth.block_number)
        for attempt in attempts:
            try:
                receipt = self.w3.eth.get_transaction_receipt(attempt["tx_hash"])
            except TransactionNotFound:
                continue
            if receipt is None:
                continue
            depth = latest_block - int(receipt["blockNumber"]) + 1
            kind = "confirmed" if depth >= self.confirmations else "mined"
            self._unstuck(int(attempt["nonce"]))
            return TxStatus(kind, attempt["tx_hash"], ok=receipt["status"] == 1, block=int(receipt["blockNumber"]))
        newest = attempts[-1]
        nonce = int(newest["nonce"])
        if int(self.w3.eth.get_transaction_count(self.account.address, "latest")) > nonce:
            # The nonce was used, by none of ours: a transaction of another family filled the gap
            # after ours were dropped. Nothing of this family can ever be mined.
            self._unstuck(nonce)
            return TxStatus("gone", newest["tx_hash"])
        in_pool = any(self._known(a["tx_hash"]) for a in attempts)
        base = int(self.w3.eth.fee_history(1, "latest", [])["baseFeePerGas"][-1])
        self.last_base_fee = base
        if newest["max_fee"] < base:
            replaced = self._replace(newest, base)
            if replaced is not None:
                return TxStatus("pending", replaced)
        else:
            self._unstuck(nonce)
        if not in_pool:
            log.warning("transaction dropped by the node; broadcasting it again",
                        extra={"tx": newest["tx_hash"], "nonce": nonce})
            self._broadcast(newest["raw"], newest["tx_hash"])
        return TxStatus("pending", newest["tx_hash"])

    def _known(self, tx_hash: str) -> bool:
        try:
            return self.w3.eth.get_transaction(HexStr(tx_hash)) is not None
        except TransactionNotFound:
            return False

    def _unstuck(self, nonce: int) -> None:
        """The family of `nonce` is mined, gone or no longer below the base fee: if it was what
        blocked sending, sending is unblocked."""
        if self.blocked is not None and self.blocked.reason == "stuck" and self._stuck_nonce == nonce:
            self._stuck_nonce = None
            self._unblock()

    def _replace(self, attempt: dict[str, Any], base: int) -> str | None:
        """Same nonce, same call, fees bumped within the cap; None when the cap forbids it (the
        transaction waits for the base fee to fall; sending is marked blocked, loudly)."""
        try:
            fresh = suggest_fees(self.w3, self.cap_wei)
        except FeeCapExceeded as exc:
            self._stuck_nonce = int(attempt["nonce"])
            self._block("stuck", f"transaction {attempt['tx_hash']} (nonce {attempt['nonce']}) below the base fee; "
                                 f"the cap forbids a replacement: {exc}", exc.base_fee)
            return None
        fees = bumped(Fees(attempt["max_fee"], attempt["priority_fee"]), fresh, self.cap_wei)
        if fees is None:
            self._stuck_nonce = int(attempt["nonce"])
            self._block("stuck", f"transaction {attempt['tx_hash']} (nonce {attempt['nonce']}) below the base fee "
                                 f"{base / GWEI:.3f} gwei; a replacement would exceed the cap", base)
            return None
        decoded = _decode(attempt["raw"])
        with self._lock:
            new_hash = self._sign_record_send(decoded, int(attempt["nonce"]), fees, attempt["label"], None)
        self.replacements += 1
        log.warning("replaced a transaction stuck below the base fee",
                    extra={"old": attempt["tx_hash"], "new": new_hash, "nonce": attempt["nonce"],
                           "max_fee": fees.max_fee, "base_fee": base})
        self._unstuck(int(attempt["nonce"]))
        return new_hash


def _decode(raw: str) -> dict[str, Any]:
    """The call of a signed type-2 transaction (to, value, data, gas), to sign it again."""
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    typed = TypedTransaction.from_bytes(HexBytes(raw))
    d = typed.as_dict()
    return {"to": Web3.to_checksum_address(d["to"]), "value": int(d["value"]), "data": d["data"],
            "gas": int(d["gas"])}
