"""When each test ran, and on which worker: `SMARTSLA_TIMELINE=FILE .venv/bin/python -m pytest`
appends one line per test to FILE (`start end worker nodeid`, seconds since the epoch), so a slow
full run shows where workers sat idle or a long test started late (issue 13 item 9: the schedule
of a parallel run). `python tests/timeline_helpers.py FILE` prints it per worker, from the run's
first start."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Generator
from pathlib import Path

import pytest

PATH = os.environ.get("SMARTSLA_TIMELINE", "")


class Timeline:
    def __init__(self, path: Path, worker: str) -> None:
        self.path, self.worker = path, worker

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        started = time.time()
        yield
        with self.path.open("a") as out:  # one short write per test: lines of workers do not mix
            out.write(f"{started:.2f} {time.time():.2f} {self.worker} {item.nodeid}\n")


def report(path: Path) -> str:
    rows = [line.split(" ", 3) for line in path.read_text().splitlines() if line]
    origin = min(float(r[0]) for r in rows)
    lines: list[str] = []
    for worker in sorted({r[2] for r in rows}):
        mine = sorted((float(r[0]) - origin, float(r[1]) - origin, r[3]) for r in rows if r[2] == worker)
        busy = sum(end - start for start, end, _ in mine)
        lines.append(f"{worker}: {len(mine)} tests, busy {busy:.0f} s, last end {mine[-1][1]:.0f} s")
        lines += [f"  {start:6.0f} {end - start:6.1f}  {nodeid}" for start, end, nodeid in mine if end - start >= 5]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1])))
