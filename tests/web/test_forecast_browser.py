"""The forecast on the dashboard, in a real browser (Debian's chromium driven by Playwright):
the agreement page shows the period so far, the budget in words and the projected credit with
the oracle's numbers. Screenshot: test-artifacts/forecast.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import launch, require_chromium
from forecast_helpers import oracle_metrics, scenario
from web_helpers import serve

from smartsla.api.app import ApiSettings, create_app
from smartsla.api.views import terms_of
from smartsla.presentation import fmt_amount
from smartsla.units import ppm_to_percent as pct
from smartsla.web.demo_serve import DemoServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser

require_chromium()

from playwright.sync_api import sync_playwright  # noqa: E402


def test_agreement_page_shows_the_forecast_with_the_oracle_numbers(demo_server: DemoServer) -> None:
    address = demo_server.live_agreement
    row = demo_server.store.agreement(address)
    rows, forecasts = scenario(terms_of(row), address)
    with oracle_metrics(rows) as url:
        app = create_app(demo_server.store, settings=ApiSettings(rate_limit_per_s=0, oracle_metrics_url=url))
        with serve(app) as base, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/agreements/{address}")
            card = page.locator("#forecast")
            assert card.is_visible()
            compute = card.locator('tr[data-service="compute"]')
            f = forecasts["compute"]
            assert compute.locator(".so-far").inner_text() == pct(f.value_so_far_ppm) == "99.6527%"
            assert compute.locator(".budget").inner_text() == ("the 10 % tier is already certain; 6 hours 12 "
                                                               "minutes of downtime left before the 30 % tier")
            assert compute.locator(".projected-credit").inner_text() == fmt_amount(f.projected_credit, row["asset"])
            assert "tier 1 (10.00%)" in compute.locator(".projected").inner_text()
            storage = card.locator('tr[data-service="storage"]')
            assert storage.locator(".budget").inner_text() == "43 minutes of downtime left before the 10 % tier"
            assert "no running period" in card.locator('tr[data-service="api"]').inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "forecast.png"
            card.screenshot(path=str(shot))
            page.screenshot(path=str(ARTIFACTS / "forecast-page.png"), full_page=True)
            assert shot.stat().st_size > 5_000
            browser.close()
