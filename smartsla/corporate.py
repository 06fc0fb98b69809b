"""Multi-level SLAs: a corporate agreement with one collateral pool and departments on top.

The spec (`kind: CorporateAgreement`) names the corporate defaults (services with objectives and
credit tiers, the cap, the schedule, the pool) and each department's payout address, fee,
subset of services and overrides, and the same committee, dispute, maintenance, measurement and
disaster clauses as a `kind: Agreement` spec (same field names). `Corporate` drives a
CorporateAgreement clone created by the CorporateAgreementFactory: the committee reports each
period once (signed reports, or one member directly with a quorum of 1); once the period is final,
every department's period settles from that one report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from rich.console import Console
from rich.table import Table
from web3 import Web3
from web3.contract.contract import Contract
from web3.logs import DISCARD

from . import deployments
from .chain import Chain, TxResult
from .credit import service_credit
from .reports import SignedReport, root_bytes
from .spec import (
    API_VERSION,
    Address,
    AgreementSpec,
    Amount,
    Committee,
    Disputes,
    Maintenance,
    Measurement,
    Metadata,
    Percent,
    ServiceSpec,
    SpecError,
    Termination,
    TimeWindow,
    _bps,
    _pct,
    _ppm,
    _Strict,
    _units,
    load_spec,
)
from .terms import (
    DEFAULT_MIN_MEASURED_PPM,
    DEFAULT_SLICE_SECONDS,
    ZERO_ADDRESS,
    Kind,
    Service,
    Tier,
    service_id_bytes,
    service_name,
)
from .units import BPS, PPM, bps_to_percent, ppm_to_percent
from .yamlfile import load_model

FACTORY_NAME = "CorporateAgreementFactory"  # its key in deployments.json
STATUSES = ("Pending", "Active", "Ended", "Terminated", "Cancelled", "Expired")
PERIOD_STATES = ("None", "Pending", "Disputed", "Final")


class DepartmentService(_Strict):
    weight: Percent
    objective: Percent | None = None  # overrides the corporate objective


class DepartmentSpec(_Strict):
    name: Annotated[str, Field(min_length=1)]
    payout: Address
    fee: Amount
    creditCap: Percent | None = None  # noqa: N815 - default: the corporate cap
    services: Annotated[dict[str, DepartmentService], Field(min_length=1)]


class CorporateBody(_Strict):
    parties: dict[Literal["provider", "organisation"], Address]
    # The committee, as in `kind: Agreement` (`oracles: {members, quorum}`); `oracle: ADDRESS` is
    # the shorthand for a committee of one (quorum 1). Exactly one of the two.
    oracle: Address | None = None
    oracles: Committee | None = None
    asset: Literal["ETH"] = "ETH"
    collateral: Amount
    timeWindow: TimeWindow  # noqa: N815
    creditCap: Percent = Decimal(100)  # noqa: N815
    termination: Termination | None = None  # the disaster clause, invoked per department
    disputes: Disputes | None = None
    maintenance: Maintenance = Field(default_factory=Maintenance)
    measurement: Measurement = Field(default_factory=Measurement)
    services: Annotated[list[ServiceSpec], Field(min_length=1, max_length=16)]
    departments: Annotated[list[DepartmentSpec], Field(min_length=1, max_length=256)]


class CorporateSpec(_Strict):
    apiVersion: Literal["smartsla/v1"]  # noqa: N815
    kind: Literal["CorporateAgreement"]
    metadata: Metadata
    spec: CorporateBody

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every rule across fields, each with its place (load_model turns it into file:line:field).
        The same rules as the contract's constructor and addDepartments, so that a spec that
        validates also deploys."""
        b = self.spec
        out: list[tuple[tuple[str | int, ...], str]] = []
        if set(b.parties) != {"provider", "organisation"}:
            out.append((("spec", "parties"), "parties needs provider and organisation"))
        if (b.oracle is None) == (b.oracles is None):
            out.append((("spec", "oracles"), "name the committee with oracles: {members, quorum} (or oracle: ADDRESS "
                                             "for a committee of one), not both"))
        members = self.members
        if b.oracles is not None:
            q = b.oracles.quorum
            if q > len(members) or q % 2 == 0:
                out.append((("spec", "oracles", "quorum"), f"oracles.quorum {q} must be odd and at most the "
                                                            f"{len(members)} members"))
        roles = [*b.parties.values(), *members] + ([b.disputes.arbiter] if b.disputes else [])
        if len({r.lower() for r in roles}) != len(roles):
            out.append((("spec", "oracles"), "the provider, the organisation, every oracle and the arbiter must be "
                                             "different addresses"))
        if (b.maintenance.notice == 0) != (b.maintenance.budget == 0):
            out.append((("spec", "maintenance"), "maintenance notice and budget go together (both or neither)"))
        if b.maintenance.windows:
            out.append((("spec", "maintenance", "windows"), "a multi-level agreement declares maintenance on-chain "
                                                            "(declare_maintenance), not in the spec"))
        if b.timeWindow.duration is None:
            out.append((("spec", "timeWindow"), "a corporate agreement uses fixed periods: timeWindow.duration"))
        names = [s.name for s in b.services]
        for i, s in enumerate(b.services):
            where: tuple[str | int, ...] = ("spec", "services", i)
            if s.name in names[:i]:
                out.append(((*where, "name"), f"duplicate service name {s.name!r}"))
            if s.slo.sli != "availability":
                out.append(((*where, "slo", "sli"), f"service {s.name!r}: corporate services are availability "
                                                    "services"))
            if s.slo.timeSliceWindow != b.services[0].slo.timeSliceWindow:
                out.append(((*where, "slo", "timeSliceWindow"), "one measurement slice for every service"))
            if "weight" in s.model_fields_set:
                out.append(((*where, "weight"), f"service {s.name!r}: corporate services carry no weight, each "
                                                "department weighs the services it covers"))
        for i, d in enumerate(b.departments):
            where = ("spec", "departments", i, "services")
            unknown = [n for n in d.services if n not in names]
            if unknown:
                out.append((where, f"department {d.name!r} names unknown services: {', '.join(unknown)}"))
            total = sum(s.weight for s in d.services.values())
            if total != 100:
                out.append((where, f"department {d.name!r}: service weights must sum to 100%, they sum to {total}%"))
            for name, svc in d.services.items():
                if svc.objective is None or name not in names:
                    continue
                tiers = b.services[names.index(name)].credits
                # The contract refuses an override at or below the second tier: the first tier
                # moves to the override and must stay the mildest.
                if svc.objective == 0 or (len(tiers) > 1 and tiers[1].below is not None
                                          and svc.objective <= tiers[1].below):
                    out.append(((*where, name, "objective"), f"department {d.name!r}: objective {svc.objective}% "
                                                             "must be above the service's second credit tier"))
            if d.creditCap is not None and d.creditCap == 0:
                out.append((("spec", "departments", i, "creditCap"), "a credit cap of 0% pays nothing: omit it "
                                                                     "for the corporate cap"))
        dep_names = [d.name for d in b.departments]
        if len(set(dep_names)) != len(dep_names):
            out.append((("spec", "departments"), "duplicate department names"))
        if b.creditCap == 0:
            out.append((("spec", "creditCap"), "a credit cap of 0% pays nothing"))
        if out:
            return out
        try:
            terms = self.to_terms()
        except ValueError as exc:  # amounts with more decimals than the asset, a bad override
            return [(("spec",), str(exc))]
        worst = terms.worst_case
        if terms.collateral < worst:
            out.append((("spec", "collateral"), f"collateral {b.collateral} does not cover the worst case "
                                                f"{Decimal(worst) / 10**18}: every department's credit at its "
                                                "harshest tiers (capped), every period"))
        return out

    @property
    def members(self) -> list[str]:
        b = self.spec
        return list(b.oracles.members) if b.oracles is not None else ([b.oracle] if b.oracle else [])

    def to_terms(self) -> CorporateTerms:
        b = self.spec
        start, length, _ = b.timeWindow.period_ends()
        scale = Decimal(10) ** 18
        services = tuple(s.to_service() for s in b.services)
        names = [s.name for s in services]
        departments = []
        for d in b.departments:
            mask = sum(1 << names.index(n) for n in d.services)
            objectives = tuple(_ppm(d.services[n].objective) if n in d.services and d.services[n].objective
                               else 0 for n in names)
            weights = tuple(_bps(d.services[n].weight) if n in d.services else 0 for n in names)
            departments.append(DepartmentTerms(d.name, d.payout, _units(d.fee, scale, "fee"), mask,
                                               _bps(d.creditCap) if d.creditCap is not None else 0,
                                               objectives, weights))
        members = tuple(self.members)
        slice_s = b.services[0].slo.timeSliceWindow  # one for every service (problems() checks it)
        return CorporateTerms(b.parties["provider"], b.parties["organisation"], members[0], ZERO_ADDRESS, start,
                              length, b.timeWindow.count, _bps(b.creditCap), _units(b.collateral, scale, "collateral"),
                              services, tuple(departments), oracles=members,
                              quorum=b.oracles.quorum if b.oracles is not None else 1,
                              termination_ppm=_ppm(b.termination.below) if b.termination else 0,
                              dispute_window=b.disputes.window if b.disputes else 0,
                              arbiter=b.disputes.arbiter if b.disputes else ZERO_ADDRESS,
                              maintenance_notice=b.maintenance.notice, maintenance_budget=b.maintenance.budget,
                              slice_seconds=slice_s, min_measured_ppm=_ppm(b.measurement.minMeasured))


