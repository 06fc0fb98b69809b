"""Multi-level SLAs: a corporate agreement with one collateral pool and departments on top.

The spec (`kind: CorporateAgreement`) names the corporate defaults (services with objectives and
credit tiers, the cap, the schedule, the pool) and each department's payout address, fee,
subset of services and overrides. `Corporate` drives the CorporateAgreement contract: the oracle
reports each period once; every department's period settles from that one report.
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
from web3.contract.contract import Contract
from web3.logs import DISCARD

from .chain import Chain, TxResult
from .credit import service_credit
from .spec import (
    API_VERSION,
    Address,
    AgreementSpec,
    Amount,
    Metadata,
    Percent,
    ServiceSpec,
    SpecError,
    TimeWindow,
    _bps,
    _pct,
    _ppm,
    _Strict,
    _units,
    load_spec,
)
from .terms import ZERO_ADDRESS, Kind, Service, Tier, service_id_bytes, service_name
from .units import BPS, PPM, bps_to_percent, ppm_to_percent
from .yamlfile import load_model

DEPARTMENT_BATCH = 20


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
    oracle: Address
    asset: Literal["ETH"] = "ETH"
    collateral: Amount
    timeWindow: TimeWindow  # noqa: N815
    creditCap: Percent = Decimal(100)  # noqa: N815
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
        return CorporateTerms(b.parties["provider"], b.parties["organisation"], b.oracle, ZERO_ADDRESS, start,
                              length, b.timeWindow.count, _bps(b.creditCap), _units(b.collateral, scale, "collateral"),
                              services, tuple(departments))


def corporate_terms_to_spec(terms: CorporateTerms, name: str = "on-chain") -> dict[str, Any]:
    """The spec (plain data) describing `terms`; it validates and converts back to the same terms."""
    def amount(units: int) -> str:
        return f"{(Decimal(units) / 10**18).normalize():f}"

    services = []
    for s in terms.services:
        credits = []
        for i, t in enumerate(s.tiers):
            r: dict[str, Any] = {"below": _pct(t.below_ppm, PPM)}
            if i + 1 < len(s.tiers):
                r["atLeast"] = _pct(s.tiers[i + 1].below_ppm, PPM)
            r["credit"] = _pct(t.credit_bps, BPS)
            credits.append(r)
        services.append({"name": s.name, "slo": {"sli": "availability", "objective": _pct(s.objective_ppm, PPM)},
                         "credits": credits})
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
    body = {"parties": {"provider": terms.provider, "organisation": terms.organisation}, "oracle": terms.oracle,
            "asset": "ETH", "collateral": amount(terms.collateral),
            "timeWindow": {"start": start, "duration": f"{terms.period_length}s", "count": terms.period_count},
            "creditCap": _pct(terms.credit_cap_bps, BPS), "services": services, "departments": departments}
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
                tiers = (tiers[0].model_copy(update={"below_ppm": dep.objectives[i]}), *tiers[1:])
            s = service.model_copy(update={"objective_ppm": dep.objectives[i] or service.objective_ppm,
                                           "weight_bps": dep.weights_bps[i], "tiers": tiers})
            credits.append(service_credit(s, value, dep.fee_per_period))
        cap = dep.fee_per_period * (dep.credit_cap_bps or self.credit_cap_bps) // BPS
        return tuple(credits), min(sum(credits), cap)


class Corporate:
    """A deployed CorporateAgreement."""

    def __init__(self, chain: Chain, address: str, terms: CorporateTerms | None = None):
        self.chain = chain
        self.contract: Contract = chain.contract("CorporateAgreement", address)
        self.address = self.contract.address
        self.terms = terms
        self.creation: TxResult | None = None

    @classmethod
    def deploy(cls, chain: Chain, terms: CorporateTerms, sender: str) -> Corporate:
        # Weight 0: the contract refuses corporate weights, each department weighs its services.
        services = [(service_id_bytes(s.name), s.objective_ppm, 0,
                     [(t.below_ppm, t.credit_bps) for t in s.tiers]) for s in terms.services]
        assert all(s.kind is Kind.availability for s in terms.services)
        contract, tx = chain.deploy("CorporateAgreement", sender, terms.provider, terms.organisation, terms.oracle,
                                    terms.asset, terms.start, terms.period_length, terms.period_count,
                                    terms.credit_cap_bps, terms.collateral, services)
        corporate = cls(chain, contract.address, terms)
        corporate.creation = tx
        # In batches: the calldata of a hundred departments is large, and each batch's gas bounded.
        for i in range(0, len(terms.departments), DEPARTMENT_BATCH):
            batch = [d.to_abi() for d in terms.departments[i:i + DEPARTMENT_BATCH]]
            chain.transact(contract.functions.addDepartments(batch), sender, action="addDepartments")
        return corporate

    def read_terms(self) -> CorporateTerms:
        """The terms as the chain holds them (department names are not on-chain: department-<i>)."""
        f = self.contract.functions
        call = self.chain.call
        services = tuple(
            Service(name=service_name(sid), objective_ppm=objective,
                    tiers=tuple(Tier(below_ppm=b, credit_bps=c) for b, c in tiers))
            for sid, objective, _weight, tiers in call(f.services()))
        departments = tuple(
            DepartmentTerms(f"department-{i}", payout, fee, mask, cap, tuple(objectives), tuple(weights))
            for i, (payout, fee, mask, cap, objectives, weights)
            in ((i, call(f.department(i))) for i in range(call(f.departmentCount()))))
        return CorporateTerms(call(f.provider()), call(f.organisation()), call(f.oracle()), call(f.asset()),
                              call(f.start()), call(f.periodLength()), call(f.periodCount()), call(f.creditCapBps()),
                              call(f.collateral()), services, departments)

    def deposit_fees(self, sender: str) -> TxResult:
        total = self.chain.call(self.contract.functions.totalFees())
        return self.chain.transact(self.contract.functions.depositFees(total), sender, value=total,
                                   action="depositFees")

    def cancel(self, sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.cancel(), sender, action="cancel")

    def deposit_collateral(self, sender: str) -> TxResult:
        amount = self.chain.call(self.contract.functions.collateral())
        return self.chain.transact(self.contract.functions.depositCollateral(), sender, value=amount,
                                   action="depositCollateral")

    def report(self, period: int, values: list[int], sender: str) -> TxResult:
        return self.chain.transact(self.contract.functions.report(period, list(values)), sender,
                                   action=f"report period {period}")

    def settle_department(self, index: int, period: int, sender: str) -> tuple[int, TxResult]:
        """Settle a department's period (anyone may); returns the credit paid."""
        tx = self.chain.transact(self.contract.functions.settleDepartment(index, period), sender,
                                 action=f"settle department {index} period {period}")
        logs = self.contract.events.DepartmentSettled().process_receipt(tx.receipt, errors=DISCARD)
        return int(logs[0]["args"]["creditPaid"]), tx

    def settle_departments(self, period: int, first: int, end: int, sender: str) -> TxResult:
        """Settle `period` for departments first..end-1 in one transaction (those already past it
        are skipped): one transaction per period releases the fees and the unused pool."""
        return self.chain.transact(self.contract.functions.settleDepartments(period, first, end), sender,
                                   action=f"settle departments {first}..{end - 1} period {period}")

    def expire(self, sender: str) -> TxResult:
        """End an agreement whose oracle went silent (anyone may, REPORT_DEADLINE after the term)."""
        return self.chain.transact(self.contract.functions.expire(), sender, action="expire")

    def owed(self, party: str) -> int:
        return self.chain.call(self.contract.functions.owed(party))

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
