"""Agreement actions from the command line, signed with a local encrypted key file:
`smartsla withdraw`, `deposit`, `terminate`, `maintenance declare`, `dispute`, `finalize`, `satisfaction`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer

from ..client import Status
from ..units import percent_to_ppm, ppm_to_percent
from .common import (
    DEFAULT_RPC_URL,
    BadInput,
    FactoryOpt,
    KeystoreOpt,
    PasswordEnv,
    RpcUrl,
    _address,
    _amount_formatter,
    _console,
    _signed_agreement,
    cli_errors,
    fail,
)

# Top-level commands (merged into the root app); the `maintenance` group beside them.
app = typer.Typer()
maintenance_app = typer.Typer(help="Maintenance windows declared on-chain by the provider.", no_args_is_help=True)

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
    evidence: Annotated[Path, typer.Option(help="Evidence: your own evidence bundle (JSON, docs/evidence.md), "
                                           "whose Merkle root goes on-chain so `smartsla verify` and "
                                           "`smartsla arbiter review` can check it; any other file: its SHA-256.")],
    keystore_path: KeystoreOpt,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    password_env: PasswordEnv = PASSWORD,
) -> None:
    """Dispute a settled period within the dispute window (customer or provider)."""
    data = evidence.read_bytes()
    chain, agreement, sender = _signed_agreement(address, keystore_path, password_env, rpc_url, factory_address)
    digest, what = _evidence_digest(data, evidence, agreement.address, period, chain.chain_id)
    agreement.dispute(period, digest, sender)
    _console().print(f"period {period} of {agreement.address} disputed by {sender}; {what} "
                     f"0x{digest.hex()} — the arbiter {agreement.terms.arbiter} decides")


def _evidence_digest(data: bytes, path: Path, agreement: str, period: int, chain_id: int) -> tuple[bytes, str]:
    """What a dispute commits on-chain: an evidence bundle's Merkle root (checkable slice by slice,
    the same commitment the watchdog makes), or any other file's SHA-256. A file that claims to be
    a bundle (a JSON object with a `version` and `services`) but is not a valid one for this
    agreement and period is refused, naming every problem, rather than silently hashed."""
    from oracle.evidence import EvidenceError, parse_bundle

    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not (isinstance(doc, dict) and "version" in doc and "services" in doc):
        return hashlib.sha256(data).digest(), "evidence sha256"
    try:
        bundle = parse_bundle(data)
    except EvidenceError as exc:
        raise BadInput(f"{path} is not a valid evidence bundle: {exc}") from None
    head, problems = bundle.head, []
    if head.agreement.lower() != agreement.lower():
        problems.append(f"it is for agreement {head.agreement}, not {agreement}")
    if head.period != period:
        problems.append(f"it is for period {head.period}, not {period}")
    if head.chain_id != chain_id:
        problems.append(f"it is for chain {head.chain_id}, not {chain_id}")
    if problems:
        raise BadInput(f"{path}: " + "; ".join(problems))
    return bundle.root, "evidence bundle root"


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


@app.command("withdraw")
@cli_errors
def withdraw_cmd(
    address: Annotated[str, typer.Argument(help="The agreement's address.")],
    keystore_path: KeystoreOpt,
    to: Annotated[str | None, typer.Option("--to", help="Pay another address (e.g. when yours cannot receive "
                                           "ETH or is blocked by the token); default: your own.")] = None,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    password_env: PasswordEnv = "SMARTSLA_KEYSTORE_PASSWORD",
) -> None:
    """Withdraw what an agreement owes you (customer or provider), signed with your key file."""
    recipient = _address(to, "--to") if to is not None else None
    if recipient is not None and int(recipient, 16) == 0:
        raise BadInput("--to must not be the zero address (the money would be burnt)")
    chain, agreement, sender = _signed_agreement(address, keystore_path, password_env, rpc_url, factory_address)
    terms = agreement.terms
    # Who is owed what is the contract's answer (NothingToWithdraw, Unauthorized...), not ours.
    role = "customer" if sender == terms.customer else "provider" if sender == terms.provider else "address"
    fmt = _amount_formatter(chain, terms.asset)
    if recipient is None or recipient == sender:
        amount = agreement.withdraw(sender)
        _console().print(f"The {role} {sender} withdrew [bold]{fmt(amount)}[/] from {agreement.address}.")
        return
    amount = agreement.withdraw_to(recipient, sender)
    _console().print(f"The {role} {sender} withdrew [bold]{fmt(amount)}[/] from {agreement.address}, "
                     f"paid to {recipient}.")


DepositWhat = Annotated[str | None, typer.Option(
    "--what", help="'fees' (the customer prepays every period's fee) or 'collateral' (the provider's bond); "
    "default: what the key file's party owes.")]


@app.command("deposit")
@cli_errors
def deposit_cmd(
    address: Annotated[str, typer.Argument(help="The agreement's address.")],
    keystore_path: KeystoreOpt,
    what: DepositWhat = None,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    password_env: PasswordEnv = "SMARTSLA_KEYSTORE_PASSWORD",
) -> None:
    """Deposit the customer's fees or the provider's collateral (ETH, or an ERC-20 after approving
    exactly that amount), signed with your key file. Both deposited: the agreement is Active."""
    if what is not None and what not in ("fees", "collateral"):
        raise BadInput(f"--what must be 'fees' or 'collateral', not {what!r}")
    chain, agreement, sender = _signed_agreement(address, keystore_path, password_env, rpc_url, factory_address)
    terms = agreement.terms
    roles = {"fees": terms.customer, "collateral": terms.provider}
    if what is None:
        if sender not in roles.values():
            raise BadInput(f"the key file's address {sender} is neither the customer ({terms.customer}) nor the "
                           f"provider ({terms.provider}) of {agreement.address}: it has nothing to deposit")
        what = "fees" if sender == terms.customer else "collateral"
    party = "customer" if what == "fees" else "provider"
    amount = terms.total_fees if what == "fees" else terms.collateral
    fmt = _amount_formatter(chain, terms.asset)
    # Whether this party may deposit now is the contract's answer (asked before any gas or
    # approval is spent; Unauthorized, WrongStatus, AlreadyDeposited, TermStarted...), not ours.
    agreement.check_deposit(what == "fees", sender)
    held = chain.balance(sender, None if terms.is_native else terms.asset)
    if held < amount:
        fail(f"{sender} holds only {fmt(held)}; the {what} of {agreement.address} are {fmt(amount)}", 1)
    result = agreement.deposit_fees(sender) if what == "fees" else agreement.deposit_collateral(sender)
    after = agreement.snapshot()
    _console().print(f"The {party} {sender} deposited [bold]{fmt(amount)}[/] of {what} into {agreement.address} "
                     f"(block {result.block_number}). Status: [bold]{after.status.name}[/]"
                     + ("" if after.status == Status.Active else
                        f" (waiting for the {'provider' if what == 'fees' else 'customer'})") + ".")


@app.command("terminate")
@cli_errors
def terminate_cmd(
    address: Annotated[str, typer.Argument(help="The agreement's address.")],
    keystore_path: KeystoreOpt,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
    password_env: PasswordEnv = "SMARTSLA_KEYSTORE_PASSWORD",
) -> None:
    """Invoke the disaster clause (customer only): end the agreement, get back the unearned fees."""
    chain, agreement, sender = _signed_agreement(address, keystore_path, password_env, rpc_url, factory_address)
    terms = agreement.terms
    tx = agreement.terminate(sender)
    event = agreement.contract.events.Terminated().process_receipt(tx.receipt)[0]["args"]
    fmt = _amount_formatter(chain, terms.asset)
    _console().print(f"Terminated {agreement.address} (block {tx.block_number}): {fmt(int(event['refundedFees']))} "
                     f"of fees refunded to the customer, {fmt(int(event['returnedCollateral']))} of collateral "
                     "returned to the provider. Withdraw with `smartsla withdraw`.")
