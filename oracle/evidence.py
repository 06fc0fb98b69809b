"""Evidence of a period figure: the slice record, its canonical bytes and hash, the Merkle root the
oracle commits on-chain, and the bundle it serves. Pure functions, no I/O.

Why: a report used to be a bare number and a signature. With the record anyone can see which
slices were counted as down or excluded, recompute the figure with the agreement's method, and
check the record against the root the oracle signed (`smartsla verify`; docs/evidence.md).

The rules:

* **The slice record** of one service for one period lists every slice of the period, in order,
  as exactly one state (the classification of `oracle.sli`):

  - ``"up"``: measured, every check passed;
  - ``"down"``: measured, a check failed (after the failure threshold, if any);
  - ``"none"``: not measured (no sample in it);
  - ``"w<k>"``: excluded by the maintenance window with on-chain index ``k`` (the position in
    `maintenanceWindows`), declared with the agreed notice. A slice overlapping several such
    windows names the lowest index. Only windows the contract marked as excluded (with notice)
    can appear: the oracle's own configuration excludes nothing.

  It is stored run-length encoded: ``[[state, count], ...]``, adjacent runs always of different
  states, so a record has exactly one encoding.
* **Latency services** also carry one measurement per ``"up"`` slice, in slice order: the slowest
  successful check of the slice in whole milliseconds, rounded up (a slice is as slow as its
  slowest answer; rounding never favours the provider). The period figure is the agreement's
  nearest-rank percentile of these values (`smartsla.forecast.latency_figure_ms`). A slice with a
  failed check has no latency: the failure is its measurement.
* **The figure** is computed from the record ONLY (`figure_from_record`): the oracle computes the
  figure it reports this way, and `smartsla verify` recomputes it the same way, so the two cannot
  drift. The slice totals follow `oracle.sli.counts_of_classes` (the rules of `count_slices`).
* **Canonical bytes** of a service record: the JSON object of `record_document` with keys
  sorted, no whitespace, ASCII only (``json.dumps(doc, sort_keys=True, separators=(",", ":"))``;
  ``jq -cS`` prints the same bytes). Every value is an integer or a string, so there is no
  number formatting to disagree on. It binds the version, chain id, agreement (lower case),
  period, its start/end, slice length, the service's index, name and kind, the runs and latencies.
* **Record hash** = keccak256(canonical bytes).
* **Period root** (committed in the signed report and the `EvidenceCommitted` event): an
  OpenZeppelin-compatible Merkle root over the measured services. Leaf =
  keccak256(bytes.concat(keccak256(abi.encode(uint256 serviceIndex, bytes32 recordHash)))); pairs
  hashed commutatively (keccak256 of the smaller then the larger); the leaves in service order,
  reduced level by level, an odd last node carried up unchanged. One leaf: the root is the leaf.
* **The bundle** (what the oracle serves): JSON with `version`, `agreement`, `chainId`,
  `period`, `oracle`, `sliceSeconds`, `start`, `end`, `root` and per service its `index`, `name`,
  `kind`, `runs`, `latencyMs` (latency only), `recordHash` and `counts` (derived, for reading;
  a verifier recomputes them). A 30-day period at one-minute slices is a few hundred bytes for a
  service that stayed up, and grows with the number of state changes (flapping) and, for latency
  services, with one integer per up slice.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak

from smartsla.forecast import latency_figure_ms

from .sli import PeriodFigure, counts_of_classes, figure_from_counts, maintenance_slices, nearest_rank, slice_count

VERSION = 1
UP, DOWN, NONE = "up", "down", "none"
_WINDOW = re.compile(r"^w(0|[1-9][0-9]{0,8})$")
KINDS = ("availability", "latency")
MAX_BUNDLE_BYTES = 16 * 1024 * 1024  # a bundle larger than this is refused when read (hostile server)


class EvidenceError(ValueError):
    """A record or bundle that is not well formed; the message names every problem."""


def window_state(index: int) -> str:
    return f"w{index}"


def window_index(state: str) -> int | None:
    """The on-chain window index of an excluded state, None for up/down/none."""
    m = _WINDOW.match(state)
    return int(m.group(1)) if m else None


def is_state(state: object) -> bool:
    return isinstance(state, str) and (state in (UP, DOWN, NONE) or window_index(state) is not None)


# ---------------------------------------------------------------------------- run-length encoding

def encode_runs(states: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """Run-length encode per-slice states: ["up", "up", "down"] -> (("up", 2), ("down", 1))."""
    runs: list[list[Any]] = []
    for s in states:
        if runs and runs[-1][0] == s:
            runs[-1][1] += 1
        else:
            runs.append([s, 1])
    return tuple((s, n) for s, n in runs)


def decode_runs(runs: Iterable[tuple[str, int]]) -> list[str]:
    """The inverse of `encode_runs`."""
    out: list[str] = []
    for s, n in runs:
        out.extend([s] * n)
    return out


# ---------------------------------------------------------------------------- the record

@dataclass(frozen=True)
class ServiceRecord:
    """One service's slice record for one period (see the module docstring for the rules)."""

    chain_id: int
    agreement: str
    period: int
    start: int
    end: int
    slice_seconds: int
    index: int  # position of the service in the agreement's terms
    name: str
    kind: str  # "availability" | "latency"
    runs: tuple[tuple[str, int], ...]
    latency_ms: tuple[int | None, ...] = ()  # latency services: one per "up" slice, in order

    @property
    def slices(self) -> int:
        return sum(n for _, n in self.runs)

    def states(self) -> list[str]:
        return decode_runs(self.runs)

    def problems(self) -> list[str]:
        """Everything wrong with the record (empty: well formed)."""
        out: list[str] = []
        if self.slice_seconds <= 0 or self.end < self.start:
            out.append(f"slice length {self.slice_seconds} s over [{self.start}, {self.end}) is not a valid period")
        else:
            expected = slice_count(self.start, self.end, self.slice_seconds)
            covered = sum(n for _, n in self.runs if isinstance(n, int))
            if covered != expected:
                out.append(f"{self.name}: the runs cover {covered} slices, the period has {expected}")
        for i, (s, n) in enumerate(self.runs):
            if not is_state(s):
                out.append(f"{self.name}: run {i}: unknown state {s!r}")
            if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
                out.append(f"{self.name}: run {i}: length {n!r} is not a positive integer")
            if i and self.runs[i - 1][0] == s:
                out.append(f"{self.name}: runs {i - 1} and {i} have the same state {s!r} (not canonical)")
        if self.kind not in KINDS:
            out.append(f"{self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        ups = sum(n for s, n in self.runs if s == UP and isinstance(n, int))
        if self.kind == "latency" and len(self.latency_ms) != ups:
            out.append(f"{self.name}: {len(self.latency_ms)} latency values for {ups} up slices")
        if self.kind != "latency" and self.latency_ms:
            out.append(f"{self.name}: latency values on an {self.kind} service")
        bad = [v for v in self.latency_ms if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0)]
        if bad:
            out.append(f"{self.name}: latency values must be whole non-negative ms, got {bad[:3]}")
        return out