def corporate_terms_to_spec(terms: CorporateTerms, name: str = "on-chain") -> dict[str, Any]:
    """The spec (plain data) describing `terms`; it validates and converts back to the same terms."""
    def amount(units: int) -> str:
        return f"{(Decimal(units) / 10**18).normalize():f}"

    services = []
    for s in terms.services:
        credits = []
        for i, t in enumerate(s.tiers):
            r: dict[str, Any] = {"below": _pct(t.threshold, PPM)}
            if i + 1 < len(s.tiers):
                r["atLeast"] = _pct(s.tiers[i + 1].threshold, PPM)
            r["credit"] = _pct(t.credit_bps, BPS)
            credits.append(r)
        slo: dict[str, Any] = {"sli": "availability", "objective": _pct(s.objective, PPM)}
        if terms.slice_seconds != DEFAULT_SLICE_SECONDS:
            slo["timeSliceWindow"] = f"{terms.slice_seconds}s"
        services.append({"name": s.name, "slo": slo, "credits": credits})
    departments = []
    for d in terms.departments:
        covered: dict[str, Any] = {}
        for k, s in enumerate(terms.services):
            if d.service_mask & (1 << k):
                covered[s.name] = {"weight": _pct(d.weights_bps[k], BPS)}
                if d.objectives[k]:
                    covered[s.name]["objective"] = _pct(d.objectives[k], PPM)
        dep: dict[str, Any] = {"name": d.name, "payout": d.payout, "fee": amount(d.fee_per_period)}
        if d.credit_cap_bps:
            dep["creditCap"] = _pct(d.credit_cap_bps, BPS)
        dep["services"] = covered
        departments.append(dep)
    start = dt.datetime.fromtimestamp(terms.start, dt.UTC).isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {"parties": {"provider": terms.provider, "organisation": terms.organisation},
                            "oracles": {"members": list(terms.committee), "quorum": terms.quorum},
                            "asset": "ETH", "collateral": amount(terms.collateral),
                            "timeWindow": {"start": start, "duration": f"{terms.period_length}s",
                                           "count": terms.period_count},
                            "creditCap": _pct(terms.credit_cap_bps, BPS)}
    if terms.termination_ppm:
        body["termination"] = {"below": _pct(terms.termination_ppm, PPM)}
    if terms.dispute_window:
        body["disputes"] = {"window": f"{terms.dispute_window}s", "arbiter": terms.arbiter}
    if terms.maintenance_notice or terms.maintenance_budget:
        body["maintenance"] = {"notice": f"{terms.maintenance_notice}s", "budget": f"{terms.maintenance_budget}s"}
    if terms.min_measured_ppm != DEFAULT_MIN_MEASURED_PPM:
        body["measurement"] = {"minMeasured": _pct(terms.min_measured_ppm, PPM)}
    body["services"] = services
    body["departments"] = departments
    return {"apiVersion": API_VERSION, "kind": "CorporateAgreement", "metadata": {"name": name,
            "structure": "multi-level"}, "spec": body}


