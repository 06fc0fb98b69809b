"""`smartsla rules` and `smartsla grafana`: the agreement drives the provider's SRE tools (issue 14).

Both read a spec and write files: Prometheus rules (smartsla.rules) and a Grafana dashboard
(smartsla.grafana). Nothing touches a chain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from . import grafana, rules
from .cli import _address, _console, app, cli_errors, fail
from .spec import SpecError, load_spec

AgreementOpt = Annotated[str | None, typer.Option(
    "--agreement", help="Only this agreement's series (default: every agreement the oracle measures).")]
OutOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")]


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        _console(stderr=True).print(f"wrote {output}")


@app.command("rules")
@cli_errors
def rules_cmd(spec: Annotated[Path, typer.Argument(help="Agreement spec (YAML).")],
              output: OutOpt = None, agreement: AgreementOpt = None) -> None:
    """Prometheus rules: SLI recording rules, burn-rate alerts and credit-at-risk alerts."""
    try:
        loaded = load_spec(spec)
    except SpecError as exc:
        fail(str(exc), 2)
    address = _address(agreement, "--agreement") if agreement else None
    _write(rules.render(rules.generate(loaded, address)), output)


@app.command("grafana")
@cli_errors
def grafana_cmd(spec: Annotated[Path, typer.Argument(help="Agreement spec (YAML).")],
                output: OutOpt = None, agreement: AgreementOpt = None) -> None:
    """A Grafana dashboard (JSON, importable as is): SLI, budget burn, credit at risk, credits."""
    try:
        loaded = load_spec(spec)
    except SpecError as exc:
        fail(str(exc), 2)
    address = _address(agreement, "--agreement") if agreement else None
    _write(json.dumps(grafana.dashboard(loaded, address), indent=2, sort_keys=False) + "\n", output)
