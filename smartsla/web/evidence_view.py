"""What the dashboard shows of issue 12: the measurement method and spec hash of an agreement,
its scope and exclusions (from a spec file whose hash matches the on-chain one), and, for each
settled period, each service's slice timeline drawn from the oracle's evidence bundle with the
`smartsla verify` verdict and explanation.

Nothing here re-implements a check: the bundle is fetched once with `smartsla.verify.fetch_bundle`
from the oracle the API knows (`evidence_base_url`, as GET /api/.../evidence), checked with
`smartsla.verify.verify_period`, and explained with `smartsla.cli_verify.explain_service` (the
sentence `smartsla verify` prints).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from markupsafe import Markup, escape

from oracle.evidence import DOWN, NONE, UP, ServiceRecord, counts_of

from ..client import Agreement
from ..terms import ZERO_HASH, Terms
from ..units import ppm_to_percent
from ..verify import Verdict, evidence_url, explaining_check, fetch_bundle, verify_period

if TYPE_CHECKING:
    from ..api.deps import AppState

STRIP_WIDTH = 1000  # viewBox units of a strip; the SVG scales to the card's width
# When several states share one pixel column, the one shown is the worst: a one-minute outage in
# a month must stay visible (red), not vanish under the up minutes around it.
SEVERITY = {DOWN: 3, NONE: 2, "excluded": 1, UP: 0}
FILL = {"up": "#2e9e5b", "down": "#d64541", "excluded": "#9ca3af", "none": "url(#hatch)"}
MAX_PERIODS = 12  # the latest settled periods a page verifies (each is one fetch and a few log reads)
CACHE_SIZE = 2048
FETCH_TIMEOUT_S = 3.0  # per bundle; the page waits at most about this long for the oracle
MISSING_DATA_POLICY_WORDS = "a slice without any sample is not measured (neither up nor down)"


def _kind(state: str) -> str:
    return state if state in (UP, DOWN, NONE) else "excluded"


@dataclass(frozen=True)
class Rect:
    x: int
    width: int
    state: str  # "up" | "down" | "none" | "excluded"


def strip_rects(runs: Iterable[tuple[str, int]], width: int = STRIP_WIDTH) -> list[Rect]:
    """The run-length runs of a slice record as rectangles over [0, width): one per run, a pixel
    column shared by several runs taking the worst state among them, adjacent rectangles of one
    state merged. The widths add up to `width` exactly (integer columns), and the number of
    rectangles is at most min(runs, width) — a month that flaps every minute is still ≤ width."""
    runs = [(_kind(s), int(n)) for s, n in runs if int(n) > 0]
    total = sum(n for _, n in runs)
    if total == 0 or width <= 0:
        return []
    columns: list[str | None] = [None] * width
    first = 0
    for state, n in runs:
        last = first + n
        # pixel columns this run touches: [floor(first*W/T), ceil(last*W/T))
        lo, hi = first * width // total, -(-last * width // total)
        for x in range(lo, hi):
            c = columns[x]
            if c is None or SEVERITY[state] > SEVERITY[c]:
                columns[x] = state
        first = last
    out: list[Rect] = []
    for x, worst in enumerate(columns):
        assert worst is not None  # every column lies under some run: [0, T) covers [0, W)
        if out and out[-1].state == worst:
            out[-1] = Rect(out[-1].x, out[-1].width + 1, worst)
        else:
            out.append(Rect(x, 1, worst))
    return out


def strip_svg(record: ServiceRecord, label: str, width: int = STRIP_WIDTH) -> Markup:
    """An inline SVG strip of one service's period: up green, down red, excluded grey, not
    measured hatched. Each rectangle's title says its state and slices (hover)."""
    rects = strip_rects(record.runs, width)
    total = sum(n for _, n in record.runs)
    parts = [f'<svg class="evidence-strip" viewBox="0 0 {width} 14" preserveAspectRatio="none" role="img" '
             f'aria-label="{escape(label)}" data-slices="{total}">',
             '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
             'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e5e7eb"/>'
             '<line x1="0" y1="0" x2="0" y2="6" stroke="#6b7280" stroke-width="3"/></pattern></defs>']
    for r in rects:
        first = r.x * total // width
        last = -(-(r.x + r.width) * total // width)
        parts.append(f'<rect class="{r.state}" fill="{FILL[r.state]}" x="{r.x}" width="{r.width}" y="0" height="14">'
                     f'<title>{r.state}: slices {first}–{last - 1}</title></rect>')
    parts.append("</svg>")
    return Markup("".join(parts))


# ---------------------------------------------------------------- the measurement method and scope
@functools.lru_cache(maxsize=8)
def load_spec_scopes(paths: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    """spec hash -> its scope (covers, exclusions), for `smartsla serve --spec FILE|FOLDER`. A
    folder contributes its *.yaml/*.yml files. A file that is not a valid spec is an error naming
    it (SpecError), raised at start-up rather than silently showing nothing."""
    from ..spec import load_spec
    from ..spec_hash import spec_hash

    files: list[Path] = []
    for p in map(Path, paths):
        # In a folder, only agreement documents (kind: Agreement): a multi-level or OpenSLO file
        # beside them is not an error. A file named explicitly must be a valid spec.
        files += [f for f in sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if _is_agreement(f)] if p.is_dir() else [p]
    return {spec_hash(spec).lower(): spec.spec.scope.model_dump() for spec in map(load_spec, files)}


def _is_agreement(path: Path) -> bool:
    try:
        doc = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError:
        return True  # let load_spec name the problem
    return not isinstance(doc, dict) or doc.get("kind") == "Agreement"


def method_context(terms: Terms, scopes: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
    """The spec hash, measurement method and (when a served spec file matches the hash) the scope
    and exclusions — the same rule as `agreement show --spec`."""
    has_hash = terms.spec_hash != ZERO_HASH
    percentiles = [f"{s.name} p{s.latency_percentile}" for s in terms.services if s.latency_percentile]
    return {"spec_hash": terms.spec_hash if has_hash else "none",
            "slice_seconds": terms.slice_seconds, "min_measured": ppm_to_percent(terms.min_measured_ppm),
            "missing_data": MISSING_DATA_POLICY_WORDS, "percentiles": ", ".join(percentiles) or "none fixed",
            "scope": scopes.get(terms.spec_hash.lower()) if has_hash else None}


# ---------------------------------------------------------------- each settled period's evidence
_cache: dict[tuple[str, int, Any], dict[str, Any]] = {}


def _period_view(state: AppState, row: dict[str, Any], terms: Terms, period: int, base: str) -> dict[str, Any]:
    """Fetch the period's bundle once, verify it against the chain, and lay it out."""
    from ..cli.verify import explain_service
    from ..presentation import fmt_amount

    address = row["address"]
    source = fetch_bundle(evidence_url(base, address, period), timeout_s=FETCH_TIMEOUT_S)
    view: dict[str, Any] = {"period": period, "outcome": "missing", "services": [], "problems": [],
                            "explanations": [], "start": terms.period_start(period), "end": terms.period_end(period)}
    if source.bundle is None and source.missing:
        view["problems"] = [source.error or "no bundle"]
        return view
    verdict: Verdict | None = None
    if state.chain is not None:
        ag = Agreement(state.chain, address, terms=terms)
        with state.lock:  # the chain connection is shared with the indexer thread
            verdict = verify_period(ag, state.chain.chain_id, period, [source])
            windows = ag.maintenance_windows() if verdict.outcome == "verified" else []
        view["outcome"] = verdict.outcome
        view["resolved"] = verdict.resolved
        view["problems"] = verdict.problems + verdict.missing
    else:
        view["outcome"] = "unchecked"
        view["problems"] = [source.error] if source.error else ["no chain connection: the root was not checked"]
    if source.bundle is not None:
        for r in sorted(source.bundle.records, key=lambda r: r.index):
            view["services"].append({"index": r.index, "name": r.name, "counts": counts_of(r),
                                     "svg": strip_svg(r, f"{r.name}, period {period}: one rectangle per run")})
    if verdict is not None and verdict.outcome == "verified" and verdict.oracles:
        declared = {k: w.start - w.declared_at for k, w in enumerate(windows)}
        for i in sorted(verdict.medians):
            check, m = explaining_check(verdict, i)
            credit = fmt_amount(verdict.service_credits[i], row["asset"]) if verdict.service_credits else None
            view["explanations"].append({"name": terms.services[i].name,
                                         "text": explain_service(check, i, terms.services[i], declared, m, credit)})
    return view


async def settled_evidence(state: AppState, row: dict[str, Any], terms: Terms, settled: Sequence[int],
                           key: Any) -> dict[str, Any]:
    """The evidence card's context: {"available": False, "reason"} without an oracle URL, else the
    latest settled periods (at most MAX_PERIODS), newest first. A verified or mismatched period is
    kept under the index's change key (a dispute's resolution changes it); a missing one is asked
    again next time (the oracle may be back)."""
    from ..api.evidence import evidence_base_url

    base = evidence_base_url(state.settings)
    if base is None:
        return {"available": False, "reason": "no oracle URL configured (--oracle-metrics-url)", "periods": []}
    wanted = sorted(settled, reverse=True)[:MAX_PERIODS]

    async def one(period: int) -> dict[str, Any]:
        ck = (row["address"], period, key)
        view = _cache.get(ck)
        if view is None:
            view = await asyncio.to_thread(_period_view, state, row, terms, period, base)
            if view["outcome"] in ("verified", "mismatch"):
                if len(_cache) >= CACHE_SIZE:
                    _cache.clear()
                _cache[ck] = view
        return view

    # Concurrently: an oracle that hangs costs one fetch timeout per page, not one per period.
    views = list(await asyncio.gather(*(one(p) for p in wanted)))
    return {"available": True, "periods": views, "more": max(0, len(settled) - len(wanted))}


__all__ = ["Rect", "load_spec_scopes", "method_context", "settled_evidence", "strip_rects", "strip_svg"]