def print_corporate_spec(console: Console, path: str | Path, spec: CorporateSpec) -> None:
    """`smartsla spec validate` for a multi-level spec: the departments and the pool it needs."""
    terms = spec.to_terms()
    names = [s.name for s in terms.services]
    table = Table(title=f"{path}: {spec.metadata.name} (multi-level)", title_justify="left")
    for col in ("department", "fee / period", "cap", "services (weight, objective)", "worst credit / period"):
        table.add_column(col)
    outage = [0] * len(names)
    for i, d in enumerate(terms.departments):
        covered = ", ".join(f"{n} {bps_to_percent(d.weights_bps[k])}"
                            + (f" @ {ppm_to_percent(d.objectives[k])}" if d.objectives[k] else "")
                            for k, n in enumerate(names) if d.service_mask & (1 << k))
        table.add_row(d.name, f"{Decimal(d.fee_per_period) / 10**18}", bps_to_percent(d.credit_cap_bps
                      or terms.credit_cap_bps), covered, f"{Decimal(terms.department_credit(i, outage)[1]) / 10**18}")
    console.print(table)
    console.print(f"[green]valid[/]: {terms.period_count} periods, {len(terms.departments)} departments, "
                  f"{len(names)} services; pool {Decimal(terms.collateral) / 10**18} covers the worst case "
                  f"{Decimal(terms.worst_case) / 10**18}")


