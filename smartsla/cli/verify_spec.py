"""`smartsla agreement verify-spec FILE ADDRESS`: is this file the document the agreement was made from?

The agreement holds keccak256 of the canonical form of its spec (Options.specHash, set by
`agreement create`; smartsla.spec_hash). The file is validated, hashed the same way and
compared. Exit codes: 0 matches, 1 differs (naming the terms that differ, if any do), 2 the file
or the agreement cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from web3.exceptions import Web3Exception

from ..errors import SmartSLAError
from ..spec import SpecError, load_spec
from ..spec_hash import spec_hash
from ..terms import ZERO_HASH, Terms
from .common import DEFAULT_RPC_URL, FactoryOpt, RpcUrl, _address, _connect, _console, _factory, fail

app = typer.Typer()  # `smartsla agreement verify-spec`, added to the agreement group


def term_differences(mine: Terms, theirs: Terms) -> list[str]:
    """'field: file X, chain Y' for every term that differs (the spec hash aside)."""
    a, b = mine.model_dump(mode="json"), theirs.model_dump(mode="json")
    out: list[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), f"{where}.{key}" if where else key)
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (p, q) in enumerate(zip(x, y, strict=True)):
                walk(p, q, f"{where}[{i}]")
        elif x != y:
            out.append(f"{where}: file {x!r}, chain {y!r}")

    a.pop("spec_hash", None)
    b.pop("spec_hash", None)
    walk(a, b, "")
    return out


@app.command("verify-spec")
def agreement_verify_spec(
    file: Annotated[Path, typer.Argument(help="The spec (YAML) to check.")],
    address: Annotated[str, typer.Argument(help="The agreement's address.")],
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
) -> None:
    """Say whether FILE is the document agreement ADDRESS was created from (exit 0 matches,
    1 differs, 2 unreadable file or agreement)."""
    try:
        spec = load_spec(file)
    except SpecError as exc:
        fail(str(exc), 2)
    try:
        where = _address(address, "agreement address")
        agreement = _factory(_connect(rpc_url), factory_address).agreement(where)
        onchain = agreement.terms
    except (SmartSLAError, ValueError, requests.RequestException, Web3Exception) as exc:
        fail(f"cannot read agreement {address}: {exc}", 2)
    mine = spec_hash(spec)
    console = _console()
    if mine == onchain.spec_hash:
        console.print(f"[green]matches[/]: {file} is the document agreement {agreement.address} was created from "
                      f"(spec hash {mine})", soft_wrap=True, highlight=False)
        return
    recorded = "no spec hash (created without a document)" if onchain.spec_hash == ZERO_HASH else onchain.spec_hash
    console.print(f"[red]differs[/]: {file} hashes to {mine}; agreement {agreement.address} holds {recorded}",
                  soft_wrap=True, highlight=False)
    differences = term_differences(spec.to_terms(), onchain)
    if differences:
        console.print("terms that differ:", highlight=False)
        for line in differences:
            console.print(f"  {line}", soft_wrap=True, highlight=False)
    else:
        console.print("the on-chain terms are the same: the document differs in what the chain does not hold "
                      "(scope, exclusions, names, wording of a clause)", soft_wrap=True, highlight=False)
    raise typer.Exit(1)
