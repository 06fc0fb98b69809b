"""The running period's credit forecast: pure functions, no I/O.

One home for "how is this period going and what will it cost": the oracle's /metrics
(`oracle.daemon`), the API and the dashboard all call :func:`forecast`, so they show the same
numbers.

Counting rules (the inputs are the counts of `oracle.sli` in seconds, i.e. slices x slice_seconds):

* `good_s`, `bad_s` — measured time so far in the period: `measured = good + bad`;
* `excluded_s` (declared maintenance) and `unmeasured_s` (slices nobody observed) are left out of
  the figure, exactly as in `oracle.sli`; they are returned for display and nothing else;
* the figure so far is `good * 1_000_000 // measured` ppm, rounded down like the oracle's
  report (1_000_000 when nothing was measured yet);
* the time left is `remaining = period_end - max(now, period_start)` (0 after the end). The
  forecast assumes it will all be measured and none excluded: future maintenance is not known
  until declared, and a forecast must not count on the oracle missing slices;
* the projection "at the current burn": the remaining time fails at the burn rate `burn`
  (bad share of measured time; by default the period's so far, `bad / measured`; a caller with a
  recent window — e.g. Prometheus' last hour — may pass that one). With the default the
  projected figure equals the figure so far: a constant burn keeps the share constant;
  the remaining time changes how much downtime is *left* (below), not the share;
  `projected = (good + (1 - burn) * remaining) * 1_000_000 // (measured + remaining)`;
* the projected tier and credit follow `smartsla.credit` (the harshest tier the projected figure
  is strictly below; `fee_per_period * weight * tier_credit`), then capped at the agreement's
  per-period cap. Other services share that cap and the collateral may run short, so the
  agreement's payment can be lower: this is one service's credit at risk, not a settlement.
  A period whose measured share ends below `min_measured_ppm` gets no report at all;
* the budget: at period end the figure is `floor((good + remaining - D) * 1e6 / M)` with
  `M = measured + remaining` and `D` further seconds of downtime. Tier `k` (threshold `b`) is not
  reached while `(good + remaining - D) * 1e6 >= b * M`, so the downtime it still allows is
  `D_k = good + remaining - b * M / 1e6`; `D_k < 0` means tier `k` is already certain. The
  *next* tier is the mildest one not yet certain and `budget_left_s` is its `D_k`, rounded
  DOWN to whole slices (one failed check costs a whole slice). A budget larger than `remaining`
  means the tier cannot be reached this period any more. When every tier is certain,
  `next_tier` is None and `budget_left_s` is 0.

:func:`forecast` covers availability services; latency services have :func:`forecast_latency`
(below); satisfaction/composite figures are not measured by the oracle and are not forecast.

Latency (:func:`forecast_latency`), with the oracle's rule for a latency period
(`oracle.evidence.figure_from_record`: the period figure is this same `latency_figure_ms` over
one value per up slice, the slice's slowest successful check; with one check per slice, as
usual, that is the checks' own latencies, so the running figure over the checks matches):

* the input is the latencies (ms) of the *successful* checks so far outside maintenance slices
  (failed checks carry no latency and count against availability, not here);
* the figure so far is the nearest-rank `percentile` (the smallest latency with at least
  `percentile` % of the values at or below it: rank `ceil(p/100 * n)`), in whole ms rounded UP;
  no successful check but measured slices: LATENCY_UNKNOWN_MS (the service never answered);
  nothing measured at all: the objective (neutral);
* the projection assumes the rest of the period has the same latency distribution, so the
  projected figure is the figure so far (a percentile of a constant distribution stays put);
  its tier and credit follow `smartsla.credit` (the harshest bound the figure is strictly
  above), capped at the agreement's per-period cap;
* the budget is counted in checks: tier `k` (bound `b` ms) is reached when the rounded-up
  percentile exceeds `b`, i.e. when fewer than `ceil(p/100 * n)` of the `n` values are `<= b`.
  With `f` values `<= b` so far, `s` further slow checks (above `b`, no fast ones) keep the
  figure at or below `b` while `ceil(p/100 * (n + s)) <= f`, i.e. `s <= 100 * f / p - n`. So
  `slow_checks_left = floor(100 * f / p) - n` for the mildest tier not yet reached
  (`next_tier`); when every tier is reached `next_tier` is None and the budget is 0. Fast
  checks to come raise the budget (each adds `100 / p - 1` slow ones: 1/19 of a check at p95),
  so this is the budget if the service stayed slow from now on — the conservative reading.
  `budget_left_s` is 0 for latency: the budget is in checks, not seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .credit import service_credit
from .terms import Kind, Service, Terms
from .units import BPS, PPM


@dataclass(frozen=True)
class Forecast:
    period: int
    period_start: int
    period_end: int
    now: int
    good_s: float  # so far, seconds
    bad_s: float
    excluded_s: float
    unmeasured_s: float
    value_so_far_ppm: int  # figure so far (availability: good / (good + bad))
    projected_ppm: int  # projected at period end at the current burn
    projected_tier: int | None  # index into the service's tiers, None = no credit
    projected_credit: int  # in the asset's base units (same maths as smartsla.credit)
    budget_left_s: float  # seconds of downtime left before `next_tier` (0 for latency)
    next_tier: int | None  # the mildest tier not yet certain (None: all are)
    # Latency services only: the further slow checks `next_tier` still allows (see the docstring)
    slow_checks_left: int | None = None

    @property
    def remaining_s(self) -> int:
        return max(0, self.period_end - max(self.now, self.period_start))


def tier_index(terms: Terms, service_index: int, value_ppm: int) -> int | None:
    """The tier an availability figure earns (the harshest threshold it is strictly below), or
    None when it earns no credit. Mirrors `smartsla.credit.tier_credit_bps`."""
    service = terms.services[service_index]
    if value_ppm >= service.objective:
        return None
    hit = [i for i, t in enumerate(service.tiers) if value_ppm < t.threshold]
    return hit[-1] if hit else None


def _service_and_period(terms: Terms, service_index: int, period: int, kind: Kind,
                        wrong_kind: str) -> tuple[Service, list[str]]:
    """The service asked for, and the problems with the request (wrong kind, period outside the
    term); an index outside the services is an error at once."""
    if not 0 <= service_index < len(terms.services):
        raise ValueError(f"service index {service_index} is outside 0..{len(terms.services) - 1}")
    service = terms.services[service_index]
    problems: list[str] = []
    if service.kind is not kind:
        problems.append(f"service {service.name!r} is a {service.kind.name} service: {wrong_kind}")
    if not 0 <= period < terms.period_count:
        problems.append(f"period {period} is outside 0..{terms.period_count - 1}")
    return service, problems


def forecast(terms: Terms, service_index: int, period: int, now: int, good_s: float, bad_s: float,
             excluded_s: float = 0.0, unmeasured_s: float = 0.0, *, burn: float | None = None) -> Forecast:
    """The forecast of `period` for service `service_index` at `now` (see the module docstring
    for the counting rules). `burn`: the bad share to project the remaining time with (default:
    the period's so far)."""
    service, problems = _service_and_period(terms, service_index, period, Kind.availability,
                                            "forecast() takes availability services (latency: forecast_latency)")
    for name, v in (("good_s", good_s), ("bad_s", bad_s), ("excluded_s", excluded_s),
                    ("unmeasured_s", unmeasured_s)):
        if not (math.isfinite(v) and v >= 0):
            problems.append(f"{name} must be a finite number >= 0, got {v!r}")
    if burn is not None and not (math.isfinite(burn) and 0 <= burn <= 1):
        problems.append(f"burn must be a share in 0..1, got {burn!r}")
    if problems:
        raise ValueError("; ".join(problems))

    start, end = terms.period_start(period), terms.period_end(period)
    remaining = max(0, end - max(now, start))
    good, bad = Fraction(good_s), Fraction(bad_s)
    measured = good + bad
    so_far = PPM if measured == 0 else int(good * PPM // measured)
    rate = Fraction(burn) if burn is not None else (bad / measured if measured else Fraction(0))
    total = measured + remaining
    projected = PPM if total == 0 else int((good + (1 - rate) * remaining) * PPM // total)
    tier = tier_index(terms, service_index, projected)
    credit = capped_credit(terms, service_index, projected)

    next_tier: int | None = None
    budget = 0.0
    for k, t in enumerate(service.tiers):
        allowed = good + remaining - Fraction(t.threshold) * total / PPM
        if allowed >= 0:
            next_tier = k
            whole = terms.slice_seconds
            budget = float(math.floor(allowed / whole) * whole)
            break
    return Forecast(period=period, period_start=start, period_end=end, now=now, good_s=float(good_s),
                    bad_s=float(bad_s), excluded_s=float(excluded_s), unmeasured_s=float(unmeasured_s),
                    value_so_far_ppm=so_far, projected_ppm=projected, projected_tier=tier,
                    projected_credit=credit, budget_left_s=budget, next_tier=next_tier)


LATENCY_UNKNOWN_MS = 2**32 - 1  # a latency period with measured slices but no successful check


def latency_figure_ms(latencies_ms: Sequence[float], percentile: int, objective_ms: int,
                      measured: bool) -> int:
    """The latency figure the oracle reports for these successful checks' latencies: nearest-rank
    `percentile`, whole ms rounded up (never in the provider's favour); no value but measured
    slices -> LATENCY_UNKNOWN_MS; nothing measured -> the objective."""
    if not latencies_ms:
        return LATENCY_UNKNOWN_MS if measured else objective_ms
    values = sorted(latencies_ms)
    rank = max(math.ceil(Fraction(percentile) * len(values) / 100), 1)
    return min(math.ceil(values[rank - 1]), LATENCY_UNKNOWN_MS)


def forecast_latency(terms: Terms, service_index: int, period: int, now: int, latencies_ms: Sequence[float],
                     percentile: int = 95, *, measured: bool | None = None, good_s: float = 0.0,
                     bad_s: float = 0.0, excluded_s: float = 0.0, unmeasured_s: float = 0.0) -> Forecast:
    """The forecast of a latency service's `period` at `now` from the successful checks'
    latencies so far (outside maintenance). `measured`: whether any slice was measured (default:
    whether there is a latency). `good_s`..`unmeasured_s`: the slice counts, for display only
    (they do not enter a latency figure). See the module docstring for the rules."""
    service, problems = _service_and_period(terms, service_index, period, Kind.latency,
                                            "forecast_latency forecasts latency services")
    if percentile not in (50, 95, 99):
        problems.append(f"percentile must be 50, 95 or 99 (the oracle's latency_percentile), got {percentile!r}")
    bad_values = [v for v in latencies_ms if not (math.isfinite(v) and v >= 0)]
    if bad_values:
        problems.append(f"{len(bad_values)} latencies are not finite numbers >= 0 (first: {bad_values[0]!r})")
    for name, v in (("good_s", good_s), ("bad_s", bad_s), ("excluded_s", excluded_s),
                    ("unmeasured_s", unmeasured_s)):
        if not (math.isfinite(v) and v >= 0):
            problems.append(f"{name} must be a finite number >= 0, got {v!r}")
    if problems:
        raise ValueError("; ".join(problems))

    start, end = terms.period_start(period), terms.period_end(period)
    n = len(latencies_ms)
    value = latency_figure_ms(latencies_ms, percentile, service.objective,
                              bool(n) if measured is None else measured)
    tier, credit, next_tier = latency_outcome(terms, service_index, value)
    left = 0
    if next_tier is not None:  # f values <= b keep the percentile <= b up to floor(100 f / p) - n values
        bound = service.tiers[next_tier].threshold
        fast = sum(1 for v in latencies_ms if v <= bound)  # ceil(v) <= b  <=>  v <= b
        left = max(0, 100 * fast // percentile - n)
    return Forecast(period=period, period_start=start, period_end=end, now=now, good_s=float(good_s),
                    bad_s=float(bad_s), excluded_s=float(excluded_s), unmeasured_s=float(unmeasured_s),
                    value_so_far_ppm=value, projected_ppm=value, projected_tier=tier, projected_credit=credit,
                    budget_left_s=0.0, next_tier=next_tier, slow_checks_left=left)


def capped_credit(terms: Any, service_index: int, value: int) -> int:
    """What service `service_index` at `value` (ppm, or ms for latency) costs the provider for one
    period, capped as a settlement caps it: an Agreement's `fee * weight * tier credit` up to its
    cap; a multi-level agreement's (terms with `credit_of`, smartsla.multilevel.MeasuredTerms)
    the credits of every department that covers the service, each at its own fee, weight,
    objective and cap (corporate services carry no weight of their own: the Agreement formula
    would say 0)."""
    credit_of = getattr(terms, "credit_of", None)
    if credit_of is not None:
        return int(credit_of(service_index, value))
    cap = terms.fee_per_period * terms.credit_cap_bps // BPS
    return min(service_credit(terms.services[service_index], value, terms.fee_per_period), cap)


def latency_outcome(terms: Terms, service_index: int, value_ms: int) -> tuple[int | None, int, int | None]:
    """(tier, capped credit, next tier) of a latency figure in whole ms: the harshest tier whose
    bound it is strictly above (`smartsla.credit`), and the mildest one it has not reached. The
    API calls it with the figure the oracle exports (an integer, exact in a gauge)."""
    service = terms.services[service_index]
    credit = capped_credit(terms, service_index, value_ms)
    hit = [i for i, t in enumerate(service.tiers) if value_ms > t.threshold]
    tier = hit[-1] if hit and value_ms > service.objective else None
    next_tier = next((k for k, t in enumerate(service.tiers) if value_ms <= t.threshold), None)
    return tier, credit, next_tier


def current_period(terms: Terms, now: int) -> int | None:
    """The period `now` falls in (half-open), or None before the start / after the end."""
    if now < terms.start or now >= terms.end:
        return None
    lo, hi = 0, terms.period_count - 1
    while lo < hi:  # period ends rise: binary search (calendar periods have no fixed length)
        mid = (lo + hi) // 2
        if terms.period_end(mid) <= now:
            lo = mid + 1
        else:
            hi = mid
    return lo
