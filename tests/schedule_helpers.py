"""The schedule of a parallel run (`pytest -n auto`, pytest-xdist): longest first, and modules kept
whole where their tests share an expensive fixture (issue 13 item 9: the full command under 8
minutes on 2 cores).

A full run ends about when its longest test does *if that test starts first*: Forge's CI campaign
(minutes of CPU) and the operator's path on Anvil and on Ganache (minutes of real periods, mostly
waiting) each add their whole length when they start last. xdist's default (`--dist load`) hands
out the tests in collection order in chunks, so those long tests (late in the alphabet) started
after most of the rest. Here:

- `order_longest_first` (tests/conftest.py calls it on each worker, so every worker collects the
  same order) sorts the *units* by their estimated cost, highest first (Graham's LPT rule);
- `LongestFirstScheduling` hands the units out one at a time, in that order, to whichever worker
  has run out of work. A unit is a whole module (its module- and session-scoped fixtures set up
  once, as with the default chunks), except in SPLIT_MODULES, whose tests are long and independent
  (function-scoped chains and daemons): there each test is a unit of its own, so they run side by
  side; modules that share an expensive session fixture (SHARED_UNITS) make one unit.

An xdist worker starts a test only once it holds the next one (it must know whether to tear down
the module's fixtures): whatever is handed out after a long test waits for it. So a worker whose
only queued test is long gets the *cheapest* unit left as its successor, never the next long one.

The costs are estimates (seconds, measured on 2 cores); a stale figure only makes the order a bit
worse, never a result wrong. Tests not listed cost DEFAULT_COST each.

CPU priority. The run has more workers than cores (most long tests wait on wall-clock time, so
one worker per core left the cores idle), so the cores are contended. A few tests are
timing-bound on the *test's* side: their target HTTP servers are threads of the pytest worker,
and a target answering late reads as a slow target (security.md L-3): beside two CPU hogs at the
same priority the overload test failed (4 of 120 healthy checks timed out). Those units
(PRIORITY) go only to PRIORITY_WORKER, first, and until the last of them ends the other workers
take only BACKGROUND units (Forge, Slither: minutes of CPU in children niced 10, so the cores are
not idle meanwhile) and otherwise wait. PRIORITY_WORKER also runs at PRIORITY_NICE where the
system allows it (root, or RLIMIT_NICE; `set_priority` from tests/conftest.py, for those tests
only): the
overload test's daemon, niced 10 below its worker, then still runs above ordinary (nice 0) load.
Measured beside two CPU hogs at nice 0 (and three other helpers' runs, load 5-7): at nice 0 the
overload test failed 2 rounds of 3 (4-5 of 120-179 healthy checks timed out); at nice -11, 1 of
3 (1 of 302). Beside niced Forge only, as here, it is not starved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

DEFAULT_COST = 1.0
# A test this long (estimated) must not hold the next long one behind it on its worker.
LONG = 30.0

# Modules whose tests are long and independent: one unit per test (see the module docstring).
SPLIT_MODULES = frozenset({
    "tests/test_static_and_invariants.py",
    "tests/test_operator_e2e.py",
    "tests/oracle/test_daemon.py",
    "tests/oracle/test_corporate_daemon.py",
    "tests/oracle/test_running_metrics.py",
    "tests/oracle/test_forecast_from_daemon.py",
    "tests/oracle/test_fleet.py",
    "tests/test_properties.py",
    # The fast loop's longest modules (`-m "not slow"`: function-scoped embedded chains, except the
    # GROUPS below): one unit per test, since one such module of half a minute on one worker was
    # its tail.
    "tests/test_demo_cli.py",
    "tests/web/test_corporate_api.py",
    "tests/test_corporate_committee.py",
    "tests/test_multilevel.py",
    "tests/test_agreement.py",
    "tests/test_committee.py",
    "tests/test_spec.py",
    "tests/test_corporate_cli.py",
    "tests/test_experience_and_disputes.py",
    "tests/test_openslo.py",
})

# Tests of a split module that share a module-scoped fixture: one unit, so it is built once
# (node id prefix -> unit; a test missed here only builds the fixture once more, on its worker).
GROUPS: dict[str, str] = {
    **dict.fromkeys(("tests/test_demo_cli.py::test_demo_balance_sheet_balances",
                     "tests/test_demo_cli.py::test_demo_credits_match_the_reference_model",
                     "tests/test_demo_cli.py::test_demo_tiers_cover_every_schedule_step",
                     "tests/test_demo_cli.py::test_demo_wallets_moved_by_exactly_the_agreement_flows",
                     "tests/test_demo_cli.py::test_demo_output_tells_the_story"),
                    "tests/test_demo_cli.py: the demo_run fixture"),
    **dict.fromkeys(("tests/web/test_corporate_api.py::test_organisation_shows_pool_departments_and_",
                     "tests/web/test_corporate_api.py::test_compliance_report_",
                     "tests/web/test_corporate_api.py::test_refusals_name_the_contracts_error",
                     "tests/web/test_corporate_api.py::test_openapi_conformance_of_the_multi_level_routes",
                     "tests/web/test_corporate_api.py::test_a_sender_with_a_wrong_checksum_is_a_named_"),
                    "tests/web/test_corporate_api.py: the site fixture"),
}

# Timing-bound on the test's side (see the module docstring): node id prefixes, run first and only
# on PRIORITY_WORKER, which runs at PRIORITY_NICE.
PRIORITY: tuple[str, ...] = (
    "tests/oracle/test_daemon.py::test_hanging_targets_do_not_delay_or_spoil_other_targets",
    "tests/oracle/test_daemon.py::test_overload_is_never_recorded_as_an_outage",
    "tests/oracle/test_probes.py",  # the whole module (one unit)
)
PRIORITY_WORKER = "gw0"
PRIORITY_NICE = -11
# What the other workers may run while PRIORITY units are left: their CPU is in children niced 10.
BACKGROUND: tuple[str, ...] = (
    "tests/test_static_and_invariants.py::test_forge_fuzz_and_invariants_ci_profile",
    "tests/test_static_and_invariants.py::test_slither_finds_no_high_or_medium_and_no_untriaged_low",
)

# Modules sharing a session-scoped fixture that takes seconds to build (one per worker that runs
# any of them): one unit, so it is built once.
SHARED_UNITS: dict[str, str] = {
    **dict.fromkeys(("tests/web/test_api.py", "tests/web/test_dashboard_browser.py",
                     "tests/web/test_forecast_api.py", "tests/web/test_forecast_browser.py"),
                    "tests/web: the demo_server fixture"),
}

# Estimated seconds per test (the longest match of a node id prefix wins): measured with
# `--durations=0` on 2 cores busy with other work too (so some 1.5-3x long); a module prefix
# (`path::`) gives the average of its tests. Only what is well above DEFAULT_COST is listed.
COSTS: dict[str, float] = {
    "tests/test_static_and_invariants.py::test_forge_fuzz_and_invariants_ci_profile": 280,
    "tests/test_operator_e2e.py::test_operator_path_settles_every_period_and_pays_the_promised_credits": 150,
    "tests/test_properties.py::test_contract_credit_equals_the_reference_model": 101,
    "tests/test_static_and_invariants.py::test_slither_finds_no_high_or_medium_and_no_untriaged_low": 99,
    "tests/test_properties.py::test_funds_are_conserved_over_random_sequences": 76,
    "tests/test_properties.py::test_signed_settlements_pay_the_reference_credit_and_books": 40,
    "tests/oracle/test_daemon.py::test_bad_configuration_stops_at_start_with_the_field": 62,
    "tests/oracle/test_daemon.py::test_settled_credit_equals_what_the_outage_schedule_implies": 52,
    "tests/oracle/test_fleet.py::test_two_daemons_share_agreements_and_survive_a_sigkill": 39,
    "tests/oracle/test_daemon.py::test_fault_injection_random_sigkills_lose_nothing_and_repeat_nothing": 36,
    "tests/oracle/test_daemon.py::test_overload_is_never_recorded_as_an_outage": 33,
    "tests/oracle/test_daemon.py::test_maintenance_declared_on_chain_with_notice_is_excluded_and_latency_reporte": 32,
    "tests/oracle/test_verify_e2e.py::": 29,
    "tests/oracle/test_running_metrics.py::test_credit_at_risk_fires_in_prometheus_before_the_tier_is_crossed_an": 29,
    "tests/oracle/test_forecast_from_daemon.py::test_api_and_page_show_the_daemons_forecast_before_the_period_se": 28,
    "tests/oracle/test_daemon.py::test_sigkill_during_submission_then_restart_settles_exactly_once": 26,
    "tests/oracle/test_corporate_daemon.py::test_a_committee_of_three_daemons_reports_once_on_the_median_and_a_l": 26,
    "tests/oracle/test_watchdog.py::": 25,
    "tests/oracle/test_daemon.py::test_three_daemons_settle_by_median_and_a_wrong_one_changes_nothing": 25,
    "tests/oracle/test_corporate_daemon.py::test_daemon_settles_two_periods_and_two_departments_withdraw": 24,
    "tests/oracle/test_corporate_daemon.py::test_with_a_confirmation_depth_of_two_every_report_ends_confirmed": 24,
    "tests/test_brownie.py::": 24,
    "tests/oracle/test_corporate_daemon.py::test_sigkill_around_the_report_then_restart_reports_and_settles_once": 24,
    "tests/oracle/test_daemon.py::test_period_measured_below_the_minimum_gets_no_report": 22,
    "tests/oracle/test_daemon.py::test_chain_down_for_a_while_then_the_report_still_arrives": 20,
    "tests/oracle/test_daemon.py::test_hanging_targets_do_not_delay_or_spoil_other_targets": 18,
    "tests/oracle/test_send_blocked_daemon.py::": 17,
    "tests/test_compact_reports_attacks.py::test_round_trip_on_a_real_chain": 15,
    "tests/oracle/test_daemon.py::test_oracle_refuses_to_start_with_a_method_other_than_the_agreements": 11,
    "tests/web/test_evidence_browser.py::": 11,
    "tests/test_verify_checks.py::": 9,
    "tests/web/test_corporate_serve.py::": 8,
    "tests/test_packaging.py::": 7,
    "tests/oracle/test_daemon.py::test_discover_serves_only_agreements_of_listed_providers": 7,
    "tests/oracle/test_prometheus.py::": 6,
    "tests/oracle/test_daemon.py::test_slices_that_cannot_hold_a_sample_are_refused_at_start": 5,
    "tests/test_artifacts.py::": 5,
    # The fast loop's (split modules: per test; seconds of wall, setup included, on 2 busy cores).
    "tests/test_demo_cli.py::": 1.5,
    "tests/test_demo_cli.py::test_demo_": 2,  # + the demo_run fixture's 4 s, once for the group
    "tests/test_demo_cli.py::test_every_demo_period_verifies_and_a_flipped_slice_does_not": 8,
    "tests/test_demo_cli.py::test_demo_console_script": 5,
    "tests/test_corporate_cli.py::test_deposit_settle_withdraw_status": 8,
    "tests/web/test_corporate_api.py::": 4,
    "tests/test_corporate_committee.py::test_lifecycle_with_committee_and_dispute": 6,
    "tests/test_corporate_committee.py::test_a_single_lying_member_cannot_set_the_figures": 5,
    "tests/test_committee.py::test_only_members_sign_but_anyone_submits": 5,
    "tests/test_multilevel.py::test_settlement_order_does_not_change_payouts": 5,
    "tests/test_openslo.py::test_cli_import_export": 5,
    "tests/test_spec.py::test_cli_validate_and_show": 3,
    "tests/test_multilevel.py::": 1.5,
    "tests/oracle/test_peer_report_poisoning.py::": 2,
    "tests/web/test_corporate_browser.py::": 5,
    "tests/test_corporate_committee.py::": 4,
    "tests/test_corporate_cli.py::": 4,
    "tests/web/test_cli_web.py::": 4,
    "tests/oracle/test_transactions.py::": 4,
    "tests/web/test_dashboard_browser.py::": 3,
    "tests/test_committee.py::": 2,
    "tests/test_local_nodes.py::": 2,
}


def cost(nodeid: str) -> float:
    """The estimated seconds of one test (by the longest matching prefix in COSTS)."""
    nodeid = nodeid.split("@", 1)[0]
    best, found = -1, DEFAULT_COST
    for prefix, seconds in COSTS.items():
        if nodeid.startswith(prefix) and len(prefix) > best:
            best, found = len(prefix), seconds
    return found


def unit_of(nodeid: str) -> str:
    """A module, or the test itself in SPLIT_MODULES (or its GROUPS unit), or the group of
    SHARED_UNITS."""
    module = nodeid.split("::", 1)[0]
    if module in SPLIT_MODULES:
        return next((unit for prefix, unit in GROUPS.items() if nodeid.startswith(prefix)), nodeid)
    return SHARED_UNITS.get(module, module)


def is_priority(nodeid: str) -> bool:
    return nodeid.startswith(PRIORITY)


BASE_NICE = os.getpriority(os.PRIO_PROCESS, 0)  # the run's niceness, read before any change


def set_priority(nice: int) -> bool:
    """This process, every thread it has (execnet's included) and every one it starts afterwards,
    at `nice`; False where not allowed (below the current value: root or RLIMIT_NICE only). Linux
    nice values are per thread, hence each thread of /proc/self/task."""
    try:
        for task in Path("/proc/self/task").iterdir():
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
    except (PermissionError, FileNotFoundError, ProcessLookupError):
        return False
    return True


def background() -> None:
    """For a child with minutes of CPU and no deadline (Forge, Slither; a subprocess preexec_fn):
    niced 10 below the run, whichever worker starts it."""
    os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), BASE_NICE + 10))


def order_longest_first(items: list[pytest.Item]) -> None:
    """Reorder `items` in place: units by estimated cost, highest first; a unit's own tests keep
    their order (and stay together)."""
    unit_cost: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        unit = unit_of(item.nodeid)
        unit_cost[unit] = unit_cost.get(unit, 0.0) + cost(item.nodeid)
        first_seen.setdefault(unit, index)
    position = {item.nodeid: index for index, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple[float, int, int]:
        unit = unit_of(item.nodeid)
        return (-unit_cost[unit], first_seen[unit], position[item.nodeid])

    items.sort(key=key)


class LongestFirstScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's scope scheduler with our units, handed out in collection order (longest first), one
    at a time, and the cheapest unit as the successor of a lone long test; PRIORITY units only to
    PRIORITY_WORKER, before anything else it runs."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # the collection order is already the schedule

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _reschedule(self, node: Any) -> None:
        """Top `node` up to two pending tests (the one it runs and its successor). A worker holding a
        single test does not start it, so stopping at one unit (as when an idle worker was woken at
        the end of the priority phase and given one long test) left it idle for minutes."""
        if node.shutting_down:
            return
        while self.workqueue:
            pending = [nodeid for unit in self.assigned_work.get(node, {}).values()
                       for nodeid, done in unit.items() if not done]
            if len(pending) > 1:
                return  # running one and holding its successor: enough
            cheapest = bool(pending) and cost(pending[0]) >= LONG
            if not self._candidates(node, cheapest=cheapest):
                return  # waiting for the end of the priority phase (mark_test_complete wakes it)
            self._assign(node, cheapest=cheapest)
        node.shutdown()  # nothing left to hand out: it runs what it holds, then stops

    def _assign_work_unit(self, node: Any) -> None:
        if self._eligible(node):
            self._assign(node, cheapest=False)

    def _eligible(self, node: Any) -> list[str]:
        """The queued units `node` may take, in queue order: for PRIORITY_WORKER the PRIORITY ones
        while any is queued, then all; for the others never a PRIORITY one, and only BACKGROUND
        ones while a PRIORITY test is queued or running (if PRIORITY_WORKER is there)."""
        scopes = list(self.workqueue)
        if node.gateway.id == PRIORITY_WORKER:
            first = [s for s in scopes if is_priority(s)]
            return first or scopes
        if not any(other.gateway.id == PRIORITY_WORKER for other in self.nodes):
            return scopes
        scopes = [s for s in scopes if not is_priority(s)]
        return [s for s in scopes if s.startswith(BACKGROUND)] if self._priority_phase() else scopes

    def _priority_phase(self) -> bool:
        if any(is_priority(s) for s in self.workqueue):
            return True
        return any(is_priority(nodeid) and not done for units in self.assigned_work.values()
                   for unit in units.values() for nodeid, done in unit.items())

    def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
        in_phase = self._priority_phase()
        super().mark_test_complete(node, item_index, duration)
        if in_phase and not self._priority_phase():  # the waiting workers: their turn now
            for other in self.nodes:
                if other is not node:
                    self._reschedule(other)

    def _candidates(self, node: Any, *, cheapest: bool) -> list[str]:
        """The units `node` may take now, in queue order. The successor of a long test (`cheapest`)
        runs only after it, so outside PRIORITY_WORKER it may be any unit but a PRIORITY one: the
        priority phase's limit to BACKGROUND units is about what runs meanwhile (with that limit,
        Forge's worker took Slither as its successor, and with Forge alone it held one test and did
        not start it before the phase ended)."""
        if cheapest and node.gateway.id != PRIORITY_WORKER:
            return [s for s in self.workqueue if not is_priority(s)]
        return self._eligible(node)

    def _assign(self, node: Any, *, cheapest: bool) -> None:
        candidates = self._candidates(node, cheapest=cheapest)
        scope = candidates[-1 if cheapest else 0]
        work_unit = self.workqueue.pop(scope)
        self.assigned_work.setdefault(node, {})[scope] = work_unit
        collection = self.registered_collections[node]
        node.send_runtest_some([collection.index(nodeid) for nodeid, done in work_unit.items() if not done])
