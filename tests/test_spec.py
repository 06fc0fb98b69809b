"""Agreement specs: the examples validate, create on-chain and settle as the published tables say;
bad specs get one clear error naming file, line and field, and nothing reaches the chain."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sla_helpers import EVIDENCE_ROOT

from smartsla.credit import period_outcome
from smartsla.reports import sign_report
from smartsla.spec import SpecError, load_spec, terms_to_spec
from smartsla.units import percent_to_ppm

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ETHER = 10**18


def write(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def localized(example: str, chain, roles, tmp_path: Path, **spec_changes) -> Path:
    """An example with the chain's accounts as parties and a start at the chain's time."""
    data = yaml.safe_load((EXAMPLES / example).read_text())
    body = data["spec"]
    body["parties"] = {"provider": roles["provider"], "customer": roles["customer"]}
    body["oracles"] = {"members": [roles["oracle"]], "quorum": 1}
    # the first of next month: calendar months, and a start in the future (deposits close then)
    now = dt.datetime.fromtimestamp(chain.now() + 60, dt.UTC)
    body["timeWindow"]["start"] = (now.replace(day=1) + dt.timedelta(days=32)).replace(day=1).isoformat()
    body.update(spec_changes)
    return write(tmp_path, data, example)


AGREEMENT_EXAMPLES = sorted(p for p in EXAMPLES.glob("*.yaml") if "kind: Agreement\n" in p.read_text())


def test_examples_cover_the_three_structures():
    structures = {yaml.safe_load(p.read_text())["metadata"]["structure"] for p in EXAMPLES.glob("*.yaml")}
    assert structures == {"service-based", "customer-based", "multi-level"}


@pytest.mark.parametrize("path", AGREEMENT_EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_and_round_trips(path: Path, tmp_path: Path):
    spec = load_spec(path)
    terms = spec.to_terms()
    again = load_spec(write(tmp_path, terms_to_spec(terms, name=spec.metadata.name)))
    assert again.to_terms() == terms


# Published credit tables (aws.amazon.com/compute/sla, aws.amazon.com/s3/sla, the Azure "Service
# Level Agreements for Online Services" document), boundaries included: (monthly uptime, credit %).
CLOUD_TABLES = {
    "aws-ec2-region.yaml": [("100", 0), ("99.99", 0), ("99.989", 10), ("99.0", 10), ("98.99", 30),
                            ("95.0", 30), ("94.99", 100)],
    "aws-s3-standard.yaml": [("99.9", 0), ("99.89", 10), ("99.0", 10), ("98.9999", 25), ("95.0", 25),
                             ("94.9999", 100), ("0", 100)],
    "azure-vms.yaml": [("99.99", 0), ("99.9899", 10), ("99.0", 10), ("98.0", 25), ("95.0", 25), ("90", 100),
                       ("99.5", 10)],
}


@pytest.mark.parametrize("example", sorted(CLOUD_TABLES))
def test_cloud_slas_settle_to_the_published_credits(example, chain, factory, roles, tmp_path):
    table = CLOUD_TABLES[example]
    spec = load_spec(localized(example, chain, roles, tmp_path))
    terms = spec.to_terms().model_copy(update={"period_count": len(table),
                                               "period_ends": spec.to_terms().period_ends[:len(table)]})
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    fee = terms.fee_per_period
    for period, (uptime, credit_percent) in enumerate(table):
        chain.mine_at(terms.period_end(period))
        settled = ag.settle(period, [percent_to_ppm(uptime)], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
        assert settled.credit_paid == fee * credit_percent // 100, f"{example}: {uptime}% should earn {credit_percent}%"


def test_customer_based_example_with_committee_xla_and_disputes(chain, factory, roles, tmp_path):
    oracles = [chain.new_account(fund_from=roles["deployer"]) for _ in range(3)]
    path = localized("customer-based-office.yaml", chain, roles, tmp_path)
    data = yaml.safe_load(path.read_text())
    data["spec"]["oracles"] = {"members": [a for a, _ in oracles], "quorum": 3}
    data["spec"]["disputes"]["arbiter"] = roles["stranger"]
    spec = load_spec(write(tmp_path, data))
    terms = spec.to_terms()
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    ag.attest_satisfaction(0, 650_000, roles["customer"])
    chain.mine_at(terms.period_end(0))
    # email, files, remote, combined (ignored), p95 ms, satisfaction (ignored); the third oracle lies.
    honest = [[999_950, 998_000, 990_000, 0, 450, 0], [999_930, 998_200, 990_500, 0, 480, 0]]
    lie = [[0, 0, 0, 0, 90_000, 0]]
    deadline = chain.now() + 3_600
    reports = [sign_report(k, chain.chain_id, ag.address, 0, v, 1_000_000, EVIDENCE_ROOT, deadline)
               for (_, k), v in zip(oracles, honest + lie, strict=True)]
    settled = ag.settle_with_reports(0, reports, oracles[0][0])
    median = [999_930, 998_000, 990_000, 0, 480, 0]
    expected = period_outcome(terms, median, terms.collateral, satisfaction=650_000)
    assert settled.values_ppm == expected.values
    assert settled.credit_paid == expected.paid_credit > 0
    assert ag.snapshot().pending_to_customer == expected.paid_credit  # waits for the 7-day window


BAD_SPECS = [
    (lambda b: b.update(colour="blue"), "spec.colour: Extra inputs are not permitted"),
    (lambda b: b["services"][0]["slo"].update(objective="100.01%"), "is outside 0%..100%"),
    (lambda b: b["services"][0]["credits"].insert(0, b["services"][0]["credits"].pop(1)),
     "ranges overlap, leave a gap or are out of order"),
    (lambda b: b["services"][0]["credits"][1].update(below="99.5%"), "ranges overlap"),
    (lambda b: b["services"][0]["credits"][2].update(credit="150%"), "is outside 0%..100%"),
    (lambda b: b["timeWindow"].update(calendar=None, duration="0d"), "period duration must be positive"),
    (lambda b: b["maintenance"].update(windows=[{"start": "2020-01-01T00:00:00Z", "end": "2020-01-01T01:00:00Z"}]),
     "maintenance.windows[0] is outside the term"),
    (lambda b: b["services"].append(dict(b["services"][0])), "duplicate service names: ec2-region"),
    (lambda b: b["parties"].update(customer="0xnope"), "spec.parties.customer: is not an Ethereum address"),
    (lambda b: b["services"][0].update(weight="90%"), "service weights must sum to 100%"),
    (lambda b: b.update(fee=1.5), "write amounts as strings or integers"),
    # review 2: a maintenance clause is notice and budget together; one slice length; a share
    (lambda b: b["maintenance"].pop("budget"), "maintenance notice and budget go together"),
    (lambda b: b["maintenance"].pop("notice"), "maintenance notice and budget go together"),
    (lambda b: b["services"].append({**b["services"][0], "name": "other", "weight": "0.01%",
                                     "slo": {**b["services"][0]["slo"], "timeSliceWindow": "5m"}}),
     "every service must use the same slo.timeSliceWindow"),
    (lambda b: b["services"][0]["slo"].update(timeSliceWindow="7s"), "whole numbers of 7-second slices"),
    (lambda b: b.update(measurement={"minMeasured": "101%"}), "is outside 0%..100%"),
    (lambda b: b.update(oracles={"members": ["0x" + "11" * 20, "0x" + "22" * 20], "quorum": 2}), "quorum must be odd"),
]


@pytest.mark.parametrize(("change", "message"), BAD_SPECS)
def test_bad_specs_name_the_line_and_field_and_send_nothing(change, message, tmp_path, factory):
    data = yaml.safe_load((EXAMPLES / "aws-ec2-region.yaml").read_text())
    change(data["spec"])
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert message in text
    assert text.startswith(f"{path}:")
    assert factory.contract.functions.agreementCount().call() == 0


def test_error_points_at_the_line(tmp_path):
    text = (EXAMPLES / "aws-ec2-region.yaml").read_text().replace("objective: 99.99%", "objective: 101%")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "objective: 101%" in row)
    with pytest.raises(SpecError, match=rf"^{path}:{line}: spec.services.0.slo.objective"):
        load_spec(path)


def test_cli_validate_and_show(tmp_path, roles):
    smartsla = [sys.executable, "-m", "smartsla"]
    ok = subprocess.run([*smartsla, "spec", "validate", str(EXAMPLES / "azure-vms.yaml")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: smartsla/v1\nkind: Agreement\nmetadata: {name: x}\nspec: {fee: [1}\n")
    done = subprocess.run([*smartsla, "spec", "validate", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "not valid YAML" in done.stderr and "Traceback" not in done.stderr
