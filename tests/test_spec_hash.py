"""Issue 12: the signed document is bound to the agreement by the hash of its canonical form.

Formatting (comments, key order, quoting, `99.99%` vs `99.990%`, a start written in another time
zone, a default spelled out) leaves the hash alone; any term changes it. `agreement create`
stores it, `agreement verify-spec` checks a file against it (exit 0/1/2), `agreement show` prints
it with the measurement method, and the scope and exclusions of a matching file.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import invoke

from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.spec import load_spec
from smartsla.spec_hash import canonical_bytes, spec_hash
from smartsla.terms import ZERO_HASH

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _write(path: Path, data: dict[str, Any], *, comment: str = "") -> Path:
    path.write_text(comment + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _ec2() -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / "aws-ec2-region.yaml").read_text())


def test_formatting_does_not_change_the_hash(tmp_path: Path):
    original = load_spec(EXAMPLES / "aws-ec2-region.yaml")
    data = _ec2()
    body = data["spec"]
    body["services"][0]["slo"]["objective"] = "99.990%"  # same number, other spelling
    body["services"][0]["credits"][0]["credit"] = "10.0%"
    body["services"][0]["slo"]["timeSliceWindow"] = "60s"  # 1m
    body["timeWindow"]["start"] = "2027-01-01T01:00:00+01:00"  # the same instant
    body["measurement"] = {"minMeasured": "90%"}  # the default, spelled out
    body["fee"] = "1.00"
    reordered = {"kind": data["kind"], "spec": dict(sorted(body.items())), "metadata": data["metadata"],
                 "apiVersion": data["apiVersion"]}
    path = _write(tmp_path / "reformatted.yaml", reordered, comment="# another comment\n# and another\n")
    assert spec_hash(load_spec(path)) == spec_hash(original)
    # Canonical bytes are compact sorted JSON: no whitespace between tokens.
    assert b"\n" not in canonical_bytes(original) and b'": ' not in canonical_bytes(original)


@pytest.mark.parametrize("change", [
    ("fee", lambda b: b.update(fee="1.5")),
    ("a credit", lambda b: b["services"][0]["credits"][0].update(credit="15%")),
    ("an exclusion", lambda b: b["scope"]["exclusions"].append("acts of the customer's cat")),
    ("the scope", lambda b: b["scope"].update(covers=[])),
    ("maintenance notice", lambda b: b["maintenance"].update(notice="3d")),
    ("disputes", lambda b: b.update(disputes={"window": "7d",
                                              "arbiter": "0x90F79bf6EB2c4f870365E785982E1f101E93b906"})),
    ("the slice", lambda b: b["services"][0]["slo"].update(timeSliceWindow="5m")),
    ("the measured minimum", lambda b: b.update(measurement={"minMeasured": "95%"})),
    ("the customer", lambda b: b["parties"].update(customer="0x90F79bf6EB2c4f870365E785982E1f101E93b906")),
], ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_any_term_changes_the_hash(change, tmp_path: Path):
    base = spec_hash(load_spec(EXAMPLES / "aws-ec2-region.yaml"))
    data = copy.deepcopy(_ec2())
    change[1](data["spec"])
    assert spec_hash(load_spec(_write(tmp_path / "changed.yaml", data))) != base


def test_latency_percentile_is_part_of_the_document_and_the_terms(tmp_path: Path):
    data = yaml.safe_load((EXAMPLES / "customer-based-office.yaml").read_text())
    latency = next(s for s in data["spec"]["services"] if s["slo"]["sli"] == "latency")
    latency["slo"].pop("percentile", None)
    implicit = load_spec(_write(tmp_path / "implicit.yaml", data))
    latency["slo"]["percentile"] = 95
    explicit = load_spec(_write(tmp_path / "explicit.yaml", data))
    assert spec_hash(implicit) == spec_hash(explicit)  # 95 is the default, named or not
    assert [s.latency_percentile for s in implicit.to_terms().services if s.latency_percentile] == [95]
    latency["slo"]["percentile"] = 99
    p99 = load_spec(_write(tmp_path / "p99.yaml", data))
    assert spec_hash(p99) != spec_hash(explicit)
    assert [s.latency_percentile for s in p99.to_terms().services if s.latency_percentile] == [99]


# ---------------------------------------------------------------------------- the CLI, on a real chain




def test_create_stores_the_hash_and_verify_spec_tells_the_signed_file(cli_chain: Chain, tmp_path: Path):
    a = cli_chain.accounts
    factory = Factory.deploy(cli_chain, a[0])
    f = ("--factory", factory.address)
    data = _ec2()
    body = data["spec"]
    body["parties"] = {"provider": a[1], "customer": a[2]}
    body["oracles"] = {"members": [a[3]], "quorum": 1}
    start = dt.datetime.fromtimestamp(cli_chain.now() + 86_400 * 40, dt.UTC)
    body["timeWindow"]["start"] = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0).isoformat()
    signed = _write(tmp_path / "signed.yaml", data)
    code, out, err = invoke("agreement", "create", str(signed), *f)
    assert code == 0, err
    address = factory.agreements_of_provider(a[1])[0].address
    expected = spec_hash(load_spec(signed))
    assert factory.agreement(address).terms.spec_hash == expected != ZERO_HASH
    assert expected in out

    code, out, err = invoke("agreement", "verify-spec", str(signed), address, *f)
    assert code == 0 and "matches" in out, out + err

    # Another fee: differs, and the differing term is named with both values.
    data_fee = copy.deepcopy(data)
    data_fee["spec"]["fee"] = "2.0"
    code, out, err = invoke("agreement", "verify-spec", str(_write(tmp_path / "fee.yaml", data_fee)), address, *f)
    assert code == 1 and "differs" in out, out + err
    assert "fee_per_period: file 2000000000000000000, chain 1000000000000000000" in out, out

    # Only an exclusion changed: the chain's terms are the same, the document is not.
    data_excl = copy.deepcopy(data)
    data_excl["spec"]["scope"]["exclusions"].append("anything the provider dislikes")
    code, out, err = invoke("agreement", "verify-spec", str(_write(tmp_path / "excl.yaml", data_excl)), address, *f)
    assert code == 1 and "differs" in out and "on-chain terms are the same" in out, out + err

    # Unreadable file, not an agreement: exit 2.
    code, out, err = invoke("agreement", "verify-spec", str(tmp_path / "missing.yaml"), address, *f)
    assert code == 2, out + err
    code, out, err = invoke("agreement", "verify-spec", str(signed), a[5], *f)
    assert code == 2 and "cannot read agreement" in err, out + err

    # `show`: the hash and the method always; the scope and exclusions from a matching file only.
    code, out, err = invoke("agreement", "show", address, *f)
    assert code == 0, err
    assert f"# spec hash: {expected}" in out and "slices of 60 s" in out and "90.0000%" in out, out
    assert "force majeure" not in out
    code, out, err = invoke("agreement", "show", address, *f, "--spec", str(signed))
    assert code == 0 and "force majeure" in out and "its hash matches" in out, out + err
    shown = yaml.safe_load(out)
    assert shown["spec"]["scope"]["exclusions"] == body["scope"]["exclusions"]
    code, out, err = invoke("agreement", "show", address, *f, "--spec", str(tmp_path / "excl.yaml"))
    assert code == 0 and "anything the provider dislikes" not in out and "NOT the agreement's document" in out
