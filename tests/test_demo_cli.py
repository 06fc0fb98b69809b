"""The `smartsla demo` lifecycle and the command line: in process, and as the installed console script."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import invoke
from rich.console import Console
from sla_helpers import write_spec

from smartsla import cli, deployments
from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.credit import period_outcome
from smartsla.demo import DEMO_VALUES_PPM, DemoResult, run_demo
from smartsla.presentation import fmt_eth
from smartsla.units import PPM

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SMARTSLA = BIN / "smartsla"
ETHER = 10**18
DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if not SMARTSLA.exists():
        pytest.skip(f"console script not installed next to {sys.executable}")
    full_env = {**os.environ, "COLUMNS": "160", **(env or {})}
    return subprocess.run([str(SMARTSLA), *args], capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=ROOT)


def assert_one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# ---------------------------------------------------------------------------- the demo, in process
@pytest.fixture(scope="module")
def demo_run() -> tuple[DemoResult, str]:
    out = io.StringIO()
    result = run_demo(Console(file=out, width=160, color_system=None))
    return result, out.getvalue()


def test_demo_balance_sheet_balances(demo_run: tuple[DemoResult, str]) -> None:
    r, _ = demo_run
    assert r.deposited == r.terms.total_fees + r.terms.collateral == 13 * ETHER
    assert r.contract_balance == 0
    assert r.held_by_contract == 0
    assert r.withdrawn["customer"] + r.withdrawn["provider"] + r.contract_balance == r.deposited
    assert r.accounted == r.deposited
    assert r.balanced
    assert r.final_status == "Terminated"


def test_demo_credits_match_the_reference_model(demo_run: tuple[DemoResult, str]) -> None:
    r, _ = demo_run
    assert [p.values_ppm for p in r.periods] == list(DEMO_VALUES_PPM)
    collateral = r.terms.collateral
    for p in r.periods:
        outcome = period_outcome(r.terms, p.values_ppm, collateral)
        assert p.service_credits == outcome.service_credits
        assert p.capped_credit == outcome.capped_credit
        assert p.credit_paid == outcome.paid_credit
        assert p.disaster == outcome.disaster
        assert p.fee_earned == r.terms.fee_per_period
        collateral -= outcome.paid_credit
    # The figures worked out by hand from the schedules (1.5 ETH a month; weights 50/30/20 %; cap 50 %).
    assert [p.credit_paid for p in r.periods] == [0, 75 * ETHER // 1000, 300 * ETHER // 1000, 750 * ETHER // 1000,
                                                  615 * ETHER // 1000]
    assert r.periods[3].capped_credit < sum(r.periods[3].service_credits)  # the cap binds in period 3
    assert [p.disaster for p in r.periods] == [False, False, False, False, True]
    # Termination seconds into the 6th month: that month's fee back but for the seconds served (pro
    # rata, review 2), the collateral left to the provider.
    earned = r.termination_fee_earned
    assert 0 <= earned < r.terms.fee_per_period // 10_000
    assert r.termination_refund == r.terms.fee_per_period - earned
    assert r.collateral_returned == r.terms.collateral - r.credits_paid
    assert r.withdrawn["customer"] == r.credits_paid + r.termination_refund
    assert r.withdrawn["provider"] == 5 * r.terms.fee_per_period + earned + r.collateral_returned


def test_demo_tiers_cover_every_schedule_step(demo_run: tuple[DemoResult, str]) -> None:
    """The scenario shows a perfect period, each tier, the cap and the disaster clause."""
    r, _ = demo_run
    assert r.periods[0].values_ppm == (PPM,) * 3
    credits_seen = {(i, p.service_credits[i] * 10_000 * 10_000 // (r.terms.fee_per_period * s.weight_bps))
                    for p in r.periods for i, s in enumerate(r.terms.services)}
    compute_tiers = {bps for i, bps in credits_seen if i == 0}
    assert compute_tiers == {0, 1_000, 3_000, 10_000}


def test_demo_wallets_moved_by_exactly_the_agreement_flows(demo_run: tuple[DemoResult, str]) -> None:
    r, _ = demo_run
    deposits = {"customer": r.fees_deposited, "provider": r.collateral_deposited}
    for party in ("customer", "provider"):
        assert r.gas_paid[party] > 0
        assert r.wallet_change[party] == r.withdrawn[party] - deposits[party] - r.gas_paid[party]


def test_demo_output_tells_the_story(demo_run: tuple[DemoResult, str]) -> None:
    r, text = demo_run
    assert "balanced" in text
    # Whole minutes of a 43,200-minute month: 21 down give 99.9513 %, 562 down 98.6990 %.
    for needle in ("compute", "storage", "api", "99.9513%", "98.6990%", "94.0000%", "87.5000%", "Terminated",
                   "WrongStatus", "NothingToWithdraw", fmt_eth(r.deposited), r.agreement):
        assert needle in text, needle
    assert "Traceback" not in text
    # Every settled period checked against the oracle's evidence, as `smartsla verify` does.
    assert [f"period {p}: verified" in text for p in range(len(DEMO_VALUES_PPM))] == [True] * len(DEMO_VALUES_PPM)
    assert "smartsla verify ADDRESS PERIOD --bundle FILE" in " ".join(text.split())


def test_fmt_eth_shows_every_wei() -> None:
    assert fmt_eth(ETHER) == "1.0000 ETH"
    assert fmt_eth(3 * ETHER // 2) == "1.5000 ETH"
    assert fmt_eth(1) == "0.000000000000000001 ETH"
    assert fmt_eth(0) == "0.0000 ETH"


# ---------------------------------------------------------------------------- the console script
def test_demo_console_script() -> None:
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "balanced" in proc.stdout
    assert "13.0000 ETH" in proc.stdout


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "smartsla", "--version"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("smartsla ")


def test_help_lists_the_command_groups() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("demo", "compile", "deploy", "agreement", "agreements"):
        assert command in proc.stdout


def test_status_of_a_non_address_is_a_one_line_error() -> None:
    proc = run_cli("agreement", "status", "not-an-address", "--rpc-url", DEAD_URL)
    assert proc.returncode != 0
    line = assert_one_line_error(proc.stderr)
    assert "not an Ethereum address" in line


def test_deploy_with_nothing_listening_is_a_clear_error() -> None:
    proc = run_cli("deploy", "--rpc-url", DEAD_URL)
    assert proc.returncode == 1
    line = assert_one_line_error(proc.stderr)
    assert "no chain answers at http://127.0.0.1:1" in line


def test_bad_url_scheme_is_a_clear_error() -> None:
    proc = run_cli("agreements", "--provider", "0x" + "11" * 20, "--rpc-url", "ftp://example")
    assert proc.returncode != 0
    assert "http://" in assert_one_line_error(proc.stderr)


# ---------------------------------------------------------------------------- commands on a shared embedded chain




def _agreement(chain: Chain) -> tuple[Factory, str]:
    from smartsla.demo import demo_terms

    a = chain.accounts
    factory = Factory.deploy(chain, a[0])
    agreement = factory.create_agreement(demo_terms(a[1], a[2], a[3], chain.now() + 60), a[0])
    agreement.deposit_fees(a[2])
    return factory, agreement.address


def test_status_and_listing_on_a_chain(cli_chain: Chain) -> None:
    factory, address = _agreement(cli_chain)
    code, out, err = invoke("agreement", "status", address, "--factory", factory.address)
    assert code == 0, err
    for needle in ("Pending", "compute", "99.9900%", "9.0000 ETH", "0 of 6", cli_chain.accounts[1]):
        assert needle in out, needle

    code, out, err = invoke("agreements", "--customer", cli_chain.accounts[2], "--factory", factory.address)
    assert code == 0, err
    assert address in out and cli_chain.accounts[1] in out

    code, out, _ = invoke("agreements", "--provider", cli_chain.accounts[4], "--factory", factory.address)
    assert code == 0 and "No agreements" in out


def test_status_uses_the_recorded_factory(cli_chain: Chain) -> None:
    factory, address = _agreement(cli_chain)
    code, _, err = invoke("agreement", "status", address)
    assert code == 1
    assert "no AgreementFactory recorded" in assert_one_line_error(err)

    deployments.record(cli_chain.chain_id, "AgreementFactory", factory.address)
    code, out, err = invoke("agreement", "status", address)
    assert code == 0, err
    assert address in out


def test_status_of_an_address_the_factory_did_not_create(cli_chain: Chain) -> None:
    factory, _ = _agreement(cli_chain)
    code, _, err = invoke("agreement", "status", cli_chain.accounts[5], "--factory", factory.address)
    assert code == 1
    assert "was not created by the factory" in assert_one_line_error(err)


def test_wrong_factory_address_is_a_clear_error(cli_chain: Chain) -> None:
    _, address = _agreement(cli_chain)
    code, _, err = invoke("agreement", "status", address, "--factory", cli_chain.accounts[5])
    assert code == 1
    assert "no contract at" in assert_one_line_error(err)
    code, _, err = invoke("agreement", "status", address, "--factory", address)  # a contract, not a factory
    assert code == 1
    assert "not an AgreementFactory" in assert_one_line_error(err)


def test_agreements_needs_a_party(cli_chain: Chain) -> None:
    code, _, err = invoke("agreements")
    assert code == 2
    assert "--provider" in assert_one_line_error(err)
    code, _, err = invoke("agreements", "--customer", "0x123")
    assert code == 2
    assert "not an Ethereum address" in assert_one_line_error(err)


def test_deploy_records_the_factory(cli_chain: Chain, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli_chain, "embedded", False)  # pretend it is a lasting chain, so it is recorded
    code, out, err = invoke("deploy", "--rpc-url", "http://example.invalid:8545")
    assert code == 0, err
    address = deployments.lookup(cli_chain.chain_id, path=tmp_path / "deployments.json")
    assert address is not None and address in out
    assert Factory(cli_chain, address).contract.functions.implementation().call()


def test_deploy_with_a_private_key(cli_chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    from eth_account import Account

    account = Account.create()
    cli_chain.w3.eth.send_transaction({"from": cli_chain.accounts[0], "to": account.address, "value": ETHER})
    monkeypatch.setenv("DEPLOYER_KEY", account.key.to_0x_hex())
    code, out, err = invoke("deploy", "--private-key-env", "DEPLOYER_KEY")
    assert code == 0, err
    assert f"from {account.address}" in out
    assert account.key.to_0x_hex()[2:] not in out + err

    code, _, err = invoke("deploy", "--private-key-env", "DEPLOYER_KEY", "--from", cli_chain.accounts[0])
    assert code == 2
    assert "does not match" in assert_one_line_error(err)
    monkeypatch.setenv("DEPLOYER_KEY", "0x1234")
    code, _, err = invoke("deploy", "--private-key-env", "DEPLOYER_KEY")
    assert code == 2
    line = assert_one_line_error(err)
    assert "not hold a valid private key" in line and "1234" not in line
    code, _, err = invoke("deploy", "--private-key-env", "UNSET_VARIABLE_FOR_SMARTSLA_TESTS")
    assert code == 2
    assert "not set" in assert_one_line_error(err)


def test_library_errors_become_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A contract revert, a validation error and a dropped connection inside a command: one red line each."""
    import requests
    from pydantic import ValidationError

    from smartsla.errors import ContractReverted
    from smartsla.terms import Tier

    def validation_error() -> ValidationError:
        try:
            Tier(threshold=-1, credit_bps=0)
        except ValidationError as exc:
            return exc
        raise AssertionError("no error")

    for exc, code, needle in (
        (ContractReverted("WrongStatus", (3,), action="settle period 5"), 1, "WrongStatus(3)"),
        (validation_error(), 2, "invalid Tier"),
        (requests.ConnectionError("boom"), 1, "stopped answering"),
        (ValueError("bad\nmultiline\ninput"), 2, "bad multiline input"),
    ):
        def boom(*args: object, exc: Exception = exc) -> None:
            raise exc

        monkeypatch.setattr(cli.demo, "run_demo", boom)  # the name the demo command calls
        code_, _, err = invoke("demo")
        assert code_ == code, (exc, err)
        assert needle in assert_one_line_error(err)


