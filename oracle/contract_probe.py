"""Start-up checks that the contracts the daemon sends to speak the compact interface (Review 6, Z7-6).

The compact settlement changed two interfaces: `SettlementBatch.settleMany(Item[])` became
`settleMany(bytes)`, and `Agreement.settleWithReports` became `settleCompact(bytes)`. Code at an
address says nothing about which one it has: a daemon pointed at a pre-compact batch contract (or
serving agreements of a pre-compact factory) would start, then every batch or committee
transaction would revert on every pass, and the periods would stall until their fees go back to
the customer. Each probe is one free `eth_call` with an empty buffer, refused by a current
contract with one exact error and by anything else otherwise:

* `SettlementBatch.settleMany(b"")` -> `BadBatchSize(0)`;
* `Agreement.settleCompact(b"")` -> `MalformedReports(3, 0)` (the buffer is shorter than its
  3-byte header; checked before anything else but the clone guard).

An agreement of an older factory is refused, not served another way: this daemon has no code for
the removed `settleWithReports`, and an operator learns at start which agreement needs the old
daemon (or a new agreement), instead of finding stalled periods at expiry. It is probed only when
the daemon would call `settleCompact` on it (a quorum above 1, or a batch contract configured);
a single-oracle agreement settled with `settle` works with either factory.
"""

from __future__ import annotations

from typing import Any

from smartsla.chain import REVERTS, _revert_data
from smartsla.compact_reports import HEADER_LENGTH
from smartsla.errors import decode_revert


def _refusal(fn: Any, sender: str) -> str:
    """What calling `fn` says: the custom error with its arguments, or that it did not revert."""
    try:
        fn.call({"from": sender})
    except REVERTS as exc:
        error = decode_revert(_revert_data(exc))
        return f"{error.name}({', '.join(str(a) for a in error.args_)})" if error.name != "UnknownError" \
            else f"an unknown error ({error.raw})"
    except Exception as exc:  # noqa: BLE001 - a node's other refusal (no such function, bad output): say it
        return f"{type(exc).__name__}: {exc}"
    return "no revert"


def batch_problem(batch: Any, sender: str) -> str | None:
    """None when `batch` (a SettlementBatch contract object) answers `settleMany(b"")` with exactly
    `BadBatchSize(0)`; otherwise what it did instead, for a ConfigError on chain.batch_contract."""
    found = _refusal(batch.functions.settleMany(b""), sender)
    if found == "BadBatchSize(0)":
        return None
    return (f"the contract at {batch.address} is not a SettlementBatch with settleMany(bytes) (a pre-compact "
            f"SettlementBatch, or another contract): settleMany(0x) gave {found}, expected BadBatchSize(0); "
            "deploy the current SettlementBatch (smartsla deploy) and configure its address")


def agreement_problem(agreement: Any, sender: str) -> str | None:
    """None when `agreement` (smartsla.client.Agreement) answers `settleCompact(b"")` with exactly
    `MalformedReports(3, 0)`; otherwise what it did instead, naming the agreement."""
    found = _refusal(agreement.contract.functions.settleCompact(b""), sender)
    if found == f"MalformedReports({HEADER_LENGTH}, 0)":
        return None
    return (f"agreement {agreement.address} has no settleCompact(bytes) (created by a pre-compact factory?): "
            f"settleCompact(0x) gave {found}, expected MalformedReports({HEADER_LENGTH}, 0); this daemon settles "
            "committee and batched periods only with settleCompact: serve it with the daemon of its release, "
            "or drop it from agreements")
