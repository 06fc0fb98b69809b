"""The customer's watchdog (issue 12 item 6): `smartsla watch --config FILE`.

The customer runs the oracle's own code — the same probes, store, slice records and figure
(oracle.evidence.figure_from_record with the agreement's method) — but reports nothing. For each
period settled on-chain it computes its own figure; when a measured service's settled value
differs from its own by more than the configured tolerance, it files `dispute(period,
evidenceRoot)` within the dispute window by itself, the evidence being the Merkle root of its
own slice records, which it publishes on its HTTP endpoint (`/evidence/<agreement>/<period>`,
the oracle's format: anyone, the arbiter first, can check it against the Disputed event).

Rules:
* only a period still `Pending` (inside its dispute window) is looked at: a period without a
  window, already disputed or final cannot be disputed;
* the watchdog disputes only what it measured well enough itself: below the agreement's
  minimum measured share it logs and does nothing (a watchdog that was down must not dispute);
* tolerance: `tolerance_ppm` for availability services, `tolerance_ms` for latency services
  (default 0: any difference). Differences in the customer's favour are disputed too: a wrong
  figure is wrong either way, and the arbiter decides.

The configuration is the oracle's (docs/oracle.md) plus the two tolerances; the key must be the
agreement's customer. Agreements are listed (`discover` finds committee agreements only).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Annotated

from pydantic import Field

from smartsla.client import Agreement, Snapshot
from smartsla.terms import Kind
from smartsla.yamlfile import load_model

from .config import ConfigError, OracleConfig
from .daemon import Daemon, Served, run_daemon
from .logs import setup_logging
from .sli import PeriodFigure, meets_minimum

log = logging.getLogger("oracle.watchdog")


class WatchConfig(OracleConfig):
    """The oracle's configuration plus how far a settled figure may be from the customer's own."""

    tolerance_ppm: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    tolerance_ms: Annotated[int, Field(ge=0, lt=2**32)] = 0


def load_watch_config(path: str | Path) -> WatchConfig:
    return load_model(WatchConfig, path, ConfigError)


def differences(agreement: Agreement, own: dict[str, PeriodFigure], settled: tuple[int, ...],
                tolerance_ppm: int, tolerance_ms: int) -> list[str]:
    """The measured services whose settled value is further than the tolerance from `own`."""
    out: list[str] = []
    for i, s in enumerate(agreement.terms.services):
        if s.kind not in (Kind.availability, Kind.latency) or s.name not in own:
            continue
        mine, theirs = own[s.name].value_ppm, settled[i]
        tolerance, unit = (tolerance_ms, "ms") if s.kind is Kind.latency else (tolerance_ppm, "ppm")
        if abs(mine - theirs) > tolerance:
            out.append(f"{s.name}: settled {theirs} {unit}, measured {mine} {unit} (tolerance {tolerance} {unit})")
    return out


class Watchdog(Daemon):
    """A Daemon that measures like the oracle and disputes instead of reporting."""

    config: WatchConfig

    def _key_problems(self, agreement: Agreement, where: str) -> list[str]:
        customer = agreement.terms.customer
        if self.account.address == customer:
            return []
        return [f"key: {self.account.address} is not the customer of {agreement.address} ({customer}): only the "
                f"customer's watchdog may dispute for it [{where}]"]

    def _report_agreement(self, served: Served, now: float, batch: object = None, *,
                          snap: Snapshot | None = None, no_windows: bool = False) -> None:
        """Look at every period settled since the last pass (none is reported by the watchdog).
        `snap`: the snapshot the pass read for it (batched), else read here."""
        agreement = served.agreement
        snap = snap or agreement.snapshot()
        if served.next_period < snap.settled_periods and self.writer is not None:
            self.writer.flush()  # the period's last samples must be in the store
        while served.next_period < snap.settled_periods:
            self.check_period(served, served.next_period)
            served.next_period += 1
        if snap.status.terminal:
            served.done = True
            log.info("agreement finished", extra={"agreement": agreement.address, "status": snap.status.name})
        served.next_due = now + self.config.report_check_s

    def check_period(self, served: Served, period: int) -> str:
        """Compare one settled period with the watchdog's own figure; dispute when they differ.
        Returns what was done ("disputed", "agrees", "not pending", "too little measured", "too late")."""
        agreement = served.agreement
        address = agreement.address
        state, _, final_after = agreement.period_state(period)
        if state != "Pending":
            log.info("period not open to dispute", extra={"agreement": address, "period": period, "state": state})
            return "not pending"
        settlement = next(s for s in agreement.settlements() if s.period == period)
        figures, bundle = self.evidence(served, period)
        root = self.save_evidence(address, period, bundle)  # published before the dispute names it
        enough, lowest = meets_minimum({n: figures[n] for n in served.probes}, served.min_measured_ppm)
        if not enough:
            log.warning("watchdog measured too little of the period to dispute it",
                        extra={"agreement": address, "period": period, "measured_ppm": lowest})
            return "too little measured"
        diffs = differences(agreement, figures, settlement.values_ppm, self.config.tolerance_ppm,
                            self.config.tolerance_ms)
        if not diffs:
            log.info("settled figure agrees with the watchdog", extra={"agreement": address, "period": period})
            return "agrees"
        if self.chain.now() >= final_after:
            log.error("settled figure differs but the dispute window closed",
                      extra={"agreement": address, "period": period, "differences": diffs})
            return "too late"
        self.chain.add_key(self.account.key)
        agreement.dispute(period, bundle.root, self.account.address)
        log.warning("disputed", extra={"agreement": address, "period": period, "evidence_root": root,
                                       "differences": diffs})
        return "disputed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smartsla watch", description="the customer's watchdog")
    parser.add_argument("--config", required=True, help="path of the watchdog YAML configuration")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        run_daemon(load_watch_config(args.config), Watchdog)
    except ConfigError as exc:
        print(f"watch: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
