"""Shared by every command module of `smartsla`: the console, the error handling that turns
library and input errors into one red line and an exit code (1: something failed, 2: bad input),
the shared options, and the helpers that connect to the chain, find the factory and load a signer.

Command modules import from here; this module imports no command module (no import cycle).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import requests
import typer
from click.exceptions import Abort, ClickException, Exit
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from web3 import Web3
from web3.exceptions import Web3Exception

from .. import compiler, deployments
from ..addresses import parse_address
from ..chain import Chain
from ..client import Agreement, Factory
from ..errors import ContractReverted, SmartSLAError
from ..presentation import fmt_eth, format_amount
from ..spec import SpecError, load_spec

DEFAULT_RPC_URL = "http://127.0.0.1:8545"


def _console(stderr: bool = False) -> Console:
    # Pipes and CI logs get 120 columns rather than Rich's 80, so the tables stay readable.
    width = None if (os.environ.get("COLUMNS") or (stderr and os.isatty(2)) or (not stderr and os.isatty(1))) else 120
    return Console(stderr=stderr, width=width, soft_wrap=True)


# ---------------------------------------------------------------------------- errors
class BadInput(ValueError):
    """Input from the command line that cannot be used (exit code 2)."""


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one red line on stderr and exit with `code`."""
    line = " ".join(str(message).split()) or "unknown error"
    _console(stderr=True).print(f"[bold red]error:[/] [red]{escape(line)}[/]", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or exc.title
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return f"invalid {exc.title}: " + "; ".join(parts)


F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(fn: F) -> F:
    """Turn library and input errors raised by a command into one red line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (Exit, Abort, ClickException):  # Typer's own ways out (Exit is a RuntimeError)
            raise
        except ValidationError as exc:
            fail(_validation_message(exc), 2)
        except ContractReverted as exc:  # the contract's own answer, in its own words
            fail(f"the contract refused: {exc.explained()}", 1)
        except SmartSLAError as exc:
            fail(str(exc), 2 if isinstance(exc, ValueError) else 1)
        except ValueError as exc:
            fail(str(exc), 2)
        except (requests.ConnectionError, requests.Timeout) as exc:
            fail(f"the chain stopped answering: {exc.__class__.__name__}", 1)
        except Web3Exception as exc:
            fail(f"{exc.__class__.__name__}: {exc}", 1)
        except compiler.CompilerUnavailable as exc:
            fail(str(exc), 1)
        except OSError as exc:
            fail(f"{exc.__class__.__name__}: {exc}", 1)

    return wrapper  # type: ignore[return-value]


# ---------------------------------------------------------------------------- shared options
RpcUrl = Annotated[
    str,
    typer.Option("--rpc-url", envvar="SMARTSLA_RPC_URL", help="JSON-RPC URL of the chain (http:// or https://)."),
]
FactoryOpt = Annotated[
    str | None,
    typer.Option("--factory", help="AgreementFactory address; default: the one recorded by `smartsla deploy` "
                 "for the chain's id."),
]


def _address(value: str, what: str) -> str:
    try:
        return parse_address(value, what)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _connect(url: str) -> Chain:
    return Chain.connect(url)


def _factory(chain: Chain, address: str | None) -> Factory:
    """The factory given by --factory, or the one recorded for this chain; checked to be one."""
    if address is None:
        address = deployments.lookup(chain.chain_id)
        if address is None:
            raise SmartSLAError(
                f"no AgreementFactory recorded for chain id {chain.chain_id} in {deployments.deployments_path()}: "
                "pass --factory ADDRESS or run `smartsla deploy`"
            )
        source = f"recorded in {deployments.deployments_path()}"
    else:
        address = _address(address, "--factory")
        source = "given by --factory"
    if not chain.w3.eth.get_code(Web3.to_checksum_address(address)):
        raise SmartSLAError(f"no contract at {address} ({source}) on chain id {chain.chain_id}: "
                            "wrong address, or the chain was restarted since the deployment")
    factory = Factory(chain, address)
    try:
        factory.contract.functions.implementation().call()
    except Exception as exc:  # any failure here means: not a factory
        raise SmartSLAError(f"the contract at {address} ({source}) is not an AgreementFactory") from exc
    return factory


def _amount_formatter(chain: Chain, asset: str) -> Callable[[int], str]:
    """ETH for native agreements; for an ERC-20, its decimals and symbol when it has them."""
    if int(asset, 16) == 0:
        return fmt_eth
    token = chain.contract("IERC20Metadata", asset)
    try:
        symbol = str(token.functions.symbol().call())
        decimals = int(token.functions.decimals().call())
    except Exception:  # a token without the optional metadata: raw units
        return lambda units: f"{units} units"

    return lambda units: format_amount(units, decimals, symbol)


def _sender(chain: Chain, from_: str | None, key_env: str | None) -> str:
    if key_env:
        key = os.environ.get(key_env, "").strip()
        if not key:
            raise BadInput(f"environment variable {key_env} is not set or empty")
        try:
            address = chain.add_key(key)
        except Exception:  # never echo anything about the key itself
            raise BadInput(f"environment variable {key_env} does not hold a valid private key") from None
        if from_ is not None and _address(from_, "--from") != address:
            raise BadInput(f"--from {from_} does not match the key in {key_env} (address {address})")
        return address
    node_accounts = list(chain.w3.eth.accounts)
    if from_ is not None:
        address = _address(from_, "--from")
        if address not in node_accounts:
            raise BadInput(f"the node at {chain.url} holds no key for {address}: pass --private-key-env VAR")
        return address
    if not node_accounts:
        raise BadInput(f"the node at {chain.url} unlocks no accounts: pass --private-key-env VAR")
    return node_accounts[0]


PasswordEnv = Annotated[str, typer.Option("--password-env", metavar="VAR", help="Environment variable holding the "
                                          "keystore password; prompted for when it is unset.")]
KeystoreOpt = Annotated[Path, typer.Option("--keystore", help="Encrypted key file (smartsla keystore new/import).")]


def _password(env_var: str, *, confirm: bool) -> str:
    value = os.environ.get(env_var)
    if value:
        return value
    if not os.isatty(0):
        raise BadInput(f"no password: set {env_var} or run in a terminal to be prompted")
    return str(typer.prompt("Keystore password", hide_input=True, confirmation_prompt=confirm))


def _signed_agreement(address: str, keystore_path: Path, password_env: str, rpc_url: str,
                      factory_address: str | None) -> tuple[Chain, Agreement, str]:
    from .. import keystore

    address = _address(address, "agreement address")
    account = keystore.load(keystore_path, _password(password_env, confirm=False))
    chain = _connect(rpc_url)
    factory = _factory(chain, factory_address)
    agreement = factory.agreement(address)
    sender = chain.add_key(account.key)
    return chain, agreement, sender


def _load_spec(path: Path):  # noqa: ANN202 - AgreementSpec
    """Read and validate a spec; its errors (file, line, field) end the command with exit code 2."""
    try:
        return load_spec(path)
    except SpecError as exc:
        fail(str(exc), 2)


# A term must start late enough for both deposits to be mined before it (the contracts refuse
# deposits once the term has started, so that nobody activates an agreement with hindsight, and
# periods that started before the oracle could watch them would be reported unmeasured).
MIN_LEAD_S = 30  # two deposits, a few blocks each, even on a slow public network
WARN_LEAD_S = 600


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_start(file: Path, start: int, now: int) -> int:
    """Seconds from now to the term's start; refuses (exit 2) a start in the past or too close."""
    if start <= now:
        raise BadInput(f"{file}: timeWindow.start {_iso(start)} is in the past (the chain and this machine say "
                       f"{_iso(now)}): periods nobody measured would be settled; choose a future start")
    if start - now < MIN_LEAD_S:
        raise BadInput(f"{file}: timeWindow.start {_iso(start)} is only {start - now} s away: both deposits "
                       f"could not be mined before it (deposits are refused once the term has started); "
                       f"choose a start at least {MIN_LEAD_S} s ahead")
    return start - now
