"""The customer's watchdog end to end, all real: a local HTTP service with an outage, an Anvil
chain, an oracle that lies (reports 100 % through the outage), and `smartsla watch` as a
subprocess with the customer's key. The watchdog disputes the period by itself within the
window, naming the root of the evidence it publishes; the arbiter's correction from that
evidence pays the right credit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from daemon_helpers import stop
from evidence_helpers import Outage, cli

from oracle import evidence as ev
from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.credit import period_outcome
from smartsla.terms import Service, Terms, Tier
from smartsla.units import PPM

pytestmark = pytest.mark.anvil
ETHER = 10**18
TIERS = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=950_000, credit_bps=5_000))


def test_a_lying_oracle_is_disputed_by_the_customers_watchdog(anvil, outage: Outage, tmp_path: Path):  # noqa: F811
    chain = Chain.connect(anvil.url)
    deployer, provider, arbiter = chain.accounts[0], chain.accounts[1], chain.accounts[3]
    customer, customer_key = chain.new_account(fund_from=deployer, amount=20 * ETHER)
    liar, _ = chain.new_account(fund_from=deployer, amount=ETHER)
    factory = Factory.deploy(chain, deployer)
    start = int(time.time() + 9) + 1
    terms = Terms(provider=provider, customer=customer, start=start, period_length=12, period_count=1,
                  fee_per_period=ETHER, collateral=ETHER, termination_ppm=0, oracles=(liar,), slice_seconds=1,
                  dispute_window=120, arbiter=arbiter,
                  services=(Service(name="web", objective=999_900, tiers=TIERS),))
    ag = factory.create_agreement(terms, deployer)
    ag.deposit_fees(customer)
    ag.deposit_collateral(provider)
    outage.down = [(start + 3.5, start + 5.5)]  # slices 3, 4, 5 down: 9 of 12 good
    config = tmp_path / "watch.yaml"
    config.write_text(yaml.safe_dump({
        "chain": {"rpc_url": anvil.url, "factory": factory.address, "timeout_s": 2},
        "key": {"env": "SMARTSLA_WATCH_KEY"}, "store": f"sqlite:///{tmp_path / 'watch.db'}",
        "slice_seconds": 1, "grace_s": 1, "report_check_s": 0.5, "listen": "127.0.0.1:0",
        "agreements": [{"address": ag.address}], "tolerance_ppm": 1_000,
        "services": {"web": {"http": {"url": outage.url, "timeout_s": 0.25}, "interval_s": 0.25}}}))
    log_path = tmp_path / "watch.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "smartsla", "watch", "--config", str(config)],
                                env=dict(os.environ, SMARTSLA_WATCH_KEY=customer_key), stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        while time.time() < ag.terms.period_end(0) + 1.5:
            time.sleep(0.2)
        # The oracle lies: 100 % through a real outage, with evidence of its own making.
        chain.w3.provider.make_request("evm_mine", [])  # a block at the wall clock: the period has ended
        record = ev.build_record(chain_id=chain.chain_id, agreement=ag.address, period=0, start=start,
                                 end=start + 12, slice_seconds=1, index=0, name="web", kind="availability",
                                 slices={i: (True, 5.0) for i in range(12)})
        lie = ev.Bundle(liar, (record,))
        ag.settle(0, [PPM], PPM, lie.root, liar)
        deadline = time.time() + 30
        while time.time() < deadline and ag.period_state(0)[0] != "Disputed":
            time.sleep(0.25)
        text = log_path.read_text(errors="replace")
        assert ag.period_state(0)[0] == "Disputed", text[-3000:]
        port = int(re.search(r'"msg": "listening".*?"port": (\d+)', text).group(1))
        # The dispute names the root of the evidence the watchdog publishes, and that evidence
        # shows the outage.
        (disputed,) = ag.contract.events.Disputed().get_logs(from_block=0)
        assert disputed["args"]["by"] == customer
        bundle = ev.parse_bundle(httpx.get(f"http://127.0.0.1:{port}/evidence/{ag.address}/0").text)
        assert "0x" + bytes(disputed["args"]["evidence"]).hex() == "0x" + bundle.root.hex()
        own = ev.figure_from_record(bundle.records[0])
        assert own.value_ppm == 750_000 and [s for s, _ in bundle.records[0].runs] == ["up", "down", "up"]
        assert '"msg": "disputed"' in text and json.dumps("web: settled 1000000 ppm") [1:-1] in text
    finally:
        stop(proc)
    # A consistent lie verifies against its own evidence; the customer's evidence exposes it.
    (tmp_path / "liar.json").write_text(ev.dumps_bundle(lie))
    (tmp_path / "watch.json").write_text(ev.dumps_bundle(bundle))
    common = ("--rpc-url", anvil.url, "--factory", factory.address)
    code, out = cli("verify", ag.address, "0", "--bundle", str(tmp_path / "liar.json"), *common)
    assert code == 0, out
    code, out = cli("verify", ag.address, "0", "--bundle", str(tmp_path / "liar.json"), "--bundle",
                    str(tmp_path / "watch.json"), *common)
    assert code == 1 and f"the evidence {customer} disputed with gives 75.0000 %, the settled figure is " \
        "100.0000 %" in " ".join(out.split()), out
    # The arbiter's review: both sides, the differing slices first.
    code, out = cli("arbiter", "review", ag.address, "0", "--bundle", str(tmp_path / "liar.json"), "--bundle",
                    str(tmp_path / "watch.json"), *common)
    assert code == 0, out
    assert "3 of 12 slices differ" in out and re.search(r"3–5 .* up .* down", out), out
    assert out.count("root committed on-chain") == 2, out
    # The arbiter corrects the period from the watchdog's evidence: the credit the outage implies.
    ag.resolve_dispute(0, [own.value_ppm], arbiter)
    (resolved,) = ag.contract.events.DisputeResolved().get_logs(from_block=0)
    expected = period_outcome(ag.terms, [own.value_ppm], ag.terms.collateral).paid_credit
    assert resolved["args"]["creditPaid"] == expected == ETHER // 2  # below 95 %: 50 % of the fee
