"""Index rows shaped for the API and the dashboard (one place, so both say the same thing).

Everything here reads the index only; nothing touches the chain. Amounts are decimal strings of
the asset's smallest unit (wei for ETH): JSON numbers lose precision above 2**53.
"""

from __future__ import annotations

import json
import math
import time
from decimal import Decimal
from typing import Any

from ..forecast import Forecast, forecast, latency_outcome
from ..presentation import duration_words, fmt_amount, period_services, value_unit
from ..terms import Kind, Service, Terms
from ..units import BPS, PPM, ppm_to_percent
from .oracle_feed import RunningInputs, as_json, inputs_for

ACTIVE_LIKE = ("Pending", "Active")


_TERMS_CACHE: dict[tuple[str, str], Terms] = {}
_TERMS_CACHE_SIZE = 4096


def terms_of(row: dict[str, Any]) -> Terms:
    """The row's terms as a Terms model. Validating them is the costliest step of a page, and
    terms never change for a given creation transaction: cached by (address, creation tx)."""
    key = (row["address"], row["created_tx"])
    terms = _TERMS_CACHE.get(key)
    if terms is None:
        terms = Terms.model_validate(row["terms"])
        if len(_TERMS_CACHE) >= _TERMS_CACHE_SIZE:
            _TERMS_CACHE.clear()
        _TERMS_CACHE[key] = terms
    return terms


def chain_now(cursor: dict[str, Any] | None) -> int:
    """The chain's time: the head's timestamp as last seen by the indexer (dev chains travel in
    time, so wall-clock time would be wrong there)."""
    if cursor and cursor.get("head_timestamp"):
        seen_at = cursor.get("head_seen_at") or time.time()
        return int(cursor["head_timestamp"]) + max(0, int(time.time() - seen_at))
    return int(time.time())


def periods_left(row: dict[str, Any]) -> int:
    if row["status"] not in ACTIVE_LIKE:
        return 0
    return max(0, int(row["period_count"]) - int(row["settled_periods"]))


def exposure(row: dict[str, Any]) -> int:
    """The provider's worst case still to pay: min(collateral left, cap x fee x periods left).
    For an agreement still waiting for its collateral, the collateral it will deposit."""
    left = periods_left(row)
    collateral_left = int(row["collateral_escrowed"]) if row["collateral_deposited"] else (
        int(row["collateral"]) if row["status"] == "Pending" else 0)
    worst = int(row["fee_per_period"]) * int(row["credit_cap_bps"]) // BPS * left
    return min(collateral_left, worst)


def progress(row: dict[str, Any], now: int) -> dict[str, Any]:
    """Where the agreement stands in time: the current period so far and the next settlement
    (calendar periods have lengths of their own: always ask the terms)."""
    terms = terms_of(row)
    count, settled = int(row["period_count"]), int(row["settled_periods"])
    out: dict[str, Any] = {
        "chain_time": now, "periods_left": periods_left(row), "current_period": None,
        "current_period_start": None, "current_period_end": None, "elapsed_seconds": None,
        "elapsed_fraction": None, "next_settlement_at": None, "settlement_overdue": False, "ends_at": terms.end,
    }
    if row["status"] in ACTIVE_LIKE and settled < count:
        p = settled
        p_start, p_end = terms.period_start(p), terms.period_end(p)
        length = max(1, p_end - p_start)
        elapsed = min(max(0, now - p_start), length)
        out.update(current_period=p, current_period_start=p_start, current_period_end=p_end,
                   elapsed_seconds=elapsed, elapsed_fraction=round(elapsed / length, 4),
                   next_settlement_at=p_end, settlement_overdue=now > p_end)
    return out


def summary(row: dict[str, Any]) -> dict[str, Any]:
    terms = row["terms"]
    return {
        "address": row["address"], "provider": row["provider"], "customer": row["customer"],
        "asset": row["asset"], "status": row["status"], "settled_periods": row["settled_periods"],
        "period_count": row["period_count"], "period_length": row["period_length"], "start": row["start"],
        "fee_per_period": row["fee_per_period"], "collateral_escrowed": row["collateral_escrowed"],
        "fees_escrowed": row["fees_escrowed"], "owed_to_customer": row["owed_to_customer"],
        "owed_to_provider": row["owed_to_provider"], "credits_paid": row["credits_paid"],
        "disaster_occurred": row["disaster_occurred"], "created_block": row["created_block"],
        "services": [s["name"] for s in terms["services"]], "exposure": str(exposure(row)),
    }


