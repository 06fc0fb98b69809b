"""`smartsla verify` end to end, all real: a local HTTP service with a known outage, a maintenance
window declared on-chain with notice, an Anvil chain, the oracle daemon as a subprocess serving
its evidence. The settled period verifies; a bundle with one slice flipped does not (whether or
not the forger recomputes the hashes); a period without evidence is "missing"."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml
from daemon_helpers import stop
from evidence_helpers import Outage, cli
from fastapi.testclient import TestClient

from oracle import evidence as ev
from smartsla.api.app import ApiSettings, create_app
from smartsla.chain import Chain
from smartsla.client import Factory, Status
from smartsla.index_store import IndexStore
from smartsla.indexer import Indexer
from smartsla.terms import Service, Terms, Tier

pytestmark = pytest.mark.anvil
ETHER = 10**18
TIERS = (Tier(threshold=999_900, credit_bps=1_000), Tier(threshold=950_000, credit_bps=5_000))



def test_verify_a_settled_period_then_a_flipped_slice_then_missing_evidence(anvil, outage: Outage, tmp_path: Path):
    chain = Chain.connect(anvil.url)
    deployer, provider, customer = chain.accounts[:3]
    factory = Factory.deploy(chain, deployer)
    oracle, key = chain.new_account(fund_from=deployer, amount=ETHER)
    start = int(time.time() + 9) + 1
    terms = Terms(provider=provider, customer=customer, start=start, period_length=12, period_count=1,
                  fee_per_period=ETHER, collateral=ETHER, termination_ppm=0, oracles=(oracle,), slice_seconds=1,
                  maintenance_notice=3, maintenance_budget=10,
                  services=(Service(name="web", objective=999_900, tiers=TIERS),))
    ag = factory.create_agreement(terms, deployer)
    ag.deposit_fees(customer)
    ag.deposit_collateral(provider)
    ag.declare_maintenance(start + 8, start + 10, provider)  # with notice: slices 8, 9 excluded
    outage.down = [(start + 3.5, start + 5.5)]  # slices 3, 4, 5 down
    config = tmp_path / "oracle.yaml"
    config.write_text(yaml.safe_dump({
        "chain": {"rpc_url": anvil.url, "factory": factory.address, "timeout_s": 2},
        "key": {"env": "SMARTSLA_ORACLE_KEY"}, "store": f"sqlite:///{tmp_path / 'oracle.db'}",
        "slice_seconds": 1, "grace_s": 1, "report_check_s": 0.5, "listen": "127.0.0.1:0",
        "agreements": [{"address": ag.address}],
        "services": {"web": {"http": {"url": outage.url, "timeout_s": 0.25}, "interval_s": 0.25}}}))
    log_path = tmp_path / "oracle.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "oracle", "--config", str(config)],
                                env=dict(os.environ, SMARTSLA_ORACLE_KEY=key), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        port = None
        while time.time() < deadline and ag.snapshot().status is not Status.Ended:
            m = re.search(r'"msg": "listening".*?"port": (\d+)', log_path.read_text(errors="replace"))
            port = int(m.group(1)) if m else port
            time.sleep(0.25)
        assert ag.snapshot().status is Status.Ended, log_path.read_text()[-3000:]
        assert port is not None
        base = f"http://127.0.0.1:{port}"
        (settled,) = ag.settlements()
        assert settled.values_ppm == (7 * 1_000_000 // 10,)  # 12 slices, 2 excluded, 3 of 10 down

        code, out = cli("verify", ag.address, "0", "--evidence-url", base, "--rpc-url", anvil.url,
                        "--factory", factory.address)
        assert code == 0, out
        assert "verified" in out and "7 of 10 measured seconds good" in out, out
        assert "3 down between" in out and "2 excluded by window #0" in out, out

        assert httpx.get(f"{base}/evidence/{ag.address}/1").status_code == 404
        # The API fetches the bundle from the oracle it knows and checks it against the index.
        store = IndexStore.open(str(tmp_path / "index.db"))
        indexer = Indexer(chain, store, factory.address)
        indexer.sync()
        api = create_app(store, settings=ApiSettings(rate_limit_per_s=0, oracle_metrics_url=f"{base}/metrics"),
                         chain=chain, indexer=indexer)
        with TestClient(api) as client:
            got = client.get(f"/api/agreements/{ag.address}/periods/0/evidence").json()
            assert got["matches"] is True and got["root"] == got["committed_root"], got
            assert got["bundle"]["services"][0]["counts"] == {"up": 7, "down": 3, "none": 0, "excluded": 2}
            assert client.get(f"/api/agreements/{ag.address}/periods/1/evidence").status_code == 404
            (row,) = client.get(f"/api/agreements/{ag.address}/report").json()["rows"]
            assert row["evidence_roots"] == f"{oracle}={got['root']}"
            assert [row[k] for k in ("good_slices", "down_slices", "excluded_slices", "unmeasured_slices")] == \
                [7, 3, 2, 0], row
        bundle_text = httpx.get(f"{base}/evidence/{ag.address}/0").text
        saved = tmp_path / "bundle.json"
        saved.write_text(bundle_text)
        code, out = cli("verify", ag.address, "0", "--bundle", str(saved), "--rpc-url", anvil.url,
                        "--factory", factory.address)
        assert code == 0, out

        # One slice flipped in the saved bundle, hashes left as they were: refused.
        doc = json.loads(bundle_text)
        runs = doc["services"][0]["runs"]
        k = next(i for i, (s, _) in enumerate(runs) if s == "down")
        runs[k:k + 1] = [["up", 1], ["down", runs[k][1] - 1]] if runs[k][1] > 1 else [["up", 1]]
        doc["services"][0]["runs"] = [list(r) for r in ev.encode_runs(ev.decode_runs(runs))]
        flipped = tmp_path / "flipped.json"
        flipped.write_text(json.dumps(doc))
        code, out = cli("verify", ag.address, "0", "--bundle", str(flipped), "--rpc-url", anvil.url,
                        "--factory", factory.address)
        assert code == 1 and "recordHash" in out, out

        # The forger recomputes every hash: the root no longer matches the one committed on-chain.
        forged = ev.parse_bundle({k: v for k, v in doc.items() if k != "root"} | {
            "services": [{k: v for k, v in s.items() if k != "recordHash"} for s in doc["services"]]})
        forged_path = tmp_path / "forged.json"
        forged_path.write_text(ev.dumps_bundle(replace(forged)))
        code, out = cli("verify", ag.address, "0", "--bundle", str(forged_path), "--rpc-url", anvil.url,
                        "--factory", factory.address)
        assert code == 1 and "committed on-chain" in out, out
    finally:
        stop(proc)
    # The oracle is gone: no evidence to be had.
    code, out = cli("verify", ag.address, "0", "--evidence-url", base, "--rpc-url", anvil.url,
                    "--factory", factory.address)
    assert code == 2 and "missing" in out, out
    code, out = cli("verify", ag.address, "0", "--bundle", str(tmp_path / "nowhere.json"), "--rpc-url",
                    anvil.url, "--factory", factory.address)
    assert code == 2, out
