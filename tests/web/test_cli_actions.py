"""`smartsla maintenance declare`, `dispute`, `finalize`, `satisfaction`: signed with key files,
against a real Anvil."""

from __future__ import annotations

from pathlib import Path

import pytest
from sla_helpers import EC2_TIERS, make_terms
from test_cli_web import PASSWORD, _party_with_keystore, _run

from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.localnode import LocalNode, start_node
from smartsla.terms import Service, Tier


@pytest.fixture
def anvil():
    node = start_node("anvil")
    yield node
    node.stop()


@pytest.mark.anvil
def test_maintenance_dispute_satisfaction_and_finalize_from_the_command_line(anvil: LocalNode, tmp_path: Path):
    chain = Chain.connect(anvil.url)
    a = chain.accounts
    customer, customer_ks = _party_with_keystore(chain, tmp_path, "customer")
    provider, provider_ks = _party_with_keystore(chain, tmp_path, "provider")
    services = (Service(name="compute", objective_ppm=999_900, weight_bps=8_000, tiers=EC2_TIERS),
                Service(name="csat", kind="satisfaction", objective_ppm=800_000, weight_bps=2_000,
                        tiers=(Tier(below_ppm=800_000, credit_bps=5_000),)))
    terms = make_terms({"provider": provider, "customer": customer, "oracle": a[3]}, chain.now() + 60,
                       services=services, dispute_window=600, arbiter=a[4], maintenance_notice=300,
                       maintenance_budget=3_600)
    factory = Factory.deploy(chain, a[0])
    ag = factory.create_agreement(terms, a[0])
    ag.deposit_fees(customer)
    ag.deposit_collateral(provider)
    env = {"SMARTSLA_KEYSTORE_PASSWORD": PASSWORD}
    common = ["--rpc-url", anvil.url, "--factory", factory.address]
    now = terms.start  # excluded windows cover whole one-minute slices from the start

    code, out = _run("maintenance", "declare", ag.address, "--start", str(now + 900), "--end", str(now + 1_200),
                     "--keystore", str(provider_ks), *common, env=env)
    assert code == 0 and "with notice: excluded" in out, out
    code, out = _run("maintenance", "declare", ag.address, "--start", "2027-13-01", "--end", "x",
                     "--keystore", str(provider_ks), *common, env=env)
    assert code == 2 and "not a time" in out
    code, out = _run("maintenance", "declare", ag.address, "--start", str(now + 900), "--end", str(now + 1_000),
                     "--keystore", str(customer_ks), *common, env=env)
    assert code == 2 and "only the provider" in out

    code, out = _run("satisfaction", ag.address, "0", "55%", "--keystore", str(customer_ks), *common, env=env)
    assert code == 0 and "55.0000%" in out, out
    chain.mine_at(terms.period_end(0))
    settled = ag.settle(0, [1_000_000, 0], 1_000_000, a[3])
    assert settled.values_ppm == (1_000_000, 550_000) and settled.credit_paid > 0

    evidence = tmp_path / "evidence.txt"
    evidence.write_text("our monitoring says otherwise")
    code, out = _run("dispute", ag.address, "0", "--evidence", str(evidence), "--keystore", str(provider_ks),
                     *common, env=env)
    assert code == 0 and "disputed" in out, out
    code, out = _run("finalize", ag.address, "0", "--keystore", str(customer_ks), *common, env=env)
    assert code == 1 and "DisputeWindowOpen" in out
    chain.mine_at(chain.now() + 1_300)
    code, out = _run("finalize", ag.address, "0", "--keystore", str(customer_ks), *common, env=env)
    assert code == 0 and "payable" in out, out
    assert ag.snapshot().owed_to_customer == settled.credit_paid