def terms_json(terms: Terms) -> dict[str, Any]:
    return {
        "provider": terms.provider, "customer": terms.customer, "oracles": list(terms.oracles),
        "quorum": terms.quorum, "asset": terms.asset, "start": terms.start, "period_length": terms.period_length,
        "period_count": terms.period_count, "fee_per_period": str(terms.fee_per_period),
        "collateral": str(terms.collateral), "credit_cap_bps": terms.credit_cap_bps,
        "termination_ppm": terms.termination_ppm, "total_fees": str(terms.total_fees), "end": terms.end,
        "dispute_window": terms.dispute_window, "arbiter": terms.arbiter,
        "maintenance_notice": terms.maintenance_notice, "maintenance_budget": terms.maintenance_budget,
        "period_ends": list(terms.period_ends),
        # issue 12: the document's hash and the measurement method are part of the terms
        "spec_hash": terms.spec_hash, "slice_seconds": terms.slice_seconds, "min_measured_ppm": terms.min_measured_ppm,
        "services": [{"name": s.name, "kind": s.kind.name, "objective": s.objective, "unit": value_unit(s),
                      "weight_bps": s.weight_bps,
                      "latency_percentile": s.latency_percentile,
                      "tiers": [{"threshold": t.threshold, "credit_bps": t.credit_bps} for t in s.tiers]}
                     for s in terms.services],
    }


def snapshot_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("status", "settled_periods", "fees_deposited", "collateral_deposited",
                                "disaster_occurred", "fees_escrowed", "collateral_escrowed", "owed_to_customer",
                                "owed_to_provider", "pending_to_customer", "pending_to_provider", "pending_periods",
                                "snapshot_block")}


def totals_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("credits_earned", "credits_paid", "shortfall", "fees_earned",
                                "withdrawn_customer", "withdrawn_provider")} | {"exposure": str(exposure(row))}


def detail(row: dict[str, Any], now: int) -> dict[str, Any]:
    return {
        "address": row["address"], "factory": row["factory"], "created_block": row["created_block"],
        "created_tx": row["created_tx"], "created_timestamp": row["created_timestamp"],
        "terms": terms_json(terms_of(row)), "snapshot": snapshot_json(row), "totals": totals_json(row),
        "progress": progress(row, now),
    }


def period_json(prow: dict[str, Any], terms: Terms) -> dict[str, Any]:
    p = int(prow["period"])
    return {
        "period": p, "start": terms.period_start(p), "end": terms.period_end(p),
        "services": period_services(terms, prow["values_ppm"], prow["service_credits"]),
        "credit_paid": prow["credit_paid"], "fee_earned": prow["fee_earned"], "shortfall": prow["shortfall"],
        "disaster": prow["disaster"], "measured_ppm": int(prow["measured_ppm"]), "state": prow["state"],
        "final_after": prow["final_after"],
        "disputed_by": prow["disputed_by"], "resolved": prow["resolved"], "previous_credit": prow["previous_credit"],
        "block_number": prow["block_number"], "tx_hash": prow["tx_hash"], "timestamp": prow["timestamp"],
    }


def event_json(erow: dict[str, Any]) -> dict[str, Any]:
    return {k: erow[k] for k in ("id", "address", "agreement", "block_number", "block_hash", "tx_hash", "log_index",
                                 "name", "topic0", "args", "timestamp")}


def withdrawal_json(wrow: dict[str, Any]) -> dict[str, Any]:
    return {k: wrow[k] for k in ("party", "role", "amount", "block_number", "tx_hash", "log_index", "timestamp")}


def _number(value: int, latency: bool) -> str:
    return str(value) if latency else f"{Decimal(value) / 10_000:.4f}"


REPORT_COLUMNS = ("period", "period_start", "period_end", "service", "unit", "objective", "measured", "met",
                  "tier", "tier_credit_percent", "service_credit", "period_credit_paid", "period_shortfall",
                  "period_fee_earned", "disaster", "period_measured_percent", "period_state", "evidence_roots",
                  "good_slices", "down_slices", "excluded_slices", "unmeasured_slices")
# The slice counts come from the evidence bundle of the oracle the API knows (empty without one).
EVIDENCE_COUNTS = {"good_slices": "up", "down_slices": "down", "excluded_slices": "excluded",
                   "unmeasured_slices": "none"}


