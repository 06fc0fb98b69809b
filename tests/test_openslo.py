"""OpenSLO v1 in and out (smartsla.openslo): our example sets (written from the v1 schema) import
to specs that validate and create agreements, round-trip both ways, and broken documents get
every problem named at its file:line:field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from smartsla.openslo import OpenSloError, dump_documents, export_openslo, import_openslo
from smartsla.spec import AgreementSpec, dump_spec, load_spec
from smartsla.terms import Kind

DATA = Path(__file__).resolve().parent / "data" / "openslo"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SETS = {
    "checkout": [DATA / "checkout-openslo.yaml", DATA / "checkout-sla.yaml"],
    "weekly": [DATA / "weekly-annotated.yaml"],
}
CLI = [sys.executable, "-m", "smartsla"]


def _write_docs(path: Path, docs: list[dict]) -> Path:
    path.write_text(dump_documents(docs))
    return path


def test_checkout_set_imports_to_the_agreement_it_describes(tmp_path: Path):
    data = import_openslo(SETS["checkout"])
    spec_file = tmp_path / "checkout.yaml"
    spec_file.write_text(dump_spec(data))
    terms = load_spec(spec_file).to_terms()  # what `smartsla spec validate` accepts
    avail, latency = terms.services
    assert (avail.kind, avail.objective, avail.weight_bps) == (Kind.availability, 999_000, 7_000)
    assert (latency.kind, latency.objective, latency.weight_bps) == (Kind.latency, 300, 3_000)
    assert [t.threshold for t in latency.tiers] == [300, 1000]
    assert data["spec"]["services"][1]["slo"]["percentile"] == 95  # target 0.95 of an Occurrences SLO
    assert terms.slice_seconds == 60  # timeSliceWindow: 1m is one MINUTE
    # duration: 1M with a calendar is calendar months in Berlin: Jan 31 days, Feb 28 days (2027)
    assert terms.period_ends[:2] == (31 * 86_400, 59 * 86_400)
    assert terms.start == 1_798_758_000  # 2027-01-01 00:00 Europe/Berlin (UTC+1)
    assert terms.fee_per_period == 2 * 10**18 and terms.credit_cap_bps == 5_000 and terms.period_count == 12


def test_weekly_set_lower_case_units_are_not_months():
    terms = AgreementSpec.model_validate(import_openslo(SETS["weekly"])).to_terms()
    assert (terms.period_length, terms.slice_seconds, terms.period_count) == (7 * 86_400, 30, 4)


@pytest.mark.parametrize("name", sorted(SETS))
def test_round_trips(name: str, tmp_path: Path):
    spec = import_openslo(SETS[name])
    docs = export_openslo(spec)
    again = import_openslo([_write_docs(tmp_path / "a.yaml", docs)])
    assert again == spec  # import -> export -> import: the same spec
    docs2 = export_openslo(again)
    assert docs2 == docs  # export -> import -> export: the same documents
    assert yaml.safe_load_all(dump_documents(docs2))  # and they are YAML


@pytest.mark.parametrize("path", [p for p in sorted(EXAMPLES.glob("*.yaml")) if "kind: Agreement\n" in p.read_text()],
                         ids=lambda p: p.name)
def test_our_examples_export_and_come_back_with_the_same_terms(path: Path, tmp_path: Path):
    data = yaml.safe_load(path.read_text())
    docs = export_openslo(data)
    assert {d["apiVersion"] for d in docs} == {"openslo/v1"}
    assert [d["kind"] for d in docs].count("SLO") == len(data["spec"]["services"])
    back = import_openslo([_write_docs(tmp_path / "o.yaml", docs)])
    assert AgreementSpec.model_validate(back).to_terms() == load_spec(path).to_terms()
    assert AgreementSpec.model_validate(back).maintenance_windows() == load_spec(path).maintenance_windows()


BROKEN = """\
apiVersion: openslo/v1
kind: Service
metadata:
  name: shop
  annotations:
    smartsla.io/periods: "3"
    smartsla.io/fee: "1"
    smartsla.io/parties: '{"provider": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "customer": "nope"}'
    smartsla.io/oracles: '{"members": ["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"], "quorum": 1'
spec: {}
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: shop-up
spec:
  service: shop
  indicatorRef: missing-sli
  timeWindow:
    - duration: 30d
      isRolling: true
      calendar: {startTime: "2027-01-01 00:00:00", timeZone: UTC}
  budgetingMethod: Timeslices
  objectives:
    - target: 99.9
      timeSliceTarget: 0.9
      timeSliceWindow: 1M
