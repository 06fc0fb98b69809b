"""The dashboard's agreement page keeps its lists and charts under the index's change key: a page
read after a new settlement, indexed by ANOTHER IndexStore (as the indexer process does), must
show the new figures at once, never the cached ones."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sla_helpers import EVIDENCE_ROOT, make_terms

from smartsla.api.app import ApiSettings, create_app
from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.index_store import IndexStore
from smartsla.indexer import Indexer
from smartsla.presentation import fmt_amount


def test_page_after_a_new_settlement_shows_the_new_figure(chain: Chain, roles: dict[str, str],
                                                           tmp_path: Path) -> None:
    factory = Factory.deploy(chain, roles["deployer"])
    agreement = factory.create_agreement(make_terms(roles, chain.now() + 60), roles["deployer"])
    agreement.deposit_fees(roles["customer"])
    agreement.deposit_collateral(roles["provider"])
    db = str(tmp_path / "index.db")
    writer = IndexStore.open(db)  # the indexer's own store: the server's store sees no write of its own
    indexer = Indexer(chain, writer, factory.address)

    def settle(period: int, value: int) -> None:
        chain.mine_at(agreement.terms.period_end(period))
        agreement.settle(period, [value], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
        assert indexer.sync().caught_up

    settle(0, 1_000_000)  # objective met: nothing owed to the customer
    reader = IndexStore.open(db)
    client = TestClient(create_app(reader, settings=ApiSettings(rate_limit_per_s=0)))
    url = f"/agreements/{agreement.address}"
    first = client.get(url)
    assert first.status_code == 200
    assert client.get(url).text.count("period 1") == first.text.count("period 1")  # served from the cache
    assert "period 1, " in first.text and ": not started" in first.text

    settle(1, 999_000)  # below the objective: a credit is now owed
    owed = agreement.snapshot().owed_to_customer
    assert owed > 0
    figure = fmt_amount(owed, agreement.terms.asset)
    assert figure not in first.text
    second = client.get(url)
    assert second.status_code == 200
    assert figure in second.text, "the page shows a cached (stale) credit figure"
    assert "99.9000%" in second.text, "period 1's measured value is missing: stale period list"
    # the API agrees with the page
    assert client.get(f"/api/agreements/{agreement.address}").json()["snapshot"]["owed_to_customer"] == str(owed)
    reader.close()
    writer.close()
