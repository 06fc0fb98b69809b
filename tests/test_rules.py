"""smartsla rules / smartsla grafana: the rule file passes `promtool check rules`, and
`promtool test rules` shows the alerts doing their job on synthetic series: a fast burn pages
within 5 minutes, a slow burn tickets without paging, a healthy service stays silent, and credit
at risk fires while the tier is not yet crossed (and stops once it is certain).

promtool is Debian's (package prometheus). Missing, these tests skip on a developer machine and
FAIL under CI (CI=true), like tests/oracle's Prometheus tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from smartsla import grafana, rules
from smartsla.cli import app
from smartsla.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
EC2 = ROOT / "examples" / "aws-ec2-region.yaml"
A = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SVC = "ec2-region"


def promtool() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(path, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("promtool not found (CI: scripts/setup.sh should have installed the prometheus package)")
        pytest.skip("promtool not found: apt-get install prometheus")
    return path


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rules") / "ec2.rules.yml"
    result = CliRunner().invoke(app, ["rules", str(EC2), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_promtool_check_rules_accepts_the_generated_file(rule_file: Path) -> None:
    done = subprocess.run([promtool(), "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 17 rules found" in done.stdout


def test_output_is_deterministic_and_names_the_credit_in_the_asset() -> None:
    spec = load_spec(EC2)
    one, two = rules.render(rules.generate(spec)), rules.render(rules.generate(load_spec(EC2)))
    assert one == two
    # the C emitter (when PyYAML has it) writes the same bytes as the pure-Python one
    assert one == yaml.dump(rules.generate(spec), Dumper=yaml.SafeDumper, sort_keys=False, width=10_000,
                            allow_unicode=True)
    alerts = [r for g in rules.generate(spec)["groups"] for r in g["rules"] if r.get("alert") == "SmartslaCreditAtRisk"]
    assert [(a["labels"]["tier"], a["annotations"]["credit_amount"]) for a in alerts] == [
        ("0", "0.1 ETH"), ("1", "0.3 ETH"), ("2", "1 ETH")]
    # the workbook's 14.4 is for 30 days; a calendar month counts as its shortest (28 days)
    fast = [r for g in rules.generate(spec)["groups"] for r in g["rules"] if r.get("alert") == "SmartslaBudgetBurnFast"]
    assert [a["labels"]["burn_factor"] for a in fast] == ["13.44", "5.6"]


def test_cli_refuses_a_bad_agreement_address() -> None:
    result = CliRunner().invoke(app, ["rules", str(EC2), "--agreement", "0x1234"])
    assert result.exit_code == 2 and "--agreement" in result.output


# ---------------------------------------------------------------- promtool test rules
def _alerts(rule_file: Path, name: str) -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(rule_file.read_text())["groups"] for r in g["rules"] if r.get("alert") == name]


def expected(rule_file: Path, name: str, **match: str) -> list[dict[str, Any]]:
    """The alerts `name` whose static labels contain `match`, as promtool's exp_alerts."""
    out = []
    for rule in _alerts(rule_file, name):
        if all(rule["labels"].get(k) == v for k, v in match.items()):
            out.append({"exp_labels": {"agreement": A, "service": SVC, **rule["labels"]},
                        "exp_annotations": rule["annotations"]})
    return out


def run_promtool_test(rule_file: Path, tmp_path: Path, series: dict[str, str], cases: list[dict[str, Any]],
                      exprs: list[dict[str, Any]] | None = None) -> None:
    test = {
        "rule_files": [str(rule_file)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": f'{metric}{{agreement="{A}", service="{SVC}", instance="oracle:9100", '
                                        f'job="oracle"}}', "values": values} for metric, values in series.items()],
            "alert_rule_test": cases,
            **({"promql_expr_test": exprs} if exprs else {}),
        }],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=10_000))
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_fast_burn_pages_within_5_minutes_and_not_before(rule_file: Path, tmp_path: Path) -> None:
    # one check a second; healthy for an hour, then every check fails
    series = {"smartsla_oracle_checks_total": "0+60x120",
              "smartsla_oracle_check_failures_total": "0x60 60+60x60"}
    run_promtool_test(rule_file, tmp_path, series, [
        {"eval_time": "59m", "alertname": "SmartslaBudgetBurnFast", "exp_alerts": []},
        {"eval_time": "64m", "alertname": "SmartslaBudgetBurnFast",
         "exp_alerts": expected(rule_file, "SmartslaBudgetBurnFast")},
    ])