"""


def test_every_problem_is_named_at_its_file_line_and_field(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(OpenSloError) as err:
        import_openslo([path])
    lines = str(err.value).splitlines()
    expected = [
        (9, "smartsla.io/oracles", "not valid JSON"),
        (18, "indicatorRef", "no SLI named 'missing-sli'"),
        (21, "isRolling", "isRolling: false"),
        (25, "objectives[0].target", "(0, 1)"),
        (27, "timeSliceWindow", "'M' is months"),
        (15, "annotations", "no credit schedule"),
    ]
    for line, field, text in expected:
        assert any(f"{path}:{line}:" in got and field in got and text in got for got in lines), (line, lines)
    assert len(lines) == len(expected), lines


def test_spec_rules_point_at_the_openslo_line_they_came_from(tmp_path: Path):
    text = BROKEN.replace('"quorum": 1\'', '"quorum": 1}\'').replace("missing-sli", "x").replace(
        "isRolling: true", "isRolling: false").replace("target: 99.9", "target: 0.999").replace("1M", "1m")
    text = text.replace("  name: shop-up\n", "  name: shop-up\n  annotations:\n"
                        "    smartsla.io/credits: '[{\"below\": \"99%\", \"credit\": \"10%\"}, "
                        "{\"below\": \"99.5%\", \"credit\": \"20%\"}]'\n")
    text += ("---\napiVersion: openslo/v1\nkind: SLI\nmetadata: {name: x}\nspec:\n  ratioMetric:\n"
             "    counter: true\n    good: {metricSource: {type: Prometheus, spec: {query: up}}}\n"
             "    total: {metricSource: {type: Prometheus, spec: {query: up}}}\n")
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(OpenSloError) as err:
        import_openslo([path])
    msg = str(err.value)
    assert f"{path}:8: Service shop: metadata.annotations.smartsla.io/parties" in msg and "customer" in msg
    assert f"{path}:17: SLO shop-up: metadata.annotations.smartsla.io/credits" in msg
    assert "only the last range may be open-ended" in msg


def test_a_month_written_1m_is_refused_as_the_typo_it_is(tmp_path: Path):
    """OpenSLO's own example SLA writes `duration: 1m` for a month: that is one minute."""
    text = (DATA / "checkout-openslo.yaml").read_text().replace("duration: 1M", "duration: 1m")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    with pytest.raises(OpenSloError) as err:
        import_openslo([path, DATA / "checkout-sla.yaml"])
    assert str(err.value).count("1m is 1 minute(s) ('m' is minutes, 'M' months)") == 2  # both SLOs, each line
    assert f"{path}:64: SLO checkout-availability: spec.timeWindow[0].duration" in str(err.value)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["spec"].update(timeWindow={"start": "2027-01-01T00:00:00Z", "periodEnds": ["31d", "59d"],
                                            "count": 2}), "periodEnds"),
    (lambda d: d["metadata"].update(name="AWS_EC2"), "rename 'AWS_EC2'"),
    (lambda d: d["spec"]["services"][0]["slo"].update(objective="100%"), "100%"),
    (lambda d: d["spec"]["timeWindow"].pop("calendar") and d["spec"]["timeWindow"].update(duration=90)
     or d["spec"]["services"][0]["slo"].update(timeSliceWindow="30s"), "a period of 90 s"),
    (lambda d: d["spec"].update(fee="1.5.0"), "the spec is not valid: spec.fee"),
    (lambda d: d["spec"]["services"][0]["slo"].update(timeSliceWindow="20s"), "a slice of 20 s"),
])
def test_export_refuses_what_openslo_cannot_hold(change, message: str):
    data = yaml.safe_load((EXAMPLES / "aws-ec2-region.yaml").read_text())
    change(data)
    with pytest.raises(OpenSloError, match=re.escape(message)):
        export_openslo(data)


def test_imported_spec_creates_an_agreement(chain, factory, roles, tmp_path: Path):
    spec = AgreementSpec.model_validate(import_openslo(SETS["checkout"]))
    agreement = factory.create_agreement(spec.to_terms(), roles["provider"])
    assert agreement.terms == spec.to_terms()


def test_cli_import_export(tmp_path: Path):
    out = tmp_path / "spec.yaml"
    done = subprocess.run([*CLI, "spec", "import", "openslo", *map(str, SETS["checkout"]), "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ok = subprocess.run([*CLI, "spec", "validate", str(out)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "valid" in ok.stdout
    exported = subprocess.run([*CLI, "spec", "export", "openslo", str(out)], capture_output=True, text=True,
                              timeout=60)
    assert exported.returncode == 0 and "kind: SLO" in exported.stdout
    bad = tmp_path / "broken.yaml"
    bad.write_text(BROKEN)
    failed = subprocess.run([*CLI, "spec", "import", "openslo", str(bad)], capture_output=True, text=True,
                            timeout=60)
    assert failed.returncode == 2 and f"{bad}:21:" in failed.stderr and "Traceback" not in failed.stderr


@pytest.mark.anvil
def test_imported_spec_creates_an_agreement_on_anvil_with_the_cli(tmp_path: Path):
    """The done-when: OpenSLO files -> `spec import openslo` -> `agreement create` on Anvil."""
    from node_helpers import start_or_skip

    from smartsla.chain import Chain
    from smartsla.client import Factory

    node = start_or_skip("anvil")
    try:
        chain = Chain.connect(node.url)
        factory = Factory.deploy(chain, chain.accounts[0])
        out = tmp_path / "spec.yaml"
        done = subprocess.run([*CLI, "spec", "import", "openslo", *map(str, SETS["checkout"]), "-o", str(out)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        created = subprocess.run([*CLI, "agreement", "create", str(out), "--rpc-url", node.url, "--factory",
                                  factory.address, "--from", chain.accounts[1]],
                                 capture_output=True, text=True, timeout=120)
        assert created.returncode == 0, created.stderr
        address = created.stdout.split("Agreement ")[1].split()[0]
        # The terms, with the hash of the imported document bound to them (issue 12).
        from smartsla.spec_hash import signed_terms

        assert factory.agreement(address).terms == signed_terms(load_spec(out))
    finally:
        node.stop()