def load_corporate_spec(path: str | Path) -> CorporateSpec:
    """Read and validate a `kind: CorporateAgreement` spec; SpecError names file, line and field."""
    return load_model(CorporateSpec, path, SpecError)


@dataclass(frozen=True)
class DepartmentTerms:
    name: str
    payout: str
    fee_per_period: int
    service_mask: int
    credit_cap_bps: int  # 0: the corporate cap
    objectives: tuple[int, ...]  # 0: the corporate objective
    weights_bps: tuple[int, ...]

    def to_abi(self) -> tuple:
        return (self.payout, self.fee_per_period, self.service_mask, self.credit_cap_bps, list(self.objectives),
                list(self.weights_bps))


@dataclass(frozen=True)
class CorporateTerms:
    provider: str
    organisation: str
    oracle: str
    asset: str
    start: int
    period_length: int
    period_count: int
    credit_cap_bps: int
    collateral: int
    services: tuple[Service, ...]
    departments: tuple[DepartmentTerms, ...]
    # The committee and the clauses, with the defaults of a committee of one (`oracle`) and no
    # clause: the same meaning as the fields of smartsla.terms.Terms of the same names.
    oracles: tuple[str, ...] = ()  # empty: (oracle,)
    quorum: int = 1
    termination_ppm: int = 0
    dispute_window: int = 0
    arbiter: str = ZERO_ADDRESS
    maintenance_notice: int = 0
    maintenance_budget: int = 0
    slice_seconds: int = DEFAULT_SLICE_SECONDS
    min_measured_ppm: int = DEFAULT_MIN_MEASURED_PPM

    @property
    def committee(self) -> tuple[str, ...]:
        return self.oracles or (self.oracle,)

    def to_abi(self) -> tuple:
        """The contract's CorporateTerms struct (services with weight 0: departments weigh them)."""
        assert all(s.kind is Kind.availability for s in self.services)
        services = [(service_id_bytes(s.name), s.objective, 0, [(t.threshold, t.credit_bps) for t in s.tiers])
                    for s in self.services]
        return (self.provider, self.organisation, self.asset, self.start, self.period_length, self.period_count,
                self.collateral, self.credit_cap_bps, self.termination_ppm, list(self.committee), self.quorum,
                self.dispute_window, self.arbiter, self.maintenance_notice, self.maintenance_budget,
                self.slice_seconds, self.min_measured_ppm, services)

    @property
    def worst_case(self) -> int:
        """The smallest pool the contract accepts: every department's credit for a total outage
        (its harshest tiers, capped), every period."""
        outage = [0] * len(self.services)
        return self.period_count * sum(self.department_credit(i, outage)[1] for i in range(len(self.departments)))

    @property
    def total_fees(self) -> int:
        return sum(d.fee_per_period for d in self.departments) * self.period_count

    def period_end(self, period: int) -> int:
        return self.start + (period + 1) * self.period_length

    def department_credit(self, index: int, values: list[int] | tuple[int, ...]) -> tuple[tuple[int, ...], int]:
        """Reference model: each service's credit and the capped total (before the pool limit)."""
        dep = self.departments[index]
        credits = []
        for i, (service, value) in enumerate(zip(self.services, values, strict=True)):
            if not dep.service_mask & (1 << i):
                credits.append(0)
                continue
            tiers = service.tiers
            if dep.objectives[i]:  # the mildest tier moves with an overridden objective
                tiers = (tiers[0].model_copy(update={"threshold": dep.objectives[i]}), *tiers[1:])
            s = service.model_copy(update={"objective": dep.objectives[i] or service.objective,
                                           "weight_bps": dep.weights_bps[i], "tiers": tiers})
            credits.append(service_credit(s, value, dep.fee_per_period))
        cap = dep.fee_per_period * (dep.credit_cap_bps or self.credit_cap_bps) // BPS
        return tuple(credits), min(sum(credits), cap)