def test_slow_burn_tickets_without_paging(rule_file: Path, tmp_path: Path) -> None:
    # 0.05 % of checks fail: 5x the 99.99 % budget, under the page factors (13.44x, 5.6x)
    series = {"smartsla_oracle_checks_total": "0+2000x300", "smartsla_oracle_check_failures_total": "0+1x300"}
    run_promtool_test(rule_file, tmp_path, series, [
        {"eval_time": "4h", "alertname": "SmartslaBudgetBurnFast", "exp_alerts": []},
        {"eval_time": "4h", "alertname": "SmartslaBudgetBurnSlow",
         "exp_alerts": expected(rule_file, "SmartslaBudgetBurnSlow")},
    ])


def test_healthy_service_stays_silent(rule_file: Path, tmp_path: Path) -> None:
    # 0.005 % of checks fail (half the budget), the period is clean so far
    series = {"smartsla_oracle_checks_total": "0+20000x300", "smartsla_oracle_check_failures_total": "0+1x300",
              "smartsla_oracle_period_good_seconds": "864000+60x300", "smartsla_oracle_period_bad_seconds": "0x300",
              "smartsla_oracle_period_remaining_seconds": "1728000-60x300"}
    run_promtool_test(rule_file, tmp_path, series, [
        {"eval_time": t, "alertname": name, "exp_alerts": []}
        for t in ("30m", "4h") for name in ("SmartslaBudgetBurnFast", "SmartslaBudgetBurnSlow", "SmartslaCreditAtRisk")
    ])


def test_a_service_that_never_failed_has_an_error_ratio_of_zero_not_no_data(rule_file: Path, tmp_path: Path) -> None:
    # no failure series at all (I14-1): the SLI is 0 errors, so dashboards and alerts see it
    run_promtool_test(rule_file, tmp_path, {"smartsla_oracle_checks_total": "0+60x20"}, [], [
        {"expr": f"smartsla:sli_error:ratio_rate{w}", "eval_time": "10m",
         "exp_samples": [{"labels": f'smartsla:sli_error:ratio_rate{w}{{agreement="{A}", service="{SVC}", '
                                    f'slo="{SVC}"}}', "value": 0}]} for w in ("5m", "1h")])


def test_credit_at_risk_fires_before_the_tier_is_crossed(rule_file: Path, tmp_path: Path) -> None:
    # day 10 of a 30-day period, clean so far; then the service goes down for good. The 99.99 %
    # tier allows 259.2 s of downtime in the period: at 2 minutes down (120 s) it is not crossed
    # yet but the last hour's burn projects far past it (and past 99 %); at 6 minutes down it
    # is certain, so its alert stops and the harsher tiers are the ones at risk.
    series = {"smartsla_oracle_checks_total": "0+60x90",
              "smartsla_oracle_check_failures_total": "0x60 60+60x30",
              "smartsla_oracle_period_good_seconds": "864000+60x60 867600x30",
              "smartsla_oracle_period_bad_seconds": "0x60 60+60x30",
              "smartsla_oracle_period_remaining_seconds": "1731600-60x90"}
    run_promtool_test(rule_file, tmp_path, series, [
        {"eval_time": "59m", "alertname": "SmartslaCreditAtRisk", "exp_alerts": []},
        {"eval_time": "62m", "alertname": "SmartslaCreditAtRisk",
         "exp_alerts": expected(rule_file, "SmartslaCreditAtRisk", tier="0")
         + expected(rule_file, "SmartslaCreditAtRisk", tier="1")},
        {"eval_time": "66m", "alertname": "SmartslaCreditAtRisk",
         "exp_alerts": expected(rule_file, "SmartslaCreditAtRisk", tier="1")
         + expected(rule_file, "SmartslaCreditAtRisk", tier="2")},
    ])


def test_rules_for_a_short_period_project_over_a_short_window(tmp_path: Path) -> None:
    text = EC2.read_text().replace("    calendar: {unit: month, timeZone: UTC}\n", "    duration: 10m\n")
    spec_path = tmp_path / "short.yaml"
    spec_path.write_text(text.replace("budget: 48h", "budget: 1m"))
    generated = rules.generate(load_spec(spec_path))
    alerts = [r for g in generated["groups"] for r in g["rules"] if "alert" in r]
    # no burn pair fits a 10-minute period; credit at risk projects the last minute's burn
    assert {a["alert"] for a in alerts} == {"SmartslaCreditAtRisk"}
    assert all("ratio_rate1m" in a["expr"] for a in alerts)


