"""The parallel run's schedule (tests/schedule_helpers.py): the longest units first, modules whole,
and a lone long test never holds the next long one behind it on its worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from schedule_helpers import PRIORITY_WORKER, LongestFirstScheduling, cost, is_priority, order_longest_first, unit_of
from timeline_helpers import report

FORGE = "tests/test_static_and_invariants.py::test_forge_fuzz_and_invariants_ci_profile"
E2E = "tests/test_operator_e2e.py::test_operator_path_settles_every_period_and_pays_the_promised_credits"
PROPS = "tests/test_properties.py::test_contract_credit_equals_the_reference_model"


@dataclass
class Item:
    nodeid: str


def test_units_are_modules_except_the_split_and_shared_ones() -> None:
    assert unit_of("tests/test_terms.py::test_a") == "tests/test_terms.py"
    assert unit_of(f"{E2E}[anvil]") == f"{E2E}[anvil]"  # long and independent: one unit per test
    assert unit_of("tests/web/test_api.py::t") == unit_of("tests/web/test_forecast_browser.py::t")  # demo_server
    assert cost(FORGE) > cost(f"{E2E}[ganache]") > cost(PROPS) > cost("tests/test_terms.py::test_a") == 1.0


def test_the_longest_units_come_first_and_a_modules_tests_stay_together_in_order() -> None:
    ids = ["tests/oracle/test_sli.py::a", "tests/oracle/test_sli.py::b", f"{E2E}[anvil]",
           "tests/test_terms.py::a", PROPS, "tests/test_terms.py::b", f"{E2E}[ganache]", FORGE]
    items = [Item(i) for i in ids]
    order_longest_first(items)  # type: ignore[arg-type]
    got = [i.nodeid for i in items]
    assert got[:4] == [FORGE, f"{E2E}[anvil]", f"{E2E}[ganache]", PROPS]
    assert got[4:] in (["tests/oracle/test_sli.py::a", "tests/oracle/test_sli.py::b", "tests/test_terms.py::a",
                        "tests/test_terms.py::b"],
                       ["tests/test_terms.py::a", "tests/test_terms.py::b", "tests/oracle/test_sli.py::a",
                        "tests/oracle/test_sli.py::b"])


@dataclass(eq=False)
class Node:
    """What the scheduler sees of an xdist worker: it is sent test indices, or told to shut down."""
    name: str
    sent: list[int] = field(default_factory=list)
    shutting_down: bool = False

    @property
    def gateway(self) -> SimpleNamespace:
        return SimpleNamespace(id=self.name)

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_a_lone_long_test_gets_the_cheapest_unit_as_its_successor_not_the_next_long_one() -> None:
    collection = [FORGE, f"{E2E}[anvil]", f"{E2E}[ganache]", PROPS, "tests/test_erc20.py::a",
                  "tests/test_erc20.py::b", "tests/test_terms.py::a"]
    config = SimpleNamespace(getvalue=lambda name: ["2*popen"] if name == "tx" else None,
                             option=SimpleNamespace(loadscopereorder=True))
    sched = LongestFirstScheduling(config)  # type: ignore[arg-type]
    w0, w1 = Node("gw0"), Node("gw1")
    for node in (w0, w1):
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    # Each worker starts a long test; as each holds only that one, it gets the cheapest unit left
    # (an xdist worker starts a test once it holds the next): never a long test waiting behind Forge.
    assert [collection[i] for i in w0.sent] == [FORGE, "tests/test_terms.py::a"]
    assert [collection[i] for i in w1.sent] == [f"{E2E}[anvil]", "tests/test_erc20.py::a", "tests/test_erc20.py::b"]
    # gw1's end-to-end test finishes: it holds two short tests, enough; after them, the next long one.
    sched.mark_test_complete(w1, 1)
    assert len(w1.sent) == 3
    sched.mark_test_complete(w1, 4)
    assert [collection[i] for i in w1.sent[3:]] == [f"{E2E}[ganache]"]


def test_split_modules_keep_the_tests_of_a_module_fixture_together() -> None:
    # test_demo_cli is split (its tests are independent), except the tests on its module-scoped
    # demo_run fixture: one unit, so the demo runs once.
    assert unit_of("tests/test_demo_cli.py::test_demo_balance_sheet_balances") == unit_of(
        "tests/test_demo_cli.py::test_demo_output_tells_the_story")
    assert unit_of("tests/test_demo_cli.py::test_help_lists_the_command_groups") == (
        "tests/test_demo_cli.py::test_help_lists_the_command_groups")
    refusal = "tests/web/test_corporate_api.py::test_refusals_name_the_contracts_error[deposit]"
    assert unit_of(refusal) == unit_of("tests/web/test_corporate_api.py::test_compliance_report_as_csv_x")


HANGING = "tests/oracle/test_daemon.py::test_hanging_targets_do_not_delay_or_spoil_other_targets"
OVERLOAD = "tests/oracle/test_daemon.py::test_overload_is_never_recorded_as_an_outage"


def test_timing_bound_units_go_first_and_only_to_the_priority_worker_while_the_others_wait() -> None:
    # A timing-bound test beside the rest of the run (more workers than cores) has its target
    # servers starved (security.md L-3): until the last of them ends, the other workers run only
    # Forge and Slither (their CPU niced) or wait.
    collection = [FORGE, f"{E2E}[anvil]", HANGING, OVERLOAD, "tests/oracle/test_probes.py::a",
                  "tests/oracle/test_probes.py::b", "tests/test_erc20.py::a", "tests/test_terms.py::a",
                  "tests/test_rules.py::a", "tests/test_keys.py::a", "tests/test_sli.py::a"]
    assert is_priority(HANGING) and is_priority("tests/oracle/test_probes.py::a") and not is_priority(FORGE)
    items = [Item(i) for i in collection]
    order_longest_first(items)  # type: ignore[arg-type]
    collection = [i.nodeid for i in items]
    config = SimpleNamespace(getvalue=lambda name: ["3*popen"] if name == "tx" else None,
                             option=SimpleNamespace(loadscopereorder=True))
    sched = LongestFirstScheduling(config)  # type: ignore[arg-type]
    w1, w0, w2 = Node("gw1"), Node(PRIORITY_WORKER), Node("gw2")
    nodes = (w0, w1, w2)
    for node in (w1, w0, w2):
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()

    def sent(node: Node) -> list[str]:
        return [collection[i] for i in node.sent]
    # The longest priority unit first; as it is long, the cheapest one (the probes module) after it.
    assert sent(w0)[:2] == [OVERLOAD, "tests/oracle/test_probes.py::a"]
    # The others: background work only, or wait. Forge's worker also holds its successor (the
    # cheapest unit; it runs after Forge), else it would not start Forge before the phase ended.
    assert sent(w1) == [FORGE, "tests/test_sli.py::a"] and sent(w2) == []
    completed: dict[str, list[int]] = {n.name: [] for n in nodes}

    def complete_one(node: Node) -> None:
        todo = [i for i in node.sent if i not in completed[node.name]]
        completed[node.name].append(todo[0])
        sched.mark_test_complete(node, todo[0])
    for _ in range(3):  # overload, the probes module
        complete_one(w0)
    assert sent(w2) == [] and sent(w1) == [FORGE, "tests/test_sli.py::a"]  # the hanging test still to run
    while any(is_priority(x) and collection.index(x) not in completed[PRIORITY_WORKER] for x in sent(w0)):
        complete_one(w0)
    # Woken at the end of the phase, the idle worker gets two tests: it starts one only once it holds
    # the next (with one, it sat idle for minutes: the Ganache operator path began 577 s into a run).
    assert len(sent(w2)) == 2, sent(w2)
    assert f"{E2E}[anvil]" in sent(w0) + sent(w2)  # the longest unit left, handed out at once
    while any(not n.shutting_down for n in nodes):  # run everything to the end
        for node in nodes:
            if not node.shutting_down and [i for i in node.sent if i not in completed[node.name]]:
                complete_one(node)
    ran = {n.name: sent(n) for n in nodes}
    assert sorted(x for r in ran.values() for x in r) == sorted(collection)
    priority_runs = [x for x in ran[PRIORITY_WORKER] if is_priority(x)]
    assert ran[PRIORITY_WORKER][:len(priority_runs)] == priority_runs == [  # all of them first, there only
        OVERLOAD, "tests/oracle/test_probes.py::a", "tests/oracle/test_probes.py::b", HANGING]


def test_the_timeline_reports_each_workers_busy_time_and_its_long_tests(tmp_path: Path) -> None:
    path = tmp_path / "timeline.txt"
    path.write_text("100.00 101.00 gw0 tests/a.py::short\n"
                    "100.00 400.00 gw1 tests/b.py::long [x]\n"
                    "101.00 110.00 gw0 tests/c.py::medium\n")
    lines = report(path).splitlines()
    assert lines[0] == "gw0: 2 tests, busy 10 s, last end 10 s"
    assert lines[1].split() == ["1", "9.0", "tests/c.py::medium"]  # 5 s or more: listed; the short one not
    assert lines[2] == "gw1: 1 tests, busy 300 s, last end 300 s"
    assert lines[3].split(None, 2) == ["0", "300.0", "tests/b.py::long [x]"]  # a node id with a space survives
