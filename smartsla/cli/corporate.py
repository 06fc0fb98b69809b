"""Multi-level agreements (`kind: CorporateAgreement`) from the command line.

`agreement create|show|status` hand a multi-level spec or address to the functions here (one
test decides the kind: smartsla.multilevel.is_corporate); the `corporate` group holds the
parties' actions: deposit (fees by the organisation, collateral by the provider), settle (one
department, or every department of a period in one transaction; anyone may), withdraw (a
department's credit goes to its payout address, the only one that can withdraw it) and status.

Keys as for the other commands: `--keystore` (encrypted key file), or `--from` / `--private-key-env`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer
from rich.table import Table

from .. import deployments
from ..chain import Chain
from ..corporate import (
    FACTORY_NAME,
    Corporate,
    CorporateFactory,
    CorporateSpec,
    CorporateTerms,
    corporate_terms_to_spec,
    load_corporate_spec,
)
from ..multilevel import CorporateState, is_corporate, read_state
from ..presentation import fmt_eth, fmt_time
from ..spec import SpecError, dump_spec
from ..units import ppm_to_percent
from .common import (
    DEFAULT_RPC_URL,
    WARN_LEAD_S,
    BadInput,
    RpcUrl,
    _address,
    _check_start,
    _connect,
    _console,
    _iso,
    _password,
    _sender,
    cli_errors,
    fail,
)

app = typer.Typer(help="Multi-level agreements: one organisation, its departments, one collateral pool.",
                  no_args_is_help=True)

Address = Annotated[str, typer.Argument(help="The multi-level agreement's address.")]
FromOpt = Annotated[str | None, typer.Option("--from", help="Sender: an account the node unlocks.")]
KeyEnvOpt = Annotated[str | None, typer.Option("--private-key-env", metavar="VAR",
                                               help="Environment variable holding the sender's private key.")]
KeystoreOpt = Annotated[Path | None, typer.Option("--keystore", help="Encrypted key file (smartsla keystore "
                                                  "new/import); its password in --password-env.")]
PasswordEnvOpt = Annotated[str, typer.Option("--password-env", metavar="VAR")]
SpecOpt = Annotated[Path | None, typer.Option("--spec", help="The agreement's spec: its department names "
                                              "(the chain holds none) and a check that it matches.")]
PASSWORD = "SMARTSLA_KEYSTORE_PASSWORD"


# ---------------------------------------------------------------- shared
def load_corporate(path: Path) -> CorporateSpec:
    try:
        return load_corporate_spec(path)
    except SpecError as exc:
        fail(str(exc), 2)


def open_corporate(chain: Chain, address: str) -> tuple[Corporate, CorporateTerms]:
    """The multi-level agreement at `address`, its terms read from the chain; bad input otherwise."""
    address = _address(address, "agreement address")
    if not is_corporate(chain, address):
        raise BadInput(f"{address} is not a multi-level agreement (CorporateAgreement): use the commands "
                       "without `corporate` for an Agreement")
    corporate = Corporate(chain, address)
    terms = corporate.read_terms()
    corporate.terms = terms
    return corporate, terms


def _names(terms: CorporateTerms, spec_file: Path | None) -> list[str] | None:
    """Department names from the spec, when it describes these terms (names aside)."""
    if spec_file is None:
        return None
    spec = load_corporate(spec_file)
    mine = spec.to_terms()
    unnamed = [d.__class__(**{**d.__dict__, "name": ""}) for d in mine.departments]
    chain_unnamed = [d.__class__(**{**d.__dict__, "name": ""}) for d in terms.departments]
    if (unnamed, mine.services, mine.start, mine.period_length, mine.period_count) != \
            (chain_unnamed, terms.services, terms.start, terms.period_length, terms.period_count):
        raise BadInput(f"{spec_file} does not describe the agreement's on-chain terms (`smartsla agreement show "
                       "ADDRESS` prints them)")
    return [d.name for d in mine.departments]


def _signer(chain: Chain, from_: str | None, key_env: str | None, keystore: Path | None, password_env: str) -> str:
    if keystore is None:
        return _sender(chain, from_, key_env)
    from .. import keystore as keys

    if from_ is not None or key_env is not None:
        raise BadInput("give either --keystore or --from/--private-key-env, not both")
    return chain.add_key(keys.load(keystore, _password(password_env, confirm=False)).key)


class _Signed(NamedTuple):
    """A multi-level agreement opened for a transaction: its chain, terms, department names
    (with --spec) and the sender that signs."""

    chain: Chain
    corporate: Corporate
    terms: CorporateTerms
    names: list[str] | None
    sender: str


def _signed_corporate(rpc_url: str, address: str, spec_file: Path | None, from_: str | None, key_env: str | None,
                      keystore: Path | None, password_env: str) -> _Signed:
    """What every party action starts with (the `_signed_agreement` of the multi-level commands):
    connect, read the terms from the chain, check the spec against them, unlock the sender."""
    chain = _connect(rpc_url)
    corporate, terms = open_corporate(chain, address)
    names = _names(terms, spec_file)
    return _Signed(chain, corporate, terms, names, _signer(chain, from_, key_env, keystore, password_env))


def _department(terms: CorporateTerms, names: list[str] | None, value: str) -> int:
    """A department by index, or by name with --spec."""
    if value.isdigit() and int(value) < len(terms.departments):
        return int(value)
    if names is not None and value in names:
        return names.index(value)
    known = ", ".join(f"{i} ({n})" for i, n in enumerate(names or [d.name for d in terms.departments]))
    raise BadInput(f"no department {value!r}: the agreement has {len(terms.departments)} ({known})"
                   + ("" if names else "; pass --spec FILE to use names"))


# ---------------------------------------------------------------- agreement create / show / status
def create(file: Path, spec: CorporateSpec, rpc_url: str, from_: str | None, key_env: str | None) -> None:
    """`smartsla agreement create` for a multi-level spec: deploy, add the departments."""
    terms = spec.to_terms()  # validated before anything is sent
    console = _console()
    chain = _connect(rpc_url)
    sender = _sender(chain, from_, key_env)
    lead = _check_start(file, terms.start, max(int(time.time()), chain.now()))
    if lead < WARN_LEAD_S:
        _console(stderr=True).print(
            f"[yellow]warning:[/] the term starts in {lead} s ({_iso(terms.start)}): the organisation's fees and "
            "the provider's collateral must both be deposited by then (`smartsla corporate deposit`)",
            soft_wrap=True, highlight=False)
    recorded = None if chain.embedded else deployments.lookup(chain.chain_id, FACTORY_NAME)
    factory = CorporateFactory.for_chain(chain, sender)
    if not chain.embedded and recorded is None:
        _console(stderr=True).print(
            f"[yellow]warning:[/] no {FACTORY_NAME} recorded for chain id {chain.chain_id}: deployed one at "
            f"{factory.address}, not recorded (`smartsla serve` finds this agreement only with --corporate; "
            "`smartsla deploy` records the factories)", soft_wrap=True, highlight=False)
    corporate = factory.create(terms, sender)
    gas = corporate.creation.gas_used if corporate.creation else "?"
    console.print(f"Multi-level agreement [bold cyan]{corporate.address}[/] created from {file} (gas {gas}): "
                  f"{len(terms.departments)} departments, pool {fmt_eth(terms.collateral)}, fees "
                  f"{fmt_eth(terms.total_fees)} for {terms.period_count} periods")


def show(chain: Chain, address: str, spec_file: Path | None) -> None:
    """`smartsla agreement show` for a multi-level agreement: its terms as a spec."""
    corporate, terms = open_corporate(chain, address)
    names = _names(terms, spec_file)
    data = corporate_terms_to_spec(terms, name=f"corporate-{corporate.address[2:10].lower()}")
    header = ["kind: multi-level agreement (CorporateAgreement)"]
    if names is not None:
        for dep, name in zip(data["spec"]["departments"], names, strict=True):
            dep["name"] = name
        header.append(f"department names: from {spec_file}")
    else:
        header.append("department names: not on-chain (department-<index>); pass --spec FILE for the spec's")
    typer.echo("".join(f"# {line}\n" for line in header) + dump_spec(data), nl=False)


def _state_json(corporate: Corporate, terms: CorporateTerms, state: CorporateState) -> dict[str, Any]:
    return {"address": corporate.address, "kind": "CorporateAgreement", "status": state.status,
            "provider": terms.provider, "organisation": terms.organisation, "oracle": terms.oracle,
            "period_count": terms.period_count, "reported_periods": state.reported_periods,
            "settled_periods": state.settled_periods, "fees_deposited": state.fees_deposited,
            "collateral_deposited": state.collateral_deposited, "fees_escrowed": str(state.fees_escrowed),
            "pool": str(state.pool), "exposure": str(state.exposure), "owed_provider": str(state.owed_provider),
            "owed_organisation": str(state.owed_organisation), "balance": str(state.balance),
            "reported_values_ppm": [list(v) for v in state.reported_values],
            # Departments settle a period once it is Final (after its dispute window, or the arbiter's ruling).
            "period_states": [{"period": p.period, "state": p.state, "final_after": p.final_after}
                              for p in state.periods],
            "departments": [{"index": d.index, "name": d.name, "payout": d.payout, "fee_per_period":
                             str(d.fee_per_period), "settled_periods": d.settled_periods,
                             "worst_credit_per_period": str(d.worst_credit), "credits_paid": str(d.credits_paid),
                             "owed": str(d.owed), "periods": [{"period": p, "credit": str(c), "fee": str(f)}
                                                              for p, c, f in d.periods]}
                            for d in state.departments]}


def status(chain: Chain, address: str, spec_file: Path | None, as_json: bool) -> None:
    corporate, terms = open_corporate(chain, address)
    state = read_state(corporate, terms, _names(terms, spec_file))
    if as_json:
        typer.echo(json.dumps(_state_json(corporate, terms, state), indent=2))
        return
    console = _console()
    console.print(f"Multi-level agreement [bold cyan]{corporate.address}[/] (chain id {chain.chain_id})")
    head = Table(show_header=False, title="Organisation", title_justify="left")
    head.add_column("item")
    head.add_column("value")
    style = {"Active": "green", "Pending": "yellow", "Ended": "blue", "Cancelled": "dim", "Expired": "magenta"}
    head.add_row("status", f"[{style.get(state.status, 'white')}]{state.status}[/]")
    head.add_row("provider / organisation", f"{terms.provider} / {terms.organisation}")
    head.add_row("oracle", terms.oracle)
    head.add_row("term", f"{terms.period_count} periods of {terms.period_length} s from {fmt_time(terms.start)}")
    head.add_row("reported / settled periods", f"{state.reported_periods} / {state.settled_periods} of "
                                               f"{terms.period_count}")
    if state.status == "Active" and state.reported_periods < terms.period_count:
        head.add_row("next period ends", fmt_time(terms.period_end(state.reported_periods)))
    head.add_row("deposits", f"fees {'yes' if state.fees_deposited else 'no'}, collateral "
                             f"{'yes' if state.collateral_deposited else 'no'}")
    head.add_row("fees escrowed", fmt_eth(state.fees_escrowed))
    head.add_row("collateral pool", fmt_eth(state.pool))
    head.add_row("exposure (worst case still backed)", fmt_eth(state.exposure))
    head.add_row("owed to the provider / organisation", f"{fmt_eth(state.owed_provider)} / "
                                                        f"{fmt_eth(state.owed_organisation)}")
    head.add_row("contract balance", fmt_eth(state.balance))
    console.print(head)
    table = Table(title="Departments", title_justify="left")
    for col in ("#", "department", "payout", "fee / period", "settled", "credits so far", "owed now"):
        table.add_column(col, justify="right" if col in ("#", "fee / period", "settled", "credits so far",
                                                         "owed now") else "left")
    for d in state.departments:
        table.add_row(str(d.index), d.name, d.payout, fmt_eth(d.fee_per_period),
                      f"{d.settled_periods}/{terms.period_count}", fmt_eth(d.credits_paid), fmt_eth(d.owed))
    console.print(table)
    if state.reported_periods:
        values = Table(title="Reported periods", title_justify="left")
        values.add_column("period", justify="right")
        values.add_column("state")
        for s in terms.services:
            values.add_column(f"{s.name} (objective {ppm_to_percent(s.objective)})", justify="right")
        for p, reported in enumerate(state.reported_values):
            ps = state.periods[p]
            shown = f"{ps.state} until {fmt_time(ps.final_after)}" if ps.state == "Pending" else ps.state
            values.add_row(str(p), shown, *(ppm_to_percent(v) if v >= s.objective
                                            else f"[red]{ppm_to_percent(v)}[/]"
                                            for v, s in zip(reported, terms.services, strict=True)))
        console.print(values)


# ---------------------------------------------------------------- the parties' actions
@app.command("status")
@cli_errors
def status_cmd(
    address: Address,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    spec_file: SpecOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (amounts in wei, as strings).")] = False,
) -> None:
    """Pool, exposure, and each department's payout address, fee, credits so far and settled periods."""
    status(_connect(rpc_url), address, spec_file, as_json)


