"""Per-period SLI figures from measurements: pure functions, no I/O.

Availability is counted in time slices (one minute by default; the agreement's `slice_seconds`),
the way cloud SLAs count "unavailable minutes". Every slice of a period is exactly one of:

* **excluded** — it overlaps, even partly, a maintenance window the provider declared ON-CHAIN
  with the agreed notice. Only such windows are excluded: a figure must never depend on
  something the parties did not sign (the oracle's own configuration cannot exclude anything);
* **not measured** — no sample lies in it (the oracle was down, started late, or fell behind and
  skipped the check rather than run it late). A slice nobody observed is evidence of nothing:
  it is left out of good AND total, never counted as down (that would make the provider pay
  for the oracle's outage) nor as up (that would hide a real one);
* **bad** — it holds a failed check. "Any" rather than "majority": one failed check is evidence
  of an outage that later successes do not undo; flaky probes are handled by a failure
  threshold (`oracle.probes.apply_failure_threshold`), not by diluting slices;
* **good** — it holds checks and all passed.

The rule, in numbers:

* `countable = slices - excluded`; `measured = good + bad`;
* the value is `good * 1_000_000 // measured` ppm, rounded down so the figure never claims more
  availability than was measured (1_000_000 when nothing was measured);
* the measured share is `measured_ppm = measured * 1_000_000 // countable` (1_000_000 when every
  slice is excluded: nothing was left to measure);
* a period whose measured share is below the agreement's `min_measured_ppm` gets NO report:
  the oracle does not know enough to move money, so the period takes the contract's
  dispute/expire path (the daemon logs it, stores the figure and exposes it on /metrics).

Periods are half-open `[start, end)` in unix seconds. A last slice shorter than `slice_seconds`
(period length not a multiple of it) counts as one whole slice.

Both data sources (own probes, Prometheus) reduce their data to per-slice verdicts and call
`count_slices`, so the counting rules live in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from smartsla.units import PPM, ppm_to_percent


class SampleLike(Protocol):
    """What the SLI maths needs from a measurement (oracle.probes.Sample fits)."""

    @property
    def ts(self) -> float: ...
    @property
    def ok(self) -> bool: ...
    @property
    def latency_ms(self) -> float | None: ...


Window = tuple[float, float]


@dataclass(frozen=True)
class SliceCounts:
    """How the slices of one period were classified.

    total + excluded == slices in the period; total (= good + bad) + missing == countable.
    """

    good: int
    total: int  # measured slices: good + bad
    excluded: int  # maintenance slices plus slices not measured (neither is in `total`)
    maintenance: int  # slices overlapping a declared maintenance window
    missing: int  # countable slices without any sample: not measured

    @property
    def value_ppm(self) -> int:
        return PPM if self.total == 0 else self.good * PPM // self.total

    @property
    def countable(self) -> int:
        return self.total + self.missing

    @property
    def measured_ppm(self) -> int:
        return PPM if self.countable == 0 else self.total * PPM // self.countable


@dataclass(frozen=True)
class PeriodFigure:
    """One service's figure for one period, with what is needed to explain and audit it."""

    value_ppm: int
    good_slices: int
    total_slices: int
    excluded_slices: int
    maintenance_slices: int
    missing_slices: int  # not measured (part of excluded_slices)
    slice_seconds: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    # Share of the countable (non-maintenance) slices that hold a sample, in ppm. The default
    # only serves figures that measure nothing (satisfaction, composite).
    measured_ppm: int = PPM

    def explain(self) -> str:
        """E.g. '43,170 of 43,200 measured minutes good (99.9305%), 30 maintenance minutes
        excluded, 100.0000% of the period measured'."""
        unit, units = _unit_names(self.slice_seconds)
        parts = [f"{self.good_slices:,} of {self.total_slices:,} measured {units} good "
                 f"({ppm_to_percent(self.value_ppm)})"]
        if self.maintenance_slices:
            n = self.maintenance_slices
            parts.append(f"{n:,} maintenance {unit if n == 1 else units} excluded")
        if self.missing_slices:
            n = self.missing_slices
            parts.append(f"{n:,} {unit if n == 1 else units} not measured")
        parts.append(f"{ppm_to_percent(self.measured_ppm)} of the period measured")
        if self.p50_ms is not None:
            parts.append(f"latency p50/p95/p99 {self.p50_ms:.1f}/{self.p95_ms:.1f}/{self.p99_ms:.1f} ms")
        return ", ".join(parts)


def _unit_names(slice_seconds: int) -> tuple[str, str]:
    named = {1: ("second", "seconds"), 60: ("minute", "minutes"), 3600: ("hour", "hours")}
    if slice_seconds in named:
        return named[slice_seconds]
    return f"{slice_seconds}-second slice", f"{slice_seconds}-second slices"


def slice_count(start: float, end: float, slice_seconds: int) -> int:
    """Number of slices in [start, end); a partial last slice counts as one."""
    if slice_seconds <= 0:
        raise ValueError(f"slice_seconds must be positive, got {slice_seconds}")
    if end < start:
        raise ValueError(f"period ends ({end}) before it starts ({start})")
    return math.ceil((end - start) / slice_seconds)