@dataclass(frozen=True)
class CorporateStatus:
    """CorporateAgreement.snapshot(), decoded. The contract holds fees_escrowed + collateral_pool
    + every address's `owed`."""

    status: str
    reported_periods: int
    pending_periods: int
    fees_deposited: bool
    collateral_deposited: bool
    fees_escrowed: int
    collateral_pool: int
    fees_per_period: int
    worst_case_per_period: int


@dataclass(frozen=True)
class DepartmentStatus:
    settled_periods: int
    terminated: bool
    end_period: int  # with `terminated`: the department has no period from it on


class CorporateFactory:
    """The CorporateAgreementFactory on one chain (a sibling of client.Factory)."""

    def __init__(self, chain: Chain, address: str):
        self.chain = chain
        self.contract: Contract = chain.contract(FACTORY_NAME, address)
        self.address = self.contract.address

    @classmethod
    def deploy(cls, chain: Chain, sender: str) -> CorporateFactory:
        contract, _ = chain.deploy(FACTORY_NAME, sender)
        return cls(chain, contract.address)

    @classmethod
    def for_chain(cls, chain: Chain, sender: str) -> CorporateFactory:
        """The factory deployments.json records for this chain (where AgreementFactory's address
        comes from); on the embedded chain, which is never recorded, one per Chain object."""
        if not chain.embedded:
            address = deployments.lookup(chain.chain_id, FACTORY_NAME)
            if address:
                return cls(chain, address)
        cached = getattr(chain, "_corporate_factory", None)
        if cached is None:
            cached = cls.deploy(chain, sender)
            chain._corporate_factory = cached  # type: ignore[attr-defined]
        return cached

    def create(self, terms: CorporateTerms, sender: str) -> Corporate:
        fn = self.contract.functions.createCorporateAgreement(terms.to_abi(), [d.to_abi() for d in terms.departments])
        tx = self.chain.transact(fn, sender, action="createCorporateAgreement")
        events = self.contract.events.CorporateAgreementCreated().process_receipt(tx.receipt, errors=DISCARD)
        corporate = Corporate(self.chain, events[0]["args"]["agreement"], terms)
        corporate.creation = tx
        return corporate