@app.command("deposit")
@cli_errors
def deposit_cmd(
    address: Address,
    what: Annotated[str | None, typer.Option("--what", help="'fees' (the organisation prepays every department's "
                                             "fees) or 'collateral' (the provider's pool); default: what the "
                                             "sender owes.")] = None,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    from_: FromOpt = None,
    private_key_env: KeyEnvOpt = None,
    keystore: KeystoreOpt = None,
    password_env: PasswordEnvOpt = PASSWORD,
) -> None:
    """Deposit the organisation's fees or the provider's collateral pool. Both in: the agreement is Active."""
    if what is not None and what not in ("fees", "collateral"):
        raise BadInput(f"--what must be 'fees' or 'collateral', not {what!r}")
    chain, corporate, terms, _, sender = _signed_corporate(
        rpc_url, address, None, from_, private_key_env, keystore, password_env)
    roles = {"fees": terms.organisation, "collateral": terms.provider}
    if what is None:
        if sender not in roles.values():
            raise BadInput(f"{sender} is neither the organisation ({terms.organisation}) nor the provider "
                           f"({terms.provider}) of {corporate.address}: it has nothing to deposit")
        what = "fees" if sender == terms.organisation else "collateral"
    party = "organisation" if what == "fees" else "provider"
    amount = terms.total_fees if what == "fees" else terms.collateral
    held = chain.balance(sender)
    if held < amount:
        fail(f"{sender} holds only {fmt_eth(held)}; the {what} of {corporate.address} are {fmt_eth(amount)}", 1)
    # The contract is the authority on who deposits what, and when: ask it as the sender first
    # (its named error, in its words, on refusal); only the balance is phrased here.
    f = corporate.contract.functions
    chain.simulate(f.depositFees() if what == "fees" else f.depositCollateral(), sender, value=amount,
                   action=f"deposit the {what}")
    tx = corporate.deposit_fees(sender) if what == "fees" else corporate.deposit_collateral(sender)
    after = read_state(corporate, terms)
    _console().print(f"The {party} {sender} deposited [bold]{fmt_eth(amount)}[/] of {what} into {corporate.address} "
                     f"(block {tx.block_number}). Status: [bold]{after.status}[/]"
                     + ("" if after.status == "Active" else
                        f" (waiting for the {'provider' if what == 'fees' else 'organisation'})") + ".")


