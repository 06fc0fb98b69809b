"""Agreement actions from the command line, signed with a local encrypted key file:
`smartsla maintenance declare`, `smartsla dispute`, `smartsla finalize`, `smartsla satisfaction`.

(`withdraw` and `terminate` live in smartsla.cli beside the keystore commands.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Annotated

import typer

from ..units import percent_to_ppm, ppm_to_percent
from . import (
    DEFAULT_RPC_URL,
    BadInput,
    FactoryOpt,
    KeystoreOpt,
    PasswordEnv,
    RpcUrl,
    _console,
    _signed_agreement,
    app,
    cli_errors,
)

maintenance_app = typer.Typer(help="Maintenance windows declared on-chain by the provider.", no_args_is_help=True)
app.add_typer(maintenance_app, name="maintenance")

Address = Annotated[str, typer.Argument(help="The agreement's address.")]
PASSWORD = "SMARTSLA_KEYSTORE_PASSWORD"


def _when(text: str) -> int:
    """ISO 8601 with a time zone, or unix seconds."""
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"not a time: {text!r} (ISO 8601 with a zone, e.g. 2027-01-05T02:00:00Z, "
                       "or unix seconds)") from None
    if moment.tzinfo is None:
        raise BadInput(f"give {text!r} a time zone (e.g. a trailing Z for UTC)")
    return int(moment.timestamp())


@maintenance_app.command("declare")
@cli_errors
def maintenance_declare(
    address: Address,
    start: Annotated[str, typer.Option(help="Start: ISO 8601 with a zone, or unix seconds.")],
    end: Annotated[str, typer.Option(help="End: ISO 8601 with a zone, or unix seconds.")],
    keystore_path: KeystoreOpt,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    password_env: PasswordEnv = PASSWORD,
) -> None:
    """Declare a maintenance window (provider). With the agreed notice it is excluded from uptime."""
    chain, agreement, sender = _signed_agreement(address, keystore_path, password_env, rpc_url, factory_address)
    if sender != agreement.terms.provider:
        raise BadInput(f"only the provider {agreement.terms.provider} declares maintenance; the key is {sender}")
    agreement.declare_maintenance(_when(start), _when(end), sender)
    window = agreement.maintenance_windows()[-1]
    note = "[green]with notice: excluded from the figures[/]" if window.with_notice else \
        f"[yellow]short notice (< {agreement.terms.maintenance_notice} s): counts as downtime[/]"
    _console().print(f"maintenance {window.start} → {window.end} declared on {agreement.address}: {note}")


@app.command("dispute")
@cli_errors
def dispute_cmd(
    address: Address,
    period: Annotated[int, typer.Argument(help="The settled period to dispute (0-based).")],
    evidence: Annotated[Path, typer.Option(help="Evidence file; its SHA-256 goes on-chain.")],
    keystore_path: KeystoreOpt,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    password_env: PasswordEnv = PASSWORD,
) -> None:
    """Dispute a settled period within the dispute window (customer or provider)."""
    chain, agreement, sender = _signed_agreement(address, keystore_path, password_env, rpc_url, factory_address)
    digest = hashlib.sha256(evidence.read_bytes()).digest()
    agreement.dispute(period, digest, sender)
    _console().print(f"period {period} of {agreement.address} disputed by {sender}; evidence sha256 "
                     f"{digest.hex()} — the arbiter {agreement.terms.arbiter} decides")


@app.command("finalize")
@cli_errors
def finalize_cmd(
    address: Address,
    period: Annotated[int, typer.Argument(help="The settled period whose dispute window has passed.")],
    keystore_path: KeystoreOpt,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    password_env: PasswordEnv = PASSWORD,
) -> None:
    """Make a settled period payable once its dispute window has passed (anyone)."""
    chain, agreement, sender = _signed_agreement(address, keystore_path, password_env, rpc_url, factory_address)
    agreement.finalize(period, sender)
    _console().print(f"period {period} of {agreement.address} is payable: `smartsla withdraw`")


@app.command("satisfaction")
@cli_errors
def satisfaction_cmd(
    address: Address,
    period: Annotated[int, typer.Argument(help="The period (0-based), not yet settled.")],
    score: Annotated[str, typer.Argument(help="Satisfaction score, e.g. 85%.")],
    keystore_path: KeystoreOpt,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    password_env: PasswordEnv = PASSWORD,
) -> None:
    """Attest the customer's satisfaction score for a period (customer)."""
    chain, agreement, sender = _signed_agreement(address, keystore_path, password_env, rpc_url, factory_address)
    ppm = percent_to_ppm(score.rstrip("%"))
    agreement.attest_satisfaction(period, ppm, sender)
    _console().print(f"satisfaction {ppm_to_percent(ppm)} attested for period {period} of {agreement.address}")
