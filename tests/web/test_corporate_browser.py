"""The multi-level pages in a real browser (Debian's chromium driven by Playwright): the
organisation page lists every department with the payout address the contract holds and its
credits; the department page shows its compliance report; an action button returns the unsigned
transaction. Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser_helpers import launch, require_chromium
from corporate_web_helpers import PERIOD0, CorporateSite, build_site
from web_helpers import serve

from smartsla.presentation import fmt_amount

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.browser

require_chromium()

from playwright.sync_api import Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CorporateSite, str]]:
    s = build_site(tmp_path_factory.mktemp("corporate-browser"))
    with serve(s.app) as url:
        yield s, url
    s.store.close()


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        hosts: list[str] = []
        pg.on("request", lambda req: hosts.append(urlparse(req.url).hostname or req.url))
        yield pg
        context.close()
        browser.close()
    assert set(hosts) <= {"127.0.0.1"}, hosts  # nothing fetched from anywhere else


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def test_organisation_page_shows_departments_payouts_and_credits(site: tuple[CorporateSite, str],
                                                                  page: Page) -> None:
    s, url = site
    page.goto(f"{url}/corporate")
    page.locator(f'tr[data-agreement="{s.corporate.address}"] a').click()
    assert page.locator("h1").inner_text().startswith("Organisation agreement")
    assert page.locator(".badge.active").is_visible()
    rows = page.locator("table.departments tbody tr")
    assert rows.count() == 3
    f = s.corporate.contract.functions
    for i in range(3):
        row = page.locator(f'table.departments tr[data-department="{i}"]')
        assert row.locator("code.payout").inner_text() == f.department(i).call()[0]
    _, credit0 = s.terms.department_credit(0, PERIOD0)
    first = page.locator('table.departments tr[data-department="0"]')
    assert first.locator(".credits-paid").inner_text() == fmt_amount(credit0, s.terms.asset)
    assert first.locator(".owed").inner_text() == fmt_amount(credit0, s.terms.asset)
    assert page.locator("#pool").inner_text() == fmt_amount(s.corporate.status().collateral_pool, s.terms.asset)
    _shot(page, "corporate-organisation.png")


def test_department_page_compliance_report_and_withdraw_action(site: tuple[CorporateSite, str],
                                                                page: Page) -> None:
    s, url = site
    page.goto(f"{url}/corporate/{s.corporate.address}")
    page.locator('table.departments tr[data-department="0"] a').click()
    assert page.locator("h1").inner_text() == "Department 0: finance"  # named by the matching spec file
    payout = s.terms.departments[0].payout
    assert page.locator("#payout").inner_text() == payout
    period0 = page.locator('table.compliance tr[data-period="0"]')
    assert period0.get_attribute("data-status") == "settled"
    erp = period0.locator('td[data-service="erp"]')
    assert "99.85" in erp.inner_text() and "tier 1" in erp.inner_text()  # its own 99.9 % objective missed
    assert "st-outage" in (erp.get_attribute("class") or "")
    credits, total = s.terms.department_credit(0, PERIOD0)
    assert period0.locator(".credit").inner_text() == fmt_amount(total, s.terms.asset)
    assert page.locator('table.compliance tr[data-period="1"]').get_attribute("data-status") == "running"
    # No browser wallet here: the button shows the unsigned withdraw() from the payout address.
    box = page.locator('.action[data-action="withdraw"]')
    box.locator("button").click()
    out = box.locator(".tx-out")
    out.filter(has_text="unsigned transaction").wait_for(timeout=10_000)
    assert payout in out.inner_text() and s.corporate.address in out.inner_text()
    _shot(page, "corporate-department.png")


def test_department_page_refusal_names_the_contract_error(site: tuple[CorporateSite, str], page: Page) -> None:
    s, url = site
    page.goto(f"{url}/corporate/{s.corporate.address}/departments/1")
    box = page.locator('.action[data-action="settle"]')
    box.locator("input.from").fill(s.roles["stranger"])
    s.corporate.settle_department(1, 0, s.roles["stranger"])  # someone was faster: the index is stale
    box.locator("button").click()
    box.locator(".tx-out").filter(has_text="Refused").wait_for(timeout=10_000)
    assert "PeriodOutOfOrder(1, 0)" in box.locator(".tx-out").inner_text()
    assert page.goto(f"{url}/corporate/{s.corporate.address}/departments/9").status == 404