# ---------------------------------------------------------------- Grafana
def test_grafana_dashboard_is_importable_json_with_the_panels() -> None:
    result = CliRunner().invoke(app, ["grafana", str(EC2)])
    assert result.exit_code == 0, result.output
    board = json.loads(result.output)
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time", "__inputs"):
        assert key in board, key
    assert board["schemaVersion"] >= 36 and board["__inputs"][0]["pluginId"] == "prometheus"
    titles = [p["title"] for p in board["panels"]]
    for want in ("SLI (share of good checks)", "Error budget burn rate", "Credit at risk (ETH)",
                 "Downtime left before the next credit tier"):
        assert want in titles
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24 and g["h"] > 0
        for t in p.get("targets", []):
            assert t["expr"] and t["refId"] and t["datasource"]["uid"] == "${DS_PROMETHEUS}"
    # every recorded series a panel reads is one the rules define or the oracle exports
    recorded = {r["record"] for g in rules.generate(load_spec(EC2))["groups"] for r in g["rules"] if "record" in r}
    for p in board["panels"]:
        for t in p.get("targets", []):
            for word in t["expr"].replace("(", " ").replace("{", " ").split():
                if word.startswith("smartsla:"):
                    assert word in recorded, word
    assert grafana.dashboard(load_spec(EC2)) == grafana.dashboard(load_spec(EC2))


