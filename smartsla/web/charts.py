"""Small inline SVG charts, drawn on the server (no JavaScript chart library, nothing fetched).

* `status_bar`: one cell per period of a service, coloured like a status page;
* `uptime_chart`: each service's measured value per period against its objective;
* `credits_chart`: credit paid per period (bars) and in total (line).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

COLORS = {
    "operational": "#2f9e5a",
    "degraded": "#e0a106",
    "outage": "#d1342f",
    "maintenance": "#3a78d6",
    "current": "#9aa5b1",
    "future": "#e4e8ec",
    "void": "#f3f4f6",
}
STATE_LABELS = {
    "operational": "objective met",
    "degraded": "degraded: a lower-tier credit applied",
    "outage": "outage: the harshest tier, or below the disaster threshold",
    "maintenance": "maintenance",
    "current": "in progress",
    "future": "not started",
    "void": "never ran (agreement ended early)",
}
SERIES = ("#2563eb", "#9333ea", "#0d9488", "#c2410c", "#be185d", "#4d7c0f", "#0369a1", "#a16207")


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def status_bar(cells: Sequence[dict[str, Any]], *, label: str, height: int = 34) -> Markup:
    """cells: dicts with `state` (a COLORS key), `period` and `title` (the tooltip)."""
    n = max(1, len(cells))
    width = 600.0
    gap = 3.0 if n <= 60 else 1.0
    w = (width - gap * (n - 1)) / n
    parts = [f'<svg class="status-bar" viewBox="0 0 {_f(width)} {height}" preserveAspectRatio="none" '
             f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">']
    for i, cell in enumerate(cells):
        state = cell["state"]
        x = i * (w + gap)
        parts.append(
            f'<rect class="cell {state}" data-state="{state}" data-period="{cell["period"]}" x="{_f(x)}" y="0" '
            f'width="{_f(w)}" height="{height}" rx="2" fill="{COLORS[state]}"><title>{escape(cell["title"])}'
            "</title></rect>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice_floor(value: float) -> float:
    for step in (0.01, 0.1, 0.5, 1, 5, 10, 25):
        floor = math.floor(value / step) * step
        if 100 - floor <= step * 8:
            return max(0.0, floor)
    return 0.0


def uptime_chart(services: Sequence[dict[str, Any]], periods: Sequence[dict[str, Any]], period_count: int) -> Markup:
    """services: [{name, kind, objective_value}]; periods: period_json dicts (settled only)."""
    if not periods:
        return Markup('<p class="muted">No settled period yet.</p>')
    W, H, left, right, top, bottom = 640.0, 240.0, 56.0, 12.0, 12.0, 30.0
    shown = [i for i, s in enumerate(services) if s.get("kind") != "latency"]  # ms do not go on a % axis
    if not shown:
        return Markup('<p class="muted">No availability service.</p>')
    values = [p["services"][i]["measured_value"] / 10_000 for p in periods for i in shown if i < len(p["services"])]
    objectives = [services[i]["objective_value"] / 10_000 for i in shown]
    ymin = _nice_floor(min(values + objectives) - 0.05)
    span = max(100.0 - ymin, 0.01)
    n = max(period_count, 1)

    def x(period: int) -> float:
        return left + (period + 0.5) * (W - left - right) / n

    def y(percent: float) -> float:
        return top + (100.0 - percent) / span * (H - top - bottom)

    parts = [f'<svg class="chart" viewBox="0 0 {_f(W)} {_f(H)}" role="img" aria-label="measured value per period" '
             'xmlns="http://www.w3.org/2000/svg">']
    for k in range(5):  # grid and y labels
        val = ymin + span * k / 4
        yy = y(val)
        parts.append(f'<line x1="{_f(left)}" x2="{_f(W - right)}" y1="{_f(yy)}" y2="{_f(yy)}" class="grid"/>')
        parts.append(f'<text x="{_f(left - 6)}" y="{_f(yy + 4)}" class="axis" text-anchor="end">{val:.2f}%</text>')
    step = max(1, math.ceil(n / 12))
    for p in range(0, n, step):
        parts.append(f'<text x="{_f(x(p))}" y="{_f(H - 10)}" class="axis" text-anchor="middle">{p}</text>')
    for i, service in enumerate(services):
        if i not in shown:
            continue
        color = SERIES[i % len(SERIES)]
        obj = service["objective_value"] / 10_000
        parts.append(f'<line x1="{_f(left)}" x2="{_f(W - right)}" y1="{_f(y(obj))}" y2="{_f(y(obj))}" '
                     f'stroke="{color}" stroke-dasharray="5 4" stroke-opacity="0.6"><title>{escape(service["name"])} '
                     f'objective {obj:.4f}%</title></line>')
        pts = [(x(p["period"]), y(p["services"][i]["measured_value"] / 10_000), p, p["services"][i]) for p in periods
               if i < len(p["services"])]
        if len(pts) > 1:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                         + " ".join(f"{_f(px)},{_f(py)}" for px, py, _, _ in pts) + '"/>')
        for px, py, row, figure in pts:
            parts.append(f'<circle cx="{_f(px)}" cy="{_f(py)}" r="3.5" fill="{color}"><title>period {row["period"]}: '
                         f'{escape(service["name"])} {figure["measured_value"] / 10_000:.4f}%</title></circle>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{SERIES[i % len(SERIES)]}"></i>{escape(s["name"])}'
                     "</span>" for i, s in enumerate(services) if i in shown)
    return Markup("".join(parts) + f'<div class="legend">{legend}<span class="key dashed">objective</span></div>')


def credits_chart(periods: Sequence[dict[str, Any]], period_count: int, fmt: Callable[[int], str]) -> Markup:
    """Credit paid per settled period (bars) and the running total (line)."""
    if not periods:
        return Markup('<p class="muted">No settled period yet.</p>')
    W, H, left, right, top, bottom = 640.0, 220.0, 12.0, 12.0, 16.0, 30.0
    paid = [int(p["credit_paid"]) for p in periods]
    total = sum(paid)
    top_value = max(total, 1)
    n = max(period_count, 1)
    band = (W - left - right) / n

    def y(v: int) -> float:
        return top + (1 - float(Decimal(v) / Decimal(top_value))) * (H - top - bottom)

    parts = [f'<svg class="chart" viewBox="0 0 {_f(W)} {_f(H)}" role="img" aria-label="credits per period" '
             'xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{_f(left)}" x2="{_f(W - right)}" y1="{_f(y(0))}" y2="{_f(y(0))}" class="grid"/>']
    running = 0
    line = []
    for p, amount in zip(periods, paid, strict=True):
        running += amount
        bx = left + p["period"] * band + band * 0.2
        parts.append(f'<rect class="credit-bar" x="{_f(bx)}" y="{_f(y(amount))}" width="{_f(band * 0.6)}" '
                     f'height="{_f(y(0) - y(amount))}"><title>period {p["period"]}: {escape(fmt(amount))} paid'
                     "</title></rect>")
        line.append((left + (p["period"] + 0.5) * band, y(running), running, p["period"]))
        parts.append(f'<text x="{_f(left + (p["period"] + 0.5) * band)}" y="{_f(H - 10)}" class="axis" '
                     f'text-anchor="middle">{p["period"]}</text>')
    parts.append('<polyline class="cumulative" fill="none" points="'
                 + " ".join(f"{_f(px)},{_f(py)}" for px, py, _, _ in line) + '"/>')
    for px, py, amount, period in line:
        parts.append(f'<circle class="cumulative-dot" cx="{_f(px)}" cy="{_f(py)}" r="3"><title>total after period '
                     f'{period}: {escape(fmt(amount))}</title></circle>')
    parts.append(f'<text x="{_f(W - right)}" y="{_f(top - 3)}" class="axis" text-anchor="end">total '
                 f'{escape(fmt(total))}</text></svg>')
    legend = ('<div class="legend"><span class="key"><i class="credit-key"></i>paid in the period</span>'
              '<span class="key"><i class="cumulative-key"></i>running total</span></div>')
    return Markup("".join(parts) + legend)
