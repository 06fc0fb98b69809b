"""Where the gas of one SettlementBatch item goes, opcode by opcode.

Run: .venv/bin/python bench/batch_gas_profile.py [N] [met|missed]   (default 5 met). Settles N
single-oracle agreements in one batch on Anvil, traces the transaction with the struct logger
(debug_traceTransaction) and prints, for the middle item, the gas it cost grouped by call depth
(1 = the batch, 2 = the clone's forwarding code, 3 = Agreement's code) and by opcode, with the
SSTOREs listed one by one; then the calldata cost per item. Not run by pytest.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from oracle.evidence import opaque_root
from oracle.sli import PeriodFigure
from oracle.store import Store
from oracle.submitter import Submitter
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.localnode import start_node
from smartsla.terms import Service, Terms, Tier

ROOT = opaque_root([b"U" * 43_200])
ETHER = 10**18
TIERS = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=990_000, credit_bps=3_000))
BY_LINE = "--by-line" in sys.argv
CALLS = {"CALL", "DELEGATECALL", "STATICCALL", "CALLCODE"}


def exclusive_costs(logs: list[dict[str, Any]]) -> list[int]:
    """Gas each step cost on its own (a CALL's cost without what its callee spent)."""
    costs = [0] * len(logs)
    for i, step in enumerate(logs):
        nxt = i + 1
        if step["op"] in CALLS and nxt < len(logs) and logs[nxt]["depth"] > step["depth"]:
            # find the step after the callee returned
            j = nxt
            while j < len(logs) and logs[j]["depth"] > step["depth"]:
                j += 1
            child = sum(costs[nxt:j]) if False else None  # filled below
            costs[i] = -j  # marker: resolved in a second pass
            del child
        elif nxt < len(logs) and logs[nxt]["depth"] == step["depth"]:
            costs[i] = step["gas"] - logs[nxt]["gas"]
        else:
            costs[i] = step["gasCost"]
    for i in range(len(logs) - 1, -1, -1):  # callees first (they come later)
        if costs[i] < 0:
            j = -costs[i]
            inclusive = logs[i]["gas"] - (logs[j]["gas"] if j < len(logs) else 0)
            costs[i] = inclusive - sum(costs[i + 1:j])
    return costs


def main(n: int, kind: str) -> None:
    node = start_node("anvil", extra_args=("--steps-tracing",))
    try:
        chain = Chain.connect(node.url)
        a = chain.accounts
        factory = Factory.deploy(chain, a[0])
        batch, _ = chain.deploy("SettlementBatch", a[0])
        oracle, key = chain.new_account(fund_from=a[0], amount=10 * ETHER)
        account = chain.w3.eth.account.from_key(key)
        start = chain.now() + 100

        def make() -> Agreement:
            terms = Terms(provider=a[1], customer=a[2], start=start, period_length=1000, period_count=2,
                          fee_per_period=ETHER, collateral=2 * ETHER, termination_ppm=0,
                          services=(Service(name="web", objective=999_900, tiers=TIERS),),
                          oracles=(oracle,), slice_seconds=1)
            ag = factory.create_agreement(terms, a[0])
            ag.deposit_fees(a[2])
            ag.deposit_collateral(a[1])
            return ag

        agreements = [make() for _ in range(n)]
        chain.mine_at(start + 1001)
        sub = Submitter(chain, account, Store.open(f"sqlite:///{Path(tempfile.mkdtemp()) / 'o.db'}"),
                        receipt_wait_s=30)
        value = 999_950 if kind == "met" else 999_000
        fig = {"web": PeriodFigure(value_ppm=value, good_slices=1, total_slices=1, excluded_slices=0,
                                   maintenance_slices=0, missing_slices=0, slice_seconds=1)}
        outcomes = sub.process_batch(batch, [(ag, 0, fig, ROOT) for ag in agreements])
        assert all(o.state == "confirmed" for o in outcomes.values()), outcomes
        tx_hash = next(iter(outcomes.values())).tx_hash
        tx = chain.w3.eth.get_transaction(tx_hash)
        receipt = chain.w3.eth.get_transaction_receipt(tx_hash)
        data = bytes(tx["input"])
        calldata_gas = sum(16 if b else 4 for b in data)
        trace = chain.w3.provider.make_request("debug_traceTransaction",
                                               [tx_hash, {"enableMemory": False, "disableStack": False,
                                                          "disableStorage": True}])
        logs = trace["result"]["structLogs"]
        costs = exclusive_costs(logs)
        # items: the depth-1 CALLs into agreements; take the middle one and the batch code around it
        calls = [i for i, s in enumerate(logs) if s["depth"] == 1 and s["op"] == "CALL"]
        mid = len(calls) // 2
        lo = calls[mid - 1] + 1 if mid > 0 else 0
        while lo < len(logs) and logs[lo]["depth"] > 1:
            lo += 1
        hi = calls[mid] + 1
        while hi < len(logs) and logs[hi]["depth"] > 1:
            hi += 1
        # the slice from after the previous item's CALL up to this item's CALL's return holds the
        # batch's per-item work (abi-encoding, event of the previous item) and this item's call
        by: dict[tuple[int, str], int] = defaultdict(int)
        sstores: list[str] = []
        for i in range(lo, hi):
            s = logs[i]
            by[(s["depth"], s["op"])] += costs[i]
            if s["op"] == "SSTORE":
                sstores.append(f"    SSTORE slot {s['stack'][-1]} cost {costs[i]}")
            if s["op"] == "SLOAD" and costs[i] > 100:
                sstores.append(f"    SLOAD  slot {s['stack'][-1]} cost {costs[i]} (cold)")
        total = sum(by.values())
        print(f"batch of {n} ({kind}): {receipt['gasUsed']:,} gas, {receipt['gasUsed'] / n:,.0f} per item; "
              f"calldata {calldata_gas:,} gas ({len(data)} bytes), {calldata_gas / n:,.0f} per item")
        print(f"one item's execution (item {mid}): {total:,} gas")
        for depth in (1, 2, 3):
            part = {op: g for (d, op), g in by.items() if d == depth}
            print(f"  depth {depth}: {sum(part.values()):,}")
            for op, g in sorted(part.items(), key=lambda kv: -kv[1])[:40]:
                print(f"    {op:14s} {g:7,}")
        print("\n".join(sstores))
        print("  depth 3 by source function:")
        source_profile(logs, costs, lo, hi)
    finally:
        node.stop()



def source_profile(logs: list[dict[str, Any]], costs: list[int], lo: int, hi: int, depth: int = 3) -> None:
    """Gas of the steps at `depth` in [lo, hi) by enclosing Solidity function, through the source
    map of Forge's build of Agreement (run `forge build` first; same compiler settings as the
    committed artifacts, so the same code)."""
    import json
    import re

    root = Path(__file__).resolve().parent.parent
    art = json.loads((root / "build/forge/out/Agreement.sol/Agreement.json").read_text())
    # the build that produced out/Agreement.sol: the latest full one (`forge build --force` first
    # when in doubt: partial rebuilds number the sources differently)
    infos = [(json.loads(q.read_text())["source_id_to_path"], q.stat().st_mtime)
             for q in (root / "build/forge/out/build-info").glob("*.json")]
    paths = max(infos, key=lambda pm: (len(pm[0]), pm[1]))[0]
    code = bytes.fromhex(art["deployedBytecode"]["object"][2:])
    pc_to_index: dict[int, int] = {}
    pc = index = 0
    while pc < len(code):
        pc_to_index[pc] = index
        op = code[pc]
        pc += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
        index += 1
    entries: list[tuple[int, int]] = []
    s = f = 0
    for item in art["deployedBytecode"]["sourceMap"].split(";"):
        parts = item.split(":")
        if parts and parts[0]:
            s = int(parts[0])
        if len(parts) > 2 and parts[2]:
            f = int(parts[2])
        entries.append((s, f))
    texts: dict[int, str] = {}
    funcs: dict[int, list[tuple[int, str]]] = {}

    def where(file_id: int, offset: int) -> str:
        if str(file_id) not in paths:
            return "(compiler)"
        if file_id not in texts:
            texts[file_id] = (root / paths[str(file_id)]).read_text()
            funcs[file_id] = [(m.start(), m.group(1)) for m in
                              re.finditer(r"(?:function|modifier|event|error)\s+(\w+)", texts[file_id])]
        name = "(top)"
        for start, fn in funcs[file_id]:
            if start <= offset:
                name = fn
        if BY_LINE:
            return f"{Path(paths[str(file_id)]).name}:{texts[file_id].count(chr(10), 0, offset) + 1}:{name}"
        return f"{Path(paths[str(file_id)]).name}:{name}"

    by: dict[str, int] = defaultdict(int)
    for i in range(lo, hi):
        if logs[i]["depth"] != depth:
            continue
        idx = pc_to_index.get(logs[i]["pc"])
        label = "(unknown)" if idx is None or idx >= len(entries) else where(entries[idx][1], entries[idx][0])
        by[label] += costs[i]
    for label, g in sorted(by.items(), key=lambda kv: -kv[1])[:60]:
        print(f"    {label:48s} {g:7,}")
if __name__ == "__main__":
    args = [x for x in sys.argv[1:] if not x.startswith("--")]
    main(int(args[0]) if args else 5, args[1] if len(args) > 1 else "met")