# ---------------------------------------------------------------------------- on Anvil and Ganache
# Ganache used to fail the demo with "reverted Reverted()": its eth_estimateGas nests the revert
# data, which the decoder missed (issue 10, finding 8).
@pytest.mark.parametrize("kind", [pytest.param("anvil", marks=pytest.mark.anvil),
                                  pytest.param("ganache", marks=pytest.mark.ganache)])
def test_deploy_demo_and_status_on_a_dev_chain(kind: str, tmp_path: Path) -> None:
    from node_helpers import start_or_skip

    node = start_or_skip(kind)
    env = {"SMARTSLA_DEPLOYMENTS": str(tmp_path / "deployments.json")}
    try:
        proc = run_cli("deploy", "--rpc-url", node.url, env=env)
        assert proc.returncode == 0, proc.stderr
        recorded = deployments.lookup(node.chain_id, path=tmp_path / "deployments.json")
        assert recorded is not None and recorded in proc.stdout
        corporate = deployments.lookup(node.chain_id, "CorporateAgreementFactory", path=tmp_path / "deployments.json")
        assert corporate is not None and corporate in proc.stdout  # multi-level agreements are created by it
        batch = deployments.lookup(node.chain_id, deployments.SETTLEMENT_BATCH, path=tmp_path / "deployments.json")
        assert batch is not None and batch in proc.stdout  # the oracle settles through it by default

        evidence = tmp_path / "evidence"
        demo = run_cli("demo", "--rpc-url", node.url, "--evidence-dir", str(evidence), env=env)
        assert demo.returncode == 0, demo.stderr
        assert "balanced" in demo.stdout
        # The demo's evidence checks out with `smartsla verify` on the lasting chain, as the demo says.
        files = sorted(evidence.glob("*-period-*.json"))
        assert len(files) == len(DEMO_VALUES_PPM)
        address = files[0].name.split("-period-")[0]
        said = re.search(r"smartsla (verify \S+ 0 --bundle \S+ --rpc-url \S+ --factory 0x[0-9a-fA-F]{40})",
                         " ".join(demo.stdout.split()))
        assert said is not None, demo.stdout
        assert said.group(1).split()[1:4] == [address, "0", "--bundle"]
        check = run_cli(*said.group(1).split(), env=env)  # the very command the demo printed
        assert check.returncode == 0, check.stdout + check.stderr
        # Period 1 with one of compute's down minutes rewritten as up: refused.
        args = said.group(1).split()
        args[2], args[4] = "1", str(_flip_one_down_slice(files[1]))
        forged = run_cli(*args, env=env)
        assert forged.returncode == 1, forged.stdout + forged.stderr
        assert "committed on-chain" in " ".join(forged.stdout.split())

        # An agreement made by the recorded factory, then `status` with no --factory.
        chain = Chain.connect(node.url)
        factory, address = _agreement_on(chain, recorded)
        status = run_cli("agreement", "status", address, "--rpc-url", node.url, env=env)
        assert status.returncode == 0, status.stderr
        assert "Pending" in status.stdout and address in status.stdout
        listing = run_cli("agreements", "--provider", chain.accounts[1], "--rpc-url", node.url, env=env)
        assert listing.returncode == 0, listing.stderr
        assert address in listing.stdout
    finally:
        node.stop()