def decode_packed_terms(raw: bytes) -> dict[str, Any]:
    """CorporateAgreement.packedTerms() (layout in contracts/CorporateCodec.sol) as plain fields."""
    def rd(off: int, size: int) -> int:
        return int.from_bytes(raw[off:off + size], "big")

    def addr(off: int) -> str:
        return Web3.to_checksum_address(raw[off:off + 20])

    oracle_count, chunk_count, service_count = rd(176, 1), rd(174, 1), rd(177, 1)
    off = 178 + 20 * (oracle_count + chunk_count)
    services = []
    for _ in range(service_count):
        sid, objective, tier_count = raw[off:off + 32], rd(off + 32, 4), rd(off + 36, 1)
        off += 37
        tiers = tuple(Tier(threshold=rd(off + 6 * j, 4), credit_bps=rd(off + 6 * j + 4, 2)) for j in range(tier_count))
        off += 6 * tier_count
        services.append(Service(name=service_name(sid), objective=objective, tiers=tiers))
    return {"provider": addr(0), "organisation": addr(20), "asset": addr(40), "start": rd(60, 8),
            "period_length": rd(68, 4), "period_count": rd(72, 2), "collateral": rd(74, 16),
            "credit_cap_bps": rd(122, 2), "termination_ppm": rd(124, 4), "dispute_window": rd(128, 4),
            "arbiter": addr(132), "maintenance_notice": rd(152, 4), "maintenance_budget": rd(156, 4),
            "slice_seconds": rd(160, 4), "min_measured_ppm": rd(164, 4), "department_count": rd(168, 2),
            "quorum": rd(175, 1), "oracles": tuple(addr(178 + 20 * i) for i in range(oracle_count)),
            "services": tuple(services)}