@app.command("settle")
@cli_errors
def settle_cmd(
    address: Address,
    period: Annotated[int, typer.Argument(help="The reported period to settle (0-based).", min=0)],
    department: Annotated[str | None, typer.Option("--department", help="One department (index, or name with "
                                                   "--spec); default: every department, in one transaction.")] = None,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    spec_file: SpecOpt = None,
    from_: FromOpt = None,
    private_key_env: KeyEnvOpt = None,
    keystore: KeystoreOpt = None,
    password_env: PasswordEnvOpt = PASSWORD,
) -> None:
    """Settle a reported period (anyone may): each department's credit goes to its payout address,
    its fee to the provider. Nothing can be redirected: the contract pays the addresses of the terms."""
    chain, corporate, terms, names, sender = _signed_corporate(
        rpc_url, address, spec_file, from_, private_key_env, keystore, password_env)
    state = read_state(corporate, terms, names)
    if period >= terms.period_count:
        raise BadInput(f"period {period} does not exist: the agreement has periods 0..{terms.period_count - 1}")
    chosen = state.departments if department is None else [state.departments[_department(terms, names, department)]]
    todo = [d for d in chosen if d.settled_periods <= period and period < d.end_period]
    f = corporate.contract.functions
    # The contract is the authority on what settles when (reported, final, in order): asked as
    # the sender first. Settling every department skips those already past the period, so
    # "nothing to do" is ours to say.
    if department is None:
        chain.simulate(f.settleDepartments(period, 0, len(terms.departments)), sender,
                       action=f"settle period {period}")
    else:
        chain.simulate(f.settleDepartment(chosen[0].index, period), sender,
                       action=f"settle department {chosen[0].name} period {period}")
    if not todo:
        fail(f"period {period} is already settled for {'every department' if department is None else chosen[0].name}",
             1)
    if department is None:
        tx = corporate.settle_departments(period, 0, len(terms.departments), sender)
    else:
        _, tx = corporate.settle_department(todo[0].index, period, sender)
    after = read_state(corporate, terms, names)
    console = _console()
    console.print(f"Period {period} of {corporate.address} settled for {len(todo)} department(s) "
                  f"(block {tx.block_number}, gas {tx.gas_used}):")
    for d in todo:
        credit = next(c for p, c, _ in after.departments[d.index].periods if p == period)
        console.print(f"  {d.name}: credit [bold]{fmt_eth(credit)}[/] to {d.payout}, fee {fmt_eth(d.fee_per_period)} "
                      "to the provider")


