"""`smartsla compile` (contracts/ to the shipped artifacts) and `smartsla deploy` (the factory)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from .. import compiler, deployments
from ..client import Factory
from ..corporate import FACTORY_NAME as CORPORATE_FACTORY
from ..corporate import CorporateFactory
from .common import DEFAULT_RPC_URL, RpcUrl, _connect, _console, _sender, cli_errors, fail

app = typer.Typer()


@app.command("compile")
@cli_errors
def compile_(
    check: Annotated[bool, typer.Option("--check", help="Only compare a fresh compilation with the committed "
                                        "artifacts; exit 1 if they differ.")] = False,
) -> None:
    """Compile contracts/ and write the artifacts shipped in the package (needs Node and `npm ci`)."""
    console = _console()
    try:
        fresh = compiler.compile_contracts()
    except compiler.CompilerUnavailable:
        raise
    except RuntimeError as exc:  # compiler errors: show the compiler's own lines after the red one
        first, _, rest = str(exc).partition("\n")
        if rest:
            _console(stderr=True).print(escape(rest), highlight=False)
        fail(first, 1)
    if not check:
        for path in compiler.write_artifacts(fresh):
            console.print(f"wrote {path.relative_to(compiler.PROJECT_ROOT)}")
        return
    differences = _artifact_differences(fresh)
    if differences:
        err = _console(stderr=True)
        err.print(f"[bold red]error:[/] [red]the committed artifacts differ from a fresh compilation "
                  f"({len(differences)}); run `smartsla compile`:[/]", soft_wrap=True)
        for line in differences:
            err.print(f"  {escape(line)}", soft_wrap=True, highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]artifacts up to date[/]: {len(fresh)} contracts match the sources "
                  f"({', '.join(sorted(fresh))})")


def _artifact_differences(fresh: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for name, artifact in sorted(fresh.items()):
        path = compiler.ARTIFACTS_DIR / f"{name}.json"
        if not path.exists():
            out.append(f"{path.name}: missing")
            continue
        committed_text = path.read_text()
        if committed_text == compiler.artifact_text(artifact):
            continue
        try:
            committed = json.loads(committed_text)
        except json.JSONDecodeError:
            out.append(f"{path.name}: not valid JSON")
            continue
        keys = sorted(k for k in set(committed) | set(artifact) if committed.get(k) != artifact.get(k))
        out.append(f"{path.name}: differs in {', '.join(keys)}" if keys else f"{path.name}: formatting differs")
    for path in sorted(compiler.ARTIFACTS_DIR.glob("*.json")):
        if path.stem not in fresh:
            out.append(f"{path.name}: committed but no longer produced by the compiler")
    return out


@app.command()
@cli_errors
def deploy(
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    from_: Annotated[str | None, typer.Option("--from", help="Sender; default: the node's first unlocked account "
                                              "(or the key's address).")] = None,
    private_key_env: Annotated[str | None, typer.Option("--private-key-env", metavar="VAR",
                                                        help="Name of an environment variable holding the "
                                                        "sender's private key (signed locally).")] = None,
) -> None:
    """Deploy the AgreementFactory, the CorporateAgreementFactory (multi-level agreements) and the
    SettlementBatch (the oracle's batched settlements) and record their addresses for the chain's id."""
    console = _console()
    chain = _connect(rpc_url)
    sender = _sender(chain, from_, private_key_env)
    contract, tx = chain.deploy("AgreementFactory", sender)
    factory = Factory(chain, contract.address)
    console.print(f"AgreementFactory deployed at [bold cyan]{factory.address}[/] on chain id {chain.chain_id}")
    console.print(f"  from {sender}, block {tx.block_number}, gas {tx.gas_used}, tx {tx.tx_hash}")
    console.print(f"  Agreement implementation at {factory.contract.functions.implementation().call()}")
    corporate = CorporateFactory.deploy(chain, sender)
    console.print(f"CorporateAgreementFactory deployed at [bold cyan]{corporate.address}[/] (multi-level agreements)")
    batch, _ = chain.deploy(deployments.SETTLEMENT_BATCH, sender)
    console.print(f"SettlementBatch deployed at [bold cyan]{batch.address}[/] (the oracle settles due periods "
                  "of many agreements in one transaction)")
    if chain.embedded:
        console.print("  [yellow]not recorded[/]: the embedded chain disappears when this command ends")
        return
    path = deployments.record(chain.chain_id, "AgreementFactory", factory.address)
    deployments.record(chain.chain_id, CORPORATE_FACTORY, corporate.address)
    deployments.record(chain.chain_id, deployments.SETTLEMENT_BATCH, batch.address)
    console.print(f"  recorded in {path}")
