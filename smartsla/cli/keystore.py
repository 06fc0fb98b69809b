"""`smartsla keystore new|import`: encrypted key files for signing locally."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .common import BadInput, PasswordEnv, _console, _password, cli_errors

app = typer.Typer(help="Encrypted key files for signing withdraw/terminate locally.", no_args_is_help=True)


@app.command("new")
@cli_errors
def keystore_new(
    out: Annotated[Path, typer.Option("--out", help="Key file to create (never overwritten).")],
    password_env: PasswordEnv = "SMARTSLA_KEYSTORE_PASSWORD",
) -> None:
    """Create a fresh key in a new encrypted key file and print its address."""
    from .. import keystore

    address = keystore.create(out, _password(password_env, confirm=True))
    _console().print(f"created {escape(str(out))} for address [bold cyan]{address}[/] (mode 0600)")


@app.command("import")
@cli_errors
def keystore_import(
    out: Annotated[Path, typer.Option("--out", help="Key file to create (never overwritten).")],
    private_key_env: Annotated[str | None, typer.Option("--private-key-env", metavar="VAR", help="Environment "
                                                        "variable holding the private key; prompted for when "
                                                        "not given.")] = None,
    password_env: PasswordEnv = "SMARTSLA_KEYSTORE_PASSWORD",
) -> None:
    """Encrypt an existing private key into a new key file."""
    from .. import keystore

    if private_key_env:
        key = os.environ.get(private_key_env, "").strip()
        if not key:
            raise BadInput(f"environment variable {private_key_env} is not set or empty")
    elif os.isatty(0):
        key = str(typer.prompt("Private key (hex)", hide_input=True))
    else:
        raise BadInput("no private key: pass --private-key-env VAR or run in a terminal to be prompted")
    address = keystore.create(out, _password(password_env, confirm=True), key)
    _console().print(f"created {escape(str(out))} for address [bold cyan]{address}[/] (mode 0600)")