@app.command("withdraw")
@cli_errors
def withdraw_cmd(
    address: Address,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    spec_file: SpecOpt = None,
    from_: FromOpt = None,
    private_key_env: KeyEnvOpt = None,
    keystore: KeystoreOpt = None,
    password_env: PasswordEnvOpt = PASSWORD,
) -> None:
    """Withdraw what the agreement owes the sender: a department's credits (signed by its payout
    address, which receives them), the provider's fees and released pool, or the organisation's refunds."""
    chain, corporate, terms, names, sender = _signed_corporate(
        rpc_url, address, spec_file, from_, private_key_env, keystore, password_env)
    roles = [f"department {n}" for d, n in zip(terms.departments, names or [d.name for d in terms.departments],
                                               strict=True) if d.payout == sender]
    roles += [r for r, a in (("provider", terms.provider), ("organisation", terms.organisation)) if a == sender]
    if not roles:
        raise BadInput(f"{sender} is not a department's payout address, the provider or the organisation of "
                       f"{corporate.address}: nothing can be owed to it")
    owed = corporate.owed(sender)
    who = " and ".join(roles)
    chain.simulate(corporate.contract.functions.withdraw(), sender, action="withdraw")
    tx = corporate.withdraw(sender)
    _console().print(f"{who[0].upper()}{who[1:]} ({sender}) withdrew [bold]{fmt_eth(owed)}[/] from "
                     f"{corporate.address} (block {tx.block_number}).")

