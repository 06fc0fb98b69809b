"""Prometheus rules from an agreement spec: SLI recording rules, burn-rate alerts, credit at risk.

`smartsla rules SPEC` writes one rule group per availability or latency service. The SLI comes
from the oracle's own metrics (the ones the daemon serves on /metrics, `oracle.metrics`):

* **SLI** — the error ratio of the oracle's checks over each window `w`:
  `smartsla:sli_error:ratio_rate<w> = rate(check_failures) / rate(checks)` by agreement and
  service. It counts checks, where the contract counts slices: close enough to see a burn early,
  and the settled figure stays the oracle's slice count. For a latency service a "failure" is
  a check that failed or took longer than the objective (`smartsla_oracle_checks_slow_total`),
  and its error budget is the share of checks the percentile lets through: a p95 objective
  holds while at most 5 % of the checks are slower. Their credit at risk comes from the
  oracle's running percentile gauges (below).
  A service the oracle measures through Prometheus (its `prometheus:` probe in the oracle's
  configuration, `smartsla rules --oracle-config`) takes its SLI from that query instead: the
  share of slices the oracle would judge bad, `avg_over_time(max(query <= bool threshold)[w:slice])`.
  The daemon evaluates that query over the elapsed period for its running-period gauges
  (oracle.running, at most every 30 s), so their credit-at-risk alerts work like the others'.
* **Burn-rate alerts** (the SRE workbook's multi-window, multi-burn-rate table). The workbook's
  factors are for a 30-day SLO window: burning 2 % of the budget in 1 h (factor 14.4), 5 % in 6 h
  (6), 10 % in 1 d (3) and 10 % in 3 d (1). An SLA's period IS its SLO window, so each factor is
  `budget share x period / long window` with the agreement's SHORTEST period (a calendar month
  counts as its shortest month; shorter periods give lower factors, i.e. earlier alerts). Pairs
  whose long window exceeds the period are left out. Each long window is paired with a short one
  (1/12 of it) so the alert stops soon after the burn does:

  ======== ============ ============ ============= ========
  alert    long window  short window budget spent  severity
  ======== ============ ============ ============= ========
  fast     1h           5m           2 %           page
  fast     6h           30m          5 %           page
  slow     1d           2h           10 %          ticket
  slow     3d           6h           10 %          ticket
  ======== ============ ============ ============= ========

* **Credit at risk**, one alert per credit tier (availability services): fires when, at the burn
  of the last `credit window` (1h; shorter for periods under a day), the period will END below
  the tier's threshold, while the tier is not yet certain. From the running period the oracle
  exports (`smartsla_oracle_period_*`, computed by smartsla.forecast):
  `bad + burn x remaining > (1 - threshold) x (good + bad + remaining)` and
  `bad <= (1 - threshold) x (good + bad + remaining)`. The labels carry the tier; the
  annotations the threshold, the credit share and the credit amount in the agreement's asset
  (one service's credit before the collateral limit; the agreement's per-period cap applied).

* **Credit at risk for latency services**, one alert per tier: the figure is a percentile of
  the whole period, so the oracle exports the budget in checks, `slow_checks_left` (the further
  checks slower than `next_tier`'s bound the period's percentile takes before crossing it,
  smartsla.forecast.forecast_latency). Its slope over the credit window is the net rate that
  budget is spent at (a slow check spends one, a fast one gives back 100/p - 1); the alert fires
  when `slow_checks_left + slope x remaining < 0` (the period ends above the bound at that rate)
  while `next_tier` is the alert's tier, i.e. before it is crossed. Only the next tier can fire,
  and a window in which `next_tier` or the period changed is not trusted (the gauge jumps), so
  after such a change the alert waits one credit window. Annotations as for availability.

A multi-level (corporate) spec records each service's SLI once and gives every department its own
alerts (its objective, weights, fee and cap), labelled `department`, from the running-period
gauges the oracle daemon exports for the corporate services (oracle.corporate).

Every expression is grouped `by (agreement, service)`: one rule file serves every agreement an
oracle measures for that service name; `agreement=ADDRESS` narrows it to one.
Output is deterministic (same spec, same bytes) and `promtool check rules` clean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import yaml

from .corporate import CorporateSpec, CorporateTerms
from .spec import AgreementSpec
from .terms import Kind, Service, Terms
from .units import BPS, PPM, bps_to_percent, ppm_to_percent

CHECKS = "smartsla_oracle_checks_total"
FAILURES = "smartsla_oracle_check_failures_total"
SLOW = "smartsla_oracle_checks_slow_total"  # latency services: failed or slower than the objective
PERIOD_METRIC = "smartsla_oracle_period_{}"  # gauges of oracle.metrics.RunningPeriodMetrics
BY = "agreement, service"
# a latency service's running gauges its credit-at-risk alerts read (recorded as smartsla:period_<name>)
LATENCY_GAUGES = ("slow_checks_left", "next_tier", "remaining_seconds", "period")
RECORDED_AS = {"period": "index"}  # smartsla:period_index, not smartsla:period_period
MONTH_30D = 30 * 86_400


@dataclass(frozen=True)
class BurnPair:
    long: str
    short: str
    budget_share: Decimal  # of the period's error budget spent over the long window
    severity: str
    alert: str


BURN_TABLE: tuple[BurnPair, ...] = (
    BurnPair("1h", "5m", Decimal("0.02"), "page", "SmartslaBudgetBurnFast"),
    BurnPair("6h", "30m", Decimal("0.05"), "page", "SmartslaBudgetBurnFast"),
    BurnPair("1d", "2h", Decimal("0.10"), "ticket", "SmartslaBudgetBurnSlow"),
    BurnPair("3d", "6h", Decimal("0.10"), "ticket", "SmartslaBudgetBurnSlow"),
)
WINDOWS: dict[str, int] = {"1m": 60, "5m": 300, "30m": 1800, "1h": 3600, "2h": 7200, "6h": 21_600,
                           "1d": 86_400, "3d": 259_200}


def seconds(window: str) -> int:
    return WINDOWS[window]


def shortest_period(terms: Terms) -> int:
    return min(terms.period_end(p) - terms.period_start(p) for p in range(terms.period_count))


def credit_window(terms: Terms) -> str:
    """The window whose burn the credit-at-risk alert projects: 1h, or for periods under a day
    the longest of 1m/5m/30m/1h that fits four times in the shortest period (at least 1m)."""
    period = shortest_period(terms)
    if period >= 86_400:
        return "1h"
    fits = [w for w in ("1m", "5m", "30m", "1h") if 4 * seconds(w) <= period]
    return fits[-1] if fits else "1m"


def burn_factor(pair: BurnPair, period: int) -> Decimal:
    """The workbook's factor for this pair and period length, rounded to 0.01 (14.4 for a
    30-day period over 1 h)."""
    return (pair.budget_share * period / seconds(pair.long)).quantize(Decimal("0.01"))


def _num(x: Decimal | float | int) -> str:
    """A PromQL number without float noise (0.0001, not 0.00009999999999998899)."""
    d = Decimal(str(x)).normalize()
    return format(d, "f")


def _selector(service: str, agreement: str | None) -> str:
    parts = [f'service="{service}"'] + ([f'agreement="{agreement}"'] if agreement else [])
    return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True)
class Context:
    """What the rules need beyond the terms: names and the asset's display."""

    name: str  # the agreement's name (metadata.name): rule group names
    symbol: str = "ETH"
    decimals: int = 18
    percentiles: tuple[tuple[str, int], ...] = ()  # latency service -> percentile of its objective
    # services the oracle measures through Prometheus: name -> (query, threshold, inclusive)
    sources: tuple[tuple[str, tuple[str, float, bool]], ...] = ()

    @classmethod
    def of(cls, spec: AgreementSpec) -> Context:
        asset = spec.spec.asset
        symbol, decimals = ("ETH", 18) if asset == "ETH" else (asset.symbol, asset.decimals)
        return cls(spec.metadata.name, symbol, decimals,
                   tuple((s.name, s.slo.percentile or 95) for s in spec.spec.services if s.slo.sli == "latency"))


