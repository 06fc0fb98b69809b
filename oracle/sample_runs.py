"""Sample runs: the summary of the samples that makes a period's measured slices a few rows.

Why: which slices of a 30-day period hold a sample is 43,200 one-minute slices per service, and
reading them from the samples (a DISTINCT over a month of samples) cost most of the 20 ms a
service-month took. The store keeps, next to the samples and in the SAME transaction, the
samples of each (agreement, service) chained into runs:

* a **run at gap D** is a maximal chain of samples in which consecutive samples are at most D
  seconds apart, stored as (t0, t1): its first and last sample's timestamps. The runs of a set of
  timestamps are a function of the set alone (the connected pieces of the points on a line when
  points at most D apart are joined): the order the samples arrived in, duplicates, late writes
  and crashes (a transaction commits the samples and their runs together, or neither) cannot
  change them.
* **why it gives the measured slices exactly**: for slices of length L >= D, every slice between
  the slice of a run's first sample and the slice of its last holds a sample (the first sample
  after a slice's start follows the one before it by at most D <= L, so it falls inside the
  slice), and no slice outside the runs does. So the measured slices of [start, end) are, run by
  run, slice(first sample of the run in the period) .. slice(last sample of the run in the
  period); only a run crossing the period's start or end needs its first or last sample inside
  the period, one index seek each.

A run is useful when D is at least the usual gap between samples: the store tracks the gaps an
agreement asked for (`Store.track_slices(agreement, slice_seconds)`, which the daemon calls with
the agreement's slice length, and which builds the runs from the samples already stored). Pure
functions here; the store does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Run = tuple[float, float]  # (first sample's ts, last sample's ts)


def chain(timestamps: Iterable[float], gap: float) -> list[Run]:
    """The runs at `gap` of these timestamps (any order, duplicates allowed), sorted."""
    out: list[list[float]] = []
    for ts in sorted(timestamps):
        if out and ts - out[-1][1] <= gap:
            out[-1][1] = max(out[-1][1], ts)
        else:
            out.append([ts, ts])
    return [(a, b) for a, b in out]


def merge(existing: Sequence[tuple[int, float, float]], timestamps: Iterable[float], gap: float
          ) -> tuple[list[tuple[int, float, float]], list[int], list[Run]]:
    """Add timestamps to stored runs: (updates (id, t0, t1), ids to delete, runs to insert).

    `existing` must hold every stored run within `gap` of a new timestamp (the store reads the
    runs of the batch's time range widened by `gap`); runs of `existing` no new timestamp
    reaches are left as they are. Runs are disjoint and more than `gap` apart, so a new piece
    can only join runs through the new timestamps.
    """
    new = list(timestamps)
    if len(new) == 1:  # the daemon's usual batch: one sample per service
        return _merge_one(existing, new[0], gap)
    pieces: list[tuple[float, float, int | None]] = [(t0, t1, rid) for rid, t0, t1 in existing]
    pieces += [(ts, ts, None) for ts in new]
    pieces.sort(key=lambda p: (p[0], p[1]))
    updates: list[tuple[int, float, float]] = []
    deletes: list[int] = []
    inserts: list[Run] = []

    def flush(t0: float, t1: float, ids: list[int], grew: bool) -> None:
        if not ids:
            inserts.append((t0, t1))
            return
        if grew or len(ids) > 1:
            updates.append((ids[0], t0, t1))
            deletes.extend(ids[1:])

    current: list[float] | None = None
    ids: list[int] = []
    bounds: dict[int, tuple[float, float]] = {rid: (t0, t1) for rid, t0, t1 in existing}
    for t0, t1, rid in pieces:
        if current is not None and t0 - current[1] <= gap:
            current[1] = max(current[1], t1)
        else:
            if current is not None:
                flush(current[0], current[1], ids, _grew(current, ids, bounds))
            current, ids = [t0, t1], []
        if rid is not None:
            ids.append(rid)
    if current is not None:
        flush(current[0], current[1], ids, _grew(current, ids, bounds))
    return updates, deletes, inserts


def _merge_one(existing: Sequence[tuple[int, float, float]], ts: float, gap: float
               ) -> tuple[list[tuple[int, float, float]], list[int], list[Run]]:
    """`merge` of one timestamp: the runs within `gap` of it (at most one on each side, or the
    one holding it) and it become one run."""
    near = sorted((r for r in existing if r[1] - gap <= ts <= r[2] + gap), key=lambda r: r[1])
    if not near:
        return [], [], [(ts, ts)]
    t0, t1 = min(near[0][1], ts), max(near[-1][2], ts)
    if len(near) == 1 and (t0, t1) == (near[0][1], near[0][2]):
        return [], [], []
    return [(near[0][0], t0, t1)], [r[0] for r in near[1:]], []


def _grew(current: list[float], ids: list[int], bounds: dict[int, tuple[float, float]]) -> bool:
    return len(ids) == 1 and bounds[ids[0]] != (current[0], current[1])


def slice_span(first_ts: float, last_ts: float, start: float, slice_seconds: int) -> tuple[int, int]:
    """(first, last) slice index of a run's samples inside a period; the rule of
    `oracle.sli.sample_verdicts` (floor of the offset over the slice length)."""
    return int((first_ts - start) // slice_seconds), int((last_ts - start) // slice_seconds)


def join_spans(spans: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted slice spans (consecutive runs may share a slice or touch) as disjoint, non-adjacent runs."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple(out)
