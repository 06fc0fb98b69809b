"""`smartsla spec validate`, `smartsla agreement create FILE`, `smartsla agreement show ADDRESS`.

Registered on the main app by smartsla.cli (kept apart so that each group of commands has a home).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..spec import SpecError, dump_spec, load_any_spec, load_spec, terms_to_spec
from ..units import bps_to_percent, ppm_to_percent
from . import (
    DEFAULT_RPC_URL,
    BadInput,
    FactoryOpt,
    RpcUrl,
    _address,
    _connect,
    _console,
    _factory,
    _sender,
    agreement_app,
    app,
    cli_errors,
    fail,
)

spec_app = typer.Typer(help="Agreement specs in YAML.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")


def _load(path: Path):  # noqa: ANN202 - AgreementSpec
    try:
        return load_spec(path)
    except SpecError as exc:
        fail(str(exc), 2)


@spec_app.command("validate")
@cli_errors
def spec_validate(files: Annotated[list[Path], typer.Argument(help="Spec files to check.")]) -> None:
    """Check spec files; each error names the file, line and field. Nothing is sent anywhere."""
    console = _console()
    for path in files:
        try:
            spec = load_any_spec(path)
        except SpecError as exc:
            fail(str(exc), 2)
        if spec.kind == "CorporateAgreement":
            from ..corporate import print_corporate_spec

            print_corporate_spec(console, path, spec)
            continue
        terms = spec.to_terms()
        table = Table(title=f"{path}: {spec.metadata.name} ({spec.metadata.structure})", title_justify="left")
        for col in ("service", "kind", "weight", "objective", "tiers"):
            table.add_column(col)
        for s in terms.services:
            unit = (lambda v: f"{v} ms") if s.lower_is_better else ppm_to_percent
            sign = ">" if s.lower_is_better else "<"
            tiers = ", ".join(f"{sign} {unit(t.below_ppm)} → {bps_to_percent(t.credit_bps)}" for t in s.tiers)
            table.add_row(s.name, s.kind.name, bps_to_percent(s.weight_bps), unit(s.objective_ppm), tiers)
        console.print(table)
        console.print(f"[green]valid[/]: {terms.period_count} periods, {len(terms.oracles)} oracle(s), quorum "
                      f"{terms.quorum}, dispute window {terms.dispute_window} s, maintenance notice "
                      f"{terms.maintenance_notice} s")


# A term must start late enough for both deposits to be mined before it (the contracts refuse
# deposits once the term has started, so that nobody activates an agreement with hindsight, and
# periods that started before the oracle could watch them would be reported unmeasured).
MIN_LEAD_S = 30  # two deposits, a few blocks each, even on a slow public network
WARN_LEAD_S = 600


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_start(file: Path, start: int, now: int) -> int:
    """Seconds from now to the term's start; refuses (exit 2) a start in the past or too close."""
    if start <= now:
        raise BadInput(f"{file}: timeWindow.start {_iso(start)} is in the past (the chain and this machine say "
                       f"{_iso(now)}): periods nobody measured would be settled; choose a future start")
    if start - now < MIN_LEAD_S:
        raise BadInput(f"{file}: timeWindow.start {_iso(start)} is only {start - now} s away: both deposits "
                       f"could not be mined before it (deposits are refused once the term has started); "
                       f"choose a start at least {MIN_LEAD_S} s ahead")
    return start - now


@agreement_app.command("create")
@cli_errors
def agreement_create(
    file: Annotated[Path, typer.Argument(help="The agreement's spec (YAML).")],
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    from_: Annotated[str | None, typer.Option("--from", help="Sender (the provider, to declare the "
                                              "spec's maintenance windows).")] = None,
    private_key_env: Annotated[str | None, typer.Option("--private-key-env", metavar="VAR")] = None,
) -> None:
    """Validate a spec, then create the agreement on-chain (and declare its maintenance windows)."""
    spec = _load(file)
    terms = spec.to_terms()  # validated before anything is sent
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
                  f"(gas {agreement.creation.gas_used if agreement.creation else '?'})")
    windows = spec.maintenance_windows()
    if windows and sender != terms.provider:
        console.print(f"[yellow]{len(windows)} maintenance window(s) not declared[/]: only the provider can "
                      f"declare them (smartsla agreement create --from {terms.provider})")
        return
    for start, end in windows:
        agreement.declare_maintenance(start, end, sender)
        console.print(f"  maintenance declared: {start} → {end}")


@agreement_app.command("show")
@cli_errors
def agreement_show(
    address: Annotated[str, typer.Argument(help="The agreement's address.")],
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
) -> None:
    """Print an agreement's on-chain terms as a spec (YAML that `spec validate` accepts)."""
    chain = _connect(rpc_url)
    agreement = _factory(chain, factory_address).agreement(_address(address, "agreement address"))
    typer.echo(dump_spec(terms_to_spec(agreement.terms, name=f"agreement-{agreement.address[2:10].lower()}")), nl=False)


# ---------------------------------------------------------------- OpenSLO in and out (smartsla.openslo)

import_app = typer.Typer(help="Import agreement specs from other formats.", no_args_is_help=True)
export_app = typer.Typer(help="Export agreement specs to other formats.", no_args_is_help=True)
spec_app.add_typer(import_app, name="import")
spec_app.add_typer(export_app, name="export")
OutOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")]


def _write(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


@import_app.command("openslo")
@cli_errors
def spec_import_openslo(
    files: Annotated[list[Path], typer.Argument(help="OpenSLO v1 files (Service, SLO, SLI, DataSource) and "
                                                "optionally a smartsla/v1 AgreementLayer.")],
    output: OutOpt = None,
) -> None:
    """OpenSLO v1 documents + the SLA layer -> an agreement spec (YAML that `spec validate` accepts)."""
    from ..openslo import OpenSloError, import_openslo

    try:
        _write(dump_spec(import_openslo(files)), output)
    except OpenSloError as exc:
        fail(str(exc), 2)


@export_app.command("openslo")
@cli_errors
def spec_export_openslo(
    file: Annotated[Path, typer.Argument(help="The agreement's spec (YAML).")],
    output: OutOpt = None,
) -> None:
    """An agreement spec -> OpenSLO v1 documents; fields OpenSLO lacks go in metadata.annotations."""
    import yaml

    from ..openslo import OpenSloError, dump_documents, export_openslo

    _load(file)  # validated, with file:line:field errors, before anything is written
    try:
        _write(dump_documents(export_openslo(yaml.safe_load(file.read_text()))), output)
    except OpenSloError as exc:
        fail(str(exc), 2)
