"""The evidence strip's run -> rectangle conversion (smartsla.web.evidence_view.strip_rects):
one rectangle per run, sub-pixel runs merged into their column with the worst state shown, and
the widths adding up to the strip's width exactly."""

from __future__ import annotations

from smartsla.web.evidence_view import Rect, strip_rects


def covers_exactly(rects: list[Rect], width: int) -> None:
    assert sum(r.width for r in rects) == width
    x = 0
    for r in rects:
        assert r.x == x and r.width >= 1
        x += r.width
    assert all(a.state != b.state for a, b in zip(rects, rects[1:], strict=False))  # merged


def test_one_rect_per_run_when_runs_are_wide() -> None:
    rects = strip_rects([("up", 3), ("down", 3), ("up", 2), ("w0", 2)], 1000)
    assert rects == [Rect(0, 300, "up"), Rect(300, 300, "down"), Rect(600, 200, "up"), Rect(800, 200, "excluded")]
    covers_exactly(rects, 1000)


def test_a_one_minute_outage_in_a_month_stays_visible_as_one_red_pixel() -> None:
    month = 43_200
    rects = strip_rects([("up", 20_000), ("down", 1), ("up", month - 20_001)], 1000)
    covers_exactly(rects, 1000)
    assert [r.state for r in rects] == ["up", "down", "up"]
    down = rects[1]
    assert down.width == 1 and down.x == 20_000 * 1000 // month  # the column holding slice 20,000


def test_a_month_flapping_every_minute_is_at_most_one_rect_per_column() -> None:
    runs = [("up" if i % 2 else "down", 1) for i in range(43_200)]
    rects = strip_rects(runs, 800)
    covers_exactly(rects, 800)
    assert rects == [Rect(0, 800, "down")]  # every column holds a down minute: the worst wins
    # not measured outranks excluded and up, down outranks all
    assert strip_rects([("up", 10), ("none", 1), ("w2", 1), ("up", 88)], 10) == [
        Rect(0, 1, "up"), Rect(1, 1, "none"), Rect(2, 8, "up")]


def test_widths_are_exact_for_awkward_ratios() -> None:
    for total, width in ((7, 1000), (43_201, 999), (3, 2), (1, 1)):
        runs = [("up", total // 3), ("down", total - total // 3 - total // 5), ("none", total // 5)]
        covers_exactly(strip_rects([r for r in runs if r[1]], width), width)
    assert strip_rects([], 100) == []


def test_the_svg_hatches_unmeasured_slices_and_escapes_a_hostile_label() -> None:
    from oracle import evidence as ev
    from smartsla.web.evidence_view import strip_svg

    # 10 one-minute slices: 0-3 up, 4 down, 5-6 never sampled, 7-9 up.
    slices = {i: (i != 4, 10.0) for i in (0, 1, 2, 3, 4, 7, 8, 9)}
    rec = ev.build_record(chain_id=1, agreement="0x" + "ab" * 20, period=0, start=0, end=600, slice_seconds=60,
                          index=0, name="web", kind="availability", slices=slices, windows=[])
    svg = str(strip_svg(rec, '<script>alert(1)</script>"', width=100))
    assert '<rect class="none" fill="url(#hatch)" x="50" width="20"' in svg
    assert '<rect class="down" fill="#d64541" x="40" width="10"' in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.count("<rect class=") == 4  # up, down, none, up