def _agreement_on(chain: Chain, factory_address: str) -> tuple[Factory, str]:
    from smartsla.demo import demo_terms

    a = chain.accounts
    factory = Factory(chain, factory_address)
    agreement = factory.create_agreement(demo_terms(a[1], a[2], a[3], chain.now() + 60), a[0])
    agreement.deposit_fees(a[2])
    return factory, agreement.address


def test_one_rule_for_every_amount() -> None:
    """Finding 12: ETH printed with 4 decimals, tokens with all 18. One rule now: exact, trailing
    zeros trimmed, at least 4 decimals (fewer only if the token has fewer); never rounded."""
    from smartsla.presentation import format_amount

    assert format_amount(ETHER) == "1.0000 ETH"
    assert format_amount(3 * ETHER // 2) == "1.5000 ETH"
    assert format_amount(1) == "0.000000000000000001 ETH"  # a non-zero amount never reads as 0
    assert format_amount(ETHER + 1) != format_amount(ETHER)  # two amounts never print the same
    assert format_amount(0) == "0.0000 ETH"
    assert format_amount(-25 * ETHER // 10) == "-2.5000 ETH"
    assert format_amount(12_345_678, 6, "USDC") == "12.345678 USDC"
    assert format_amount(1_250, 2, "EURC") == "12.50 EURC"
    assert format_amount(7, 0, "PTS") == "7 PTS"
    assert format_amount(10**18, 18, "") == "1.0000"
    assert fmt_eth(3 * ETHER // 2) == format_amount(3 * ETHER // 2)
    with pytest.raises(ValueError):
        format_amount(1, -1)


# ---------------------------------------------------------------------------- agreement create: the start
def test_agreement_create_refuses_a_start_in_the_past_or_too_close(cli_chain: Chain, tmp_path: Path) -> None:
    """Finding 10/12: a spec whose start had passed was created without a word, and its unobserved
    periods were then reported. Refused before anything is sent; a close start is refused or
    warned about so that both deposits can land first."""
    import time as time_

    a = cli_chain.accounts
    factory = Factory.deploy(cli_chain, a[0])
    f = ("--factory", factory.address)
    now = max(int(time_.time()), cli_chain.now())
    parties = (a[1], a[2], a[3])

    past = write_spec(tmp_path / "past.yaml", *parties, now - 3600)
    code, _, err = invoke("agreement", "create", str(past), *f)
    assert code == 2 and "is in the past" in err and str(past) in err, err
    close = write_spec(tmp_path / "close.yaml", *parties, now + 5)
    code, _, err = invoke("agreement", "create", str(close), *f)
    assert code == 2 and "deposits" in err and "at least 30 s ahead" in err, err
    assert factory.agreements_of_provider(a[1]) == []  # nothing was sent

    soon = write_spec(tmp_path / "soon.yaml", *parties, now + 120)
    code, out, err = invoke("agreement", "create", str(soon), *f)
    assert code == 0, err
    assert "warning" in err and "starts in" in err and "smartsla deposit" in err
    later = write_spec(tmp_path / "later.yaml", *parties, now + 86_400)
    code, out, err = invoke("agreement", "create", str(later), *f)
    assert code == 0 and "warning" not in err, err
    assert len(factory.agreements_of_provider(a[1])) == 2


# ---------------------------------------------------------------------------- the demo's evidence (issue 12)
def _flip_one_down_slice(path: Path) -> Path:
    """The bundle with one of compute's down minutes rewritten as up, hashes recomputed: what a
    provider would serve to hide downtime."""
    from dataclasses import replace

    from oracle.evidence import DOWN, UP, Bundle, dumps_bundle, encode_runs, parse_bundle

    bundle = parse_bundle(path.read_text())
    compute = bundle.records[0]
    states = compute.states()
    states[states.index(DOWN)] = UP
    forged = Bundle(oracle=bundle.oracle, records=(replace(compute, runs=encode_runs(states)), *bundle.records[1:]))
    out = path.with_name("forged-" + path.name)
    out.write_text(dumps_bundle(forged))
    return out


def test_every_demo_period_verifies_and_a_flipped_slice_does_not(cli_chain: Chain, tmp_path: Path) -> None:
    """Issue 12: the demo settled figures backed by no evidence (an opaque hash of the figures):
    `smartsla verify` could check none of its periods. Now each figure comes from a slice record,
    the root committed is the records' root, and the bundles are written with --evidence-dir."""
    from smartsla.verify import Source, verify_period

    r = run_demo(Console(file=io.StringIO(), width=160, color_system=None), "embedded", tmp_path / "ev")
    assert [b.head.period for b in r.bundles] == list(range(len(DEMO_VALUES_PPM)))
    assert len(r.evidence_files) == len(DEMO_VALUES_PPM)
    agreement = Factory(cli_chain, r.factory).agreement(r.agreement)
    for period, (bundle, path) in enumerate(zip(r.bundles, r.evidence_files, strict=True)):
        verdict = verify_period(agreement, cli_chain.chain_id, period, [Source(str(path), bundle=bundle)])
        assert (verdict.outcome, verdict.exit_code) == ("verified", 0), verdict.problems + verdict.missing
        code, out, err = invoke("verify", r.agreement, str(period), "--bundle", str(path), "--factory", r.factory)
        assert code == 0, out + err
    # One minute of compute's outage in period 1 rewritten as up: the root is no longer the one
    # the oracle committed on-chain.
    forged = _flip_one_down_slice(r.evidence_files[1])
    code, out, err = invoke("verify", r.agreement, "1", "--bundle", str(forged), "--factory", r.factory)
    assert code == 1, out + err
    assert "committed on-chain" in " ".join(out.split())
