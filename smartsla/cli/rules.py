"""`smartsla rules` and `smartsla grafana`: the agreement drives the provider's SRE tools (issue 14).

Both read a spec and write files: Prometheus rules (smartsla.rules) and a Grafana dashboard
(smartsla.grafana). Nothing touches a chain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from .. import grafana, rules
from ..corporate import load_corporate_spec
from ..spec import SpecError, load_spec
from .common import _address, _console, cli_errors, fail

app = typer.Typer()

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
              output: OutOpt = None, agreement: AgreementOpt = None,
              oracle_config: Annotated[Path | None, typer.Option(
                  "--oracle-config", help="The oracle's YAML configuration: services it measures through "
                  "Prometheus take their SLI from that query.")] = None) -> None:
    """Prometheus rules: SLI recording rules, burn-rate alerts and credit-at-risk alerts (per
    department for a multi-level spec)."""
    address = _address(agreement, "--agreement") if agreement else None
    try:
        if _kind(spec) == "CorporateAgreement":
            generated = rules.generate_corporate(load_corporate_spec(spec), address)
        else:
            sources = _sources(oracle_config, address) if oracle_config else ()
            generated = rules.generate(load_spec(spec), address, sources=sources)
    except (SpecError, ValueError) as exc:  # oracle.config.ConfigError is a ValueError
        fail(str(exc), 2)
    _write(rules.render(generated), output)


def _sources(path: Path, agreement: str | None) -> tuple[tuple[str, tuple[str, float, bool]], ...]:
    """Prometheus-sourced services of the oracle's configuration (the agreement's own entries
    over the top-level ones when --agreement is given)."""
    from oracle.config import load_config  # the oracle package only when asked for

    config = load_config(path)
    probes = config.probes_for(agreement) if agreement else config.services
    return tuple((name, (p.prometheus.query, p.prometheus.threshold, p.prometheus.inclusive))
                 for name, p in sorted(probes.items()) if p.prometheus is not None)


def _kind(path: Path) -> str | None:
    """The spec's `kind` (Agreement or CorporateAgreement), read before validating either."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{path}: {exc}", 2)
    return data.get("kind") if isinstance(data, dict) else None


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