class Corporate:
    """A multi-level agreement: a CorporateAgreement clone."""

    def __init__(self, chain: Chain, address: str, terms: CorporateTerms | None = None):
        self.chain = chain
        self.contract: Contract = chain.contract("CorporateAgreement", address)
        self.address = self.contract.address
        self.terms = terms
        self.creation: TxResult | None = None

    @classmethod
    def deploy(cls, chain: Chain, terms: CorporateTerms, sender: str, *, factory: str | None = None) -> Corporate:
        """Create the agreement as a clone through the CorporateAgreementFactory at `factory`, else
        the one deployments.json records for the chain (else, on the embedded chain, a new one)."""
        f = CorporateFactory(chain, factory) if factory else CorporateFactory.for_chain(chain, sender)
        return f.create(terms, sender)

    def read_terms(self) -> CorporateTerms:
        """The terms as the chain holds them (department names are not on-chain: department-<i>)."""
        f = self.contract.functions
        call = self.chain.call
        t = decode_packed_terms(bytes(call(f.packedTerms())))
        departments = tuple(
            DepartmentTerms(f"department-{i}", payout, fee, mask, cap, tuple(objectives), tuple(weights))
            for i, (payout, fee, mask, cap, objectives, weights)
            in ((i, call(f.department(i))) for i in range(t.pop("department_count"))))
        oracles = t.pop("oracles")
        return CorporateTerms(t.pop("provider"), t.pop("organisation"), oracles[0], t.pop("asset"), t.pop("start"),
                              t.pop("period_length"), t.pop("period_count"), t.pop("credit_cap_bps"),
                              t.pop("collateral"), t.pop("services"), departments, oracles=oracles, **t)

    # ------------------------------------------------------------ reads

    def status(self) -> CorporateStatus:
        s = self.chain.call(self.contract.functions.snapshot())
        return CorporateStatus(STATUSES[s[0]], *s[1:])

    def department_status(self, index: int) -> DepartmentStatus:
        return DepartmentStatus(*self.chain.call(self.contract.functions.departmentState(index)))

    def period_state(self, period: int) -> tuple[str, int, int]:
        """(None|Pending|Disputed|Final, final after (unix time), disaster mask)."""
        state, final_after, mask = self.chain.call(self.contract.functions.periodState(period))
        return PERIOD_STATES[state], final_after, mask

    def reported_values(self, period: int) -> list[int]:
        return list(self.chain.call(self.contract.functions.reportedValues(period)))

    def owed(self, party: str) -> int:
        return self.chain.call(self.contract.functions.owed(party))

    # ------------------------------------------------------------ money in

    def deposit_fees(self, sender: str) -> TxResult:
        total = self.chain.call(self.contract.functions.totalFees())
        return self.chain.transact(self.contract.functions.depositFees(), sender, value=total,
                                   action="depositFees")

    def deposit_collateral(self, sender: str) -> TxResult:
        terms = self.terms or self.read_terms()
        return self.chain.transact(self.contract.functions.depositCollateral(), sender, value=terms.collateral,
                                   action="depositCollateral")

    def cancel(self, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.cancel(), sender, action="cancel")

    # ------------------------------------------------------------ reports

    def report(self, period: int, values: list[int], sender: str, *, evidence_root: bytes | str,
               measured_ppm: int = PPM) -> TxResult:
        """A committee member reports `period` directly (quorum 1 only): one value per corporate
        service, the share measured, and the Merkle root of its evidence. The root is required:
        the contract refuses a zero root (MissingEvidence), and no default could stand for
        evidence that exists."""
        fn = self.contract.functions.settle(period, list(values), measured_ppm, root_bytes(evidence_root))
        return self.chain.transact(fn, sender, action=f"report period {period}")

    def settle_with_reports(self, period: int, reports: list[SignedReport], sender: str) -> TxResult:
        """Anyone submits a quorum of signed reports (smartsla.reports.sign_report with this
        agreement's address: the same EIP-712 domain and type as Agreement)."""
        fn = self.contract.functions.settleWithReports(period, [r.to_abi() for r in reports])
        return self.chain.transact(fn, sender, action=f"report period {period} ({len(reports)} signed reports)")

    def dispute(self, period: int, evidence: bytes | str, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.dispute(period, root_bytes(evidence)), sender,
                                   action=f"dispute period {period}")

    def resolve_dispute(self, period: int, values: list[int], sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.resolveDispute(period, list(values)), sender,
                                   action=f"resolve dispute of period {period}")

    def finalize(self, period: int, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.finalize(period), sender,
                                   action=f"finalize period {period}")

    def declare_maintenance(self, start: int, end: int, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.declareMaintenance(start, end), sender,
                                   action="declareMaintenance")

    # ------------------------------------------------------------ departments

    def settle_department(self, index: int, period: int, sender: str) -> tuple[int, TxResult]:
        """Settle a department's final period (anyone may); returns the credit paid."""
        tx = self.chain.transact(self.contract.functions.settleDepartment(index, period), sender,
                                 action=f"settle department {index} period {period}")
        logs = self.contract.events.DepartmentSettled().process_receipt(tx.receipt, errors=DISCARD)
        return int(logs[0]["args"]["creditPaid"]), tx

    def settle_departments(self, period: int, first: int, end: int, sender: str) -> TxResult:
        """Settle `period` for departments first..end-1 in one transaction (those already past it
        are skipped): one transaction per period releases the fees and the unused pool."""
        return self.chain.transact(self.contract.functions.settleDepartments(period, first, end), sender,
                                   action=f"settle departments {first}..{end - 1} period {period}")

    def terminate_department(self, index: int, period: int, sender: str) -> TxResult:
        """The organisation invokes the disaster clause for department `index`, citing the final
        `period` in which a service it covers fell below the termination threshold."""
        return self.chain.transact(self.contract.functions.terminateDepartment(index, period), sender,
                                   action=f"terminate department {index}")

    # ------------------------------------------------------------ ending

    def expire(self, sender: str) -> TxResult:
        """End an agreement whose committee went silent (anyone may, REPORT_DEADLINE after the term)."""
        return self.chain.transact(self.contract.functions.expire(), sender, action="expire")

    def withdraw(self, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.withdraw(), sender, action="withdraw")


# ---------------------------------------------------------------- any kind
# A spec's `kind` picks its model: `Agreement` (smartsla.spec) or `CorporateAgreement` (above).
# It lives here, the one module that knows both kinds (smartsla.spec must not import this one:
# that would be an import cycle).

SPEC_KINDS = ("Agreement", "CorporateAgreement")


def load_any_spec(path: str | Path) -> AgreementSpec | CorporateSpec:
    """Read a spec of any kind; SpecError names file, line and field (an unknown kind too)."""
    from .yamlfile import line_of, parse_yaml

    path = Path(path)
    try:
        data, node = parse_yaml(path.read_text(), str(path))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValueError as exc:
        raise SpecError(str(exc)) from exc
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "CorporateAgreement":
        return load_corporate_spec(path)
    if kind is not None and kind not in SPEC_KINDS:
        line = line_of(node, ("kind",))
        raise SpecError(f"{path}{f':{line}' if line else ''}: kind: {kind!r} is not one of {', '.join(SPEC_KINDS)}")
    return load_spec(path)
