"""`smartsla agreement create|show|status` and `smartsla corporate deposit|settle|withdraw|status`
for multi-level agreements (kind: CorporateAgreement), on the embedded chain."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import yaml
from cli_helpers import invoke

from smartsla.corporate import Corporate, load_corporate_spec

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multi-level-corporate.yaml"


def _spec(chain, tmp_path: Path, *, start_in: int = 3_600, edit=None) -> tuple[Path, dict[str, str]]:
    """The example on this chain's accounts, starting in `start_in` s; returns its file and roles."""
    a = chain.accounts
    roles = {"provider": a[1], "organisation": a[2], "oracle": a[3], "stranger": a[4],
             "finance": a[5], "sales": a[6], "engineering": a[7]}
    data = yaml.safe_load(EXAMPLE.read_text())
    body = data["spec"]
    body["parties"] = {"provider": roles["provider"], "organisation": roles["organisation"]}
    body["oracle"] = roles["oracle"]
    for dep in body["departments"]:
        dep["payout"] = roles[dep["name"]]
    body["timeWindow"]["start"] = dt.datetime.fromtimestamp(chain.now() + start_in, dt.UTC).isoformat()
    body["timeWindow"]["count"] = 2
    if edit:
        edit(data)
    path = tmp_path / "corporate.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, roles


def _create(chain, tmp_path: Path) -> tuple[str, Path, dict[str, str]]:
    path, roles = _spec(chain, tmp_path)
    code, out, err = invoke("agreement", "create", str(path))
    assert code == 0, err
    address = re.search(r"(0x[0-9a-fA-F]{40}) created", out)
    assert address, out
    return address.group(1), path, roles


def test_create_and_show_round_trip(cli_chain, tmp_path):
    address, path, _ = _create(cli_chain, tmp_path)
    code, out, err = invoke("agreement", "show", address)
    assert code == 0, err
    assert out.startswith("# kind: multi-level agreement")
    shown = tmp_path / "shown.yaml"
    shown.write_text(out)
    code, _, err = invoke("spec", "validate", str(shown))
    assert code == 0, err
    original = load_corporate_spec(path).to_terms()
    back = load_corporate_spec(shown).to_terms()
    # Everything but the department names (not on-chain) comes back.
    assert back.departments == tuple(d.__class__(**{**d.__dict__, "name": f"department-{i}"})
                                     for i, d in enumerate(original.departments))
    assert (back.services, back.start, back.period_length, back.collateral, back.credit_cap_bps) == \
        (original.services, original.start, original.period_length, original.collateral, original.credit_cap_bps)
    # With the spec, the names come back too: the terms are then identical.
    code, out, err = invoke("agreement", "show", address, "--spec", str(path))
    assert code == 0, err
    shown.write_text(out)
    assert load_corporate_spec(shown).to_terms() == original


def test_create_names_the_file_line_and_field(cli_chain, tmp_path):
    def bad(data):
        data["spec"]["departments"][1]["services"]["vpn"]["weight"] = "40%"

    path, _ = _spec(cli_chain, tmp_path, edit=bad)
    code, _, err = invoke("agreement", "create", str(path))
    assert code == 2
    assert f"{path}:" in err and "spec.departments.1.services" in err and "sum to 90" in err


def test_show_of_a_spec_that_is_not_the_agreements_is_refused(cli_chain, tmp_path):
    address, path, _ = _create(cli_chain, tmp_path)
    text = path.read_text().replace("fee: '2.0'", "fee: '2.5'")
    assert text != path.read_text()
    other = tmp_path / "other.yaml"
    other.write_text(text)
    code, _, err = invoke("agreement", "show", address, "--spec", str(other))
    assert code == 2 and "does not describe the agreement's on-chain terms" in err


