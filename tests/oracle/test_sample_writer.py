"""The daemon's batching sample writer: every sample put is stored exactly once, also while
another thread keeps putting during the writes, and flush() returns only once what was put
before it is committed."""

from __future__ import annotations

import threading
from pathlib import Path

from oracle.daemon import SampleWriter
from oracle.probes import Sample
from oracle.store import Store

A, B = "0x" + "a" * 40, "0x" + "b" * 40


def test_every_sample_is_stored_once_and_flush_waits_for_the_commit(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'w.db'}") as store:
        writer = SampleWriter(store)
        writer.start()
        for i in range(3_000):  # more than a batch
            writer.put(A if i % 2 else B, Sample("api", 1_000.0 + i, True, 1.0, ""))
        writer.flush()
        assert len(store.samples(A, "api", 0, 10_000)) + len(store.samples(B, "api", 0, 10_000)) == 3_000

        def producer(agreement: str) -> None:
            for i in range(20_000):
                writer.put(agreement, Sample("db", 10_000.0 + i, i % 7 != 0, None, ""))

        threads = [threading.Thread(target=producer, args=(a,)) for a in (A, B)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        writer.close()  # writes what is left
        for agreement in (A, B):
            got = store.samples(agreement, "db", 0, 100_000)
            assert [s.ts for s in got] == [10_000.0 + i for i in range(20_000)]
            assert [s.ok for s in got] == [i % 7 != 0 for i in range(20_000)]
        assert writer.errors == 0
