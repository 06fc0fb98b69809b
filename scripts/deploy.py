"""Deploy the AgreementFactory to a running chain and record its address per chain id.

    python scripts/deploy.py [--rpc-url http://127.0.0.1:8545] [--from ADDRESS] [--private-key KEY]

The sender is, in order: the key in --private-key or $SMARTSLA_PRIVATE_KEY (signed locally, for
nodes that hold no keys), --from (an account the node unlocks), or the node's first unlocked
account. The address is written with smartsla.deployments.record() to deployments.json in the
project root (or $SMARTSLA_DEPLOYMENTS), where the CLI and the oracle look it up.

Brownie (``brownie run scripts/deploy.py``) calls ``main()`` with no arguments: then nothing is
parsed from the command line (it holds Brownie's own arguments) and the settings come from the
environment: $SMARTSLA_RPC_URL, $SMARTSLA_PRIVATE_KEY, $SMARTSLA_DEPLOYMENTS.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    import smartsla  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smartsla import deployments
from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.errors import SmartSLAError

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
KEY_ENV = "SMARTSLA_PRIVATE_KEY"
URL_ENV = "SMARTSLA_RPC_URL"


def deploy(rpc_url: str = DEFAULT_RPC_URL, *, private_key: str | None = None, sender: str | None = None,
           deployments_file: Path | None = None) -> tuple[str, Path, int]:
    """Deploy the factory from the chosen sender; returns (address, deployments file, chain id)."""
    if rpc_url == "embedded":
        raise SmartSLAError("the embedded chain lives only inside one process: deploy to a node's URL")
    chain = Chain.connect(rpc_url)
    if private_key:
        try:
            account = chain.add_key(private_key)
        except (ValueError, TypeError) as exc:  # never echo the key itself
            raise SmartSLAError(f"the private key is not valid ({exc.__class__.__name__})") from None
        if sender and sender.lower() != account.lower():
            raise SmartSLAError(f"--from {sender} does not match the private key's address {account}")
        sender = account
    elif sender is None:
        unlocked = chain.w3.eth.accounts
        if not unlocked:
            raise SmartSLAError(f"the node at {rpc_url} unlocks no account: pass --private-key or set ${KEY_ENV}")
        sender = unlocked[0]
    factory = Factory.deploy(chain, sender)
    chain_id = chain.chain_id
    path = deployments.record(chain_id, "AgreementFactory", factory.address, path=deployments_file)
    return factory.address, path, chain_id


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Deploy the smartsla AgreementFactory and record its address.")
    parser.add_argument("--rpc-url", default=os.environ.get(URL_ENV, DEFAULT_RPC_URL),
                        help=f"JSON-RPC URL of the chain (default ${URL_ENV} or {DEFAULT_RPC_URL})")
    parser.add_argument("--from", dest="sender", default=None,
                        help="an account the node unlocks (default: its first account)")
    parser.add_argument("--private-key", default=None,
                        help=f"deploy from this key, signed locally (prefer ${KEY_ENV}: a command line is visible "
                             "to other users)")
    parser.add_argument("--deployments", type=Path, default=None,
                        help="deployments file (default $SMARTSLA_DEPLOYMENTS or deployments.json in the project root)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `python scripts/deploy.py ...` and for Brownie (which passes nothing)."""
    # Brownie passes nothing and sys.argv holds Brownie's own arguments: then the settings come
    # from the environment only.
    args = parse_args([] if argv is None else argv)
    private_key = args.private_key or os.environ.get(KEY_ENV) or None
    try:
        address, path, chain_id = deploy(args.rpc_url, private_key=private_key, sender=args.sender,
                                         deployments_file=args.deployments)
    except SmartSLAError as exc:
        if argv is None:  # under Brownie: raise, so that `brownie run` reports the failure
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"AgreementFactory deployed at {address} on chain {chain_id} ({args.rpc_url})")
    print(f"recorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