def maintenance_slices(start: float, end: float, slice_seconds: int, maintenance: Iterable[Window]) -> set[int]:
    """Indexes of the slices that overlap any maintenance window, even by a fraction of a second."""
    n = slice_count(start, end, slice_seconds)
    hit: set[int] = set()
    for m_start, m_end in maintenance:
        if m_end <= m_start:
            continue  # an empty window excludes nothing
        first = max(0, math.floor((m_start - start) / slice_seconds))
        # slice i covers [start + i*L, start + (i+1)*L): it overlaps iff it begins before m_end
        last = min(n - 1, math.ceil((m_end - start) / slice_seconds) - 1)
        hit.update(range(first, last + 1))
    return hit


def count_slices(start: float, end: float, slice_seconds: int, verdicts: Mapping[int, bool],
                 maintenance: Iterable[Window] = ()) -> SliceCounts:
    """Classify every slice of [start, end).

    `verdicts` maps a slice index (0 = the slice starting at `start`) to True (good) or False
    (bad); an index absent from it is a slice without data. Indexes outside the period are
    ignored. This is the one place where the counting rules live.
    """
    n = slice_count(start, end, slice_seconds)
    maint = maintenance_slices(start, end, slice_seconds, maintenance)
    good = bad = no_data = 0
    for i in range(n):
        if i in maint:
            continue
        verdict = verdicts.get(i)
        if verdict is None:
            no_data += 1
        elif verdict:
            good += 1
        else:
            bad += 1
    return counts_of_classes(good=good, bad=bad, missing=no_data, maintenance=len(maint))


def counts_of_classes(*, good: int, bad: int, missing: int, maintenance: int) -> SliceCounts:
    """The counts of slices already classified (`count_slices`, or the runs of an evidence
    record): not measured is never down nor up, so it is out of good and total (see the module
    docstring); maintenance and not measured are the excluded slices."""
    return SliceCounts(good=good, total=good + bad, excluded=maintenance + missing, maintenance=maintenance,
                       missing=missing)


def sample_verdicts(samples: Iterable[SampleLike], start: float, slice_seconds: int,
                    end: float | None = None) -> dict[int, bool]:
    """Per-slice verdicts from probe samples: any failed sample makes its slice bad."""
    verdicts: dict[int, bool] = {}
    for s in samples:
        if s.ts < start or (end is not None and s.ts >= end):
            continue
        i = int((s.ts - start) // slice_seconds)
        verdicts[i] = verdicts.get(i, True) and bool(s.ok)
    return verdicts


def nearest_rank(sorted_values: Sequence[float], percentile: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `percentile` % of values at or
    below it. Chosen because it always returns a measured value (no interpolation to explain)."""
    if not sorted_values:
        return None
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    rank = math.ceil(percentile / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def latency_percentiles(samples: Iterable[SampleLike]) -> tuple[float | None, float | None, float | None]:
    """p50, p95, p99 over the successful samples that carry a latency."""
    values = sorted(s.latency_ms for s in samples if s.ok and s.latency_ms is not None)
    return nearest_rank(values, 50), nearest_rank(values, 95), nearest_rank(values, 99)


def figure_from_counts(counts: SliceCounts, slice_seconds: int,
                       latencies: tuple[float | None, float | None, float | None] = (None, None, None)
                       ) -> PeriodFigure:
    p50, p95, p99 = latencies
    return PeriodFigure(value_ppm=counts.value_ppm, good_slices=counts.good, total_slices=counts.total,
                        excluded_slices=counts.excluded, maintenance_slices=counts.maintenance,
                        missing_slices=counts.missing, slice_seconds=slice_seconds, p50_ms=p50, p95_ms=p95,
                        p99_ms=p99, measured_ppm=counts.measured_ppm)


NEUTRAL_FIGURE = PeriodFigure(value_ppm=PPM, good_slices=0, total_slices=0, excluded_slices=0, maintenance_slices=0,
                              missing_slices=0, slice_seconds=60)
"""For services the oracle does not measure (satisfaction, composite): ignored on-chain."""


def meets_minimum(figures: Mapping[str, PeriodFigure], min_measured_ppm: int) -> tuple[bool, int]:
    """(enough measured?, the lowest measured share): a period is reported only when EVERY
    measured service was observed for at least `min_measured_ppm` of its countable time."""
    lowest = min((f.measured_ppm for f in figures.values()), default=PPM)
    return lowest >= min_measured_ppm, lowest


def availability(samples: Iterable[SampleLike], start: float, end: float, *, slice_seconds: int = 60,
                 maintenance: Iterable[Window] = ()) -> PeriodFigure:
    """The period figure of one service from its probe samples (samples outside [start, end) are
    ignored). Apply `oracle.probes.apply_failure_threshold` first if the SLA tolerates isolated
    failed checks. Latency percentiles cover the ok samples outside maintenance slices, for the
    same reason maintenance is left out of availability: the provider announced it.
    """
    in_period = [s for s in samples if start <= s.ts < end]
    maintenance = list(maintenance)
    verdicts = sample_verdicts(in_period, start, slice_seconds)
    counts = count_slices(start, end, slice_seconds, verdicts, maintenance)
    maint = maintenance_slices(start, end, slice_seconds, maintenance)
    outside = [s for s in in_period if int((s.ts - start) // slice_seconds) not in maint]
    return figure_from_counts(counts, slice_seconds, latency_percentiles(outside))
