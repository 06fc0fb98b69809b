"""Deploy the AgreementFactory to a running chain and record its address per chain id.

    python scripts/deploy.py [--rpc-url http://127.0.0.1:8545] [--from ADDRESS] [--private-key KEY]

The sender is, in order: the key in --private-key or $SMARTSLA_PRIVATE_KEY (signed locally, for
nodes that hold no keys), --from (an account the node unlocks), or the node's first unlocked
account. The address is written with smartsla.deployments.record() to deployments.json in the
current directory (or $SMARTSLA_DEPLOYMENTS), where the CLI and the oracle look it up.

Brownie (``brownie run scripts/deploy.py --network ganache-local``, from .venv-brownie) calls
``main()`` with no arguments: then nothing is parsed from the command line (it holds Brownie's own
arguments) and the settings come from the environment. When Brownie is connected to a network,
the factory is deployed with Brownie itself (``AgreementFactory.deploy``) on that network, from
$SMARTSLA_PRIVATE_KEY or Brownie's first account, and recorded in the same deployments.json
($SMARTSLA_DEPLOYMENTS honoured) without importing smartsla: Brownie's environment pins web3 7,
smartsla needs web3 8. Otherwise (main() called with no arguments outside Brownie) the settings
are $SMARTSLA_RPC_URL, $SMARTSLA_PRIVATE_KEY and $SMARTSLA_DEPLOYMENTS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

PROJECT_ROOT = Path(__file__).resolve().parent.parent

try:
    import smartsla  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(PROJECT_ROOT))

# smartsla's modules are imported where they are used: under Brownie they are not (see above).

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
KEY_ENV = "SMARTSLA_PRIVATE_KEY"
URL_ENV = "SMARTSLA_RPC_URL"
DEPLOYMENTS_ENV = "SMARTSLA_DEPLOYMENTS"


def deploy(rpc_url: str = DEFAULT_RPC_URL, *, private_key: str | None = None, sender: str | None = None,
           deployments_file: Path | None = None) -> tuple[str, Path, int]:
    """Deploy the factory and the SettlementBatch from the chosen sender; returns (the factory's
    address, deployments file, chain id)."""
    from smartsla import deployments
    from smartsla.chain import Chain
    from smartsla.client import Factory
    from smartsla.errors import SmartSLAError

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
    # The oracle settles the due periods of many agreements in one transaction through it, and
    # finds it in the record beside the factory (oracle/config.py, chain.batch_contract).
    batch, _ = chain.deploy(deployments.SETTLEMENT_BATCH, sender)
    chain_id = chain.chain_id
    path = deployments.record(chain_id, "AgreementFactory", factory.address, path=deployments_file)
    deployments.record(chain_id, deployments.SETTLEMENT_BATCH, batch.address, path=deployments_file)
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


# ---------------------------------------------------------------------------- under Brownie


def brownie_network() -> ModuleType | None:
    """Brownie's ``network`` module when this runs under Brownie connected to a network, else None."""
    if "brownie" not in sys.modules:  # `brownie run` has imported it; nothing else here does
        return None
    try:
        from brownie import network
    except ImportError:
        return None
    return network if network.is_connected() else None


def record_address(chain_id: int, name: str, address: str, path: Path | None = None) -> Path:
    """Record `name` at `address` for `chain_id` in deployments.json, in smartsla.deployments'
    format ({"<chain id>": {"<name>": "<checksum address>"}}, other entries kept), rewritten
    atomically. For Brownie's environment, which cannot import smartsla: pass a checksum address."""
    path = Path(path or os.environ.get(DEPLOYMENTS_ENV) or Path.cwd() / "deployments.json")
    data = json.loads(path.read_text()) if path.exists() else {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold an object keyed by chain id")
    data.setdefault(str(chain_id), {})[name] = address
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def _brownie_registry_bug_noted() -> Iterator[None]:
    """Brownie 1.22.2 adds every contract deployed on a live network to its own registry
    (~/.brownie/deployments.db) in a background thread, which fails with a type error of its
    mypyc build ("dict object expected; got brownie.project.sources.Sources") and prints a
    traceback. Nothing here uses that registry (deployments.json is ours): say so in one line."""
    original = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
        if args.exc_type is TypeError and any(frame.name == "_add_deployment" for frame in frames):
            print(f"note: Brownie could not add the contract to its own registry ~/.brownie/deployments.db "
                  f"({args.exc_value}; a Brownie 1.22.2 bug); deployments.json is not affected", file=sys.stderr)
            return
        original(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = original


def deploy_with_brownie(*, private_key: str | None = None,
                        deployments_file: Path | None = None) -> tuple[str, Path, int]:
    """Deploy the factory with Brownie on its connected network; returns (address, file, chain id).

    The sender is the account of `private_key`, else Brownie's first account (the node's first
    unlocked account on a live network, Brownie's own on a development one)."""
    from brownie import accounts, chain, project
    from brownie.convert import to_address

    # Brownie's own chain bookkeeping calls its deprecated rpc.* functions and warns about it.
    warnings.filterwarnings("ignore", r"rpc\.\w+ should not be called directly", FutureWarning)

    loaded = project.get_loaded_projects()
    if not loaded:
        raise RuntimeError("no Brownie project is loaded: run `brownie run scripts/deploy.py` in the project root")
    if private_key:
        sender = accounts.add(private_key)
    elif len(accounts) > 0:
        sender = accounts[0]
    else:
        raise RuntimeError(f"the network unlocks no account: set ${KEY_ENV}")
    with _brownie_registry_bug_noted():
        factory = loaded[0].AgreementFactory.deploy({"from": sender})
    address = to_address(factory.address)
    path = record_address(chain.id, "AgreementFactory", address, deployments_file)
    return address, path, chain.id


# ---------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `python scripts/deploy.py ...` and for Brownie (which passes nothing)."""
    if argv is None and (network := brownie_network()) is not None:
        address, path, chain_id = deploy_with_brownie(private_key=os.environ.get(KEY_ENV) or None)
        print(f"AgreementFactory deployed at {address} on chain {chain_id} (Brownie network {network.show_active()})")
        print(f"recorded in {path}")
        return 0
    from smartsla.errors import SmartSLAError

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