def test_deposit_settle_withdraw_status(cli_chain, tmp_path):
    chain = cli_chain
    address, path, roles = _create(chain, tmp_path)
    spec = ("--spec", str(path))
    # Wrong party: the contract refuses (asked before sending), named in its words.
    code, _, err = invoke("corporate", "deposit", address, "--what", "fees", "--from", roles["provider"])
    assert code == 1 and f"the contract refused: Unauthorized('{roles['provider']}')" in err, err
    code, out, err = invoke("corporate", "deposit", address, "--from", roles["organisation"])
    assert code == 0, err
    assert "9.0000 ETH of fees" in out and "waiting for the provider" in out  # (2 + 1 + 1.5) x 2 periods
    code, _, err = invoke("corporate", "deposit", address, "--from", roles["organisation"])
    assert code == 1 and "AlreadyDeposited()" in err, err
    code, out, err = invoke("corporate", "deposit", address, "--from", roles["provider"])
    assert code == 0 and "Status: Active" in out, err

    corporate = Corporate(chain, address)
    terms = corporate.read_terms()
    code, _, err = invoke("corporate", "settle", address, "0", "--from", roles["stranger"])
    assert code == 1 and "PeriodNotReported(0)" in err, err
    chain.mine_at(terms.period_end(0))
    values = [985_000, 998_500, 970_000]  # email < 99 %, erp 99.85 %, vpn 97 %
    corporate.report(0, values, roles["oracle"], evidence_root=b"\x01" * 32)
    # A stranger settles finance alone, then every other department in one transaction.
    code, out, err = invoke("corporate", "settle", address, "0", "--department", "finance", *spec,
                            "--from", roles["stranger"])
    assert code == 0, err
    expected = [terms.department_credit(i, values)[1] for i in range(3)]
    code, out, err = invoke("corporate", "settle", address, "0", *spec, "--from", roles["stranger"])
    assert code == 0, err
    assert "settled for 2 department(s)" in out and "sales" in out and "finance" not in out
    code, _, err = invoke("corporate", "settle", address, "0", "--from", roles["stranger"])
    assert code == 1 and "already settled" in err
    # The stranger who settled is owed nothing: the credits are at the payout addresses.
    assert corporate.owed(roles["stranger"]) == 0
    code, out, err = invoke("corporate", "status", address, *spec, "--json")
    assert code == 0, err
    state = json.loads(out)
    assert state["status"] == "Active" and state["reported_periods"] == 1 and state["settled_periods"] == 1
    assert [int(d["credits_paid"]) for d in state["departments"]] == expected
    assert [d["name"] for d in state["departments"]] == ["finance", "sales", "engineering"]
    assert all(expected)
    assert state["reported_values_ppm"] == [values]
    assert [p["state"] for p in state["period_states"]] == ["Final"]  # no dispute window: final at once
    code, out, err = invoke("corporate", "status", address, *spec)
    assert code == 0 and "finance" in out and "exposure" in out, err
    code, out, err = invoke("agreement", "status", address)  # the same, through the agreement group
    assert code == 0 and "department-1" in out and "98.5000%" in out, err

    # Withdraw: the payout address gets its department's credit; a stranger is refused.
    before = chain.balance(roles["sales"])
    code, out, err = invoke("corporate", "withdraw", address, *spec, "--from", roles["sales"])
    assert code == 0 and "Department sales" in out, err
    gained = chain.balance(roles["sales"]) - before
    assert expected[1] - 10**16 < gained <= expected[1]  # less the gas the payout address paid
    code, _, err = invoke("corporate", "withdraw", address, "--from", roles["sales"])
    assert code == 1 and f"NothingToWithdraw('{roles['sales']}')" in err, err
    code, _, err = invoke("corporate", "withdraw", address, "--from", roles["stranger"])
    assert code == 2 and "not a department's payout address" in err


def test_a_plain_agreement_is_not_a_multi_level_one(cli_chain, tmp_path):
    code, _, err = invoke("corporate", "status", "0x" + "12" * 20)
    assert code == 1 and "no contract at" in err
