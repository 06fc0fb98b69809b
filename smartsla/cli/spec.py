"""`smartsla spec validate|import openslo|export openslo`: agreement specs in YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..corporate import load_any_spec
from ..presentation import measure
from ..spec import SpecError, dump_spec
from ..units import bps_to_percent
from .common import _console, _load_spec, cli_errors, fail

app = typer.Typer(help="Agreement specs in YAML.", no_args_is_help=True)


@app.command("validate")
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
            sign = ">" if s.lower_is_better else "<"
            tiers = ", ".join(f"{sign} {measure(s, t.threshold)} → {bps_to_percent(t.credit_bps)}" for t in s.tiers)
            table.add_row(s.name, s.kind.name, bps_to_percent(s.weight_bps), measure(s, s.objective), tiers)
        console.print(table)
        console.print(f"[green]valid[/]: {terms.period_count} periods, {len(terms.oracles)} oracle(s), quorum "
                      f"{terms.quorum}, dispute window {terms.dispute_window} s, maintenance notice "
                      f"{terms.maintenance_notice} s")




# ---------------------------------------------------------------- OpenSLO in and out (smartsla.openslo)

import_app = typer.Typer(help="Import agreement specs from other formats.", no_args_is_help=True)
export_app = typer.Typer(help="Export agreement specs to other formats.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
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

    _load_spec(file)  # validated, with file:line:field errors, before anything is written
    try:
        _write(dump_documents(export_openslo(yaml.safe_load(file.read_text()))), output)
    except OpenSloError as exc:
        fail(str(exc), 2)
