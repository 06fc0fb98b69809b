"""A multi-level agreement (examples/multi-level-corporate.yaml) on the embedded chain, indexed
and served: for the API and browser tests of the organisation and department pages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml
from fastapi import FastAPI

from smartsla.api.app import ApiSettings, create_app
from smartsla.chain import Chain
from smartsla.corporate import Corporate, CorporateTerms, load_corporate_spec
from smartsla.corporate_index import CorporateIndex, CorporateIndexer, CorporateStore
from smartsla.index_store import IndexStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multi-level-corporate.yaml"
# email < 99 % (tier 2), erp 99.85 % (meets 99.5 %, misses finance's own 99.9 %), vpn 97 % (tier 1)
PERIOD0 = [985_000, 998_500, 970_000]


@dataclass
class CorporateSite:
    chain: Chain
    corporate: Corporate
    terms: CorporateTerms
    roles: dict[str, str]
    index: CorporateIndex
    app: FastAPI
    store: IndexStore


def build_site(tmp: Path, *, server_signing: bool = False) -> CorporateSite:
    """Deployed, both deposits in, period 0 reported, department 0 settled (1 and 2 not yet); indexed."""
    chain = Chain.connect("embedded")
    a = chain.accounts
    roles = {"deployer": a[0], "provider": a[1], "organisation": a[2], "oracle": a[3], "stranger": a[4]}
    data = yaml.safe_load(EXAMPLE.read_text())
    body = data["spec"]
    body["parties"] = {"provider": roles["provider"], "organisation": roles["organisation"]}
    body["oracle"] = roles["oracle"]
    for dep, payout in zip(body["departments"], a[5:8], strict=True):
        dep["payout"] = payout
    body["timeWindow"]["start"] = dt.datetime.fromtimestamp(chain.now() + 60, dt.UTC).isoformat()
    body["timeWindow"]["count"] = 2
    path = tmp / "corporate.yaml"
    path.write_text(yaml.safe_dump(data))
    terms = load_corporate_spec(path).to_terms()
    corporate = Corporate.deploy(chain, terms, roles["deployer"])
    corporate.deposit_fees(roles["organisation"])
    corporate.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0))
    corporate.report(0, PERIOD0, roles["oracle"], evidence_root=b"\x01" * 32)
    corporate.settle_department(0, 0, roles["stranger"])
    store = IndexStore.open(str(tmp / "index.db"))
    corp_store = CorporateStore(store.engine)
    indexer = CorporateIndexer(chain, corp_store, [corporate.address])
    index = CorporateIndex(corp_store, indexer)
    app = create_app(store, chain=chain, corporate=index, lock=indexer.lock,
                     settings=ApiSettings(rate_limit_per_s=0, server_signing=server_signing,
                                          spec_files=(str(path),)))  # names the departments
    indexer.sync()
    return CorporateSite(chain, corporate, terms, roles, index, app, store)
