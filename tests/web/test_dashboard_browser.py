"""The dashboard in a real browser (Debian's chromium driven by Playwright, no browser download)
served by a real uvicorn after the demo's lifecycle: what a person sees. Screenshots go to
test-artifacts/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from browser_helpers import launch, require_chromium
from web_helpers import serve

from smartsla.web.demo_serve import DemoServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
RED, AMBER, GREEN = "rgb(209, 52, 47)", "rgb(224, 161, 6)", "rgb(47, 158, 90)"

pytestmark = pytest.mark.browser

require_chromium()

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def base_url(demo_server: DemoServer) -> Iterator[str]:
    with serve(demo_server.app) as url:
        demo_server.publish_evidence(url)  # as `smartsla demo --serve` does
        yield url
        demo_server.app.state.smartsla.settings.evidence_url = None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    hosts: list[str] = []
    pg.on("request", lambda req: hosts.append(urlparse(req.url).hostname or req.url))
    yield pg
    context.close()
    # Every asset is the app's own: nothing is fetched from anywhere but the server.
    assert set(hosts) <= {"127.0.0.1"}, hosts


def _shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def _cell(page: Page, service: str, period: int) -> Any:
    return page.locator(f'.service[data-service="{service}"] rect[data-period="{period}"]')


def _fill(locator: Any) -> str:
    return str(locator.evaluate("el => getComputedStyle(el).fill"))


def test_status_page_shows_outages_in_red_and_the_credits(page: Page, base_url: str,
                                                          demo_server: DemoServer) -> None:
    demo = demo_server.demo
    page.goto(f"{base_url}/agreements/{demo.agreement}")
    assert page.locator("h1").inner_text().startswith("Agreement")
    assert page.locator(".badge.terminated").is_visible()
    # Period 3: compute measured 94 % (below 95 %: the harshest tier) -> a red bar.
    outage = _cell(page, "compute", 3)
    assert outage.get_attribute("data-state") == "outage" and _fill(outage) == RED
    # Period 4: storage at 87.5 %, below the 90 % disaster threshold -> red too.
    assert _fill(_cell(page, "storage", 4)) == RED
    # Period 2: compute 98.6990 % (562 minutes down) earns the 30 % tier -> amber; period 0 met everywhere -> green.
    assert _fill(_cell(page, "compute", 2)) == AMBER
    assert _fill(_cell(page, "api", 0)) == GREEN
    assert "94.0000%" in outage.locator("title").text_content()
    # Credits: 0 + 0.075 + 0.3 + 0.75 (capped) + 0.615 = 1.74 ETH, all paid.
    assert page.locator("#credits-paid").inner_text() == "1.7400 ETH"
    assert page.locator("#credits-earned").inner_text() == "1.7400 ETH"
    assert page.locator("table.periods td.credit-paid").nth(3).inner_text().startswith("0.7500 ETH")
    assert page.locator("table.periods td.measured-share").nth(3).inner_text() == "99.8611%"
    assert page.get_by_text("Terminated under the disaster clause").is_visible()
    assert page.locator("svg.chart").count() == 2
    assert page.get_by_text("No maintenance window declared.").is_visible()
    _shot(page, "dashboard-agreement-terminated.png")


def test_live_agreement_shows_the_current_period(page: Page, base_url: str, demo_server: DemoServer) -> None:
    page.goto(f"{base_url}/agreements/{demo_server.live_agreement}")
    assert _fill(_cell(page, "compute", 1)) == RED  # 93 %: the harshest tier
    assert _fill(_cell(page, "storage", 1)) == AMBER  # 99.5 %: 10 %
    assert _cell(page, "compute", 2).get_attribute("data-state") == "current"
    assert _cell(page, "compute", 3).get_attribute("data-state") == "future"
    assert page.get_by_text("Period 2 of 6 in progress").is_visible()
    assert page.locator(".progress span").is_visible()
    assert page.locator("#owed-customer").inner_text() == "0.7500 ETH"
    # The demo oracle's evidence, served beside the dashboard and checked against the chain: both
    # settled periods verify, and period 1's compute strip shows its outage in red.
    cards = page.locator(".evidence-period")
    assert cards.count() == 2
    assert [cards.nth(i).get_attribute("data-outcome") for i in range(2)] == ["verified", "verified"]
    outage = page.locator('.evidence-period[data-period="1"] .evidence-service[data-service="compute"] rect')
    assert "down" in " ".join(str(outage.nth(i).get_attribute("class")) for i in range(outage.count()))
    _shot(page, "dashboard-agreement-live.png")


def test_customer_view_without_a_wallet_shows_the_cli_command(page: Page, base_url: str,
                                                             demo_server: DemoServer) -> None:
    customer = demo_server.demo.accounts["customer"]
    live = demo_server.live_agreement
    page.goto(f"{base_url}/customer/{customer}")
    assert page.locator("#owed-total").inner_text() == "0.7500 ETH"
    button = page.get_by_role("button", name="Withdraw 0.7500 ETH")
    assert button.count() == 1 and button.is_visible()
    assert page.get_by_text(f"smartsla withdraw {live} --keystore").first.is_visible()
    button.click()
    out = page.locator(f'.action[data-agreement="{live}"] pre.tx-out')
    out.get_by_text("No browser wallet").wait_for(timeout=10_000)
    text = out.inner_text()
    assert f"smartsla withdraw {live} --keystore" in text
    assert '"data": "0x3ccfd60b"' in text and f'"to": "{live}"' in text
    _shot(page, "dashboard-customer.png")


def test_customer_view_hands_the_transaction_to_a_browser_wallet(page: Page, base_url: str,
                                                                 demo_server: DemoServer) -> None:
    customer = demo_server.demo.accounts["customer"]
    live = demo_server.live_agreement
    # A stand-in EIP-1193 wallet that records what it is asked to send.
    page.add_init_script(f"""
        window.sent = [];
        window.ethereum = {{ request: async ({{method, params}}) => {{
            if (method === 'eth_requestAccounts') return ['{customer.lower()}'];
            if (method === 'eth_sendTransaction') {{ window.sent.push(params[0]); return '0x' + 'ab'.repeat(32); }}
            throw new Error('unexpected ' + method);
        }} }};
    """)
    page.goto(f"{base_url}/customer/{customer}")
    page.get_by_role("button", name="Withdraw 0.7500 ETH").click()
    page.get_by_text("Sent from your wallet").wait_for(timeout=10_000)
    (tx,) = page.evaluate("window.sent")
    assert tx["from"] == customer and tx["to"] == live and tx["data"] == "0x3ccfd60b" and tx["value"] == "0x0"
    assert int(tx["chainId"], 16) == demo_server.demo.chain_id


def test_provider_view_shows_exposure(page: Page, base_url: str, demo_server: DemoServer) -> None:
    page.goto(f"{base_url}/provider/{demo_server.demo.accounts['provider']}")
    # Live agreement: min(collateral left 3.25 ETH, 50 % x 1.5 ETH x 4 periods left) = 3 ETH.
    assert page.locator("#exposure-total").inner_text() == "3.0000 ETH"
    assert page.get_by_role("button", name="Withdraw 3.0000 ETH").is_visible()
    _shot(page, "dashboard-provider.png")


def test_bad_address_page_says_why(page: Page, base_url: str) -> None:
    response = page.goto(f"{base_url}/customer/0x1234")
    assert response is not None and response.status == 422
    assert page.get_by_text("0x followed by 40 hexadecimal digits").is_visible()
