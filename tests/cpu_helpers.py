"""CPU seconds per test, the worker's own and its process tree's (Anvil, Ganache, Forge, solc, the
oracle daemons, Chromium, Prometheus): the machine is shared, so wall time is noisy while CPU time
is not. Off unless `SMARTSLA_CPU_PROFILE=1`; then the end of the run lists the top consumers and
the sum (issue 13 item 9: where the full run's CPU goes).

The CPU of a process tree, continuous across a child's exit: the worker's own rusage, plus its
reaped children's (RUSAGE_CHILDREN), plus for every live descendant its utime+stime and its own
reaped children's (cutime+cstime, /proc/<pid>/stat). A child counted live at a test's start and
reaped during it moves from the third term to the second, so a test's figure is the difference.
Orphans (a double-forking daemon) escape; long-lived fixtures' idle CPU goes to the test that
happens to run.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Generator
from pathlib import Path

import pytest

ENABLED = os.environ.get("SMARTSLA_CPU_PROFILE", "") not in ("", "0")
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime+stime+cutime+cstime in seconds) of a live process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid ...
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICK


def _descendants_cpu(root: int) -> float:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found:
                stats[int(entry)] = found
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def tree_cpu() -> float:
    """CPU seconds of this process and its process tree so far (see the module docstring)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + _descendants_cpu(os.getpid())


class CpuProfile:
    """Records each test's CPU seconds in its report (user_properties, so it reaches the xdist
    controller) and prints the top consumers at the end."""

    def __init__(self) -> None:
        self.per_test: dict[str, float] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        item.user_properties.append(("cpu_start", tree_cpu()))
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item) -> Generator[None, None, None]:
        outcome = yield
        report = outcome.get_result()
        start = dict(item.user_properties).get("cpu_start")
        if report.when == "teardown" and isinstance(start, float):
            report.user_properties.append(("cpu_s", tree_cpu() - start))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        cpu = dict(report.user_properties).get("cpu_s")
        if report.when == "teardown" and isinstance(cpu, float):
            self.per_test[report.nodeid] = cpu

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.per_test:
            return
        write = terminalreporter.write_line
        modules: dict[str, float] = {}
        for nodeid, cpu in self.per_test.items():
            module = nodeid.split("::", 1)[0]
            modules[module] = modules.get(module, 0.0) + cpu
        total = sum(self.per_test.values())
        write(f"CPU per test (worker + its processes): {total:.0f} s = {total / 60:.1f} CPU-min over "
              f"{len(self.per_test)} tests; top 30 tests:")
        for nodeid, cpu in sorted(self.per_test.items(), key=lambda kv: -kv[1])[:30]:
            write(f"  {cpu:7.1f} s  {nodeid}")
        write("top 30 modules:")
        for module, cpu in sorted(modules.items(), key=lambda kv: -kv[1])[:30]:
            write(f"  {cpu:7.1f} s  {module}")
