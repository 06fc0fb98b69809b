"""Gas per agreement-period when many agreements settle in one SettlementBatch transaction.

Run: .venv/bin/python bench/batch_gas.py [N]   (default 50; Anvil, single-oracle agreements with
one service, settled through signed reports). Prints the batch's gas, gas per item, and for
comparison one agreement settled alone with `settle`. The items are packed (`settleMany(bytes)`, each
agreement's reports as `settleCompact` reads them, smartsla/compact_reports.py).
Not run by pytest.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from oracle.evidence import opaque_root
from oracle.sli import PeriodFigure
from oracle.store import Store
from oracle.submitter import Submitter
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.localnode import start_node
from smartsla.terms import Service, Terms, Tier

ROOT = opaque_root([b"U" * 43_200])  # a month of one-minute slices, all up

ETHER = 10**18
TIERS = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=990_000, credit_bps=3_000))


def main(n: int) -> None:
    node = start_node("anvil")
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

        agreements = [make() for _ in range(n + 2)]
        chain.mine_at(start + 1001)
        tmp = Path(tempfile.mkdtemp())
        sub = Submitter(chain, account, Store.open(f"sqlite:///{tmp / 'o.db'}"), receipt_wait_s=30)
        for label, breach in (("met", 999_950), ("missed (credit paid)", 999_000)):
            fig = {"web": PeriodFigure(value_ppm=breach, good_slices=1, total_slices=1, excluded_slices=0,
                                       maintenance_slices=0, missing_slices=0, slice_seconds=1)}
            if label == "met":
                items, alone = agreements[:n], agreements[n]
            else:
                # period 1 of the same agreements: the second settlement of an agreement
                chain.mine_at(start + 2001)
                items, alone = agreements[:n], agreements[n + 1]
            period = 0 if label == "met" else 1
            outcomes = sub.process_batch(batch, [(ag, period, fig, ROOT) for ag in items])
            tx = next(iter(outcomes.values())).tx_hash
            gas = chain.w3.eth.get_transaction_receipt(tx)["gasUsed"]
            assert all(o.state == "confirmed" for o in outcomes.values()), outcomes
            single = sub.process(alone, period if label == "met" else 0, fig, ROOT)
            single_gas = chain.w3.eth.get_transaction_receipt(single.tx_hash)["gasUsed"]
            print(f"period {label:22s} batch of {n}: {gas:,} gas, {gas / n:,.0f} per agreement-period; "
                  f"alone via settle: {single_gas:,} gas")
    finally:
        node.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
