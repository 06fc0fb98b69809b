"""`smartsla serve`: index a factory's agreements and serve the REST API and the dashboard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..chain import EMBEDDED
from .common import DEFAULT_RPC_URL, BadInput, FactoryOpt, RpcUrl, _connect, _console, _factory, cli_errors

app = typer.Typer()


@app.command("serve")
@cli_errors
def serve_cmd(
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    db: Annotated[str, typer.Option("--db", envvar="SMARTSLA_INDEX_DB", help="Index database: an SQLite file path "
                                    "or URL, or postgresql://...")] = "smartsla-index.db",
    factory_address: FactoryOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    confirmations: Annotated[int, typer.Option("--confirmations", min=0, help="Index only blocks this deep "
                                               "under the head.")] = 0,
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="First block to index (the factory's "
                                            "deployment block saves time on long chains).")] = 0,
    poll: Annotated[float, typer.Option("--poll", min=0.1, help="Seconds between indexer polls.")] = 2.0,
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="Allow this origin to call the "
                                                          "API from a browser (repeatable); none by default.")] = None,
    rate_limit: Annotated[float, typer.Option("--rate-limit", min=0, help="Requests a second per client IP "
                                              "(0: no limit).")] = 20.0,
    rate_burst: Annotated[int, typer.Option("--rate-burst", min=1, help="Burst size of the rate limit.")] = 60,
    read_token_env: Annotated[str | None, typer.Option("--read-token-env", metavar="VAR", help="Environment "
                                                       "variable holding a Bearer token that reads require "
                                                       "(default: public reads).")] = None,
    oracle_health_url: Annotated[str | None, typer.Option("--oracle-health-url", help="The oracle's /healthz URL "
                                                          "to include in /api/health.")] = None,
    oracle_metrics_url: Annotated[str | None, typer.Option("--oracle-metrics-url", help="The oracle's /metrics "
                                                           "URL: the running period's credit forecast.")] = None,
    spec: Annotated[list[Path] | None, typer.Option("--spec", help="A spec file or a folder of them (repeatable): "
                                                    "an agreement whose spec hash matches shows its scope and "
                                                    "exclusions on the dashboard.")] = None,
    corporate: Annotated[list[str] | None, typer.Option("--corporate", metavar="ADDRESS", help="A multi-level "
                                                        "agreement (CorporateAgreement) to index and show under "
                                                        "/corporate (repeatable).")] = None,
) -> None:
    """Index the factory's agreements and serve the REST API (/api, /docs) and the dashboard."""
    import uvicorn

    from ..addresses import parse_address
    from ..api.app import ApiSettings, create_app
    from ..index_store import IndexStore
    from ..indexer import Indexer
    from ..web.evidence_view import load_spec_scopes

    if rpc_url == EMBEDDED:
        raise BadInput("serve needs a chain that outlives it (--rpc-url http://...); try `smartsla demo --serve`")
    token = None
    if read_token_env:
        token = os.environ.get(read_token_env, "").strip()
        if len(token) < 16:
            raise BadInput(f"environment variable {read_token_env} must hold a token of at least 16 characters")
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        _console(stderr=True).print(f"[yellow]warning:[/] listening on {escape(host)} with public read access")
    try:
        addresses = [parse_address(a, "--corporate") for a in corporate or ()]
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    load_spec_scopes(tuple(map(str, spec or ())))  # a bad spec file is an error now, not a blank on a page
    if addresses:
        from ..corporate_index import spec_names

        spec_names(tuple(map(str, spec or ())))  # the multi-level ones too
    chain = _connect(rpc_url)
    factory = _factory(chain, factory_address)
    store = IndexStore.open(db)
    indexer = Indexer(chain, store, factory.address, start_block=from_block, confirmations=confirmations)
    settings = ApiSettings(rpc_url=rpc_url, cors_origins=tuple(cors_origin or ()), rate_limit_per_s=rate_limit,
                           rate_limit_burst=rate_burst, read_token=token, oracle_health_url=oracle_health_url,
                           oracle_metrics_url=oracle_metrics_url,
                           confirmations=confirmations, poll_s=poll, spec_files=tuple(map(str, spec or ())))
    corporate_index = None
    # Multi-level agreements: those named by --corporate, and every one the recorded
    # CorporateAgreementFactory creates (`smartsla deploy` records it).
    from web3 import Web3

    from .. import deployments
    from ..corporate import FACTORY_NAME as CORPORATE_FACTORY

    corp_factory = deployments.lookup(chain.chain_id, CORPORATE_FACTORY)
    if corp_factory and not chain.w3.eth.get_code(Web3.to_checksum_address(corp_factory)):
        corp_factory = None  # recorded for an earlier run of a dev chain with the same id
    if corporate or corp_factory:
        from ..corporate_index import CorporateIndex, CorporateIndexer, CorporateStore

        corp_store = CorporateStore(store.engine)
        corporate_index = CorporateIndex(corp_store, CorporateIndexer(chain, corp_store, addresses,
                                                                      start_block=from_block,
                                                                      confirmations=confirmations,
                                                                      lock=indexer.lock, factory=corp_factory))
    web_app = create_app(store, settings=settings, chain=chain, indexer=indexer, run_indexer=True,
                         corporate=corporate_index)
    console = _console()
    console.print(f"Indexing factory [cyan]{factory.address}[/] on chain id {chain.chain_id} into {escape(db)}")
    console.print(f"Dashboard http://{host}:{port}/  ·  API docs http://{host}:{port}/docs")
    uvicorn.run(web_app, host=host, port=port, log_level="warning")
