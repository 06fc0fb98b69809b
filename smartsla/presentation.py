"""How smartsla shows things to people, in one place: the command line, the demo, the API's text
fields and the dashboard all format through here.

Times (UTC), durations, short addresses, measured values (percent or ms), amounts (exact, see
format_amount), and the status-page state of a settled period (operational, degraded, outage).
Conversions between percent and the contracts' units (ppm, bps) stay in smartsla.units.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Literal

from .credit import tier_credit_bps
from .terms import Kind, Terms
from .units import ppm_to_percent

__all__ = [
    "ETH_DECIMALS", "MIN_AMOUNT_DECIMALS", "duration_words", "fmt_amount", "fmt_days", "fmt_duration", "fmt_eth",
    "fmt_time", "format_amount", "measure", "period_services", "service_state", "short_address", "value_unit",
]

DAY = 86_400


# ---------------------------------------------------------------------------- time
@functools.lru_cache(maxsize=65_536)  # pure, and a dashboard page formats ~140 instants (period bounds)
def fmt_time(ts: int | None) -> str:
    """2027-01-05 02:00 UTC; '–' for no time."""
    if ts is None:
        return "–"
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_days(seconds: int) -> str:
    """30 days, or seconds when it is not a whole number of days (a period length)."""
    return f"{seconds // DAY} days" if seconds % DAY == 0 else f"{seconds} s"


def fmt_duration(seconds: int | None) -> str:
    """2 days / 1 d 3 h / 4 h 12 min / 7 min (a time until or since); '–' for none."""
    if seconds is None:
        return "–"
    seconds = int(seconds)
    days, rest = divmod(abs(seconds), DAY)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days and not hours and not minutes:
        text = f"{days} day{'s' if days != 1 else ''}"
    elif days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes} min"
    else:
        text = f"{minutes} min"
    return ("-" if seconds < 0 else "") + text


def duration_words(seconds: float) -> str:
    """2 days 3 hours / 23 minutes / 40 seconds: how people say a budget of downtime."""
    s = int(seconds)
    parts = []
    for unit, size in (("day", DAY), ("hour", 3_600), ("minute", 60), ("second", 1)):
        n, s = divmod(s, size)
        if n:
            parts.append(f"{n} {unit}{'s' if n != 1 else ''}")
        if len(parts) == 2:  # "2 days 3 hours": the rest is noise next to a budget
            break
    return " ".join(parts) or "0 seconds"


# ---------------------------------------------------------------------------- addresses and values
def short_address(address: str | None) -> str:
    """0x1234ab…cdef; '–' for none."""
    return "–" if not address else f"{address[:8]}…{address[-4:]}"


def value_unit(service: Any) -> Literal["ppm", "ms"]:
    """The unit of `service`'s objective, tier thresholds and measured values (a Service or its
    JSON): milliseconds for latency services, ppm for availability, satisfaction and composite."""
    kind = service.kind.name if hasattr(service, "kind") and hasattr(service.kind, "name") else service.get("kind")
    return "ms" if kind == "latency" else "ppm"


def measure(service: Any, value: int) -> str:
    """A measured value or objective of `service` (a Service or its JSON) as people read it:
    99.9900% or 250 ms (value_unit: latency services carry milliseconds where others carry ppm)."""
    return f"{value} ms" if value_unit(service) == "ms" else ppm_to_percent(value)


# ---------------------------------------------------------------------------- amounts
# One rule for every amount the command line, the demo and the web views print (issue 10, finding
# 12: some places printed 4 decimals, others all 18): the EXACT amount, every significant unit
# shown and trailing zeros trimmed, but at least MIN_AMOUNT_DECIMALS decimals (or the token's own
# number of decimals if it has fewer) so that columns of amounts line up. Money is never rounded:
# a non-zero amount never reads as 0, and two different amounts never print the same; what is
# printed is what `withdraw` pays, to the wei.
MIN_AMOUNT_DECIMALS = 4
ETH_DECIMALS = 18


def format_amount(units: int, decimals: int = ETH_DECIMALS, symbol: str = "ETH") -> str:
    """1_500_000_000_000_000_000 -> '1.5000 ETH'; 1 -> '0.000000000000000001 ETH';
    with 6 decimals, 12_345_678 -> '12.345678 USDC'; with 0 decimals, 7 -> '7 PTS'."""
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(int(units)), 10**decimals)
    digits = f"{frac:0{decimals}d}".rstrip("0") if decimals else ""
    digits = digits.ljust(min(MIN_AMOUNT_DECIMALS, decimals), "0")
    text = f"{sign}{whole}" + (f".{digits}" if digits else "")
    return f"{text} {symbol}" if symbol else text


def fmt_eth(wei: int) -> str:
    """An exact ETH amount (format_amount)."""
    return format_amount(wei)


def fmt_amount(units: int | str, asset: str) -> str:
    """An amount of an agreement's asset: ETH by format_amount; another token, whose decimals the
    index does not hold, in raw units with its short address."""
    if int(asset, 16) == 0:
        return format_amount(int(units))
    return f"{int(units)} units of {short_address(asset)}"


# ---------------------------------------------------------------------------- status page
def service_state(*, met: bool, harshest_tier: bool, disaster: bool) -> str:
    """A settled period of one service as a status page shows it: operational (objective met),
    outage (the harshest credit tier, or below the disaster threshold), degraded otherwise."""
    if met:
        return "operational"
    if harshest_tier or disaster:
        return "outage"
    return "degraded"


def period_services(terms: Terms, values_ppm: list[int], service_credits: list[int | str]) -> list[dict[str, Any]]:
    """Per service of a settled period: objective, measured, met, tier (1 = mildest), credit and a
    status-page state (operational, degraded, outage: service_state)."""
    out = []
    for i, service in enumerate(terms.services):
        value = int(values_ppm[i]) if i < len(values_ppm) else 0
        credit = int(service_credits[i]) if i < len(service_credits) else 0
        bps = tier_credit_bps(service, value)
        tier = None
        if bps:
            tier = 1 + [t.credit_bps for t in service.tiers].index(bps)
        harshest = tier is not None and tier == len(service.tiers)
        disaster = service.kind in (Kind.availability, Kind.composite) and value < terms.termination_ppm
        met = value <= service.objective if service.lower_is_better else value >= service.objective
        state = service_state(met=met, harshest_tier=harshest, disaster=disaster)
        out.append({"service": service.name, "kind": service.kind.name, "objective_value": service.objective,
                    "measured_value": value, "unit": value_unit(service),
                    "objective": measure(service, service.objective),
                    "measured": measure(service, value), "met": met, "tier": tier, "tier_credit_bps": bps,
                    "credit": str(credit), "disaster": disaster, "state": state})
    return out
