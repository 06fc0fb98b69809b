"""Multi-level agreements (CorporateAgreement) in the index, for the API and the dashboard.

Kept apart from the factory's index (smartsla.indexer, smartsla.index_store): its own tables
(`idx_corp_*`, created beside the index's in the same database, versioned in
`idx_corp_schema_version`: smartsla.versioned_schema), its own cursor and its own
sync, so that the contract rebuild (a factory clone, a committee of reports) changes three small
places here and nothing there:

* `discover_corporates`: which addresses are multi-level agreements (the explicit list of
  `smartsla serve --corporate`, and the CorporateAgreementFactory's creation events);
* `EVENTS` / `REPORT_EVENTS`: every event name this module knows;
* `read_state`: smartsla.multilevel.read_state (the one reader of the contract's views) as JSON.

The chain is the authority. Every money figure shown comes from the contract (its events and
its state at the snapshot block); the reference model (CorporateTerms.department_credit) is used
only for a reported period that nobody has settled yet, and is labelled as such ("expected").
A reorganisation that removes an indexed block re-reads these agreements from the start block
(they are few, and it keeps the rule simple: nothing stale survives a reorganisation).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import yaml
from hexbytes import HexBytes
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    select,
)
from web3 import Web3

from . import multilevel
from .chain import Chain
from .corporate import Corporate, CorporateTerms, DepartmentTerms, load_corporate_spec
from .credit import tier_credit_bps
from .database import transaction
from .event_decoding import EventDecoder
from .index_store import IndexStoreError, SchemaTooNewError
from .indexer import poll_with_backoff
from .multilevel import created_by_factory
from .terms import Service, Tier
from .versioned_schema import VersionedSchema, version_table

log = logging.getLogger("smartsla.corporate_index")

CONTRACT = "CorporateAgreement"
# Every event name of the multi-level agreement this module reads, in one place.
EVENTS = {
    "settled": "DepartmentSettled",
    "fees": "FeesDeposited",
    "collateral": "CollateralDeposited",
    "withdrawn": "Withdrawn",
    "expired": "Expired",
    "cancelled": "Cancelled",
    "terminated": "DepartmentTerminated",
    "disputed": "Disputed",
    "corrected": "ReportCorrected",
    "final": "PeriodFinal",
}
# The committee's report of a period (one member directly, or a quorum of signed reports: both
# emit PeriodReported; the signed path adds ReportsAccepted, each member's EvidenceCommitted).
REPORT_EVENTS = ("PeriodReported",)


def discover_corporates(explicit: Sequence[str], chain: Chain | None = None, factory: str | None = None,
                        from_block: int = 0, to_block: int | str = "latest") -> list[str]:
    """The addresses of the multi-level agreements to index: those the operator names (`smartsla
    serve --corporate ADDRESS`) and, with `factory`, every one the CorporateAgreementFactory
    created in the block range (its CorporateAgreementCreated event)."""
    out: list[str] = []
    found = created_by_factory(chain, factory, from_block, to_block) if chain is not None and factory else []
    for a in [*explicit, *found]:
        checked = Web3.to_checksum_address(a)
        if checked not in out:
            out.append(checked)
    return out


# ---------------------------------------------------------------------------- terms as JSON
def terms_to_json(terms: CorporateTerms) -> dict[str, Any]:
    data = asdict(terms)
    data["services"] = [s.model_dump(mode="json") for s in terms.services]
    return data


def terms_from_json(data: dict[str, Any]) -> CorporateTerms:
    departments = tuple(DepartmentTerms(**{**d, "objectives": tuple(d["objectives"]),
                                           "weights_bps": tuple(d["weights_bps"])}) for d in data["departments"])
    services = tuple(Service.model_validate(s) for s in data["services"])
    oracles = tuple(data.get("oracles", ()))
    return CorporateTerms(**{**data, "services": services, "departments": departments, "oracles": oracles})


# ---------------------------------------------------------------------------- chain reads
def read_state(chain: Chain, address: str, terms: CorporateTerms, block: int | str) -> dict[str, Any]:
    """The contract's state at `block`, as JSON for the store: smartsla.multilevel.read_state (the
    one reader of the contract's views) in the index's shape."""
    st = multilevel.read_state(Corporate(chain, address, terms), terms, block=block)
    return {
        "status": st.status, "fees_deposited": st.fees_deposited, "collateral_deposited": st.collateral_deposited,
        "cancelled": st.cancelled, "expired": st.expired,
        "reported_periods": st.reported_periods, "pending_periods": st.pending_periods,
        "fees_escrowed": str(st.fees_escrowed), "collateral_pool": str(st.pool), "exposure": str(st.exposure),
        "expires_at": st.expires_at,
        "settled": [d.settled_periods for d in st.departments],
        "terminated": [d.end_period if d.terminated else None for d in st.departments],
        "worst_credit": [str(d.worst_credit) for d in st.departments],
        "reported": [list(p.values) for p in st.periods],
        "period_states": [{"state": p.state, "final_after": p.final_after} for p in st.periods],
        "owed": {a: str(v) for a, v in st.owed},
        "balance": str(st.balance),
    }


def status_of(state: dict[str, Any], terms: CorporateTerms) -> str:
    """The contract's Status (Pending, Active, Ended: every period reported, Cancelled, Expired)."""
    del terms  # the chain says it
    return str(state.get("status", "Pending"))


