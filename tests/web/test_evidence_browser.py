"""Issue 12 on the dashboard, in a real browser (Debian's chromium driven by Playwright): an
agreement settled on a real (embedded) chain with evidence roots; a local HTTP "oracle" on
127.0.0.1 serves the bundles. The page shows the spec hash, the method and (from the matching
spec file given to the server) the scope; period 0's strip has its red run where the outage was,
and is verified with the `smartsla verify` sentence; period 1's bundle was tampered with (one
slice flipped, every hash recomputed) and shows "mismatch"; period 2's bundle is not served and
shows "evidence not available". Screenshot: test-artifacts/evidence.png."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from browser_helpers import launch, require_chromium
from sla_helpers import make_terms
from web_helpers import serve

from oracle import evidence as ev
from smartsla.api.app import ApiSettings, create_app
from smartsla.chain import Chain
from smartsla.client import Agreement, Factory
from smartsla.index_store import IndexStore
from smartsla.indexer import Indexer
from smartsla.spec_hash import spec_hash_of_file

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
L, N = 60, 60  # one-minute slices, one-hour periods
HOUR = L * N

pytestmark = pytest.mark.browser

require_chromium()

from playwright.sync_api import sync_playwright  # noqa: E402


@contextlib.contextmanager
def oracle_endpoint(bundles: dict[str, bytes]) -> Iterator[str]:
    """GET /evidence/<agreement>/<period> -> the bytes kept under that path, 404 otherwise."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = bundles.get(self.path.lower())
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def bundle_for(ag: Agreement, chain: Chain, oracle: str, period: int, down: range,
               windows: list[tuple[int, int, int]]) -> ev.Bundle:
    t = ag.terms
    slices = {i: (i not in down, 20.0) for i in range(N)}
    rec = ev.build_record(chain_id=chain.chain_id, agreement=ag.address, period=period, start=t.period_start(period),
                          end=t.period_end(period), slice_seconds=L, index=0, name=t.services[0].name,
                          kind="availability", slices=slices, windows=windows)
    return ev.Bundle(oracle, (rec,))


def settle(ag: Agreement, chain: Chain, oracle: str, period: int, bundle: ev.Bundle) -> None:
    chain.mine_at(ag.terms.period_end(period) + 1)
    fig = ev.figure_from_record(bundle.records[0])
    ag.settle(period, [fig.value_ppm], fig.measured_ppm, bundle.root, oracle)


def test_the_page_draws_the_evidence_and_tells_verified_from_tampered(chain: Chain, factory: Factory,
                                                                     roles: dict[str, str], tmp_path: Path) -> None:
    spec_file = ROOT / "examples" / "aws-ec2-region.yaml"
    start = chain.now() + 60
    terms = make_terms(roles, start, period_length=HOUR, period_count=3, slice_seconds=L, collateral=3 * 10**18,
                       maintenance_notice=600, maintenance_budget=3_600, spec_hash=spec_hash_of_file(spec_file))
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    ag.declare_maintenance(start + 40 * L, start + 45 * L, roles["provider"])  # with notice: slices 40-44
    windows = [(k, w.start, w.end) for k, w in enumerate(ag.maintenance_windows())]
    oracle = roles["oracle"]
    honest = bundle_for(ag, chain, oracle, 0, range(10, 13), windows)  # the outage: slices 10-12
    settle(ag, chain, oracle, 0, honest)
    b1 = bundle_for(ag, chain, oracle, 1, range(30, 35), windows)
    settle(ag, chain, oracle, 1, b1)
    b2 = bundle_for(ag, chain, oracle, 2, range(0), windows)
    settle(ag, chain, oracle, 2, b2)
    # Period 1 as a forger serves it: slices 30-34 claimed up, every hash recomputed.
    doc = json.loads(ev.dumps_bundle(b1))
    doc["services"][0]["runs"] = [["up", N]]
    tampered = ev.parse_bundle({k: v for k, v in doc.items() if k != "root"} | {
        "services": [{k: v for k, v in s.items() if k not in ("recordHash", "counts")} for s in doc["services"]]})
    a = ag.address.lower()
    served = {f"/evidence/{a}/0": ev.dumps_bundle(honest).encode(),
              f"/evidence/{a}/1": ev.dumps_bundle(tampered).encode()}

    store = IndexStore.open(str(tmp_path / "index.db"))
    indexer = Indexer(chain, store, factory.address)
    indexer.sync()
    with oracle_endpoint(served) as oracle_url:
        app = create_app(store, settings=ApiSettings(rate_limit_per_s=0, oracle_metrics_url=f"{oracle_url}/metrics",
                                                     spec_files=(str(spec_file),)), chain=chain, indexer=indexer)
        with serve(app) as base, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/agreements/{ag.address}")
            card = page.locator("#evidence")
            card.scroll_into_view_if_needed()
            assert card.locator("#spec-hash").inner_text() == terms.spec_hash
            assert card.locator("#slice-seconds").inner_text().startswith("60 s")
            assert "force majeure" in card.locator("#scope-exclusions").inner_text()

            p0 = card.locator('.evidence-period[data-period="0"]')
            assert p0.locator(".verified").inner_text() == "✓ verified"
            strip = p0.locator("svg.evidence-strip")
            downs = strip.locator("rect.down")
            assert downs.count() == 1
            # slices [10, 13) of 60 on a 1000-wide strip: columns [166, 217)
            assert (downs.get_attribute("x"), downs.get_attribute("width")) == ("166", "51")
            box, svg_box = downs.bounding_box(), strip.bounding_box()
            assert box is not None and svg_box is not None
            assert abs((box["x"] - svg_box["x"]) / svg_box["width"] - 10 / 60) < 0.01
            assert abs(box["width"] / svg_box["width"] - 3 / 60) < 0.01
            assert strip.locator("rect.excluded").get_attribute("x") == str(40 * 1000 // 60)
            explanation = p0.locator(".explanation").inner_text()
            assert "52 of 55 measured minutes good; 3 down between" in explanation, explanation
            assert "5 excluded by window #0" in explanation and "→ 94.5454%" in explanation, explanation

            p1 = card.locator('.evidence-period[data-period="1"]')
            assert p1.locator(".mismatch").inner_text() == "✗ mismatch"
            assert p1.locator(".verified").count() == 0
            assert "committed on-chain" in p1.locator(".problem").first.inner_text()
            assert p1.locator("rect.down").count() == 0  # what the forger claims is drawn, and refused

            p2 = card.locator('.evidence-period[data-period="2"]')
            assert p2.locator(".unavailable").inner_text() == "evidence not available"
            ARTIFACTS.mkdir(exist_ok=True)
            card.screenshot(path=str(ARTIFACTS / "evidence.png"))
            browser.close()
    # The API's terms carry the hash and the method too.
    with serve(app) as base:
        got = httpx.get(f"{base}/api/agreements/{ag.address}").json()["terms"]
    assert (got["spec_hash"], got["slice_seconds"], got["min_measured_ppm"]) == (terms.spec_hash, L,
                                                                                 terms.min_measured_ppm)
    # Without an oracle URL the page says so plainly.
    app = create_app(store, settings=ApiSettings(rate_limit_per_s=0), chain=chain, indexer=indexer)
    with serve(app) as base:
        html = httpx.get(f"{base}/agreements/{ag.address}").text
    assert "Evidence not available: no oracle URL configured" in html
    assert "on-chain by hash only" in html  # no spec file given: the hash only
