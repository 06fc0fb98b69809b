"""`smartsla agreement status|create|show` (one agreement) and `smartsla agreements` (the
factory's registry by party)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..client import Agreement, Status
from ..demo import print_terms
from ..presentation import fmt_time
from ..spec import dump_spec, terms_to_spec
from ..units import ppm_to_percent
from . import corporate
from .common import (
    DEFAULT_RPC_URL,
    WARN_LEAD_S,
    BadInput,
    FactoryOpt,
    RpcUrl,
    _address,
    _amount_formatter,
    _check_start,
    _connect,
    _console,
    _factory,
    _iso,
    _load_spec,
    _sender,
    cli_errors,
    fail,
)

app = typer.Typer(help="Inspect one agreement.", no_args_is_help=True)


def _multilevel(chain, address: str) -> bool:  # noqa: ANN001 - Chain
    """A multi-level agreement (kind CorporateAgreement) is handled by smartsla.cli.corporate;
    anything else (no contract included) by the factory's commands and their messages."""
    from ..errors import NotAnAgreement
    from ..multilevel import is_corporate

    try:
        return is_corporate(chain, address)
    except NotAnAgreement:
        return False


def _load_any_spec(path: Path):  # noqa: ANN202 - AgreementSpec | CorporateSpec
    """A spec of either kind; its errors (file, line, field) end the command with exit code 2."""
    from ..corporate import load_any_spec
    from ..spec import SpecError

    try:
        return load_any_spec(path)
    except SpecError as exc:
        fail(str(exc), 2)
# `smartsla agreements` sits at the top level, beside the group.
listing = typer.Typer()


def _status_style(status: Status) -> str:
    return {Status.Pending: "yellow", Status.Active: "green", Status.Ended: "blue", Status.Terminated: "red",
            Status.Cancelled: "dim", Status.Expired: "magenta"}[status]


@app.command("status")
@cli_errors
def agreement_status(
    address: Annotated[str, typer.Argument(help="The agreement's address.")],
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
) -> None:
    """Terms, escrow and progress of one agreement."""
    address = _address(address, "agreement address")
    console = _console()
    chain = _connect(rpc_url)
    if _multilevel(chain, address):
        corporate.status(chain, address, None, False)
        return
    factory = _factory(chain, factory_address)
    agreement = factory.agreement(address)
    terms = agreement.terms
    fmt = _amount_formatter(chain, terms.asset)
    console.print(f"Agreement [bold cyan]{agreement.address}[/] (factory {factory.address}, chain id {chain.chain_id})")
    print_terms(console, terms, parties=True, fmt=fmt)

    snap = agreement.snapshot()
    balance = agreement.balance()
    state = Table(title="State", title_justify="left", show_header=False)
    state.add_column("item")
    state.add_column("value")
    style = _status_style(snap.status)
    state.add_row("status", f"[{style}]{snap.status.name}[/]" + (" (disaster clause triggered)"
                                                                 if snap.disaster_occurred else ""))
    state.add_row("settled periods", f"{snap.settled_periods} of {terms.period_count}")
    if snap.status == Status.Active and snap.settled_periods < terms.period_count:
        state.add_row("next period ends", fmt_time(terms.period_end(snap.settled_periods)))
    state.add_row("fees deposited", "yes" if snap.fees_deposited else "no")
    state.add_row("collateral deposited", "yes" if snap.collateral_deposited else "no")
    state.add_row("fees escrowed", fmt(snap.fees_escrowed))
    state.add_row("collateral escrowed", fmt(snap.collateral_escrowed))
    state.add_row("owed to the customer", fmt(snap.owed_to_customer))
    state.add_row("owed to the provider", fmt(snap.owed_to_provider))
    held = f"{fmt(balance)}"
    if balance != snap.held:
        held += f" [bold red](its books say {fmt(snap.held)})[/]"
    state.add_row("contract balance", held)
    console.print(state)

    settlements = agreement.settlements()
    if settlements:
        table = Table(title="Settlements", title_justify="left")
        table.add_column("period", justify="right")
        for s in terms.services:
            table.add_column(s.name, justify="right")
        table.add_column("credit paid", justify="right")
        table.add_column("fee earned", justify="right")
        for st in settlements:
            values = [ppm_to_percent(v) if v >= terms.termination_ppm else f"[red]{ppm_to_percent(v)}[/]"
                      for v in st.values_ppm]
            table.add_row(str(st.period), *values, fmt(st.credit_paid), fmt(st.fee_earned))
        console.print(table)


