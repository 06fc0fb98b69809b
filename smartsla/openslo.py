"""OpenSLO v1 in and out: `smartsla spec import openslo` / `smartsla spec export openslo`.

An agreement maps onto OpenSLO as follows (docs/openslo.md has the full table):

* the agreement is one OpenSLO `Service` (metadata.name = the agreement's name);
* each of its services is one `SLO` of that Service, with its `SLI` (ratio metric for
  availability, threshold metric for latency) and the `timeWindow` of the agreement's periods
  (`duration: 1M` + `calendar` for calendar months, `isRolling: false`: an SLA settles fixed
  periods, never a rolling window);
* availability: `budgetingMethod: Timeslices`, `target` = the objective as a fraction,
  `timeSliceWindow` = the agreement's measurement slice; latency: `budgetingMethod: Occurrences`,
  `op: lte`, `value` = the objective in ms, `target` = the percentile as a fraction (p95 <= 300 ms
  is "95 % of requests within 300 ms");
* what OpenSLO has no field for (parties, money, credit tiers, committee, clauses, number of
  periods) travels in `metadata.annotations` under the `smartsla.io/` prefix (OpenSLO annotations
  are strings: scalars as written in a spec, structures as JSON), or, on import, in a separate
  SLA-layer document `apiVersion: smartsla/v1, kind: AgreementLayer` that overrides them.

Import returns the spec as plain data (what `smartsla spec validate` reads); every problem is
reported at once as `file:line: field: message`. OpenSLO durations are case-sensitive: `m` is
minutes, `M` months.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import ValidationError

from .spec import AgreementSpec, SpecError
from .yamlfile import line_of

OPENSLO = "openslo/v1"
PREFIX = "smartsla.io/"
LAYER_KIND = "AgreementLayer"
DATASOURCE = "smartsla-oracle"

# Agreement-wide fields carried as annotations of the Service (spec.<key>), and the per-service
# ones carried on each SLO. Scalars travel as the string a spec would hold; the rest as JSON.
AGREEMENT_KEYS = ("parties", "oracles", "asset", "fee", "collateral", "creditCap", "termination", "disputes",
                  "maintenance", "measurement", "scope")
SERVICE_KEYS = ("weight", "credits", "sli", "timeSliceWindow")
SCALAR_KEYS = {"fee", "collateral", "creditCap", "weight", "sli", "timeSliceWindow", "periods", "structure",
               "asset"}
IGNORED_KINDS = {"AlertPolicy", "AlertCondition", "AlertNotificationTarget"}

KNOWN = {(OPENSLO, k) for k in ("Service", "SLO", "SLI", "DataSource", *IGNORED_KINDS)} | {("smartsla/v1", LAYER_KIND)}

# OpenSLO's duration shorthand: m h d w M Q Y, case-sensitive, no seconds.
_OPENSLO_DURATION = re.compile(r"^([1-9][0-9]*)([mhdwMQY])$")
_SECONDS = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # OpenSLO's metadata.name (RFC 1123)


class OpenSloError(SpecError):
    """OpenSLO documents that cannot become an agreement; one `file:line: field: message` per line."""


@dataclass
class _Doc:
    data: dict[str, Any]
    node: yaml.Node
    source: str

    def where(self, *loc: Any) -> str:
        line = line_of(self.node, loc)
        return f"{self.source}:{line}" if line else self.source

    @property
    def kind(self) -> str:
        return str(self.data.get("kind"))

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        return str(meta.get("name")) if isinstance(meta, dict) else ""

    def spec(self) -> dict[str, Any]:
        s = self.data.get("spec")
        return s if isinstance(s, dict) else {}

    def annotations(self) -> dict[str, Any]:
        meta = self.data.get("metadata")
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        return ann if isinstance(ann, dict) else {}


@dataclass
class _Import:
    problems: list[str] = field(default_factory=list)
    # spec location prefix -> "file:line: openslo.field" it came from (for the spec's own errors)
    origins: dict[tuple[Any, ...], str] = field(default_factory=dict)

    def problem(self, doc: _Doc, loc: tuple[Any, ...], msg: str) -> None:
        self.problems.append(f"{doc.where(*loc)}: {_dotted(doc, loc)}: {msg}")

    def origin(self, spec_loc: tuple[Any, ...], doc: _Doc, loc: tuple[Any, ...]) -> None:
        self.origins[spec_loc] = f"{doc.where(*loc)}: {_dotted(doc, loc)}"


def _dotted(doc: _Doc, loc: tuple[Any, ...]) -> str:
    path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    return f"{doc.kind} {doc.name or '?'}: {path}" if path else f"{doc.kind} {doc.name or '?'}"


# ---------------------------------------------------------------- durations

def parse_duration(text: Any) -> tuple[int, str]:
    """OpenSLO shorthand -> (count, unit). Case-sensitive: 'm' minutes, 'M' months."""
    m = _OPENSLO_DURATION.match(str(text).strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"write an OpenSLO duration like '1m', '30d' or '1M' (months), got {text!r}")
    return int(m.group(1)), m.group(2)


def duration_text(seconds: int) -> str:
    """Seconds -> the largest exact shorthand ('30d', '1m'); below a whole minute, 'Ns' (our spec's
    syntax: OpenSLO's shorthand has no seconds, see `openslo_duration`)."""
    for unit in ("w", "d", "h", "m"):
        if seconds % _SECONDS[unit] == 0:
            return f"{seconds // _SECONDS[unit]}{unit}"
    return f"{seconds}s"


def openslo_duration(seconds: int, what: str) -> str:
    """Seconds -> OpenSLO shorthand, or OpenSloError: it cannot say a fraction of a minute."""
    if seconds <= 0 or seconds % 60:
        raise OpenSloError(f"{what} of {seconds} s: OpenSLO durations are whole minutes or longer (no seconds)")
    return duration_text(seconds)


def slice_seconds_of(value: Any) -> int:
    """An objective's timeSliceWindow -> seconds: shorthand ('1m'), or a number of minutes (OpenSLO's
    default unit; 0.5 = 30 s)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = Decimal(str(value)) * 60
        if value <= 0 or seconds != seconds.to_integral_value():
            raise ValueError(f"a slice of {value} minutes is not a whole number of seconds")
        return int(seconds)
    count, unit = parse_duration(value)
    if unit not in _SECONDS:
        raise ValueError(f"a slice of {value} is not a fixed length ('M' is months; minutes are 'm')")
    return count * _SECONDS[unit]


def slice_for_openslo(seconds: int) -> str | float:
    """The slice as OpenSLO writes it: shorthand in whole minutes, else a number of minutes."""
    if seconds % 60 == 0:
        return duration_text(seconds)
    minutes = Decimal(seconds) / 60
    if minutes * 60 != seconds or Decimal(str(float(minutes))) != minutes:  # exact in decimal, and as a float
        raise OpenSloError(f"a slice of {seconds} s is no exact number of minutes (OpenSLO has no seconds)")
    return float(minutes)


def _fraction_to_percent(value: Any) -> str:
    """0.9999 -> '99.99%' (exact: through the YAML text of the number, never binary floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"write target as a fraction like 0.999, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"write target as a fraction like 0.999, got {value!r}") from None
    if not Decimal(0) < number < Decimal(1):
        raise ValueError(f"target {value} must be a fraction in (0, 1) (0.999 means 99.9%)")
    return f"{(number * 100).normalize():f}%"


def _percent_to_fraction(text: Any) -> float:
    number = Decimal(str(text).strip().removesuffix("%")) / 100
    return float(number)


# ---------------------------------------------------------------- reading

def _read(paths: list[Path], state: _Import) -> list[_Doc]:
    docs: list[_Doc] = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            state.problems.append(f"{path}: cannot read: {exc.strerror}")
            continue
        try:
            pairs = list(zip(yaml.safe_load_all(text), yaml.compose_all(text), strict=True))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            state.problems.append(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML: "
                                  f"{getattr(exc, 'problem', exc)}")
            continue
        for data, node in pairs:
            if data is None:
                continue
            # OpenSLO files may also hold a list of documents
            items = zip(data, node.value, strict=True) if isinstance(data, list) else [(data, node)]
            for item, inode in items:
                doc = _Doc(item if isinstance(item, dict) else {}, inode, str(path))
                if not isinstance(item, dict):
                    state.problems.append(f"{doc.where()}: a document must be a mapping")
                    continue
                api = item.get("apiVersion")
                if (api, item.get("kind")) in KNOWN:
                    docs.append(doc)
                elif api not in (OPENSLO, "smartsla/v1"):
                    state.problem(doc, ("apiVersion",), f"expected {OPENSLO} (or smartsla/v1 for the SLA layer), "
                                  f"got {api!r}")
                else:
                    state.problem(doc, ("kind",), f"unknown kind {item.get('kind')!r}")
                if not doc.name and item.get("kind") not in IGNORED_KINDS:
                    state.problem(doc, ("metadata", "name"), "missing")
    return docs


def _annotation(doc: _Doc, key: str, state: _Import) -> Any:
    """The value of annotation smartsla.io/<key> (None if absent); JSON for structures."""
    raw = doc.annotations().get(PREFIX + key)
    if raw is None:
        return None
    loc = ("metadata", "annotations", PREFIX + key)
    if not isinstance(raw, str):
        state.problem(doc, loc, "OpenSLO annotations are strings: quote the value")
        return None
    if key in SCALAR_KEYS and not raw.lstrip().startswith("{"):  # an ERC-20 asset is a structure
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        state.problem(doc, loc, f"not valid JSON: {exc.msg}")
        return None


def _time_window(slo: _Doc, state: _Import) -> tuple[dict[str, Any], tuple[Any, ...]] | None:
    """The SLO's timeWindow -> the spec's timeWindow (without count)."""
    windows = slo.spec().get("timeWindow")
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        state.problem(slo, ("spec", "timeWindow"), "give exactly one time window (a list with one item)")
        return None
    w, loc = windows[0], ("spec", "timeWindow", 0)
    ok = True
    rolling = w.get("isRolling", "calendar" not in w)  # OpenSLO: omitted means false with a calendar
    if rolling is not False:
        state.problem(slo, (*loc, "isRolling"), "an SLA settles fixed periods: write isRolling: false "
                      "(a rolling window never closes, so no credit could be paid)")
        ok = False
    cal = w.get("calendar")
    if not isinstance(cal, dict) or "startTime" not in cal:
        state.problem(slo, (*loc, "calendar"), "give calendar.startTime (and timeZone): the first period's start")
        return None
    zone_name = str(cal.get("timeZone", "UTC"))
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        state.problem(slo, (*loc, "calendar", "timeZone"), f"unknown time zone {zone_name!r}")
        return None
    start_raw = cal["startTime"]
    try:
        start = start_raw if isinstance(start_raw, dt.datetime) else dt.datetime.strptime(
            str(start_raw), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        state.problem(slo, (*loc, "calendar", "startTime"), f"write 'YYYY-MM-DD hh:mm:ss', got {start_raw!r}")
        return None
    start = start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)
    try:
        count, unit = parse_duration(w.get("duration"))
    except ValueError as exc:
        state.problem(slo, (*loc, "duration"), str(exc))
        return None
    out: dict[str, Any] = {"start": start.isoformat().replace("+00:00", "Z")}
    if unit == "M":
        if count != 1:
            state.problem(slo, (*loc, "duration"), f"{count}M: periods of several months are not supported "
                          "(write 1M: one credit period per calendar month)")
            ok = False
        out["calendar"] = {"unit": "month", "timeZone": zone_name}
    elif unit in ("Q", "Y"):
        state.problem(slo, (*loc, "duration"), f"{count}{unit}: quarters and years are not supported; use 1M "
                      "(calendar months) or a fixed length in m/h/d/w")
        ok = False
    elif unit == "m" and count < 60:
        # OpenSLO's own examples write `1m` meaning a month: a period of minutes is that typo
        state.problem(slo, (*loc, "duration"), f"{count}m is {count} minute(s) ('m' is minutes, 'M' months): "
                      "an SLA period under an hour is a typo; write 1M for calendar months")
        ok = False
    else:
        out["duration"] = duration_text(count * _SECONDS[unit])
    return (out, loc) if ok else None


def _service(slo: _Doc, index: int, slis: dict[str, _Doc], layer: dict[str, Any], state: _Import,
             ) -> tuple[dict[str, Any], str | None]:
    """One SLO -> one spec service (and its timeSliceWindow, or None)."""
    spec, base = slo.spec(), ("spec", "services", index)
    name = slo.name
    state.origin(base, slo, ())
    state.origin((*base, "name"), slo, ("metadata", "name"))
    service: dict[str, Any] = {"name": name}
    display = (slo.data.get("metadata") or {}).get("displayName")
    if display:
        service["displayName"] = display
    # the SLI: inline indicator or indicatorRef to an SLI document
    indicator: dict[str, Any] | None = None
    if "indicatorRef" in spec:
        ref = slis.get(str(spec["indicatorRef"]))
        if ref is None:
            state.problem(slo, ("spec", "indicatorRef"), f"no SLI named {spec['indicatorRef']!r} in the files given")
        else:
            indicator = ref.spec()
    elif isinstance(spec.get("indicator"), dict):
        indicator = spec["indicator"].get("spec") if isinstance(spec["indicator"].get("spec"), dict) else {}
    else:
        state.problem(slo, ("spec",), "give indicator or indicatorRef (the SLI)")
    threshold = indicator is not None and "thresholdMetric" in indicator
    if indicator is not None and not threshold and "ratioMetric" not in indicator:
        state.problem(slo, ("spec", "indicatorRef" if "indicatorRef" in spec else "indicator"),
                      "the SLI needs a ratioMetric (availability) or a thresholdMetric (latency)")
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or len(objectives) != 1 or not isinstance(objectives[0], dict):
        state.problem(slo, ("spec", "objectives"), "give exactly one objective: an SLA service has one objective "
                      "and credit tiers below it")
        objective: dict[str, Any] = {}
    else:
        objective = objectives[0]
    oloc = ("spec", "objectives", 0)
    method = spec.get("budgetingMethod")
    extra = layer.get("services", {}).get(name, {}) if isinstance(layer.get("services"), dict) else {}
    sli = extra.get("sli") or _annotation(slo, "sli", state) or ("latency" if threshold else "availability")
    slo_out: dict[str, Any] = {"sli": sli}
    slice_text: str | None = None
    if "targetPercent" in objective and "target" not in objective:
        objective = {**objective, "target": Decimal(str(objective["targetPercent"])) / 100}
    if sli == "latency":
        if method != "Occurrences":
            state.problem(slo, ("spec", "budgetingMethod"), "a latency SLO is 'p95 of the period's requests within "
                          "the threshold': write budgetingMethod: Occurrences")
        if objective.get("op") not in ("lte", "lt"):
            state.problem(slo, (*oloc, "op"), "a latency objective is an upper bound: write op: lte")
        value = objective.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or value != int(value):
            state.problem(slo, (*oloc, "value"), f"the latency threshold in whole milliseconds, got {value!r}")
        else:
            slo_out["objective"] = f"{int(value)}ms"
        try:
            pct = Decimal(_fraction_to_percent(objective.get("target")).removesuffix("%"))
            if pct not in (50, 95, 99):
                raise ValueError(f"target {objective.get('target')} is not a percentile the oracle reports "
                                 "(0.5, 0.95 or 0.99)")
            slo_out["percentile"] = int(pct)
        except ValueError as exc:
            state.problem(slo, (*oloc, "target"), str(exc))
        state.origin((*base, "slo", "objective"), slo, (*oloc, "value"))
        window = _annotation(slo, "timeSliceWindow", state)
        if window is not None:
            slice_text = str(window)
    else:
        if method != "Timeslices":
            state.problem(slo, ("spec", "budgetingMethod"), f"an SLA counts time, not requests: write budgetingMethod: "
                          f"Timeslices (got {method!r})")
        try:
            slo_out["objective"] = _fraction_to_percent(objective.get("target"))
        except ValueError as exc:
            state.problem(slo, (*oloc, "target"), str(exc))
        state.origin((*base, "slo", "objective"), slo, (*oloc, "target"))
        target = objective.get("timeSliceTarget")
        if method == "Timeslices" and (isinstance(target, bool) or not isinstance(target, int | float)
                                       or not 0 < target <= 1):
            state.problem(slo, (*oloc, "timeSliceTarget"), f"a fraction in (0, 1], got {target!r}")
        if "timeSliceWindow" in objective:
            try:
                slice_text = duration_text(slice_seconds_of(objective["timeSliceWindow"]))
            except ValueError as exc:
                state.problem(slo, (*oloc, "timeSliceWindow"), str(exc))
            state.origin((*base, "slo", "timeSliceWindow"), slo, (*oloc, "timeSliceWindow"))
    if slice_text is not None:
        slo_out["timeSliceWindow"] = slice_text
    service["slo"] = slo_out
    for key in ("weight", "credits"):
        value = extra.get(key, _annotation(slo, key, state))
        if value is None:
            if key == "credits":
                state.problem(slo, ("metadata", "annotations"), f"no credit schedule: add annotation {PREFIX}credits "
                              f"or services.{name}.credits in the {LAYER_KIND} document")
            continue
        service[key] = value
        state.origin((*base, key), slo, ("metadata", "annotations", PREFIX + key))
    return service, slice_text


def import_openslo(paths: list[Path] | list[str]) -> dict[str, Any]:
    """OpenSLO v1 documents (+ SLA layer) -> an agreement spec as plain data; OpenSloError names
    file:line:field for every problem."""
    state = _Import()
    docs = _read([Path(p) for p in paths], state)
    services = [d for d in docs if d.kind == "Service" and d.data.get("apiVersion") == OPENSLO]
    layers = [d for d in docs if d.kind == LAYER_KIND]
    slis = {d.name: d for d in docs if d.kind == "SLI"}
    sources = {d.name for d in docs if d.kind == "DataSource"}
    where_all = ", ".join(str(p) for p in paths)
    if len(layers) > 1:
        state.problem(layers[1], ("kind",), f"one {LAYER_KIND} document per agreement")
    layer_doc = layers[0] if layers else None
    layer = layer_doc.spec() if layer_doc else {}
    wanted = layer.get("service")
    if wanted is not None:
        services = [d for d in services if d.name == wanted]
    if len(services) != 1:
        names = ", ".join(d.name for d in services) or "none"
        state.problems.append(f"{where_all}: give exactly one OpenSLO Service (the agreement)"
                              f"{f' named {wanted!r}' if wanted else ''}; found {names}")
        raise OpenSloError("\n".join(state.problems))
    svc = services[0]
    state.origin((), svc, ())  # rules across fields (weights, quorum) are about the whole agreement
    state.origin(("spec",), svc, ())
    # references to data sources must resolve (an SLI pointing nowhere is a typo, not a choice)
    for sli in slis.values():
        for ref_loc, ref in _source_refs(sli.spec(), ("spec",)):
            if ref not in sources:
                state.problem(sli, (*ref_loc, "metricSourceRef"), f"no DataSource named {ref!r} in the files given")
    slos = [d for d in docs if d.kind == "SLO"]
    for d in slos:
        if d.spec().get("service") != svc.name:
            state.problem(d, ("spec", "service"), f"this SLO belongs to {d.spec().get('service')!r}, not to the "
                          f"agreement's Service {svc.name!r}")
    slos = [d for d in slos if d.spec().get("service") == svc.name]
    if not slos:
        state.problem(svc, (), "no SLO refers to this Service: the agreement needs at least one service")

    def agreement_value(key: str) -> tuple[Any, _Doc, tuple[Any, ...]] | None:
        if layer_doc is not None and key in layer:
            return layer[key], layer_doc, ("spec", key)
        value = _annotation(svc, key, state)
        return None if value is None else (value, svc, ("metadata", "annotations", PREFIX + key))

    body: dict[str, Any] = {}
    for key in AGREEMENT_KEYS:
        found = agreement_value(key)
        if found is not None:
            body[key] = found[0]
            state.origin(("spec", key), found[1], found[2])
    # time window: the same on every SLO (an agreement has one calendar)
    window: dict[str, Any] | None = None
    for d in slos:
        got = _time_window(d, state)
        if got is None:
            continue
        if window is None:
            window = got[0]
            state.origin(("spec", "timeWindow"), d, got[1])
        elif got[0] != window:
            state.problem(d, got[1], "every SLO of the agreement must have the same time window")
    periods = agreement_value("periods")
    if periods is None:
        state.problem(svc, ("metadata", "annotations"), f"how many periods does the agreement run? add annotation "
                      f"{PREFIX}periods or periods in the {LAYER_KIND} document")
    elif window is not None:
        try:
            window["count"] = int(periods[0])
        except (TypeError, ValueError):
            state.problem(periods[1], periods[2], f"a whole number of periods, got {periods[0]!r}")
        state.origin(("spec", "timeWindow", "count"), periods[1], periods[2])
    spec_services = []
    slices: set[str] = set()
    for i, d in enumerate(slos):
        s, slice_text = _service(d, i, slis, layer, state)
        spec_services.append(s)
        if slice_text:
            slices.add(slice_text)
    if len(slices) > 1:
        state.problems.append(f"{where_all}: every SLO must use the same timeSliceWindow (the agreement counts "
                              f"time in one slice length), got {', '.join(sorted(slices))}")
    if window is not None:
        body["timeWindow"] = window
    body["services"] = spec_services
    metadata: dict[str, Any] = {"name": svc.name}
    display = (svc.data.get("metadata") or {}).get("displayName")
    if display:
        metadata["displayName"] = display
    structure = agreement_value("structure")
    if structure is not None:
        metadata["structure"] = structure[0]
    data = {"apiVersion": "smartsla/v1", "kind": "Agreement", "metadata": metadata, "spec": body}
    if state.problems:
        raise OpenSloError("\n".join(state.problems))
    _validate(data, state)
    return data


def _source_refs(node: Any, loc: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "metricSourceRef" and isinstance(v, str):
                found.append((loc, v))
            else:
                found.extend(_source_refs(v, (*loc, k)))
    return found


def _validate(data: dict[str, Any], state: _Import) -> None:
    """Validate the spec and report its errors at the OpenSLO line they came from."""
    problems: list[str] = []
    try:
        spec = AgreementSpec.model_validate(data)
        spec.to_terms()
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if msg.startswith("credits[") and loc[:2] == ("spec", "services") and len(loc) == 3:
                loc = (*loc, "credits")  # a service's rule about its tiers: point at the tiers
            where = next((state.origins[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in state.origins),
                         None)
            field_path = ".".join(str(p) for p in loc)
            problems.append(f"{where}: {msg} (spec field {field_path})" if where else f"{field_path}: {msg}")
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise OpenSloError("\n".join(problems))


# ---------------------------------------------------------------- writing

def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {value!r} in an annotation")


def _scalar(value: Any) -> str:
    return _jsonable(value) if isinstance(value, dt.datetime | Decimal) else str(value)


def _oracle_source(query: str) -> dict[str, Any]:
    return {"metricSourceRef": DATASOURCE, "type": "Prometheus", "spec": {"query": query}}


def export_openslo(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A spec (plain data, as read from YAML) -> OpenSLO v1 documents: one DataSource (the
    oracle), one Service (the agreement), per service an SLI and an SLO."""
    try:  # refuse to export what could not be imported back (`spec export` validated the file first)
        spec = AgreementSpec.model_validate(data)
        spec.to_terms()
    except ValidationError as exc:
        raise OpenSloError("the spec is not valid: " + "; ".join(
            ": ".join([".".join(str(p) for p in e["loc"]), str(e["msg"]).removeprefix("Value error, ")][
                0 if e["loc"] else 1:])
            for e in exc.errors())) from exc
    body = data["spec"]
    tw = spec.spec.timeWindow
    if tw.periodEnds is not None:
        raise OpenSloError("timeWindow.periodEnds (explicit period ends) has no OpenSLO equivalent: write the "
                           "spec with calendar (unit: month) or a fixed duration")
    name = spec.metadata.name
    bad = [n for n in (name, *(s.name for s in spec.spec.services)) if not _DNS_LABEL.match(n)]
    if bad:
        raise OpenSloError(f"OpenSLO names are lower-case letters, digits and '-' (RFC 1123, at most 63): rename "
                           f"{', '.join(repr(n) for n in bad)}")
    full = [s.name for s in spec.spec.services if s.slo.sli != "latency" and s.slo.objective == 100]
    if full:
        raise OpenSloError(f"an objective of 100% has no OpenSLO target (it is below 1): {', '.join(full)}")
    service_ann: dict[str, str] = {}
    if "structure" in data["metadata"]:
        service_ann[PREFIX + "structure"] = data["metadata"]["structure"]
    for key in AGREEMENT_KEYS:
        if key in body:
            v = body[key]
            service_ann[PREFIX + key] = _scalar(v) if key in SCALAR_KEYS and not isinstance(v, dict) else \
                json.dumps(v, default=_jsonable, sort_keys=True)
    service_ann[PREFIX + "periods"] = str(tw.count)
    meta: dict[str, Any] = {"name": name}
    if spec.metadata.displayName:
        meta["displayName"] = spec.metadata.displayName
    meta["annotations"] = service_ann
    docs: list[dict[str, Any]] = [
        {"apiVersion": OPENSLO, "kind": "DataSource", "metadata": {"name": DATASOURCE},
         "spec": {"description": "the smartsla oracle's measurements (its /metrics)", "type": "Prometheus",
                  "connectionDetails": {"url": "http://127.0.0.1:9090"}}},
        {"apiVersion": OPENSLO, "kind": "Service", "metadata": meta,
         "spec": {"description": f"SLA {name}: parties, money and credit tiers are in the annotations"}},
    ]
    zone = ZoneInfo(tw.calendar.timeZone if tw.calendar else "UTC")
    length = "1M" if tw.calendar else openslo_duration(int(tw.duration or 0), "a period")
    window = {"duration": length, "isRolling": False,
              "calendar": {"startTime": tw.start.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                           "timeZone": zone.key}}
    for raw, s in zip(body["services"], spec.spec.services, strict=True):
        latency = s.slo.sli == "latency"
        ann: dict[str, str] = {PREFIX + "credits": json.dumps(raw["credits"], default=_jsonable, sort_keys=True)}
        if "weight" in raw:
            ann[PREFIX + "weight"] = _scalar(raw["weight"])
        if s.slo.sli not in ("availability", "latency"):
            ann[PREFIX + "sli"] = s.slo.sli
        query = f'{{agreement="{name}",service="{s.name}"}}'
        sli_spec: dict[str, Any]
        if latency:
            if "timeSliceWindow" in s.slo.model_fields_set:
                ann[PREFIX + "timeSliceWindow"] = duration_text(s.slo.timeSliceWindow)
            sli_spec = {"thresholdMetric": {"metricSource": _oracle_source(f"smartsla_oracle_latency_ms{query}")}}
            objective: dict[str, Any] = {"displayName": f"p{s.slo.percentile or 95} within the objective",
                                         "op": "lte", "value": int(s.slo.objective),
                                         "target": (s.slo.percentile or 95) / 100}
            method = "Occurrences"
        else:
            sli_spec = {"ratioMetric": {
                "counter": True,
                "good": {"metricSource": _oracle_source(f"smartsla_oracle_good_seconds{query}")},
                "total": {"metricSource": _oracle_source(f"smartsla_oracle_measured_seconds{query}")}}}
            objective = {"displayName": "objective", "target": _percent_to_fraction(raw["slo"]["objective"]),
                         "timeSliceTarget": 1, "timeSliceWindow": slice_for_openslo(spec.spec.slice_seconds)}
            method = "Timeslices"
        slo_meta: dict[str, Any] = {"name": s.name}
        if s.displayName:
            slo_meta["displayName"] = s.displayName
        slo_meta["annotations"] = ann
        docs.append({"apiVersion": OPENSLO, "kind": "SLI", "metadata": {"name": f"{s.name}-sli"}, "spec": sli_spec})
        docs.append({"apiVersion": OPENSLO, "kind": "SLO", "metadata": slo_meta,
                     "spec": {"service": name, "indicatorRef": f"{s.name}-sli", "timeWindow": [dict(window)],
                              "budgetingMethod": method, "objectives": [objective]}})
    return docs


def dump_documents(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)
