"""The canonical form of an agreement spec, and its hash (Options.specHash on-chain).

The hash binds the document the parties signed to the agreement: `agreement create` stores it in
the immutable terms, and `agreement verify-spec FILE ADDRESS` recomputes it from a file. It must
not depend on how the file is written (comments, key order, quoting, `99.9%` or `99.90%`, a time
written in another zone, a default left out or spelled out) and must change with any term.

So the canonical form is built from the VALIDATED model, not from the text:
* every field with its default filled in (pydantic `model_dump`, nothing excluded);
* decimals normalised (`99.90` -> `99.9`), instants as unix seconds, durations in seconds,
  addresses checksummed (the validators already do that);
* the measurement method spelled out once for the whole agreement (`method`: slice length,
  budgeting method, missing-data policy, least measured share, each service's percentile with
  the oracles' default of 95 for a latency service that names none), so that two documents that
  measure the same way hash the same;
* JSON with sorted keys and no whitespace, UTF-8. The hash is keccak256 of those bytes.

The metadata (name, display names) is part of the document and of the hash: a signed document
is the whole file's content, not only the numbers that reach the chain.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from web3 import Web3

from .spec import DEFAULT_LATENCY_PERCENTILE, AgreementSpec, load_spec
from .terms import Terms

# The missing-data policy is fixed (SlaTypes.Options): a slice without a sample is not measured.
MISSING_DATA_POLICY = "a slice without a sample is not measured (neither up nor down)"


def _plain(value: Any) -> Any:
    """Python values of a dumped model -> JSON values with one spelling each."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text if text != "-0" else "0"
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return value


def method_of(spec: AgreementSpec) -> dict[str, Any]:
    """The measurement method the spec fixes, with every default spelled out."""
    body = spec.spec
    return {
        "sliceSeconds": body.slice_seconds,
        "budgetingMethod": "Timeslices",
        "missingData": MISSING_DATA_POLICY,
        "minMeasured": _plain(body.measurement.minMeasured),
        "percentiles": {s.name: latency_percentile(s) for s in body.services if s.slo.sli == "latency"},
    }


def latency_percentile(service: Any) -> int:
    """The percentile a latency service's figure is (its spec's, or the oracles' default)."""
    return int(service.slo.percentile or DEFAULT_LATENCY_PERCENTILE)


def canonical(spec: AgreementSpec) -> dict[str, Any]:
    """The canonical form as data (see the module docstring)."""
    data = _plain(spec.model_dump(mode="python"))
    for service, dumped in zip(spec.spec.services, data["spec"]["services"], strict=True):
        # One spelling for the slice (the agreement's) and the percentile (default filled in).
        dumped["slo"]["timeSliceWindow"] = spec.spec.slice_seconds
        if service.slo.sli == "latency":
            dumped["slo"]["percentile"] = latency_percentile(service)
    data["method"] = method_of(spec)
    return data


def canonical_bytes(spec: AgreementSpec) -> bytes:
    return json.dumps(canonical(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_hash(spec: AgreementSpec) -> str:
    """keccak256 of the canonical form, 0x-hex (what Options.specHash holds)."""
    return "0x" + bytes(Web3.keccak(canonical_bytes(spec))).hex()


def spec_hash_of_file(path: str | Path) -> str:
    """The hash of a spec file (SpecError when it does not validate)."""
    return spec_hash(load_spec(path))


def signed_terms(spec: AgreementSpec) -> Terms:
    """The spec's terms with its hash in them: what `agreement create` sends to the factory."""
    terms = spec.to_terms()
    return Terms(**{**terms.model_dump(), "spec_hash": spec_hash(spec)})