@listing.command("agreements")
@cli_errors
def agreements_list(
    provider: Annotated[str | None, typer.Option("--provider", help="List this provider's agreements.")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="List this customer's agreements.")] = None,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
) -> None:
    """List agreements from the factory's registry, by provider and/or customer."""
    if provider is None and customer is None:
        raise BadInput("give --provider ADDRESS or --customer ADDRESS (or both)")
    provider = _address(provider, "--provider") if provider else None
    customer = _address(customer, "--customer") if customer else None
    console = _console()
    chain = _connect(rpc_url)
    factory = _factory(chain, factory_address)
    found: list[Agreement]
    if provider is not None:
        found = factory.agreements_of_provider(provider)
        if customer is not None:
            found = [a for a in found if a.terms.customer == customer]
    else:
        assert customer is not None
        found = factory.agreements_of_customer(customer)
    who = " and ".join(f"{role} {addr}" for role, addr in (("provider", provider), ("customer", customer)) if addr)
    if not found:
        console.print(f"No agreements for {who} in the factory at {factory.address}.")
        return
    table = Table(title=f"Agreements of {who}", title_justify="left")
    # The party listed by is the same on every row: show only the other one, under the address.
    shown_parties = [p for p, given in (("provider", provider), ("customer", customer)) if given is None]
    table.add_column("agreement" + "".join(f" / {p}" for p in shown_parties), no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("services")
    for col in ("settled", "fee / period", "collateral escrowed"):
        table.add_column(col, justify="right")
    for a in found:
        terms = a.terms
        snap = a.snapshot()
        fmt = _amount_formatter(chain, terms.asset)
        cell = "\n".join([a.address, *(f"[dim]{p}[/] {getattr(terms, p)}" for p in shown_parties)])
        table.add_row(cell, f"[{_status_style(snap.status)}]{snap.status.name}[/]",
                      ", ".join(s.name for s in terms.services), f"{snap.settled_periods}/{terms.period_count}",
                      fmt(terms.fee_per_period), fmt(snap.collateral_escrowed))
    console.print(table)


@app.command("create")
@cli_errors
def agreement_create(
    file: Annotated[Path, typer.Argument(help="The agreement's spec (YAML).")],
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    from_: Annotated[str | None, typer.Option("--from", help="Sender (the provider, to declare the "
                                              "spec's maintenance windows).")] = None,
    private_key_env: Annotated[str | None, typer.Option("--private-key-env", metavar="VAR")] = None,
) -> None:
    """Validate a spec, then create the agreement on-chain (and declare its maintenance windows).
    The spec's hash (smartsla.spec_hash) goes into the immutable terms: `agreement verify-spec`
    later tells whether a file is the one the agreement was made from."""
    from ..spec_hash import signed_terms

    spec = _load_any_spec(file)
    if spec.kind == "CorporateAgreement":
        corporate.create(file, spec, rpc_url, from_, private_key_env)
        return
    terms = signed_terms(spec)  # validated before anything is sent
    console = _console()
    chain = _connect(rpc_url)
    factory = _factory(chain, factory_address)
    sender = _sender(chain, from_, private_key_env)
    lead = _check_start(file, terms.start, max(int(time.time()), chain.now()))
    if lead < WARN_LEAD_S:
        _console(stderr=True).print(
            f"[yellow]warning:[/] the term starts in {lead} s ({_iso(terms.start)}): the customer's fees and "
            "the provider's collateral must both be deposited before then (`smartsla deposit`), or the agreement "
            "never becomes Active", soft_wrap=True, highlight=False)
    agreement = factory.create_agreement(terms, sender)
    console.print(f"Agreement [bold cyan]{agreement.address}[/] created from {file} "
                  f"(gas {agreement.creation.gas_used if agreement.creation else '?'}); spec hash {terms.spec_hash}")
    windows = spec.maintenance_windows()
    if windows and sender != terms.provider:
        console.print(f"[yellow]{len(windows)} maintenance window(s) not declared[/]: only the provider can "
                      f"declare them (smartsla agreement create --from {terms.provider})")
        return
    for start, end in windows:
        agreement.declare_maintenance(start, end, sender)
        console.print(f"  maintenance declared: {start} → {end}")


@app.command("show")
@cli_errors
def agreement_show(
    address: Annotated[str, typer.Argument(help="The agreement's address.")],
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    spec_file: Annotated[Path | None, typer.Option("--spec", help="The agreement's spec file: when it is the "
                                                   "one the agreement was made from (same hash), its scope and "
                                                   "exclusions are shown too.")] = None,
) -> None:
    """Print an agreement's on-chain terms as a spec (YAML that `spec validate` accepts), headed by
    the spec hash and the measurement method as comments."""
    from ..spec_hash import MISSING_DATA_POLICY, spec_hash
    from ..terms import ZERO_HASH

    chain = _connect(rpc_url)
    if _multilevel(chain, _address(address, "agreement address")):
        corporate.show(chain, address, spec_file)
        return
    agreement = _factory(chain, factory_address).agreement(_address(address, "agreement address"))
    terms = agreement.terms
    data = terms_to_spec(terms, name=f"agreement-{agreement.address[2:10].lower()}")
    recorded = terms.spec_hash if terms.spec_hash != ZERO_HASH else "none (created without a spec document)"
    percentiles = ", ".join(f"{s.name} p{s.latency_percentile}" for s in terms.services if s.latency_percentile)
    header = [f"spec hash: {recorded}",
              f"measurement: slices of {terms.slice_seconds} s; a period is reported when at least "
              f"{ppm_to_percent(terms.min_measured_ppm)} of it was measured; {MISSING_DATA_POLICY}",
              f"latency percentiles: {percentiles or 'none fixed'}"]
    if spec_file is not None:
        spec = _load_spec(spec_file)
        if spec_hash(spec) == terms.spec_hash:
            # The chain holds the scope and exclusions by hash only: shown from the matching file.
            data["spec"]["scope"] = spec.spec.scope.model_dump()
            header.append(f"scope and exclusions: from {spec_file} (its hash matches)")
        else:
            header.append(f"scope and exclusions: not shown, {spec_file} is NOT the agreement's document "
                          f"(hash {spec_hash(spec)}; see `smartsla agreement verify-spec`)")
    else:
        header.append("scope and exclusions: on-chain by hash only; pass --spec FILE to show them")
    typer.echo("".join(f"# {line}\n" for line in header) + dump_spec(data), nl=False)