def evidence_roots(events: list[dict[str, Any]]) -> dict[int, str]:
    """period -> "oracle=root oracle=root" from indexed EvidenceCommitted events (docs/evidence.md)."""
    out: dict[int, list[str]] = {}
    for e in events:
        args = e["args"] if isinstance(e["args"], dict) else json.loads(e["args"])
        out.setdefault(int(args["period"]), []).append(f"{args['oracle']}={str(args['evidenceRoot']).lower()}")
    return {p: " ".join(v) for p, v in out.items()}


def report_rows(periods: list[dict[str, Any]], terms: Terms, roots: dict[int, str] | None = None,
                counts: dict[int, dict[str, dict[str, int]]] | None = None) -> list[dict[str, Any]]:
    """Compliance report: one row per (period, service). Objective and measured value in percent
    to four decimals (ppm are exact there), or in milliseconds for latency services (`unit`);
    amounts in the asset's smallest unit; `evidence_roots`: each oracle's committed evidence root
    ("oracle=root", space separated), which `smartsla verify` checks the evidence against."""
    roots, counts = roots or {}, counts or {}
    rows = []
    for prow in periods:
        pj = period_json(prow, terms)
        for s in pj["services"]:
            latency = s["kind"] == "latency"
            rows.append({
                "period": pj["period"], "period_start": pj["start"], "period_end": pj["end"],
                "service": s["service"], "unit": "ms" if latency else "percent",
                "objective": _number(s["objective_value"], latency), "measured": _number(s["measured_value"], latency),
                "met": s["met"],
                "tier": s["tier"], "tier_credit_percent": f"{Decimal(s['tier_credit_bps']) / 100:.2f}",
                "service_credit": s["credit"], "period_credit_paid": pj["credit_paid"],
                "period_shortfall": pj["shortfall"], "period_fee_earned": pj["fee_earned"],
                "disaster": s["disaster"], "period_measured_percent": _number(pj["measured_ppm"], False),
                "period_state": pj["state"], "evidence_roots": roots.get(int(pj["period"]), ""),
                **{col: counts.get(int(pj["period"]), {}).get(s["service"], {}).get(state)
                   for col, state in EVIDENCE_COUNTS.items()},
            })
    return rows


# ---------------------------------------------------------------- the running period's forecast

def _tier_percent(bps: int) -> str:
    return f"{(Decimal(bps) / 100).normalize():f} %"


def budget_words(f: Forecast, service: Service) -> str:
    """The budget left in words: '23 minutes of downtime left before the 10 % tier'."""
    certain = f.next_tier if f.next_tier is not None else len(service.tiers)
    prefix = ""
    if certain:  # tiers milder than the next one are already certain: say so first
        prefix = f"the {_tier_percent(service.tiers[certain - 1].credit_bps)} tier is already certain; "
    if f.next_tier is None:
        return prefix + "no downtime budget left: the harshest tier is reached"
    tier = _tier_percent(service.tiers[f.next_tier].credit_bps)
    if f.budget_left_s > f.remaining_s:
        return prefix + f"the {tier} tier can no longer be reached this period"
    return prefix + f"{duration_words(f.budget_left_s)} of downtime left before the {tier} tier"


def latency_budget_words(service: Service, next_tier: int | None, tier: int | None, slow_left: int | None) -> str:
    """A latency budget in words: '12 more slow checks (above 300 ms) before the 10 % tier'."""
    prefix = ""
    if tier is not None:
        prefix = f"the {_tier_percent(service.tiers[tier].credit_bps)} tier is reached; "
    if next_tier is None:
        return prefix + "no latency budget left: the harshest tier is reached"
    t = service.tiers[next_tier]
    if slow_left is None:
        return prefix + f"the period's percentile is within the {_tier_percent(t.credit_bps)} tier's {t.threshold} ms"
    checks = "check" if slow_left == 1 else "checks"
    return prefix + (f"{slow_left} more slow {checks} (above {t.threshold} ms, none faster) before the "
                     f"{_tier_percent(t.credit_bps)} tier")


