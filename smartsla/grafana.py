"""A Grafana dashboard generated from an agreement spec (issue 14): SLI, budget burn, credit at
risk and credits, one row per service, over the oracle's metrics and the rules of smartsla.rules.

The JSON is importable as is (Dashboards > Import): a `__inputs` entry asks for the Prometheus
data source, and the `agreement` variable lists the agreements the oracle exports (`All` by
default). The numbers are the oracle's /metrics (smartsla.forecast), so they match the API.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .rules import BURN_TABLE, Context, burn_factor, credit_window, shortest_period
from .spec import AgreementSpec
from .terms import Kind
from .units import PPM

SCHEMA_VERSION = 38  # Grafana 10
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def _panel(pid: int, title: str, kind: str, x: int, y: int, w: int, h: int, targets: list[tuple[str, str]],
           unit: str, description: str, thresholds: list[tuple[float, str]] | None = None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in thresholds or []]
    return {
        "id": pid, "type": kind, "title": title, "description": description, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": {},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }


def dashboard(spec: AgreementSpec, agreement: str | None = None) -> dict[str, Any]:
    """The dashboard as a mapping (json.dumps it)."""
    terms = spec.to_terms()
    name = spec.metadata.name
    symbol = "ETH" if spec.spec.asset == "ETH" else spec.spec.asset.symbol
    period = shortest_period(terms)
    cw = credit_window(terms)
    percentiles = dict(Context.of(spec).percentiles)
    panels: list[dict[str, Any]] = []
    pid = 1
    y = 0
    for s in terms.services:
        if s.kind not in (Kind.availability, Kind.latency):
            continue
        sel = f'service="{s.name}", agreement=~"$agreement"'
        panels.append({"id": pid, "type": "row", "title": f"{s.name} ({s.kind.name})", "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
        pid += 1
        y += 1
        # a latency service's "good" check is one at or under the objective: p95 holds while 95 % are
        objective = s.objective / PPM if s.kind is Kind.availability else percentiles.get(s.name, 95) / 100
        budget = 1 - objective
        panels.append(_panel(pid, "SLI (share of good checks)", "timeseries", 0, y, 8, 8, [
            (f"1 - smartsla:sli_error:ratio_rate5m{{{sel}}}", "5m {{agreement}}"),
            (f"1 - smartsla:sli_error:ratio_rate1h{{{sel}}}", "1h {{agreement}}"),
        ] + ([(f"smartsla_oracle_period_value_ppm{{{sel}}} / 1e6", "period so far {{agreement}}")]
             if s.kind is Kind.availability else []),
            "percentunit", f"Objective {objective:.4%}", [(objective, "red")]))
        pid += 1
        pairs = [p for p in BURN_TABLE if int(p.long[:-1]) * {"h": 3600, "d": 86_400}[p.long[-1]] <= period]
        panels.append(_panel(pid, "Error budget burn rate", "timeseries", 8, y, 8, 8, [
            (f"smartsla:sli_error:ratio_rate{p.long}{{{sel}}} / {budget:.6g}", f"{p.long} {{{{agreement}}}}")
            for p in pairs], "x", "1x spends the period's budget exactly by its end; the alerts page at these "
            "factors: " + ", ".join(f"{burn_factor(p, period)}x over {p.long}" for p in pairs),
            [(float(burn_factor(p, period)), "red" if p.severity == "page" else "orange") for p in pairs[:1]]))
        pid += 1
        panels.append(_panel(pid, f"Credit at risk ({symbol})", "timeseries", 16, y, 8, 8, [
            (f"smartsla_oracle_period_projected_credit_units{{{sel}}}", "projected credit {{agreement}}"),
            (f"increase(smartsla_oracle_credit_reported_units{{{sel}}}[$__range])",
             "credits reported in range {{agreement}}"),
        ], "none", f"Credit the period's projection costs ({symbol}), and credits the oracle's settled "
            "figures implied", None))
        pid += 1
        y += 8
        if s.kind is Kind.availability:
            panels.append(_panel(pid, "Downtime left before the next credit tier", "stat", 0, y, 8, 4, [
                (f"smartsla_oracle_period_budget_left_seconds{{{sel}}}", "{{agreement}}")],
                "s", "smartsla.forecast: downtime the period can still take before the next tier is certain",
                [(0, "red")]))
            pid += 1
            panels.append(_panel(pid, "Figure so far / projected", "stat", 8, y, 8, 4, [
                (f"smartsla_oracle_period_value_ppm{{{sel}}} / 1e6", "so far {{agreement}}"),
                (f"smartsla_oracle_period_projected_ppm{{{sel}}} / 1e6", "projected {{agreement}}")],
                "percentunit", f"Tiers: {', '.join(f'< {t.threshold / 1e4:g}%' for t in s.tiers)}", None))
        else:
            panels.append(_panel(pid, "Slow checks left before the next credit tier", "stat", 0, y, 8, 4, [
                (f"smartsla_oracle_period_slow_checks_left{{{sel}}}", "{{agreement}}")],
                "none", "smartsla.forecast.forecast_latency: further checks slower than the next tier's bound "
                "the period's percentile takes before crossing it (no fast check assumed)", [(0, "red")]))
            pid += 1
            percentile = percentiles.get(s.name, 95)
            panels.append(_panel(pid, f"p{percentile} so far (ms)", "stat", 8, y, 8, 4, [
                (f"smartsla_oracle_period_value_ppm{{{sel}}}", "so far {{agreement}}")],
                "ms", f"Objective {s.objective} ms; tiers: "
                + ", ".join(f"> {t.threshold} ms" for t in s.tiers), [(float(s.objective) + 1, "red")]))
        pid += 1
        panels.append(_panel(pid, "Alerts", "table", 16, y, 8, 4, [
            (f'ALERTS{{alertname=~"Smartsla.*", alertstate="firing", {sel}}}', "{{alertname}} {{tier}}")],
            "none", f"Firing SmartslaBudgetBurn* and SmartslaCreditAtRisk alerts (credit window {cw})", None))
        pid += 1
        y += 4
    uid = "smartsla-" + hashlib.sha256(f"{name}/{agreement}".encode()).hexdigest()[:12]
    current = {"selected": True, "text": agreement or "All", "value": agreement or "$__all"}
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
                       {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
        "uid": uid, "title": f"smartsla: {spec.metadata.displayName or name}", "tags": ["smartsla", "sla"],
        "timezone": "utc", "editable": True, "schemaVersion": SCHEMA_VERSION, "version": 1,
        "refresh": "30s", "time": {"from": "now-24h", "to": "now"}, "graphTooltip": 1,
        "annotations": {"list": []}, "links": [],
        "templating": {"list": [{
            "name": "agreement", "label": "Agreement", "type": "query", "datasource": DS,
            "query": {"query": "label_values(smartsla_oracle_period_value_ppm, agreement)", "refId": "agreements"},
            "definition": "label_values(smartsla_oracle_period_value_ppm, agreement)",
            "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2, "current": current, "options": [],
            "sort": 1,
        }]},
        "panels": panels,
    }