# ---------------------------------------------------------------------------- names from spec files
def anonymous_terms(terms: CorporateTerms) -> CorporateTerms:
    """`terms` with the chain's department names (the contract keeps no names)."""
    return replace(terms, departments=tuple(replace(d, name=f"department-{i}")
                                            for i, d in enumerate(terms.departments)))


@functools.cache
def spec_names(paths: tuple[str, ...]) -> tuple[tuple[CorporateTerms, str, tuple[str, ...]], ...]:
    """The multi-level specs among `smartsla serve --spec` files and folders: (their terms without
    names, their title, their department names). A bad multi-level file is an error naming it."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if p.is_dir() else [p]
    out = []
    for f in files:
        try:
            doc = yaml.safe_load(f.read_text(errors="replace"))
        except yaml.YAMLError:
            continue  # not ours to judge: the agreement specs' loader names it
        if not isinstance(doc, dict) or doc.get("kind") != "CorporateAgreement":
            continue
        spec = load_corporate_spec(f)
        terms = spec.to_terms()
        out.append((anonymous_terms(terms), spec.metadata.displayName or spec.metadata.name,
                    tuple(d.name for d in terms.departments)))
    return tuple(out)


def with_spec_names(row: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """`row` with its departments named as in the spec file whose terms are exactly the chain's
    (payouts, fees, services, objectives, the pool...): the names are cosmetic and every figure
    stays the chain's, so a file cannot make a department look like another one's terms."""
    if not paths:
        return row
    terms = terms_from_json(row["terms"])
    for anonymous, title, names in spec_names(paths):
        if anonymous == anonymous_terms(terms):
            named = replace(terms, departments=tuple(replace(d, name=n) for d, n in zip(terms.departments, names,
                                                                                       strict=True)))
            return {**row, "terms": terms_to_json(named), "title": title}
    return row


# ---------------------------------------------------------------------------- the store
SCHEMA_VERSION = 1  # the tables of the release that made them without a version table


metadata = MetaData()
idx_corp_schema_version = version_table(metadata, "idx_corp_schema_version")
idx_corp_cursor = Table(
    "idx_corp_cursor", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("chain_id", BigInteger, nullable=False),
    Column("last_block", BigInteger),
    Column("last_hash", String(66)),
    Column("head_block", BigInteger),
    Column("head_timestamp", BigInteger),
    Column("head_seen_at", Double),
    Column("last_error", Text),
)
idx_corp_agreements = Table(
    "idx_corp_agreements", metadata,
    Column("address", String(42), primary_key=True),
    Column("terms", JSON, nullable=False),
    Column("state", JSON),
    Column("snapshot_block", BigInteger),
)
idx_corp_events = Table(
    "idx_corp_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address", String(42), nullable=False, index=True),
    Column("block_number", BigInteger, nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("tx_hash", String(66), nullable=False),
    Column("name", String(64), nullable=False),
    Column("args", JSON, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    UniqueConstraint("block_number", "log_index", name="uq_idx_corp_events_log"),
)
SCHEMA = VersionedSchema(
    component="multi-level index", owner="smartsla", metadata=metadata, table=idx_corp_schema_version,
    version=SCHEMA_VERSION, upgrades={}, error=IndexStoreError, too_new=SchemaTooNewError,  # part of the event index
    # The release before versions created these three tables: such a database is version 1.
    unversioned=(1, frozenset({"idx_corp_cursor", "idx_corp_agreements", "idx_corp_events"})),
)


class CorporateStore:
    """The multi-level tables, on the engine of an IndexStore (the same database file)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with self._tx() as conn:
            SCHEMA.ensure(conn)

    def _tx(self) -> contextlib.AbstractContextManager[Connection]:
        return transaction(self.engine, IndexStoreError)

    def cursor(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(idx_corp_cursor).where(idx_corp_cursor.c.id == 1)).mappings().first()
        return dict(row) if row else None

    def reset(self) -> None:
        with self._tx() as conn:
            for table in (idx_corp_events, idx_corp_agreements, idx_corp_cursor):
                conn.execute(delete(table))

    def apply(self, *, chain_id: int, to_block: int, to_hash: str, head: int, head_timestamp: int,
              events: list[dict[str, Any]], terms: dict[str, dict[str, Any]],
              states: dict[str, tuple[dict[str, Any], int]]) -> None:
        """One block range, in one transaction: its events, new terms and snapshots, the cursor."""
        with self._tx() as conn:
            if events:
                conn.execute(idx_corp_events.insert(), events)
            for address, t in terms.items():
                conn.execute(delete(idx_corp_agreements).where(idx_corp_agreements.c.address == address))
                conn.execute(idx_corp_agreements.insert().values(address=address, terms=t))
            for address, (state, block) in states.items():
                conn.execute(idx_corp_agreements.update().where(idx_corp_agreements.c.address == address)
                             .values(state=state, snapshot_block=block))
            values = {"chain_id": chain_id, "last_block": to_block, "last_hash": to_hash, "head_block": head,
                      "head_timestamp": head_timestamp, "head_seen_at": time.time(), "last_error": None}
            if conn.execute(select(idx_corp_cursor.c.id)).first() is None:
                conn.execute(idx_corp_cursor.insert().values(id=1, **values))
            else:
                conn.execute(idx_corp_cursor.update().where(idx_corp_cursor.c.id == 1).values(**values))

    def note_error(self, error: str) -> None:
        with self._tx() as conn:
            conn.execute(idx_corp_cursor.update().where(idx_corp_cursor.c.id == 1).values(last_error=error))

    def agreements(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(idx_corp_agreements).order_by(idx_corp_agreements.c.address)).mappings()
            return [dict(r) for r in rows]

    def agreement(self, address: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(idx_corp_agreements).where(idx_corp_agreements.c.address == address)
                               ).mappings().first()
        return dict(row) if row else None

    def events(self, address: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(idx_corp_events).where(idx_corp_events.c.address == address)
                                .order_by(idx_corp_events.c.block_number, idx_corp_events.c.log_index)).mappings()
            return [dict(r) for r in rows]