def test_multi_level_spec_records_once_and_alerts_per_department(tmp_path: Path) -> None:
    out = tmp_path / "corp.rules.yml"
    result = CliRunner().invoke(app, ["rules", str(ROOT / "examples" / "multi-level-corporate.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    done = subprocess.run([promtool(), "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    groups = yaml.safe_load(out.read_text())["groups"]
    records = [r["record"] + r["labels"]["slo"] for g in groups for r in g["rules"] if "record" in r]
    assert len(records) == len(set(records))
    alerts = [r for g in groups for r in g["rules"] if r.get("alert") == "SmartslaCreditAtRisk"]
    credit = {(r["labels"]["department"], r["labels"]["slo"], r["labels"]["tier"]): r["annotations"]["credit_amount"]
              for r in alerts if "department" in r["labels"]}
    # finance: fee 2 ETH, ERP weight 70 %, objective overridden to 99.9 % (the mildest tier moves with it)
    assert credit[("finance", "erp", "0")] == "0.14 ETH" and credit[("finance", "erp", "1")] == "0.42 ETH"
    # sales has no ERP; its cap is the corporate 50 %: vpn 50 % x 20 % x 1 ETH = 0.1 ETH
    assert ("sales", "erp", "0") not in credit and credit[("sales", "vpn", "0")] == "0.1 ETH"
    finance_erp = next(r for g in groups for r in g["rules"] if r.get("alert") == "SmartslaCreditAtRisk"
                       and r["labels"].get("department") == "finance" and r["labels"]["slo"] == "erp")
    assert "0.001 * (" in finance_erp["expr"]  # 99.9 %: 0.1 % of the period may be down


def test_a_prometheus_sourced_service_takes_its_sli_from_the_oracles_query(tmp_path: Path) -> None:
    config = tmp_path / "oracle.yaml"
    config.write_text(yaml.safe_dump({
        "chain": {"rpc_url": "http://127.0.0.1:8545"}, "key": {"env": "K"}, "store": "sqlite:///x.db",
        "agreements": [{"address": A}],
        "services": {SVC: {"prometheus": {"url": "http://127.0.0.1:9090",
                                          "query": 'min_over_time(up{job="ec2"}[1m])', "threshold": 0.5},
                           "interval_s": 60}}}))
    out = tmp_path / "rules.yml"
    result = CliRunner().invoke(app, ["rules", str(EC2), "--oracle-config", str(config), "--agreement", A,
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    # up for 60 minutes, then down: a slice is bad when the query is <= 0.5 (oracle.prometheus);
    # at 75m the 30m subquery holds the 31 one-minute points 45m..75m (both ends, Prometheus 2.x),
    # 15 of them bad (61m..75m)
    test = {"rule_files": [str(out)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": 'up{job="ec2", instance="a"}', "values": "1x60 0x30"}],
        "promql_expr_test": [
            {"expr": "smartsla:sli_error:ratio_rate5m", "eval_time": "50m",
             "exp_samples": [{"labels": f'smartsla:sli_error:ratio_rate5m{{agreement="{A}", service="{SVC}", '
                                        f'slo="{SVC}"}}', "value": 0}]},
            {"expr": "round(smartsla:sli_error:ratio_rate30m * 31)", "eval_time": "75m",
             "exp_samples": [{"labels": f'{{agreement="{A}", service="{SVC}", slo="{SVC}"}}', "value": 15}]}],
        "alert_rule_test": [{"eval_time": "64m", "alertname": "SmartslaBudgetBurnFast",
                             "exp_alerts": [{"exp_labels": {"agreement": A, "service": SVC, **r["labels"]},
                                             "exp_annotations": r["annotations"]}
                                            for r in _alerts(out, "SmartslaBudgetBurnFast")]}],
    }]}
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=10_000))
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------- latency services: credit at risk
OFFICE = ROOT / "examples" / "customer-based-office.yaml"
WEBMAIL = "webmail-p95"  # p95 <= 300 ms; tier 0 above 300 ms (10 %), tier 1 above 1000 ms (30 %)


@pytest.fixture(scope="module")
def latency_rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rules") / "office.rules.yml"
    result = CliRunner().invoke(app, ["rules", str(OFFICE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def latency_expected(rule_file: Path, tier: str) -> list[dict[str, Any]]:
    out = [{"exp_labels": {"agreement": A, "service": WEBMAIL, **r["labels"]}, "exp_annotations": r["annotations"]}
            for r in _alerts(rule_file, "SmartslaCreditAtRisk")
            if r["labels"]["slo"] == WEBMAIL and r["labels"]["tier"] == tier]
    assert len(out) == 1, f"one credit-at-risk alert for tier {tier} of {WEBMAIL}, got {len(out)}"
    return out


def run_latency_test(rule_file: Path, tmp_path: Path, series: dict[str, str], cases: list[dict[str, Any]]) -> None:
    """`series`: the oracle's running gauges of the web mail service (smartsla_oracle_period_<name>)."""
    test = {"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": f'smartsla_oracle_period_{name}{{agreement="{A}", service="{WEBMAIL}", '
                                    f'instance="oracle:9100", job="oracle"}}', "values": values}
                         for name, values in series.items()],
        "alert_rule_test": cases}]}
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=10_000))
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_latency_rules_pass_promtool_and_carry_tier_and_amount(latency_rule_file: Path) -> None:
    done = subprocess.run([promtool(), "check", "rules", str(latency_rule_file)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = [r for r in _alerts(latency_rule_file, "SmartslaCreditAtRisk") if r["labels"]["slo"] == WEBMAIL]
    # fee 0.2 ETH (customer-based-office.yaml) x weight 15 % x tier credit, capped per period
    assert [(a["labels"]["tier"], a["annotations"]["tier_threshold"], a["annotations"]["credit_amount"])
            for a in alerts] == [("0", "300 ms", "0.03 ETH"), ("1", "1000 ms", "0.09 ETH")]


def test_latency_credit_at_risk_fires_before_the_tier_is_crossed(latency_rule_file: Path, tmp_path: Path) -> None:
    # 11.6 days left in the period; for an hour every check is fast (the budget of slow checks
    # before 300 ms grows), then the service turns slow: 5 slow checks a minute beyond the share
    # p95 lets through. Crossed at that rate in 400 minutes, so the period ends above 300 ms:
    # once the last hour's slope turns (regression over the window: ~24 minutes here) the alert
    # fires, while 1,800+ slow checks are still left (not crossed)
    series = {"slow_checks_left": "2000+2x60 2120-5x60", "next_tier": "0x120", "period": "3x120",
              "remaining_seconds": "1000000-60x120"}
    run_latency_test(latency_rule_file, tmp_path, series, [
        {"eval_time": "59m", "alertname": "SmartslaCreditAtRisk", "exp_alerts": []},
        {"eval_time": "78m", "alertname": "SmartslaCreditAtRisk", "exp_alerts": []},
        {"eval_time": "85m", "alertname": "SmartslaCreditAtRisk",
         "exp_alerts": latency_expected(latency_rule_file, "0")},
        {"eval_time": "119m", "alertname": "SmartslaCreditAtRisk",
         "exp_alerts": latency_expected(latency_rule_file, "0")},
    ])


def test_latency_credit_at_risk_is_silent_when_healthy_or_the_rate_cannot_cross(latency_rule_file: Path,
                                                                                 tmp_path: Path) -> None:
    # healthy: the budget grows. Slowly burning: 1 slow check a minute too many, 2,000 left and
    # 1,000 minutes to go: the period ends at or below 300 ms, no credit, no page.
    healthy = {"slow_checks_left": "500+3x180", "next_tier": "0x180", "period": "3x180",
               "remaining_seconds": "600000-60x180"}
    slow_burn = {"slow_checks_left": "2000-1x180", "next_tier": "0x180", "period": "3x180",
                 "remaining_seconds": "60000-60x180"}
    for series in (healthy, slow_burn):
        run_latency_test(latency_rule_file, tmp_path, series, [
            {"eval_time": t, "alertname": "SmartslaCreditAtRisk", "exp_alerts": []} for t in ("30m", "90m", "3h")])


def test_latency_credit_at_risk_ignores_the_jump_of_a_new_period_or_a_crossed_tier(latency_rule_file: Path,
                                                                                  tmp_path: Path) -> None:
    # a new period starts at 60m: its budget starts near 0 and grows (healthy), while the last
    # period's was 50,000: the slope across the jump is steeply negative, but no slow check came
    new_period = {"slow_checks_left": "50000x59 0+2x60", "next_tier": "0x120", "period": "3x59 4x60",
                  "remaining_seconds": "10000-60x59 2592000-60x60"}
    run_latency_test(latency_rule_file, tmp_path, new_period, [
        {"eval_time": t, "alertname": "SmartslaCreditAtRisk", "exp_alerts": []} for t in ("61m", "80m", "119m")])
    # the percentile came back under 1000 ms at 60m (fast checks): the next tier is 0 again and
    # its budget (a few checks) is far below tier 1's was: no slow check, no page
    recovered = {"slow_checks_left": "40000x59 5+2x60", "next_tier": "1x59 0x60", "period": "3x120",
                 "remaining_seconds": "1000000-60x120"}
    run_latency_test(latency_rule_file, tmp_path, recovered, [
        {"eval_time": t, "alertname": "SmartslaCreditAtRisk", "exp_alerts": []} for t in ("61m", "80m", "119m")])
    # tier 0 crossed at 60m: its alert stops; tier 1's budget (slow checks above 1000 ms) jumps
    # up and grows: silent. Then checks above 1000 ms arrive fast: tier 1 pages, after one window
    crossed = {"slow_checks_left": "300-5x59 40000+1x60 40060-500x60", "next_tier": "0x59 1x120",
               "period": "3x180", "remaining_seconds": "1000000-60x180"}
    run_latency_test(latency_rule_file, tmp_path, crossed, [
        {"eval_time": "50m", "alertname": "SmartslaCreditAtRisk",
         "exp_alerts": latency_expected(latency_rule_file, "0")},
        {"eval_time": "70m", "alertname": "SmartslaCreditAtRisk", "exp_alerts": []},
        {"eval_time": "170m", "alertname": "SmartslaCreditAtRisk",
         "exp_alerts": latency_expected(latency_rule_file, "1")},
    ])


def test_grafana_shows_a_latency_services_credit_at_risk() -> None:
    board = grafana.dashboard(load_spec(OFFICE))
    rows = [i for i, p in enumerate(board["panels"]) if p["type"] == "row"]
    start = next(i for i in rows if board["panels"][i]["title"] == f"{WEBMAIL} (latency)")
    end = next((i for i in rows if i > start), len(board["panels"]))
    mine = {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in board["panels"][start + 1:end]}
    assert any("smartsla_oracle_period_projected_credit_units" in e for e in mine["Credit at risk (ETH)"])
    assert any("smartsla_oracle_period_slow_checks_left" in e
               for e in mine["Slow checks left before the next credit tier"])
    assert any("smartsla_oracle_period_value_ppm" in e for e in mine["p95 so far (ms)"])
    assert any("SmartslaCreditAtRisk" in p["description"] for p in board["panels"][start + 1:end]
               if p["title"] == "Alerts")
