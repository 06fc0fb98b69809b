"""Follow the factory and every agreement it created into the index (smartsla.index_store).

One `sync()` brings the index up to the chain head less `confirmations`:

1. it compares the stored hash of the last indexed block with the chain's; on a mismatch (a
   reorganisation, or a dev chain restarted without its state) it walks back over the stored
   hashes to the newest block the chain still has, rolls the index back to it and reads again
   from there (with no match at all it re-indexes from the start block);
2. it reads logs in block ranges (`chunk_blocks`), by address list and range, never a scan of
   the whole chain per agreement: first the factory's AgreementCreated logs (so an agreement
   created in the range is followed in the same range), then the logs of every known agreement
   (`address_batch` addresses per query);
3. it decodes each log with the ABIs in the package's artifacts (unknown events are kept raw),
   reads the terms of new agreements once, the snapshot of every agreement with new events (at
   the range's last block), and writes the range in one transaction, with the range's last block
   number and hash as the new cursor.

A restarted indexer resumes after the stored cursor; as a range is written whole or not at all,
nothing is missed and nothing counted twice.

The embedded chain (eth-tester) is not thread-safe: give the indexer the lock that every other
user of the chain takes (`lock=`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.exceptions import BlockNotFound

from .chain import Chain
from .client import Agreement, Snapshot, Status
from .event_decoding import EventDecoder, hex0x
from .index_store import Batch, IndexStore
from .terms import Terms

log = logging.getLogger("smartsla.indexer")

DEFAULT_CHUNK_BLOCKS = 2_000
DEFAULT_ADDRESS_BATCH = 200
JS_SAFE = 2**53


class IndexerError(RuntimeError):
    """The indexer cannot go on (wrong factory, inconsistent index)."""


# ---------------------------------------------------------------------------- decoding
# EventDecoder: smartsla.event_decoding (shared with the multi-level index).



def snapshot_columns(raw: Any) -> dict[str, Any]:
    """Agreement.snapshot() as idx_agreements columns."""
    s = Snapshot.from_abi(raw)
    return {
        "status": s.status.name, "settled_periods": s.settled_periods, "fees_deposited": s.fees_deposited,
        "collateral_deposited": s.collateral_deposited, "disaster_occurred": s.disaster_occurred,
        "fees_escrowed": str(s.fees_escrowed), "collateral_escrowed": str(s.collateral_escrowed),
        "owed_to_customer": str(s.owed_to_customer), "owed_to_provider": str(s.owed_to_provider),
        "pending_to_customer": str(s.pending_to_customer), "pending_to_provider": str(s.pending_to_provider),
        "pending_periods": s.pending_periods,
    }


# ---------------------------------------------------------------------------- polling
def poll_with_backoff(indexer: Any, sync: Callable[[], bool], stop: threading.Event, *, poll_s: float,
                      max_backoff_s: float, label: str) -> None:
    """Call `sync` (True once caught up) every `poll_s` seconds until `stop` is set, at once again
    while it is behind. An error is recorded on `indexer.last_error` and in its store (health)
    and retried after a pause that doubles up to `max_backoff_s`: the thread stays alive, the
    chain may come back. The one loop of every indexer thread."""
    backoff = poll_s
    while not stop.is_set():
        try:
            caught_up = sync()
            backoff = poll_s
            if not caught_up:
                continue
        except Exception as exc:  # keep the thread alive: the chain may come back
            indexer.last_error = f"{exc.__class__.__name__}: {exc}"
            log.warning("%s: %s", label, indexer.last_error)
            with contextlib.suppress(Exception):
                indexer.store.note_error(indexer.last_error[:500])
            backoff = min(max_backoff_s, backoff * 2)
        stop.wait(backoff)


# ---------------------------------------------------------------------------- the indexer
@dataclass
class SyncResult:
    from_block: int | None
    to_block: int | None
    head: int
    events: int = 0
    agreements: int = 0
    rolled_back_to: int | None = None
    reorg: bool = False
    caught_up: bool = True  # False when max_ranges stopped it before the target


class Indexer:
    def __init__(self, chain: Chain, store: IndexStore, factory: str, *, start_block: int = 0,
                 confirmations: int = 0, chunk_blocks: int = DEFAULT_CHUNK_BLOCKS,
                 address_batch: int = DEFAULT_ADDRESS_BATCH, lock: threading.RLock | None = None) -> None:
        if confirmations < 0 or chunk_blocks < 1 or address_batch < 1:
            raise ValueError("confirmations must be >= 0, chunk_blocks and address_batch >= 1")
        self.chain = chain
        self.w3 = chain.w3
        self.store = store
        self.factory = Web3.to_checksum_address(factory)
        self.start_block = start_block
        self.confirmations = confirmations
        self.chunk_blocks = chunk_blocks
        self.address_batch = address_batch
        self.lock = lock or threading.RLock()
        self.decoder = EventDecoder(self.w3)
        self.created_topic = self.decoder.topic("AgreementCreated")
        self._terms: dict[str, Terms] = {}
        self._chain_id: int | None = None
        self.last_error: str | None = None
        self.last_sync_at: float | None = None

    @contextlib.contextmanager
    def _chain(self) -> Iterator[Web3]:
        with self.lock:
            yield self.w3

    # ------------------------------------------------------------------ helpers
    def _block(self, number: int) -> tuple[str, int] | None:
        with self._chain() as w3:
            try:
                b = w3.eth.get_block(number)
            except BlockNotFound:
                return None
        if b is None:
            return None
        return hex0x(b["hash"]), int(b["timestamp"])

    def _terms_of(self, address: str) -> Terms:
        terms = self._terms.get(address)
        if terms is None:
            row = self.store.agreement(address)
            if row is not None:
                terms = Terms.model_validate(row["terms"])
            else:
                with self._chain():
                    terms = Agreement(self.chain, address).terms
            self._terms[address] = terms
        return terms

    def _get_logs(self, addresses: list[str], frm: int, to: int, topics: list[Any] | None = None) -> list[Any]:
        out: list[Any] = []
        for i in range(0, len(addresses), self.address_batch):
            params: dict[str, Any] = {"fromBlock": frm, "toBlock": to, "address": addresses[i:i + self.address_batch]}
            if topics:
                params["topics"] = topics
            with self._chain() as w3:
                out.extend(w3.eth.get_logs(params))  # type: ignore[arg-type]
        return out

    # ------------------------------------------------------------------ reorgs
    def _find_fork(self) -> int | None:
        """The newest stored block the chain still has with the same hash; None: none does."""
        for number, stored_hash in self.store.recent_blocks():
            got = self._block(number)
            if got is not None and got[0] == stored_hash:
                return number
        return None

    def _check_reorg(self, cursor: dict[str, Any], result: SyncResult) -> dict[str, Any]:
        last = cursor["last_block"]
        if last is None:
            return cursor
        got = self._block(last)
        if got is not None and got[0] == cursor["last_hash"]:
            return cursor
        fork = self._find_fork()
        if fork is not None and fork < self.start_block:
            fork = None
        log.warning("chain no longer has block %s with hash %s: rolling the index back to %s",
                    last, cursor["last_hash"], "the start" if fork is None else f"block {fork}")
        self.store.rollback_to(fork)
        self._terms.clear()
        result.reorg = True
        result.rolled_back_to = fork
        new = self.store.cursor()
        assert new is not None
        return new

    # ------------------------------------------------------------------ syncing
    def sync(self, *, max_ranges: int | None = None) -> SyncResult:
        """Index up to the head less the confirmations; returns what was done."""
        with self._chain() as w3:
            chain_id = self._chain_id or w3.eth.chain_id
            self._chain_id = chain_id
            head_block = w3.eth.get_block("latest")
        head = int(head_block["number"])
        cursor = self.store.init_cursor(chain_id, self.factory, self.start_block)
        result = SyncResult(None, None, head)
        cursor = self._check_reorg(cursor, result)
        target = head - self.confirmations
        last = cursor["last_block"]
        next_block = self.start_block if last is None else last + 1
        ranges = 0
        while next_block <= target and (max_ranges is None or ranges < max_ranges):
            to = min(next_block + self.chunk_blocks - 1, target)
            batch = self._read_range(next_block, to)
            batch.head_block, batch.head_timestamp = head, int(head_block["timestamp"])
            self.store.apply(batch)
            result.from_block = next_block if result.from_block is None else result.from_block
            result.to_block = to
            result.events += len(batch.events)
            result.agreements += len(batch.agreements)
            next_block = to + 1
            ranges += 1
        result.caught_up = next_block > target
        if next_block - 1 >= self.start_block:
            # Snapshots read after a block that a rollback removed, with no new range to refresh them.
            stale = self.store.stale_agreements(next_block - 1)
            if stale:
                self.store.update_snapshots({a: self._snapshot(a, next_block - 1) for a in stale}, next_block - 1)
        if result.to_block is None:
            self.store.note_head(head, int(head_block["timestamp"]))
        self.last_error = None
        self.last_sync_at = time.time()
        return result

    def _read_range(self, frm: int, to: int) -> Batch:
        to_block = self._block(to)
        if to_block is None:  # the chain went shorter since we read its head
            raise IndexerError(f"block {to} disappeared while indexing")
        batch = Batch(from_block=frm, to_block=to, to_hash=to_block[0], to_timestamp=to_block[1])
        created = self._get_logs([self.factory], frm, to, [self.created_topic])
        known = self.store.known_agreements()
        timestamps: dict[int, int] = {}

        def ts(raw: Any) -> int:
            number = int(raw["blockNumber"])
            if number not in timestamps:
                got = self._block(number)
                timestamps[number] = got[1] if got else 0
                if got:
                    batch.blocks[number] = got
            return timestamps[number]

        new_agreements: list[str] = []
        for raw in created:
            name, _, args = self.decoder.decode(raw)
            if name != "AgreementCreated":
                continue
            address = args["agreement"]
            if address in known or address in new_agreements:
                continue
            terms = self._terms_of(address)
            new_agreements.append(address)
            batch.agreements.append({
                "address": address, "factory": self.factory, "created_block": int(raw["blockNumber"]),
                "created_tx": hex0x(raw["transactionHash"]), "created_timestamp": ts(raw),
                "provider": terms.provider, "customer": terms.customer, "asset": terms.asset,
                "terms": terms.model_dump(mode="json"), "start": terms.start, "period_length": terms.period_length,
                "period_count": terms.period_count, "fee_per_period": str(terms.fee_per_period),
                "collateral": str(terms.collateral), "credit_cap_bps": terms.credit_cap_bps,
                "status": Status.Pending.name, "snapshot_block": None,
            })
        addresses = known + new_agreements
        logs = list(created) + (self._get_logs(addresses, frm, to) if addresses else [])
        logs.sort(key=lambda r: (int(r["blockNumber"]), int(r["logIndex"])))
        touched: set[str] = set(new_agreements)
        seen: set[tuple[int, int]] = set()
        for raw in logs:
            key = (int(raw["blockNumber"]), int(raw["logIndex"]))
            if key in seen:
                continue
            seen.add(key)
            emitter = Web3.to_checksum_address(raw["address"])
            name, topic0, args = self.decoder.decode(raw)
            if emitter == self.factory:
                if name != "AgreementCreated":
                    continue  # the factory emits nothing else today; keep only what concerns agreements
                agreement = args["agreement"]
            else:
                agreement = emitter
            touched.add(agreement)
            batch.events.append({"address": emitter, "agreement": agreement, "block_hash": hex0x(raw["blockHash"]),
                                 "name": name, "topic0": topic0, "args": args, "block_number": key[0],
                                 "tx_hash": hex0x(raw["transactionHash"]), "log_index": key[1], "timestamp": ts(raw)})
        stale = set(self.store.stale_agreements(frm - 1))
        for address in sorted(touched | (stale & set(addresses))):
            batch.snapshots[address] = self._snapshot(address, to)
        return batch

    def _snapshot(self, address: str, block: int) -> dict[str, Any]:
        with self._chain():
            contract = self.chain.contract("Agreement", address)
            return snapshot_columns(contract.functions.snapshot().call(block_identifier=block))

    # ------------------------------------------------------------------ background
    def run(self, stop: threading.Event, *, poll_s: float = 1.0, max_backoff_s: float = 30.0) -> None:
        """Sync every `poll_s` seconds until `stop` is set; errors are recorded (health) and retried
        with a growing pause."""
        poll_with_backoff(self, lambda: self.sync(max_ranges=50).caught_up, stop, poll_s=poll_s,
                          max_backoff_s=max_backoff_s, label="indexer")

    def start_thread(self, *, poll_s: float = 1.0) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), kwargs={"poll_s": poll_s},
                                  name="smartsla-indexer", daemon=True)
        thread.start()
        return thread, stop