# ---------------------------------------------------------------------------- the indexer
class CorporateIndexer:
    """Follows the multi-level agreements `addresses` into `store` (see the module's notes)."""

    def __init__(self, chain: Chain, store: CorporateStore, addresses: Sequence[str], *, start_block: int = 0,
                 confirmations: int = 0, chunk_blocks: int = 2_000, lock: threading.RLock | None = None,
                 factory: str | None = None) -> None:
        self.chain = chain
        self.store = store
        # Named ones now; with `factory`, each block range adds the agreements it created.
        self.addresses = discover_corporates(addresses)
        self.factory = Web3.to_checksum_address(factory) if factory else None
        self.start_block = start_block
        self.confirmations = confirmations
        self.chunk_blocks = chunk_blocks
        self.lock = lock or threading.RLock()
        self.decoder = EventDecoder(chain.w3, (CONTRACT,))
        self.last_error: str | None = None

    def sync(self) -> int:
        """Index up to the head less the confirmations; returns the number of events added."""
        w3 = self.chain.w3
        with self.lock:
            chain_id = w3.eth.chain_id
            head = w3.eth.get_block("latest")
        cursor = self.store.cursor()
        if cursor is not None and cursor["last_block"] is not None:
            with self.lock:
                try:
                    block = w3.eth.get_block(int(cursor["last_block"]))
                    same = HexBytes(block["hash"]).to_0x_hex() == cursor["last_hash"]
                except Exception:  # the block is gone (a shorter chain)
                    same = False
            if not same or int(cursor["chain_id"]) != chain_id:
                log.warning("multi-level index: block %s changed; re-reading from block %s", cursor["last_block"],
                            self.start_block)
                self.store.reset()
                cursor = None
        target = int(head["number"]) - self.confirmations
        nxt = self.start_block if cursor is None or cursor["last_block"] is None else int(cursor["last_block"]) + 1
        known = {r["address"]: r for r in self.store.agreements()}
        added = 0
        while nxt <= target:
            to = min(nxt + self.chunk_blocks - 1, target)
            added += self._range(chain_id, nxt, to, head, known)
            nxt = to + 1
        self.last_error = None
        return added

    def _range(self, chain_id: int, frm: int, to: int, head: Any, known: dict[str, dict[str, Any]]) -> int:
        w3 = self.chain.w3
        with self.lock:
            to_block = w3.eth.get_block(to)
            if self.factory is not None:
                self.addresses = discover_corporates(self.addresses, self.chain, self.factory, frm, to)
            live = [Web3.to_checksum_address(a) for a in self.addresses
                    if a in known or w3.eth.get_code(Web3.to_checksum_address(a), block_identifier=to)]
            logs = w3.eth.get_logs({"fromBlock": frm, "toBlock": to, "address": live}) if live else []
        stamps: dict[int, int] = {}
        events = []
        touched: set[str] = {str(a) for a in live if a not in known}
        reread: set[str] = set(touched)  # the terms are immutable: read once, when first seen
        for raw in sorted(logs, key=lambda r: (int(r["blockNumber"]), int(r["logIndex"]))):
            number = int(raw["blockNumber"])
            if number not in stamps:
                with self.lock:
                    stamps[number] = int(w3.eth.get_block(number)["timestamp"])
            address: str = Web3.to_checksum_address(raw["address"])
            # strict: a log of a known event that does not decode is an error, not a raw row
            name, _, args = self.decoder.decode(raw, strict=True)
            touched.add(address)
            events.append({"address": address, "block_number": number, "log_index": int(raw["logIndex"]),
                           "tx_hash": HexBytes(raw["transactionHash"]).to_0x_hex(), "name": name, "args": args,
                           "timestamp": stamps[number]})
        terms_json: dict[str, dict[str, Any]] = {}
        states: dict[str, tuple[dict[str, Any], int]] = {}
        for address in sorted(touched):
            with self.lock:
                if address in reread:
                    terms = Corporate(self.chain, address).read_terms()
                    terms_json[address] = terms_to_json(terms)
                    known[address] = {"address": address, "terms": terms_json[address]}
                else:
                    terms = terms_from_json(known[address]["terms"])
                states[address] = (read_state(self.chain, address, terms, to), to)
        self.store.apply(chain_id=chain_id, to_block=to, to_hash=HexBytes(to_block["hash"]).to_0x_hex(),
                         head=int(head["number"]), head_timestamp=int(head["timestamp"]), events=events,
                         terms=terms_json, states=states)
        return len(events)

    def run(self, stop: threading.Event, *, poll_s: float = 1.0, max_backoff_s: float = 30.0) -> None:
        def sync() -> bool:
            self.sync()
            return True  # one pass syncs to the head

        poll_with_backoff(self, sync, stop, poll_s=poll_s, max_backoff_s=max_backoff_s, label="multi-level indexer")

    def start_thread(self, *, poll_s: float = 1.0) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), kwargs={"poll_s": poll_s},
                                  name="smartsla-corporate-indexer", daemon=True)
        thread.start()
        return thread, stop


