"""The evidence record (oracle.evidence): encoding, hashing, the Merkle root, the bundle, and that
the figure computed from a record is the one oracle.sli computes from the samples."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle import evidence as ev
from oracle.probes import Sample
from oracle.sli import availability
from smartsla.forecast import LATENCY_UNKNOWN_MS

AGREEMENT = "0x" + "ab" * 20
ORACLE = "0x" + "cd" * 20
MONTH = 30 * 86_400


def record(states: list[str], *, kind: str = "availability", index: int = 0, latency: list[int] | None = None,
           slice_seconds: int = 60, start: int = 1_700_000_000) -> ev.ServiceRecord:
    if kind == "latency" and latency is None:
        latency = [100] * states.count("up")
    return ev.ServiceRecord(chain_id=31337, agreement=AGREEMENT, period=3, start=start,
                            end=start + len(states) * slice_seconds, slice_seconds=slice_seconds, index=index,
                            name=f"s{index}", kind=kind, runs=ev.encode_runs(states), latency_ms=tuple(latency or ()))


STATE = st.sampled_from(["up", "down", "none", "w0", "w3"])


@settings(max_examples=150, deadline=None)
@given(st.lists(STATE, min_size=1, max_size=300))
def test_run_length_round_trip_is_the_identity_and_canonical(states: list[str]):
    runs = ev.encode_runs(states)
    assert ev.decode_runs(runs) == states
    assert all(a[0] != b[0] for a, b in zip(runs, runs[1:], strict=False))  # one encoding per record
    rec = record(states)
    assert rec.problems() == []
    # Through the bundle JSON and back: same record, same bytes, same hash.
    bundle = ev.Bundle(ORACLE, (rec,))
    back = ev.parse_bundle(ev.dumps_bundle(bundle))
    assert back.records == (rec,)
    assert ev.canonical_bytes(back.records[0]) == ev.canonical_bytes(rec)
    assert back.root == bundle.root


@settings(max_examples=150, deadline=None)
@given(st.lists(STATE, min_size=1, max_size=200), st.data())
def test_flipping_any_one_slice_changes_the_hash_and_the_root(states: list[str], data: st.DataObject):
    i = data.draw(st.integers(0, len(states) - 1))
    new = data.draw(STATE.filter(lambda s: s != states[i]))
    flipped = [*states[:i], new, *states[i + 1:]]
    other = record(["up"] * 7, index=1)
    a, b = record(states), record(flipped)
    assert ev.record_hash(a) != ev.record_hash(b)
    assert ev.period_root([a, other]) != ev.period_root([b, other])


def test_a_latency_value_and_each_header_field_are_bound_by_the_hash():
    base = record(["up"] * 5, kind="latency", latency=[10, 20, 30, 40, 50])
    variants = [replace(base, latency_ms=(10, 20, 31, 40, 50)), replace(base, chain_id=1),
                replace(base, agreement="0x" + "ee" * 20), replace(base, period=4), replace(base, index=1),
                replace(base, start=base.start + 1, end=base.end + 1), replace(base, name="other"),
                replace(base, slice_seconds=30, end=base.start + 150)]
    hashes = {ev.record_hash(v) for v in variants} | {ev.record_hash(base)}
    assert len(hashes) == len(variants) + 1


def test_canonical_bytes_are_sorted_compact_json():
    rec = record(["up", "up", "down"])
    raw = ev.canonical_bytes(rec)
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    assert raw.startswith(b'{"agreement":"0xabab') and b" " not in raw


def test_figure_from_the_record_equals_the_figure_from_the_samples():
    """The record loses nothing the availability figure depends on: oracle.sli over the raw
    samples and figure_from_record over the record built from them agree."""
    rng = random.Random(7)
    start, L, n = 1_000_000, 10, 500
    samples = []
    for i in range(n):
        for k in range(rng.choice([0, 1, 1, 2, 3])):  # some slices have no sample at all
            samples.append(Sample("web", start + i * L + k * 3 + rng.random(), rng.random() > 0.05,
                                  rng.uniform(5, 400), ""))
    windows = [(0, start + 100.5, start + 180), (2, start + 170, start + 230), (5, start + 4_000, start + 4_001)]
    slices: dict[int, tuple[bool, float | None]] = {}
    for s in samples:
        i = int((s.ts - start) // L)
        ok, ms = slices.get(i, (True, None))
        slices[i] = (ok and s.ok, max(ms or 0.0, s.latency_ms) if s.ok else ms)
    rec = ev.build_record(chain_id=1, agreement=AGREEMENT, period=0, start=start, end=start + n * L,
                          slice_seconds=L, index=0, name="web", kind="availability", slices=slices,
                          windows=windows)
    expected = availability(samples, start, start + n * L, slice_seconds=L,
                            maintenance=[(a, b) for _, a, b in windows])
    got = ev.figure_from_record(rec)
    for f in ("value_ppm", "good_slices", "total_slices", "excluded_slices", "maintenance_slices",
              "missing_slices", "measured_ppm"):
        assert getattr(got, f) == getattr(expected, f), f
    # The overlap of windows 0 and 2 names the lower index; window 5 excludes one slice.
    excl = ev.excluded_slices(rec)
    assert excl[17] == 0 and excl[22] == 2 and excl[400] == 5


def test_latency_figure_is_the_percentile_of_the_per_slice_values():
    rec = record(["up"] * 18 + ["down", "none"], kind="latency", latency=list(range(10, 190, 10)))
    fig = ev.figure_from_record(rec, percentile=95, objective_ms=300)
    assert fig.value_ppm == 180  # nearest rank 95 % of 18 values = the 18th
    assert ev.figure_from_record(rec, percentile=50, objective_ms=300).value_ppm == 90
    never_ok = record(["down"] * 3, kind="latency")
    assert ev.figure_from_record(never_ok, percentile=95, objective_ms=300).value_ppm == LATENCY_UNKNOWN_MS
    all_maintenance = record(["w1"] * 3, kind="latency")
    assert ev.figure_from_record(all_maintenance, percentile=95, objective_ms=300).value_ppm == 300


def test_a_realistic_month_bundle_is_a_few_kilobytes():
    n = MONTH // 60  # 43,200 one-minute slices
    web = ["up"] * n
    for a, b in [(1_000, 1_030), (20_000, 20_004), (30_000, 30_060)]:
        web[a:b] = ["down"] * (b - a)
    web[12_000:12_060] = ["w3"] * 60
    web[40_000:40_002] = ["none"] * 2
    api = ["up"] * n
    api[5_000:5_010] = ["down"] * 10
    bundle = ev.Bundle(ORACLE, (record(web), record(api, index=1)))
    text = ev.dumps_bundle(bundle)
    assert len(text) < 2_048, len(text)
    assert ev.figure_from_record(bundle.records[0]).good_slices == n - 94 - 60 - 2


def test_a_flapping_month_still_encodes_verifies_and_round_trips():
    n = MONTH // 60
    rng = random.Random(1)
    flapping = [rng.choice(["up", "down"]) for _ in range(n)]
    rec = record(flapping)
    text = ev.dumps_bundle(ev.Bundle(ORACLE, (rec,)))
    assert len(text) < 1_000_000  # about 12 bytes a run: half a megabyte, still one JSON document
    back = ev.parse_bundle(text)
    assert back.records[0].states() == flapping
    assert ev.figure_from_record(back.records[0]).good_slices == flapping.count("up")


def test_merkle_root_is_openzeppelin_compatible_and_proofs_verify():
    recs = [record(["up"] * 4, index=i) for i in range(5)]
    root = ev.period_root(recs)
    for r in recs:
        leaf = ev._leaf(r.index, ev.record_hash(r))  # noqa: SLF001 - the leaf definition is the point
        assert ev.verify_proof(ev.merkle_proof(recs, r.index), root, leaf)
    assert ev.period_root(recs[:1]) == ev._leaf(0, ev.record_hash(recs[0]))  # noqa: SLF001
    assert ev.period_root(list(reversed(recs))) == root  # order of the argument does not matter
    with pytest.raises(ev.EvidenceError):
        ev.merkle_root([])
    # Nothing measured (satisfaction/composite only): a fixed, documented, non-zero root.
    assert ev.period_root([]) == ev.NO_MEASURED_SERVICE_ROOT != bytes(32)


def test_a_bundle_that_lies_about_its_hashes_or_shape_is_refused_with_every_problem():
    doc = ev.bundle_document(ev.Bundle(ORACLE, (record(["up", "down", "up"]),)))
    tampered = json.loads(json.dumps(doc))
    tampered["services"][0]["runs"][1][0] = "none"  # alter a slice, keep the claimed hashes
    with pytest.raises(ev.EvidenceError, match="recordHash"):
        ev.parse_bundle(tampered)
    bad = json.loads(json.dumps(doc))
    bad["services"][0]["runs"] = [["up", 2], ["sideways", 1]]
    bad["sliceSeconds"] = "60"
    bad["oracle"] = "me"
    with pytest.raises(ev.EvidenceError) as info:
        ev.parse_bundle(bad)
    msg = str(info.value)
    assert "sideways" in msg and "sliceSeconds" in msg and "oracle" in msg
    short = json.loads(json.dumps(doc))
    short["services"][0]["runs"] = [["up", 2]]
    short["services"][0].pop("recordHash")
    short.pop("root")
    with pytest.raises(ev.EvidenceError, match="cover 2 slices, the period has 3"):
        ev.parse_bundle(short)


def test_hostile_bundles_are_refused_not_crashed_on():
    for text in ("[" * 100_000, "{}", '{"version": 1, "services": "x"}', "not json", "[]"):
        with pytest.raises(ev.EvidenceError):
            ev.parse_bundle(text)
    with pytest.raises(ev.EvidenceError, match="larger than"):
        ev.parse_bundle(" " * (ev.MAX_BUNDLE_BYTES + 1))
    # Brackets and quotes inside strings are not nesting.
    odd = replace(record(["up"] * 3), name='w[[[[[[[[[[{{{{{{{"\\')
    assert ev.parse_bundle(ev.dumps_bundle(ev.Bundle(ORACLE, (odd,)))).records == (odd,)
    # A run claiming a trillion slices is refused by its count, never expanded.
    doc = ev.bundle_document(ev.Bundle(ORACLE, (record(["up"] * 3),)))
    doc["services"][0]["runs"] = [["up", 10**12]]
    with pytest.raises(ev.EvidenceError, match="cover 1000000000000 slices"):
        ev.parse_bundle(doc)
