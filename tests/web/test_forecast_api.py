"""The credit forecast in the API: the running period read from the oracle's /metrics over real
HTTP, forecast with the indexed terms, the same numbers as the oracle's gauges, and the budget
in words; every way the oracle can be missing is said, not hidden."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from forecast_helpers import RunningCollector, oracle_metrics, running_gauges, scenario
from web_helpers import free_port, serve

from smartsla.api.app import ApiSettings, create_app
from smartsla.api.oracle_feed import FeedError, parse_running
from smartsla.api.views import terms_of
from smartsla.presentation import duration_words
from smartsla.web.demo_serve import DemoServer


def _app(demo_server: DemoServer, url: str | None):  # noqa: ANN202 - FastAPI
    return create_app(demo_server.store, settings=ApiSettings(oracle_metrics_url=url, rate_limit_per_s=0))


@pytest.fixture(scope="module")
def live(demo_server: DemoServer) -> Iterator[tuple[str, dict, dict]]:
    """(API base URL, the oracle's gauges by service, the forecasts) with the oracle serving."""
    row = demo_server.store.agreement(demo_server.live_agreement)
    rows, forecasts = scenario(terms_of(row), demo_server.live_agreement)
    with oracle_metrics(rows) as metrics_url, serve(_app(demo_server, metrics_url)) as base:
        yield base, {service: gauges for _, service, gauges in rows}, forecasts


def test_forecast_equals_the_oracle_metrics_and_says_the_budget_in_words(live, demo_server: DemoServer):
    base, gauges, _ = live
    body = requests.get(f"{base}/api/agreements/{demo_server.live_agreement}/forecast", timeout=10).json()
    by = {s["service"]: s for s in body["services"]}
    for name in ("compute", "storage"):
        s, g = by[name], gauges[name]
        assert s["available"] is True
        assert s["value_so_far_value"] == g["value_ppm"] and s["projected_value"] == g["projected_ppm"]
        assert s["budget_left_seconds"] == g["budget_left_seconds"]
        assert float(s["projected_credit"]) == g["projected_credit"]
        assert (s["projected_tier"] or 0) - 1 == g["projected_tier"] and (s["next_tier"] or 0) - 1 == g["next_tier"]
        assert s["period"] == 2 and s["oracle"]["remaining_seconds"] == g["remaining_seconds"]
        assert s["oracle_agrees"] is True and s["reason"] is None
    # compute: 1 h down in 12 days. The 10 % tier (99.99 %) is certain: the 30 days allow 259.2 s.
    # Before 99.0 %: good + remaining - 0.99 x 30 days = 1,033,200 + 1,555,200 - 2,566,080 = 22,320 s.
    c = by["compute"]
    assert c["value_so_far"] == "99.6527%"  # rounded down, like the report
    assert (c["value_so_far_value"], c["unit"]) == (996_527, "ppm")
    assert c["projected_tier"] == 1 and c["projected_tier_credit_bps"] == 1_000
    assert c["budget_left_seconds"] == 22_320
    assert c["budget_words"] == "the 10 % tier is already certain; 6 hours 12 minutes of downtime left before " \
        "the 30 % tier"
    assert c["projected_credit"] == str(75 * 10**15)  # 1.5 ETH x 50 % weight x 10 %
    # storage: 0.1 % of 30 days = 2,592 s, in whole minutes: 2,580 s = 43 minutes.
    s = by["storage"]
    assert s["value_so_far"] == "100.0000%" and s["projected_tier"] is None and s["projected_credit"] == "0"
    assert s["budget_words"] == "43 minutes of downtime left before the 10 % tier"
    assert by["api"]["available"] is False and "no running period" in by["api"]["reason"]


def test_without_oracle_or_with_a_broken_one_the_reason_is_said(demo_server: DemoServer):
    address = demo_server.live_agreement
    with serve(_app(demo_server, None)) as base:
        body = requests.get(f"{base}/api/agreements/{address}/forecast", timeout=10).json()
        assert body["source"] is None and all(not s["available"] for s in body["services"])
        assert "--oracle-metrics-url" in body["services"][0]["reason"]
    dead = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens there
    with serve(_app(demo_server, dead)) as base:
        body = requests.get(f"{base}/api/agreements/{address}/forecast", timeout=10).json()
        assert "unreachable" in body["error"] and "unreachable" in body["services"][0]["reason"]
        page = requests.get(f"{base}/agreements/{address}", timeout=10)
        assert page.status_code == 200 and "unreachable" in page.text  # the page still renders
        other = requests.get(f"{base}/api/agreements/0x{'1' * 40}/forecast", timeout=10)
        assert other.status_code == 404


def test_parser_reads_what_prometheus_client_writes_like_prometheus_client_reads_it():
    """Our fast line reader against the reference parser, on a real exposition with escapes."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from smartsla.demo import demo_terms
    from smartsla.forecast import forecast

    terms = demo_terms("0x" + "ab" * 20, "0x" + "cd" * 20, "0x" + "ef" * 20, 1_900_000_000)
    f = forecast(terms, 0, 2, terms.period_start(2) + 86_400 * 12, 1_033_200, 3_600)
    collector = RunningCollector()
    collector.rows = [(f"0x{i:040X}", name, running_gauges(f)) for i in range(50)
                      for name in ("compute", 'we"ird\\name\nx')]
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    reference = {(s.labels["agreement"].lower(), s.labels["service"]): None
                 for fam in text_string_to_metric_families(text) for s in fam.samples}
    parsed = parse_running(text)
    assert set(parsed) == set(reference) and len(parsed) == 100
    assert parsed[("0x" + "0" * 40, 'we"ird\\name\nx')].good_s == 1_033_200


def test_parser_refuses_what_is_not_the_exposition_format_and_drops_incomplete_series():
    with pytest.raises(FeedError, match="HTML"):
        parse_running("<html>not metrics</html>\n{")
    with pytest.raises(FeedError, match="cannot read the sample line"):
        parse_running('smartsla_oracle_period_period{agreement=0xAB,service="s"} 1\n')
    with pytest.raises(FeedError, match="not a sample value"):
        parse_running('smartsla_oracle_period_period{agreement="0xAB",service="s"} one\n')
    text = ('smartsla_oracle_period_period{agreement="0xAB",service="s"} 1\n'
            'smartsla_oracle_period_good_seconds{agreement="0xAB",service="s"} 60\n')
    assert parse_running(text) == {}  # inputs missing: no forecast rather than a wrong one
    full = text + "".join(f'smartsla_oracle_period_{n}{{agreement="0xAB",service="s"}} {v}\n' for n, v in
                          (("bad_seconds", 0), ("excluded_seconds", 0), ("unmeasured_seconds", 0),
                           ("remaining_seconds", "NaN")))
    assert parse_running(full) == {}  # a NaN is not a number of seconds


def test_an_oracle_following_other_terms_is_flagged(demo_server: DemoServer):
    """The oracle's own figures are compared with the forecast from the indexed terms: an oracle
    whose gauges disagree (other terms, another agreement's numbers) is named, not trusted."""
    row = demo_server.store.agreement(demo_server.live_agreement)
    rows, _ = scenario(terms_of(row), demo_server.live_agreement)
    rows[0][2]["budget_left_seconds"] += 60  # one slice more than the indexed terms allow
    with oracle_metrics(rows) as url, serve(_app(demo_server, url)) as base:
        body = requests.get(f"{base}/api/agreements/{demo_server.live_agreement}/forecast", timeout=10).json()
    compute = body["services"][0]
    assert compute["oracle_agrees"] is False and "budget_left_seconds 22380 (here 22320)" in compute["reason"]
    assert body["services"][1]["oracle_agrees"] is True


def test_duration_words():
    assert duration_words(23 * 60) == "23 minutes"
    assert duration_words(2 * 86_400 + 3 * 3_600 + 60) == "2 days 3 hours"
    assert duration_words(61) == "1 minute 1 second" and duration_words(0) == "0 seconds"


def test_latency_service_forecast_from_the_oracles_gauges():
    """A latency service: the oracle's real collector exports the percentile so far and the slow
    checks left; the API reads that text and recomputes tier and credit from the terms."""
    from prometheus_client import generate_latest

    from oracle.metrics import OracleMetrics
    from smartsla.api.views import forecast_json
    from smartsla.forecast import forecast_latency
    from smartsla.terms import Kind, Service, Terms, Tier

    lat = Service(name="lat", kind=Kind.latency, objective=200, weight_bps=10_000,
                  tiers=(Tier(threshold=300, credit_bps=1_000), Tier(threshold=500, credit_bps=3_000)))
    terms = Terms(provider="0x" + "22" * 20, customer="0x" + "33" * 20, oracle="0x" + "44" * 20, start=0,
                  period_length=3_600, period_count=2, fee_per_period=10**18, collateral=0, slice_seconds=60,
                  services=(lat,))
    address = "0x" + "ab" * 20
    row = {"address": address, "created_tx": "0x01", "terms": terms.model_dump(mode="json")}
    m = OracleMetrics()
    # 38 checks at 250 ms, 2 at 350 ms: p95 = rank 38 -> 250 ms, above the 200 ms objective, within 300 ms
    f = forecast_latency(terms, 0, 1, 3_600 + 1_200, [250.0] * 38 + [350.0] * 2, 95, good_s=1_200)
    m.running.publish([(address, "lat", f, 18)])
    data = parse_running(generate_latest(m.registry).decode())
    (s,) = forecast_json(row, data, None, "test")["services"]
    assert s["available"] is True and s["reason"] is None and s["oracle_agrees"] is True
    assert s["value_so_far"] == "250 ms" and s["projected_tier"] is None and s["projected_credit"] == "0"
    assert (s["value_so_far_value"], s["projected_value"], s["unit"]) == (250, 250, "ms")  # not ppm
    assert s["next_tier"] == 1 and s["slow_checks_left"] == 100 * 38 // 95 - 40 == 0
    assert s["budget_words"] == "0 more slow checks (above 300 ms, none faster) before the 10 % tier"
    assert s["now"] == 3_600 + 1_200
    # one more slow check: p95 = 350 ms -> the 10 % tier, 0.1 ETH; next the 30 % tier (all <= 500 ms)
    g = forecast_latency(terms, 0, 1, 3_600 + 1_260, [250.0] * 38 + [350.0] * 3, 95)
    m.running.publish([(address, "lat", g, 18)])
    (s,) = forecast_json(row, parse_running(generate_latest(m.registry).decode()), None, "test")["services"]
    assert s["projected_tier"] == 1 and s["projected_credit"] == str(10**17) and s["next_tier"] == 2
    assert s["slow_checks_left"] == 100 * 41 // 95 - 41 == 2
    assert s["budget_words"] == "the 10 % tier is reached; 2 more slow checks (above 500 ms, none faster) before " \
        "the 30 % tier"


def test_every_figure_in_the_json_says_its_unit():
    """Issue 13 item 4: the objective, tier thresholds and settled values carry ms for a latency
    service and ppm for the others; the JSON names them without a unit and says it in `unit`."""
    from smartsla.api.views import terms_json
    from smartsla.presentation import period_services
    from smartsla.terms import Kind, Service, Terms, Tier

    lat = Service(name="lat", kind=Kind.latency, objective=200, weight_bps=5_000,
                  tiers=(Tier(threshold=300, credit_bps=1_000),))
    up = Service(name="up", objective=999_000, weight_bps=5_000, tiers=(Tier(threshold=999_000, credit_bps=1_000),))
    terms = Terms(provider="0x" + "22" * 20, customer="0x" + "33" * 20, oracle="0x" + "44" * 20, start=0,
                  period_length=3_600, period_count=2, fee_per_period=10**18, collateral=0, slice_seconds=60,
                  services=(lat, up))
    services = terms_json(terms)["services"]
    assert [(s["objective"], s["unit"], s["tiers"][0]["threshold"]) for s in services] == [
        (200, "ms", 300), (999_000, "ppm", 999_000)]
    assert not any(k.endswith("_ppm") for s in services for k in s)
    out = period_services(terms, [350, 998_000], [1, 2])
    assert [(s["objective_value"], s["measured_value"], s["unit"], s["measured"]) for s in out] == [
        (200, 350, "ms", "350 ms"), (999_000, 998_000, "ppm", "99.8000%")]
