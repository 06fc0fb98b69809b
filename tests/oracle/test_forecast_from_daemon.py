"""The dashboard's forecast from a real oracle daemon (issue 14's done-when): an Anvil chain with
an agreement, the daemon as a subprocess probing a local HTTP server that goes down, the indexer
and the API (a real uvicorn) reading the daemon's /metrics. The API's figures must be the
daemon's own (`oracle_agrees`: value so far, projection and budget from the same scrape) and
the page must show the budget in words before the period settles.

Needs the daemon's running-period metrics (oracle.running, helper D1's half of issue 14): the
module skips where they are not there yet."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import daemon_helpers
import httpx
import pytest
import uvicorn
from daemon_helpers import World, stop, wait_until
from service_helpers import ScheduledService

from smartsla.api.app import ApiSettings, create_app
from smartsla.index_store import IndexStore
from smartsla.indexer import Indexer
from smartsla.terms import Service, Tier

pytest.importorskip("oracle.running", reason="the daemon's running-period metrics are not in this tree yet")
pytestmark = pytest.mark.anvil

# the daemon rig's fixtures (daemon_helpers): a stateful Anvil, the World on it, the scheduled service
anvil, world, service = daemon_helpers.anvil, daemon_helpers.world, daemon_helpers.service


PERIOD = 60  # s, one-second slices
DOWN_AT = 10  # s into the period the service goes down
TIERS = (Tier(threshold=800_000, credit_bps=1_000), Tier(threshold=500_000, credit_bps=10_000))


@contextlib.contextmanager
def _serve(app, port: int) -> Iterator[str]:  # noqa: ANN001 - FastAPI
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_api_and_page_show_the_daemons_forecast_before_the_period_settles(
        world: World, service: ScheduledService, free_port: Callable[[], int], tmp_path: Path) -> None:
    oracle_port = free_port()
    agreement = world.agreement(period_length=PERIOD, period_count=1, start_in=10.0,
                                services=(Service(name="web", objective=950_000, tiers=TIERS),))
    terms = agreement.terms
    service.down = [(terms.start + DOWN_AT, terms.end + 3600)]
    store = IndexStore.open(str(tmp_path / "index.db"))
    Indexer(world.chain, store, world.factory.address).sync()
    proc = world.start(world.config(agreement.address, service.url, listen=f"127.0.0.1:{oracle_port}"))
    app = create_app(store, settings=ApiSettings(oracle_metrics_url=f"http://127.0.0.1:{oracle_port}/metrics",
                                                 rate_limit_per_s=0))
    try:
        world.wait_ready(before=terms.start)
        with _serve(app, free_port()) as base:
            url = f"{base}/api/agreements/{agreement.address}/forecast"
            seen: dict = {}

            def down_counted() -> bool:
                body = httpx.get(url, timeout=5).json()
                web = body["services"][0]
                seen.update(web)
                return bool(web["available"] and web["oracle"]["bad_seconds"] >= 3)

            wait_until(down_counted, terms.end - time.time(), "the outage in the forecast", world.log_text)
            assert time.time() < terms.end and agreement.snapshot().settled_periods == 0
            web = seen
            # the daemon's own value, projection and budget (same scrape) equal the API's
            assert web["oracle_agrees"] is True, web
            good, bad = web["oracle"]["good_seconds"], web["oracle"]["bad_seconds"]
            assert web["value_so_far_value"] == int(good * 1_000_000 // (good + bad))
            # tier 0 (80 %) allows 12 s of the 60: the budget is what is left of them
            assert web["next_tier"] == 1 and web["budget_left_seconds"] == 12 - bad
            assert web["budget_words"].endswith("of downtime left before the 10 % tier")
            page = httpx.get(f"{base}/agreements/{agreement.address}", timeout=5).text
            assert "This period so far" in page and "of downtime left before the 10 % tier" in page
    finally:
        stop(proc)
        store.close()
