"""The `smartsla` command line (Typer + Rich).

The root app only assembles: each command group has a module of its own (Typer's one file per
command group) and this package adds them. Shared options and the error handling that turns every
library error and bad input into one red line on stderr and exit code 1 (something failed) or 2
(bad input), never a traceback, live in smartsla.cli.common. Command modules import from common,
never from here, so there is no import cycle.

A new command: a module here with its own `app = typer.Typer()`, and one `app.add_typer(...)`
line below (with `name=` for a group, without to add its commands at the top level).
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from . import (
    actions,
    agreement,
    contracts,
    corporate,
    demo,
    keystore,
    oracle,
    rules,
    serve,
    spec,
    verify,
    verify_spec,
    watch,
)

app = typer.Typer(
    name="smartsla",
    help="Service Level Agreements that enforce themselves: escrow, oracle reports, credits paid on-chain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback must never print a private key held in a local
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"smartsla {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Service Level Agreements that enforce themselves."""


# Top-level commands, in the order `smartsla --help` lists them.
app.add_typer(demo.app)
app.add_typer(contracts.app)
app.add_typer(agreement.listing)
app.add_typer(serve.app)
app.add_typer(actions.app)
app.add_typer(rules.app)
app.add_typer(verify.app)
app.add_typer(watch.app)
# Command groups.
app.add_typer(agreement.app, name="agreement")
app.add_typer(oracle.app, name="oracle")
app.add_typer(keystore.app, name="keystore")
app.add_typer(actions.maintenance_app, name="maintenance")
app.add_typer(spec.app, name="spec")
app.add_typer(corporate.app, name="corporate")
app.add_typer(verify.arbiter_app, name="arbiter")
agreement.app.add_typer(verify_spec.app)

__all__ = ["app"]
