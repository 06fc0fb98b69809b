"""The store's period figures (the path the daemon settles with: slice counts and latency
percentiles aggregated by the database, several services side by side) equal the reference
function `oracle.sli.availability` on random samples, slices and maintenance windows."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.probes import Sample
from oracle.sli import availability, figure_from_counts
from oracle.store import Store

START = 1_800_000_000
_ids = count(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("fast") / "store.db"
    with Store.open(f"sqlite:///{path}") as s:
        yield s


samples_st = st.lists(st.tuples(st.floats(-50, 1_250, allow_nan=False),  # some outside the period
                                st.booleans(), st.floats(0, 2_000, allow_nan=False)), max_size=120)
windows_st = st.lists(st.tuples(st.floats(-100, 1_300, allow_nan=False), st.floats(0, 400, allow_nan=False)),
                      max_size=3)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=samples_st, windows=windows_st, slice_seconds=st.sampled_from([1, 7, 60, 300]),
       length=st.integers(1, 1_200))
def test_the_stores_figure_is_the_reference_figure(store: Store, raw: list[tuple[float, bool, float]],
                                                   windows: list[tuple[float, float]], slice_seconds: int,
                                                   length: int) -> None:
    agreement = f"0x{next(_ids):040x}"  # one agreement per example: the examples share the store
    end = START + length
    samples = [Sample("api", START + t, ok, ms if ok else None, "") for t, ok, ms in raw]
    store.add_samples(agreement, samples)
    maint = [(START + a, START + a + d) for a, d in windows]
    want = availability(samples, START, end, slice_seconds=slice_seconds, maintenance=maint)
    counts = store.slice_counts(agreement, "api", START, end, slice_seconds, maint)
    latencies = store.latency_percentiles(agreement, "api", START, end, slice_seconds, maint)
    assert figure_from_counts(counts, slice_seconds, latencies) == want  # type: ignore[arg-type]
    # several requests at once (threads, a connection each) give the same counts, in order
    other = (agreement, "api", START, START + length // 2, slice_seconds, ())
    got = store.slice_counts_many([(agreement, "api", START, end, slice_seconds, maint), other, other], workers=2)
    assert got == [counts, store.slice_counts(*other), store.slice_counts(*other)]