def _amount(units: int, decimals: int) -> str:
    return _num(Decimal(units).scaleb(-decimals)) if units else "0"


def _prometheus_sli(source: tuple[str, float, bool], window: str, slice_seconds: int, service: str,
                    agreement: str | None) -> str:
    """The error ratio of a Prometheus-sourced service over `window`: the share of slices the
    oracle would judge bad (oracle.prometheus: good when the value is above the threshold, or
    at it with `inclusive`; with several series, bad when any is bad), sampled once a slice."""
    query, threshold, inclusive = source
    bad = f"max(({query}) {'<' if inclusive else '<='} bool {_num(threshold)})"
    expr = f'label_replace(avg_over_time(({bad})[{window}:{slice_seconds}s]), "service", "{service}", "", "")'
    if agreement:
        expr = f'label_replace({expr}, "agreement", "{agreement}", "", "")'
    return expr


def service_rules(ctx: Context, terms: Terms, index: int, agreement: str | None = None, *,
                  records: bool = True, department: str | None = None) -> dict[str, Any]:
    """The rule group of one service (recording rules first, then alerts). A department of a
    multi-level agreement gets alerts only (`records=False`, labelled with the department):
    its figure is the corporate service's, recorded once."""
    service = terms.services[index]
    sel = _selector(service.name, agreement)
    period = shortest_period(terms)
    cw = credit_window(terms)
    pairs = [p for p in BURN_TABLE if seconds(p.long) <= period]
    windows = sorted({w for p in pairs for w in (p.long, p.short)} | {cw}, key=seconds)
    availability = service.kind is Kind.availability
    bad_counter = FAILURES if availability else SLOW
    rules: list[dict[str, Any]] = []
    source = dict(ctx.sources).get(service.name)
    for w in windows if records else ():
        if source is not None:
            expr = _prometheus_sli(source, w, terms.slice_seconds, service.name, agreement)
        else:
            rate_f = f"sum by ({BY}) (rate({bad_counter}{sel}[{w}]))"
            rate_c = f"sum by ({BY}) (rate({CHECKS}{sel}[{w}]))"
            # a service that never failed has no failure series yet: count it as 0, not as unknown
            expr = f"({rate_f} or {rate_c} * 0) / {rate_c}"
        # the static `slo` label makes each service's rule distinct for promtool's duplicate check
        rules.append({"record": f"smartsla:sli_error:ratio_rate{w}", "expr": expr, "labels": {"slo": service.name}})
    if records:
        gauges = ("good_seconds", "bad_seconds", "remaining_seconds") if availability else LATENCY_GAUGES
        for name in gauges:
            rules.append({"record": f"smartsla:period_{RECORDED_AS.get(name, name)}", "labels": {"slo": service.name},
                          "expr": f"max by ({BY}) ({PERIOD_METRIC.format(name)}{sel})"})
    budget = Decimal(PPM - service.objective) / PPM
    if not availability:
        # p95 <= objective exactly when at most 5 % of the checks are slower than it
        budget = Decimal(100 - dict(ctx.percentiles).get(service.name, 95)) / 100
    ratio_sel = sel
    who = {"department": department} if department else {}
    alerts: list[dict[str, Any]] = []
    for pair in pairs:
        f = burn_factor(pair, period)
        limit = _num(f * budget)
        alerts.append({
            "alert": pair.alert,
            "expr": (f"smartsla:sli_error:ratio_rate{pair.long}{ratio_sel} > {limit}"
                     f" and smartsla:sli_error:ratio_rate{pair.short}{ratio_sel} > {limit}"),
            "labels": {"severity": pair.severity, "slo": service.name, **who, "long_window": pair.long,
                       "burn_factor": _num(f)},
            "annotations": {
                "summary": (f"{service.name}: error budget burning {_num(f)}x too fast over {pair.long} and "
                            f"{pair.short} ({_num(pair.budget_share * 100)} % of the period's budget in "
                            f"{pair.long})"),
                "objective": ppm_to_percent(service.objective) if availability else f"{service.objective} ms",
            },
        })
    if availability:
        symbol, decimals = ctx.symbol, ctx.decimals
        cap = terms.fee_per_period * terms.credit_cap_bps // BPS
        g, b, r = (f"smartsla:period_{n}_seconds{sel}" for n in ("good", "bad", "remaining"))
        for k, tier in enumerate(service.tiers):
            allowed = f"{_num(Decimal(PPM - tier.threshold) / PPM)} * ({g} + {b} + {r})"
            credit = min(terms.fee_per_period * service.weight_bps * tier.credit_bps // (BPS * BPS), cap)
            alerts.append({
                "alert": "SmartslaCreditAtRisk",
                "expr": (f"({b} + smartsla:sli_error:ratio_rate{cw}{ratio_sel} * {r}) > {allowed}"
                         f" and {b} <= {allowed}"),
                "labels": {"severity": "page", "slo": service.name, **who, "tier": str(k)},
                "annotations": {
                    "summary": (f"{service.name}: at the last {cw}'s burn the period ends below "
                                f"{ppm_to_percent(tier.threshold)}: credit tier {k} "
                                f"({bps_to_percent(tier.credit_bps)} of the fee) costs "
                                f"{_amount(credit, decimals)} {symbol}"),
                    "tier_threshold": ppm_to_percent(tier.threshold),
                    "credit_share": bps_to_percent(tier.credit_bps),
                    "credit_amount": f"{_amount(credit, decimals)} {symbol}",
                    "credit_base_units": str(credit),
                },
            })
    if not availability:
        alerts += _latency_credit_alerts(ctx, terms, service, sel, cw, who)
    if department:
        for a in alerts:  # the summary says whose money it is
            a["annotations"]["summary"] = f"{department}: " + a["annotations"]["summary"]
    name = f"smartsla-{ctx.name}-{department}-{service.name}" if department else f"smartsla-{ctx.name}-{service.name}"
    return {"name": name, "rules": rules + alerts}


def _latency_credit_alerts(ctx: Context, terms: Terms, service: Service, sel: str, cw: str,
                           who: dict[str, str]) -> list[dict[str, Any]]:
    """Credit at risk for a latency service, one alert per tier, from the oracle's running gauges
    (smartsla.forecast.forecast_latency): `slow_checks_left` (L) is the further slow checks the
    period's percentile takes before it crosses `next_tier`'s bound; each slow check spends one,
    each fast one gives back 100/p - 1. So the gauge's slope over the credit window is the rate
    the budget is spent at, net, for exactly that bound (failed checks and maintenance slices
    left out, as in the figure), and the alert fires when `L + slope x remaining < 0`: at the
    current rate the period ends above the bound. Only the next tier can fire (the harsher ones
    have no budget gauge). The slope is only trusted when `next_tier` and the period stayed the
    same over the whole window: the gauge jumps when either changes (a tier crossed, a new
    period), so after such a change the alert waits one credit window of history."""
    symbol, decimals = ctx.symbol, ctx.decimals
    cap = terms.fee_per_period * terms.credit_cap_bps // BPS
    left, nxt, rem, idx = (f"smartsla:period_{n}{sel}" for n in ("slow_checks_left", "next_tier",
                                                                   "remaining_seconds", "index"))
    alerts: list[dict[str, Any]] = []
    for k, tier in enumerate(service.tiers):
        credit = min(terms.fee_per_period * service.weight_bps * tier.credit_bps // (BPS * BPS), cap)
        alerts.append({
            "alert": "SmartslaCreditAtRisk",
            "expr": (f"({left} + deriv({left}[{cw}]) * {rem}) < 0 and {nxt} == {k}"
                     f" and changes({nxt}[{cw}]) == 0 and changes({idx}[{cw}]) == 0"),
            "labels": {"severity": "page", "slo": service.name, **who, "tier": str(k)},
            "annotations": {
                "summary": (f"{service.name}: at the last {cw}'s rate of slow checks the period's latency ends "
                            f"above {tier.threshold} ms: credit tier {k} ({bps_to_percent(tier.credit_bps)} of "
                            f"the fee) costs {_amount(credit, decimals)} {symbol}"),
                "tier_threshold": f"{tier.threshold} ms",
                "credit_share": bps_to_percent(tier.credit_bps),
                "credit_amount": f"{_amount(credit, decimals)} {symbol}",
                "credit_base_units": str(credit),
            },
        })
    return alerts


def generate(spec: AgreementSpec, agreement: str | None = None, services: Sequence[str] | None = None,
             sources: tuple[tuple[str, tuple[str, float, bool]], ...] = ()) -> dict[str, Any]:
    """The rule file as a mapping (`{"groups": [...]}`), one group per availability or latency
    service (satisfaction and composite services are not measured by the oracle). `sources`:
    services measured through Prometheus (see Context.sources)."""
    ctx = replace(Context.of(spec), sources=sources)
    return generate_for_terms(spec.to_terms(), ctx, agreement, services)


def generate_for_terms(terms: Terms, ctx: Context, agreement: str | None = None,
                       services: Sequence[str] | None = None) -> dict[str, Any]:
    """:func:`generate` from on-chain terms (e.g. `Agreement.terms`)."""
    groups = [service_rules(ctx, terms, i, agreement) for i, s in enumerate(terms.services)
              if s.kind in (Kind.availability, Kind.latency) and (services is None or s.name in services)]
    return {"groups": groups}


def generate_corporate(spec: CorporateSpec, agreement: str | None = None) -> dict[str, Any]:
    """Rules for a multi-level agreement: the SLI of each corporate service recorded once, then
    for every department its own burn-rate and credit-at-risk alerts (its objective overrides,
    weights, fee and cap, as `CorporateTerms.department_credit` computes them), labelled
    `department`."""
    corp = spec.to_terms()
    ctx = Context(spec.metadata.name)
    base = _terms_like(corp, corp.services, 0, corp.credit_cap_bps)
    groups = [service_rules(ctx, base, i, agreement) for i in range(len(corp.services))]
    for dep in corp.departments:
        services = []
        for i, service in enumerate(corp.services):
            tiers = service.tiers
            if dep.objectives[i]:  # the mildest tier moves with an overridden objective (department_credit)
                tiers = (tiers[0].model_copy(update={"threshold": dep.objectives[i]}), *tiers[1:])
            services.append(service.model_copy(update={"objective": dep.objectives[i] or service.objective,
                                                       "weight_bps": dep.weights_bps[i] or 1, "tiers": tiers}))
        terms = _terms_like(corp, tuple(services), dep.fee_per_period, dep.credit_cap_bps or corp.credit_cap_bps)
        for i in range(len(services)):
            if dep.service_mask & (1 << i):
                group = service_rules(ctx, terms, i, agreement, records=False, department=dep.name)
                groups.append(group)
    return {"groups": groups}


def _terms_like(corp: CorporateTerms, services: tuple[Service, ...], fee: int, cap_bps: int) -> Terms:
    """Terms carrying what the rules read of a department (schedule, services, fee, cap); not
    validated as an agreement (a department's weights need not sum to 100 %)."""
    return Terms.model_construct(start=corp.start, period_length=corp.period_length, period_count=corp.period_count,
                                 period_ends=(), fee_per_period=fee, credit_cap_bps=cap_bps, services=services,
                                 slice_seconds=60)


def render(rules: dict[str, Any]) -> str:
    """YAML text of a rule file (keys in generation order, same input same bytes). libyaml's
    emitter when PyYAML has it: 8x faster, same bytes (tests/test_rules.py checks)."""
    return yaml.dump(rules, Dumper=_DUMPER, sort_keys=False, width=10_000, allow_unicode=True)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