def _latency_json(terms: Terms, index: int, inputs: RunningInputs) -> dict[str, Any]:
    """A latency service's forecast: the oracle exports its figure (the percentile so far in whole
    ms, exact in a gauge) and the slow checks left, which need the latencies it alone holds; the
    tier and credit are recomputed here from the indexed terms (smartsla.forecast.latency_outcome)."""
    service = terms.services[index]
    reported = dict(inputs.reported)
    value = reported.get("value_ppm")
    if value is None or not math.isfinite(value) or value < 0 or value != int(value):
        return {"reason": "the oracle exports no latency figure for this service (an older oracle?)"}
    ms = int(value)
    tier, credit, next_tier = latency_outcome(terms, index, ms)
    left_raw = reported.get("slow_checks_left")
    slow_left = int(left_raw) if left_raw is not None and left_raw >= 0 else None
    now = terms.period_end(inputs.period) - int(inputs.remaining_s)
    differ = [f"projected_ppm {reported['projected_ppm']:g} (here {ms})"] \
        if reported.get("projected_ppm", ms) != ms else []
    return dict(
        available=True, oracle=as_json(inputs), period=inputs.period, period_start=terms.period_start(inputs.period),
        period_end=terms.period_end(inputs.period), now=now, value_so_far_value=ms, value_so_far=f"{ms} ms",
        objective=f"{service.objective} ms", unit="ms", projected_value=ms, projected=f"{ms} ms",
        projected_tier=None if tier is None else tier + 1,
        projected_tier_credit_bps=0 if tier is None else service.tiers[tier].credit_bps,
        projected_credit=str(credit), projected_credit_text=fmt_amount(credit, terms.asset),
        budget_left_seconds=None, next_tier=None if next_tier is None else next_tier + 1,
        slow_checks_left=slow_left, budget_words=latency_budget_words(service, next_tier, tier, slow_left),
        oracle_agrees=not differ,
        reason=None if not differ else "the oracle's own results differ: " + ", ".join(differ),
    )


def forecast_json(row: dict[str, Any], data: dict[tuple[str, str], RunningInputs] | None,
                  error: str | None, source: str | None) -> dict[str, Any]:
    """Per service of the agreement, the period in progress as the oracle measured it so far and
    smartsla.forecast's projection. Tier numbers as in /periods (1 = mildest, null = none)."""
    terms = terms_of(row)
    services = []
    for i, s in enumerate(terms.services):
        item: dict[str, Any] = {"service": s.name, "kind": s.kind.name, "available": False, "reason": None}
        inputs = None if data is None else inputs_for(data, row["address"], s.name)
        if s.kind not in (Kind.availability, Kind.latency):
            item["reason"] = f"only availability and latency services are forecast (this one is {s.kind.name})"
        elif data is None:
            item["reason"] = error or "no oracle metrics URL configured (smartsla serve --oracle-metrics-url)"
        elif inputs is None:
            item["reason"] = "the oracle exports no running period for this service (not probed by it, or " \
                             "outside the term)"
        elif not 0 <= inputs.period < terms.period_count:
            item["reason"] = f"the oracle's period {inputs.period} is outside this agreement's term"
        elif s.kind is Kind.latency:
            item.update(_latency_json(terms, i, inputs))
        else:
            now = terms.period_end(inputs.period) - int(inputs.remaining_s)  # the oracle's instant
            f = forecast(terms, i, inputs.period, now, inputs.good_s, inputs.bad_s, inputs.excluded_s,
                         inputs.unmeasured_s)
            tier = None if f.projected_tier is None else f.projected_tier + 1
            ours = {"value_ppm": f.value_so_far_ppm, "projected_ppm": f.projected_ppm,
                    "budget_left_seconds": f.budget_left_s}
            differ = [f"{k} {v:g} (here {ours[k]:g})" for k, v in inputs.reported if k in ours and v != ours[k]]
            item.update(
                available=True, oracle=as_json(inputs), period=f.period, period_start=f.period_start,
                period_end=f.period_end, now=f.now, value_so_far_value=f.value_so_far_ppm,
                value_so_far=ppm_to_percent(f.value_so_far_ppm), objective=ppm_to_percent(s.objective),
                unit="ppm", projected_value=f.projected_ppm, projected=ppm_to_percent(f.projected_ppm),
                projected_tier=tier,
                projected_tier_credit_bps=0 if tier is None else s.tiers[tier - 1].credit_bps,
                projected_credit=str(f.projected_credit),
                projected_credit_text=fmt_amount(f.projected_credit, terms.asset),
                budget_left_seconds=f.budget_left_s,
                next_tier=None if f.next_tier is None else f.next_tier + 1,
                budget_words=budget_words(f, s),
                oracle_agrees=None if not inputs.reported else not differ,
                reason=None if not differ else "the oracle's own results differ (it may follow other terms): "
                + ", ".join(differ),
            )
        services.append(item)
    return {"address": row["address"], "source": source, "error": error, "services": services}


__all__ = ["PPM", "summary", "detail", "period_json", "event_json", "report_rows"]