def record_document(record: ServiceRecord) -> dict[str, Any]:
    """The JSON object whose canonical bytes are hashed (every field of the record)."""
    doc: dict[str, Any] = {
        "version": VERSION, "chainId": record.chain_id, "agreement": record.agreement.lower(),
        "period": record.period, "start": record.start, "end": record.end,
        "sliceSeconds": record.slice_seconds, "index": record.index, "name": record.name, "kind": record.kind,
        "runs": [[s, n] for s, n in record.runs],
    }
    if record.kind == "latency":
        doc["latencyMs"] = list(record.latency_ms)
    return doc


def canonical_bytes(record: ServiceRecord) -> bytes:
    """Sorted keys, no whitespace, ASCII: deterministic for the same record."""
    return json.dumps(record_document(record), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def record_hash(record: ServiceRecord) -> bytes:
    return keccak(canonical_bytes(record))


# ---------------------------------------------------------------------------- building it

ExcludedWindow = tuple[int, float, float]  # (on-chain index, start, end) of a window declared with notice


@dataclass(frozen=True)
class SliceData:
    """What a period's measurements say per slice, in the compact form the store aggregates
    (oracle.store.Store.slice_data) so a month of healthy slices is a few tuples, not 43,200:

    * `measured`: the slices holding a sample, as sorted, disjoint (first, last) runs;
    * `down`: the measured slices whose verdict is down (a failed check, after the threshold);
    * `latency`: slice index -> the slowest successful check in ms, or None (needed for latency
      services only; an up slice absent from it has no latency value).
    """

    measured: tuple[tuple[int, int], ...]
    down: frozenset[int] = frozenset()
    latency: Mapping[int, float | None] = field(default_factory=dict)

    @classmethod
    def from_slices(cls, slices: Mapping[int, tuple[bool, float | None]]) -> SliceData:
        """From per-slice (verdict, slowest successful check in ms or None)."""
        return cls(measured=index_runs(slices), down=frozenset(i for i, (ok, _) in slices.items() if not ok),
                   latency={i: ms for i, (_, ms) in slices.items()})


def index_runs(indexes: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """DISTINCT integers as sorted (first, last) runs of consecutive values: {7, 1, 2, 3} -> ((1, 3), (7, 7)).

    A sorted stretch xs[lo:hi] of distinct integers is one run exactly when xs[hi-1] - xs[lo] ==
    hi - 1 - lo, so the stretches are split in halves only where a gap is: a month measured
    without a gap is one comparison, not 43,200 steps."""
    xs = sorted(indexes)
    out: list[tuple[int, int]] = []
    stack = [(0, len(xs))] if xs else []
    while stack:
        lo, hi = stack.pop()
        if xs[hi - 1] - xs[lo] == hi - 1 - lo:
            if out and out[-1][1] == xs[lo] - 1:  # continues the run before it
                out[-1] = (out[-1][0], xs[hi - 1])
            else:
                out.append((xs[lo], xs[hi - 1]))
            continue
        mid = (lo + hi) // 2
        stack += [(mid, hi), (lo, mid)]  # the left half first: runs come out in order
    return tuple(out)


def _excluded_segments(start: int, end: int, slice_seconds: int, n: int,
                       windows: Sequence[ExcludedWindow]) -> list[tuple[int, int, int]]:
    """Sorted, disjoint [a, b) slice ranges with the window index naming them: the slices each
    window overlaps (the rule of oracle.sli.maintenance_slices), the lowest index where windows overlap."""
    ranges: list[tuple[int, int, int]] = []
    for w_index, w_start, w_end in windows:
        hit = maintenance_slices(start, end, slice_seconds, [(w_start, w_end)])
        if hit:  # one window overlaps consecutive slices
            ranges.append((min(hit), max(hit) + 1, w_index))
    cuts = sorted({c for a, b, _ in ranges for c in (a, b)} | {0, n})
    out: list[tuple[int, int, int]] = []
    for a, b in pairwise(cuts):
        covering = [w for ra, rb, w in ranges if ra <= a and b <= rb]
        if covering:
            out.append((a, b, min(covering)))
    return out


def build_record(*, chain_id: int, agreement: str, period: int, start: int, end: int, slice_seconds: int,
                 index: int, name: str, kind: str, slices: Mapping[int, tuple[bool, float | None]] | SliceData,
                 windows: Sequence[ExcludedWindow] = ()) -> ServiceRecord:
    """The record of one service from per-slice data.

    `slices` maps a slice index to (verdict, slowest successful check in ms or None), or is the
    same in the compact `SliceData` form; an index absent from it was not measured; indexes
    outside the period are ignored. `windows` are the maintenance windows declared on-chain WITH
    the agreed notice, with their on-chain index.

    Built from ranges (window ranges, measured runs, down slices), never slice by slice: the cost
    grows with the number of state changes, plus one step per up slice for latency services.
    """
    data = slices if isinstance(slices, SliceData) else SliceData.from_slices(slices)
    n = slice_count(start, end, slice_seconds)
    excluded = _excluded_segments(start, end, slice_seconds, n, windows)
    down = sorted(d for d in data.down if 0 <= d < n)
    cuts = {0, n}
    cuts.update(c for a, b, _ in excluded for c in (a, b))
    cuts.update(min(max(c, 0), n) for a, b in data.measured for c in (a, b + 1))
    cuts.update(c for d in down for c in (d, d + 1))
    down_set = set(down)
    runs: list[list[Any]] = []
    latencies: list[int | None] = []
    ex = ms_run = 0  # pointers into `excluded` and `data.measured`
    bounds = sorted(cuts)
    for a, b in pairwise(bounds):
        while ex < len(excluded) and excluded[ex][1] <= a:
            ex += 1
        while ms_run < len(data.measured) and data.measured[ms_run][1] < a:
            ms_run += 1
        if ex < len(excluded) and excluded[ex][0] <= a:
            state = window_state(excluded[ex][2])
        elif ms_run < len(data.measured) and data.measured[ms_run][0] <= a:
            state = DOWN if a in down_set else UP
            if state == UP and kind == "latency":
                for i in range(a, b):
                    ms = data.latency.get(i)
                    latencies.append(None if ms is None else int(math.ceil(ms)))
        else:
            state = NONE
        if runs and runs[-1][0] == state:
            runs[-1][1] += b - a
        else:
            runs.append([state, b - a])
    return ServiceRecord(chain_id=chain_id, agreement=agreement.lower(), period=period, start=start, end=end,
                         slice_seconds=slice_seconds, index=index, name=name, kind=kind,
                         runs=tuple((s, k) for s, k in runs), latency_ms=tuple(latencies))


def excluded_slices(record: ServiceRecord) -> dict[int, int]:
    """Slice index -> on-chain window index, for the excluded slices of the record."""
    out: dict[int, int] = {}
    i = 0
    for s, n in record.runs:
        w = window_index(s)
        if w is not None:
            out.update({j: w for j in range(i, i + n)})
        i += n
    return out


# ---------------------------------------------------------------------------- the figure

def figure_from_record(record: ServiceRecord, *, percentile: int = 95, objective_ms: int = 0) -> PeriodFigure:
    """The period figure of the record, with the oracle's own counting rules (oracle.sli).

    Availability: value_ppm = good * 1e6 // measured (count_slices). Latency: value_ppm holds the
    reported whole ms (`latency_figure_ms` over the per-slice latencies: nearest rank
    `percentile`; no up slice but measured ones -> LATENCY_UNKNOWN_MS; nothing measured -> the
    objective); p50/p95/p99 are the same percentiles of the per-slice values.
    """
    # The record already classifies every slice (with oracle.sli's rules, in build_record):
    # counting is summing its runs by state.
    by_state = counts_of(record)
    counts = counts_of_classes(good=by_state[UP], bad=by_state[DOWN], missing=by_state[NONE],
                               maintenance=by_state["excluded"])
    L = record.slice_seconds
    values = sorted(float(v) for v in record.latency_ms if v is not None)
    latencies = (nearest_rank(values, 50), nearest_rank(values, 95), nearest_rank(values, 99))
    figure = figure_from_counts(counts, L, latencies if record.kind == "latency" else (None, None, None))
    if record.kind == "latency":
        value = latency_figure_ms(values, percentile, objective_ms, measured=counts.total > 0)
        figure = replace(figure, value_ppm=value)
    return figure


# ---------------------------------------------------------------------------- the Merkle root

def _leaf(service_index: int, rec_hash: bytes) -> bytes:
    return keccak(keccak(abi_encode(["uint256", "bytes32"], [service_index, rec_hash])))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Commutative-keccak Merkle root (OpenZeppelin MerkleProof compatible), leaves in the order
    given, level by level, an odd last node carried up unchanged."""
    if not leaves:
        raise EvidenceError("no service record: a root over nothing would commit to nothing")
    level = list(leaves)
    while len(level) > 1:
        nxt = [_pair(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


NO_MEASURED_SERVICE_ROOT = keccak(b"smartsla evidence v1: no measured service")
"""The root of an agreement whose services are all satisfaction/composite: the oracle measured
nothing, and the contract refuses a zero root."""


def period_root(records: Sequence[ServiceRecord]) -> bytes:
    """The root committed in the report: over (service index, record hash) leaves, in service order."""
    if not records:
        return NO_MEASURED_SERVICE_ROOT
    ordered = sorted(records, key=lambda r: r.index)
    return merkle_root([_leaf(r.index, record_hash(r)) for r in ordered])


def opaque_root(records: Sequence[bytes]) -> bytes:
    """The same tree over records of the caller's own format: leaf i = (i, keccak256(records[i])).
    For gas benches only (bench/gas.py, bench/batch_gas.py: the contract stores any non-zero root);
    whatever settles a figure commits `period_root` of slice records, which `smartsla verify` checks."""
    return merkle_root([_leaf(i, keccak(r)) for i, r in enumerate(records)])


def merkle_proof(records: Sequence[ServiceRecord], service_index: int) -> list[bytes]:
    """The sibling hashes proving one service's leaf under `period_root(records)` (for
    OpenZeppelin's MerkleProof.verify(proof, root, leaf))."""
    ordered = sorted(records, key=lambda r: r.index)
    level = [_leaf(r.index, record_hash(r)) for r in ordered]
    pos = next((k for k, r in enumerate(ordered) if r.index == service_index), None)
    if pos is None:
        raise EvidenceError(f"no record for service index {service_index}")
    proof: list[bytes] = []
    while len(level) > 1:
        sibling = pos ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        nxt = [_pair(level[k], level[k + 1]) for k in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, pos = nxt, pos // 2
    return proof


def verify_proof(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """OpenZeppelin MerkleProof.verify."""
    node = leaf
    for p in proof:
        node = _pair(node, p)
    return node == root


# ---------------------------------------------------------------------------- the bundle

@dataclass(frozen=True)
class Bundle:
    """Everything one oracle offers as evidence for one period of one agreement."""

    oracle: str
    records: tuple[ServiceRecord, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    # The header when there is no record (an agreement without a measured service).
    chain_id: int = 0
    agreement: str = ""
    period: int = 0
    start: int = 0
    end: int = 0
    slice_seconds: int = 0

    @property
    def head(self) -> ServiceRecord:
        if self.records:
            return self.records[0]
        return ServiceRecord(chain_id=self.chain_id, agreement=self.agreement, period=self.period, start=self.start,
                             end=self.end, slice_seconds=self.slice_seconds, index=-1, name="", kind="", runs=())

    @property
    def root(self) -> bytes:
        return period_root(self.records)


def counts_of(record: ServiceRecord) -> dict[str, int]:
    """Slice counts by state, for reading (a verifier recomputes them from the runs)."""
    out = {UP: 0, DOWN: 0, NONE: 0, "excluded": 0}
    for s, n in record.runs:
        out[s if s in out else "excluded"] += n
    return out


def bundle_document(bundle: Bundle) -> dict[str, Any]:
    """The JSON bundle served by the oracle and read by `smartsla verify`."""
    h = bundle.head
    return {
        "version": VERSION, "agreement": h.agreement, "chainId": h.chain_id, "period": h.period,
        "oracle": bundle.oracle, "sliceSeconds": h.slice_seconds, "start": h.start, "end": h.end,
        "root": "0x" + bundle.root.hex(),
        "services": [{"index": r.index, "name": r.name, "kind": r.kind, "runs": [[s, n] for s, n in r.runs],
                      **({"latencyMs": list(r.latency_ms)} if r.kind == "latency" else {}),
                      "counts": counts_of(r), "recordHash": "0x" + record_hash(r).hex()}
                     for r in sorted(bundle.records, key=lambda r: r.index)],
    }


def dumps_bundle(bundle: Bundle) -> str:
    """Compact, deterministic JSON text of the bundle."""
    return json.dumps(bundle_document(bundle), sort_keys=True, separators=(",", ":"))


def _int(doc: Mapping[str, Any], key: str, where: str, problems: list[str]) -> int:
    v = doc.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        problems.append(f"{where}{key}: expected an integer, got {v!r}")
        return 0
    return v


MAX_DEPTH = 8


def _too_deep(text: str) -> bool:
    """Whether JSON `text` nests arrays/objects deeper than MAX_DEPTH (strings skipped)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_bundle(data: str | bytes | Mapping[str, Any]) -> Bundle:
    """Read a bundle (JSON text or the decoded object), checking its shape. Its `root` and
    `recordHash` fields are NOT trusted: they are recomputed and a difference is an error (a
    bundle that does not hash to what it claims is not evidence of anything)."""
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_BUNDLE_BYTES:
            raise EvidenceError(f"bundle of {len(data):,} bytes is larger than {MAX_BUNDLE_BYTES:,}")
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if _too_deep(text):
            # A bundle is at most 4 levels deep; a hostile one nested 100,000 deep would exhaust
            # the parser's stack (it crashes the interpreter rather than raising).
            raise EvidenceError(f"bundle is nested deeper than {MAX_DEPTH} levels: not a bundle")
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise EvidenceError(f"bundle is not JSON: {exc.__class__.__name__}: {exc}") from exc
    else:
        doc = data
    if not isinstance(doc, Mapping):
        raise EvidenceError("bundle: expected a JSON object")
    problems: list[str] = []
    if doc.get("version") != VERSION:
        problems.append(f"version: expected {VERSION}, got {doc.get('version')!r}")
    head = {k: _int(doc, k, "", problems) for k in ("chainId", "period", "sliceSeconds", "start", "end")}
    agreement, oracle = doc.get("agreement"), doc.get("oracle")
    for key, v in (("agreement", agreement), ("oracle", oracle)):
        if not (isinstance(v, str) and re.fullmatch(r"0x[0-9a-fA-F]{40}", v)):
            problems.append(f"{key}: expected a 0x address, got {v!r}")
    services = doc.get("services")
    if not isinstance(services, list):
        problems.append("services: expected a list")
        services = []
    records: list[ServiceRecord] = []
    for k, s in enumerate(services):
        where = f"services[{k}]."
        if not isinstance(s, Mapping):
            problems.append(f"services[{k}]: expected an object")
            continue
        runs = s.get("runs")
        if not isinstance(runs, list) or not all(isinstance(r, list) and len(r) == 2 for r in runs):
            problems.append(f"{where}runs: expected a list of [state, count] pairs")
            runs = []
        lat = s.get("latencyMs", [])
        if not isinstance(lat, list):
            problems.append(f"{where}latencyMs: expected a list")
            lat = []
        name = s.get("name")
        if not isinstance(name, str):
            problems.append(f"{where}name: expected a string")
            name = "?"
        rec = ServiceRecord(chain_id=head["chainId"], agreement=str(agreement).lower(), period=head["period"],
                            start=head["start"], end=head["end"], slice_seconds=head["sliceSeconds"],
                            index=_int(s, "index", where, problems), name=name, kind=str(s.get("kind")),
                            runs=tuple((r[0], r[1]) for r in runs), latency_ms=tuple(lat))
        problems += [f"{where[:-1]}: {p}" for p in rec.problems()]
        claimed = s.get("recordHash")
        if not problems and claimed is not None and claimed != "0x" + record_hash(rec).hex():
            problems.append(f"{where}recordHash: {claimed} is not the hash of the record "
                            f"(0x{record_hash(rec).hex()})")
        records.append(rec)
    if len({r.index for r in records}) != len(records):
        problems.append("services: a service index appears twice")
    if problems:
        raise EvidenceError("; ".join(problems))
    bundle = Bundle(oracle=str(oracle), records=tuple(records), chain_id=head["chainId"],
                    agreement=str(agreement).lower(), period=head["period"], start=head["start"], end=head["end"],
                    slice_seconds=head["sliceSeconds"])
    claimed_root = doc.get("root")
    if claimed_root is not None and claimed_root != "0x" + bundle.root.hex():
        raise EvidenceError(f"root: {claimed_root} is not the root of the records (0x{bundle.root.hex()})")
    return bundle