# ---------------------------------------------------------------------------- views
def effective_service(terms: CorporateTerms, index: int, k: int) -> Service:
    """Service `k` as department `index` is measured against it: its own objective (which moves
    the mildest tier with it, as the contract's _credits does) and its own weight."""
    dep = terms.departments[index]
    s = terms.services[k]
    tiers = s.tiers
    if dep.objectives[k]:
        tiers = (Tier(threshold=dep.objectives[k], credit_bps=tiers[0].credit_bps), *tiers[1:])
    return s.model_copy(update={"objective": dep.objectives[k] or s.objective,
                                "weight_bps": dep.weights_bps[k] or 1, "tiers": tiers})


def _tier(service: Service, value: int) -> tuple[int | None, int]:
    """(1-based tier number, its credit bps) the value falls in; (None, 0) when the objective is met."""
    bps = tier_credit_bps(service, value)
    if not bps:
        return None, 0
    return next(i + 1 for i, t in enumerate(service.tiers) if t.credit_bps == bps), bps


def _settled_events(events: Sequence[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    out = {}
    for e in events:
        if e["name"] == EVENTS["settled"]:
            a = e["args"]
            out[(int(a["department"]), int(a["period"]))] = {**a, "tx_hash": e["tx_hash"],
                                                              "block_number": e["block_number"]}
    return out


def _reports(events: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """period -> the event that reported it (its time and transaction)."""
    return {int(e["args"]["period"]): e for e in events
            if e["name"] in REPORT_EVENTS and isinstance(e["args"], dict) and "period" in e["args"]}


def compliance(terms: CorporateTerms, state: dict[str, Any], events: Sequence[dict[str, Any]], index: int,
               now: int) -> list[dict[str, Any]]:
    """Department `index`'s compliance report: per period, per covered service the measured value,
    the department's own objective, the tier and the credit; the credit paid (from the chain's
    DepartmentSettled) or, reported but not yet settled, the credit expected (reference model)."""
    dep = terms.departments[index]
    settled = _settled_events(events)
    reports = _reports(events)
    reported = state["reported"]
    out = []
    for p in range(terms.period_count):
        start, end = terms.start + p * terms.period_length, terms.period_end(p)
        ev = settled.get((index, p))
        values = reported[p] if p < len(reported) else None
        period_state = state.get("period_states", [])[p] if p < len(state.get("period_states", [])) else None
        terminated_at = (state.get("terminated") or [None] * len(terms.departments))[index]
        if ev is not None:
            status = "settled"
        elif terminated_at is not None and p >= terminated_at:
            status = "terminated"  # the disaster clause: the department has no period from here on
        elif values is not None:
            # Departments settle FINAL periods: after the dispute window, or the arbiter's ruling.
            status = {"Pending": "in dispute window", "Disputed": "disputed"}.get(
                period_state["state"] if period_state else "Final", "reported")  # reported: anyone may settle it
        elif state["expired"]:
            status = "expired"  # never reported: its fee went back to the organisation
        elif now >= end:
            status = "awaiting report"
        elif now >= start:
            status = "running"
        else:
            status = "future"
        services = []
        model_credits, model_total = (terms.department_credit(index, values) if values is not None else ((), 0))
        for k, s in enumerate(terms.services):
            if not dep.service_mask & (1 << k):
                continue
            eff = effective_service(terms, index, k)
            row: dict[str, Any] = {"service": s.name, "weight_bps": dep.weights_bps[k],
                                   "objective_ppm": eff.objective, "own_objective": bool(dep.objectives[k]),
                                   "measured_ppm": None, "tier": None, "tier_credit_bps": 0, "credit": None,
                                   "met": None}
            if values is not None:
                tier, bps = _tier(eff, values[k])
                credit = int(ev["serviceCredits"][k]) if ev is not None else model_credits[k]
                row.update(measured_ppm=values[k], tier=tier, tier_credit_bps=bps, credit=str(credit),
                           met=values[k] >= eff.objective)
            services.append(row)
        out.append({
            "period": p, "start": start, "end": end, "status": status, "services": services,
            "credit_paid": str(ev["creditPaid"]) if ev is not None else None,
            "credit_expected": str(model_total) if ev is None and values is not None else None,
            "fee": str(ev["fee"]) if ev is not None else str(dep.fee_per_period),
            "released": str(ev["released"]) if ev is not None else None,
            "tx_hash": ev["tx_hash"] if ev is not None else None,
            "period_state": period_state["state"] if period_state else None,
            "final_after": period_state["final_after"] if period_state else None,
            "reported_at": reports[p]["timestamp"] if p in reports else None,
            "report_tx": reports[p]["tx_hash"] if p in reports else None,
        })
    return out


def _payout_shared(terms: CorporateTerms, index: int) -> list[str]:
    """Who else is paid at department `index`'s payout address (owed is per address on-chain)."""
    payout = terms.departments[index].payout
    others = [f"department {i}" for i, d in enumerate(terms.departments) if d.payout == payout and i != index]
    if payout == terms.provider:
        others.append("the provider")
    if payout == terms.organisation:
        others.append("the organisation")
    return others


def department_view(row: dict[str, Any], events: Sequence[dict[str, Any]], index: int,
                    now: int) -> dict[str, Any]:
    terms = terms_from_json(row["terms"])
    state = row["state"] or {}
    dep = terms.departments[index]
    report = compliance(terms, state, events, index, now) if state else []
    paid = sum(int(p["credit_paid"]) for p in report if p["credit_paid"] is not None)
    expected = sum(int(p["credit_expected"]) for p in report if p["credit_expected"] is not None)
    settled = state.get("settled", [0] * len(terms.departments))[index] if state else 0
    return {
        "agreement": row["address"], "index": index, "name": dep.name, "payout": dep.payout,
        "fee_per_period": str(dep.fee_per_period),
        "credit_cap_bps": dep.credit_cap_bps or terms.credit_cap_bps, "own_cap": bool(dep.credit_cap_bps),
        "services": [{"service": s.name, "weight_bps": dep.weights_bps[k],
                      "objective_ppm": effective_service(terms, index, k).objective,
                      "own_objective": bool(dep.objectives[k])}
                     for k, s in enumerate(terms.services) if dep.service_mask & (1 << k)],
        "settled_periods": settled, "reported_periods": state.get("reported_periods", 0),
        "credits_paid": str(paid), "credits_expected": str(expected),
        "owed_to_payout": state.get("owed", {}).get(dep.payout, "0"),
        "payout_shared_with": _payout_shared(terms, index),
        "worst_credit_per_period": state.get("worst_credit", ["0"] * len(terms.departments))[index],
        "snapshot_block": row["snapshot_block"], "compliance": report,
    }


def organisation_view(row: dict[str, Any], events: Sequence[dict[str, Any]], now: int) -> dict[str, Any]:
    terms = terms_from_json(row["terms"])
    state = row["state"] or {}
    settled = _settled_events(events)
    departments = []
    for i, d in enumerate(terms.departments):
        paid = sum(int(e["creditPaid"]) for (di, _), e in settled.items() if di == i)
        s = state.get("settled", [0] * len(terms.departments))[i] if state else 0
        reported = state.get("reported", []) if state else []
        expected = sum(terms.department_credit(i, reported[p])[1] for p in range(s, len(reported)))
        departments.append({"index": i, "name": d.name, "payout": d.payout, "fee_per_period": str(d.fee_per_period),
                            "credit_cap_bps": d.credit_cap_bps or terms.credit_cap_bps,
                            "services": [s_.name for k, s_ in enumerate(terms.services) if d.service_mask & (1 << k)],
                            "settled_periods": s, "credits_paid": str(paid), "credits_expected": str(expected),
                            "owed_to_payout": state.get("owed", {}).get(d.payout, "0") if state else "0",
                            "terminated_at": (state.get("terminated") or [None] * len(terms.departments))[i]
                            if state else None,
                            "payout_shared_with": _payout_shared(terms, i)})
    pool = int(state.get("collateral_pool", 0)) if state else 0
    return {
        "address": row["address"], "title": row.get("title"), "status": status_of(state, terms) if state else "Pending",
        "provider": terms.provider, "organisation": terms.organisation, "oracle": terms.oracle, "asset": terms.asset,
        "start": terms.start, "period_length": terms.period_length, "period_count": terms.period_count,
        "credit_cap_bps": terms.credit_cap_bps, "collateral": str(terms.collateral),
        "total_fees": str(terms.total_fees), "worst_case": str(terms.worst_case),
        "services": [s.model_dump(mode="json") for s in terms.services],
        # The pool still reserved for department-periods not yet settled: the provider's exposure
        # (each department-period can take at most its reservation).
        "collateral_pool": str(pool), "exposure": state.get("exposure", str(pool)) if state else "0",
        # Each reported period: Pending (in its dispute window until final_after), Disputed, Final.
        "period_states": state.get("period_states", []) if state else [],
        "pending_periods": state.get("pending_periods", 0) if state else 0,
        "oracles": list(terms.committee), "quorum": terms.quorum, "dispute_window": terms.dispute_window,
        "fees_escrowed": state.get("fees_escrowed", "0") if state else "0",
        "fees_deposited": bool(state.get("fees_deposited")), "collateral_deposited":
            bool(state.get("collateral_deposited")),
        "reported_periods": state.get("reported_periods", 0) if state else 0,
        "expires_at": state.get("expires_at") if state else None,
        "owed": state.get("owed", {}) if state else {}, "balance": state.get("balance", "0") if state else "0",
        "departments": departments, "snapshot_block": row["snapshot_block"],
    }


# ---------------------------------------------------------------------------- for the app
class CorporateIndex:
    """What the app holds for multi-level agreements (AppState.corporate): the store and, when
    the app follows a chain, the indexer (None: serve what is in the store)."""

    def __init__(self, store: CorporateStore, indexer: CorporateIndexer | None = None) -> None:
        self.store = store
        self.indexer = indexer
