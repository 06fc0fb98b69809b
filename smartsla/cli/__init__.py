"""The `smartsla` command line (Typer + Rich).

Commands are grouped so that later work can add groups (`oracle`, `spec`, `serve`, ...) beside
`agreement`. Every error the library raises on purpose, and every bad input, ends as one red line
on stderr and exit code 1 (something failed) or 2 (bad input): never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import requests
import typer
from click.exceptions import Abort, ClickException, Exit
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from web3 import Web3
from web3.exceptions import Web3Exception

from .. import __version__, compiler, deployments
from ..chain import EMBEDDED, Chain
from ..client import Agreement, Factory, Status
from ..demo import fmt_eth, fmt_time, print_terms, run_demo
from ..errors import ContractReverted, SmartSLAError
from ..terms import parse_address
from ..units import format_amount, ppm_to_percent

DEFAULT_RPC_URL = "http://127.0.0.1:8545"


def _console(stderr: bool = False) -> Console:
    # Pipes and CI logs get 120 columns rather than Rich's 80, so the tables stay readable.
    width = None if (os.environ.get("COLUMNS") or (stderr and os.isatty(2)) or (not stderr and os.isatty(1))) else 120
    return Console(stderr=stderr, width=width, soft_wrap=True)


app = typer.Typer(
    name="smartsla",
    help="Service Level Agreements that enforce themselves: escrow, oracle reports, credits paid on-chain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback must never print a private key held in a local
)
agreement_app = typer.Typer(help="Inspect one agreement.", no_args_is_help=True)
app.add_typer(agreement_app, name="agreement")


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
        except ContractReverted as exc:
            fail(f"the contract refused: {exc}", 1)
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
    token = chain.contract("TestToken", asset)
    try:
        symbol = str(token.functions.symbol().call())
        decimals = int(token.functions.decimals().call())
    except Exception:  # a token without the optional metadata: raw units
        return lambda units: f"{units} units"

    return lambda units: format_amount(units, decimals, symbol)


# ---------------------------------------------------------------------------- top-level commands
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


@app.command()
@cli_errors
def demo(
    rpc_url: Annotated[str, typer.Option("--rpc-url", help="'embedded' (an in-process chain) or a dev chain's "
                                         "JSON-RPC URL (Anvil, Ganache: it travels in time).")] = EMBEDDED,
    serve: Annotated[bool, typer.Option("--serve", help="Afterwards keep the chain and serve the dashboard "
                                        "and API on it (until Ctrl-C).")] = False,
    host: Annotated[str, typer.Option("--host", help="Address to listen on with --serve.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port with --serve.")] = 8000,
) -> None:
    """Run one agreement's whole life, from deposits to withdrawals, and prove the books balance."""
    result = run_demo(_console(), rpc_url)
    if serve:
        from ..web.demo_serve import serve_demo

        serve_demo(result, host=host, port=port, console=_console())


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
    """Deploy the AgreementFactory and record its address for the chain's id."""
    console = _console()
    chain = _connect(rpc_url)
    sender = _sender(chain, from_, private_key_env)
    contract, tx = chain.deploy("AgreementFactory", sender)
    factory = Factory(chain, contract.address)
    console.print(f"AgreementFactory deployed at [bold cyan]{factory.address}[/] on chain id {chain.chain_id}")
    console.print(f"  from {sender}, block {tx.block_number}, gas {tx.gas_used}, tx {tx.tx_hash}")
    console.print(f"  Agreement implementation at {factory.contract.functions.implementation().call()}")
    if chain.embedded:
        console.print("  [yellow]not recorded[/]: the embedded chain disappears when this command ends")
        return
    path = deployments.record(chain.chain_id, "AgreementFactory", factory.address)
    console.print(f"  recorded in {path}")


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


# ---------------------------------------------------------------------------- agreements
def _status_style(status: Status) -> str:
    return {Status.Pending: "yellow", Status.Active: "green", Status.Ended: "blue", Status.Terminated: "red",
            Status.Cancelled: "dim", Status.Expired: "magenta"}[status]


@agreement_app.command("status")
@cli_errors
def agreement_status(
    address: Annotated[str, typer.Argument(help="The agreement's address.")],
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
) -> None:
    """Terms, escrow and progress of one agreement."""
    address = _address(address, "agreement address")
    console = _console()
    chain = _connect(rpc_url)
    factory = _factory(chain, factory_address)
    agreement = factory.agreement(address)
    terms = agreement.terms
    fmt = _amount_formatter(chain, terms.asset)
    console.print(f"Agreement [bold cyan]{agreement.address}[/] (factory {factory.address}, chain id {chain.chain_id})")
    print_terms(console, terms, parties=True, fmt=fmt)

    snap = agreement.snapshot()
    balance = agreement.balance()
    state = Table(title="State", title_justify="left", show_header=False)
    state.add_column("item")
    state.add_column("value")
    style = _status_style(snap.status)
    state.add_row("status", f"[{style}]{snap.status.name}[/]" + (" (disaster clause triggered)"
                                                                 if snap.disaster_occurred else ""))
    state.add_row("settled periods", f"{snap.settled_periods} of {terms.period_count}")
    if snap.status == Status.Active and snap.settled_periods < terms.period_count:
        state.add_row("next period ends", fmt_time(terms.period_end(snap.settled_periods)))
    state.add_row("fees deposited", "yes" if snap.fees_deposited else "no")
    state.add_row("collateral deposited", "yes" if snap.collateral_deposited else "no")
    state.add_row("fees escrowed", fmt(snap.fees_escrowed))
    state.add_row("collateral escrowed", fmt(snap.collateral_escrowed))
    state.add_row("owed to the customer", fmt(snap.owed_to_customer))
    state.add_row("owed to the provider", fmt(snap.owed_to_provider))
    held = f"{fmt(balance)}"
    if balance != snap.held:
        held += f" [bold red](its books say {fmt(snap.held)})[/]"
    state.add_row("contract balance", held)
    console.print(state)

    settlements = agreement.settlements()
    if settlements:
        table = Table(title="Settlements", title_justify="left")
        table.add_column("period", justify="right")
        for s in terms.services:
            table.add_column(s.name, justify="right")
        table.add_column("credit paid", justify="right")
        table.add_column("fee earned", justify="right")
        for st in settlements:
            values = [ppm_to_percent(v) if v >= terms.termination_ppm else f"[red]{ppm_to_percent(v)}[/]"
                      for v in st.values_ppm]
            table.add_row(str(st.period), *values, fmt(st.credit_paid), fmt(st.fee_earned))
        console.print(table)


@app.command("agreements")
@cli_errors
def agreements_list(
    provider: Annotated[str | None, typer.Option("--provider", help="List this provider's agreements.")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="List this customer's agreements.")] = None,
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    factory_address: FactoryOpt = None,
) -> None:
    """List agreements from the factory's registry, by provider and/or customer."""
    if provider is None and customer is None:
        raise BadInput("give --provider ADDRESS or --customer ADDRESS (or both)")
    provider = _address(provider, "--provider") if provider else None
    customer = _address(customer, "--customer") if customer else None
    console = _console()
    chain = _connect(rpc_url)
    factory = _factory(chain, factory_address)
    found: list[Agreement]
    if provider is not None:
        found = factory.agreements_of_provider(provider)
        if customer is not None:
            found = [a for a in found if a.terms.customer == customer]
    else:
        assert customer is not None
        found = factory.agreements_of_customer(customer)
    who = " and ".join(f"{role} {addr}" for role, addr in (("provider", provider), ("customer", customer)) if addr)
    if not found:
        console.print(f"No agreements for {who} in the factory at {factory.address}.")
        return
    table = Table(title=f"Agreements of {who}", title_justify="left")
    # The party listed by is the same on every row: show only the other one, under the address.
    shown_parties = [p for p, given in (("provider", provider), ("customer", customer)) if given is None]
    table.add_column("agreement" + "".join(f" / {p}" for p in shown_parties), no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("services")
    for col in ("settled", "fee / period", "collateral escrowed"):
        table.add_column(col, justify="right")
    for a in found:
        terms = a.terms
        snap = a.snapshot()
        fmt = _amount_formatter(chain, terms.asset)
        cell = "\n".join([a.address, *(f"[dim]{p}[/] {getattr(terms, p)}" for p in shown_parties)])
        table.add_row(cell, f"[{_status_style(snap.status)}]{snap.status.name}[/]",
                      ", ".join(s.name for s in terms.services), f"{snap.settled_periods}/{terms.period_count}",
                      fmt(terms.fee_per_period), fmt(snap.collateral_escrowed))
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()


oracle_app = typer.Typer(help="Run and check the oracle daemon.", no_args_is_help=True)
app.add_typer(oracle_app, name="oracle")


@oracle_app.command("run")
def oracle_run(
    config: Annotated[Path, typer.Option("--config", help="Oracle YAML configuration.")],
    log_level: Annotated[str, typer.Option(help="Log level (JSON logs on stderr).")] = "INFO",
) -> None:
    """Run the oracle daemon until SIGTERM: probe, store, report each period on-chain."""
    from oracle.__main__ import main as oracle_main

    raise typer.Exit(oracle_main(["--config", str(config), "--log-level", log_level]))


@oracle_app.command("check")
def oracle_check(config: Annotated[Path, typer.Option("--config", help="Oracle YAML configuration.")]) -> None:
    """Validate the configuration file only (no chain, no key needed)."""
    from oracle.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        fail(str(exc), code=2)
    _console().print(f"[green]ok[/]: {config} serves {len(cfg.agreements)} listed agreement(s)"
                     f"{' and discovers more' if cfg.discover else ''}")


# ---------------------------------------------------------------------------- web API and dashboard
@app.command("serve")
@cli_errors
def serve_cmd(
    rpc_url: RpcUrl = DEFAULT_RPC_URL,
    db: Annotated[str, typer.Option("--db", envvar="SMARTSLA_INDEX_DB", help="Index database: an SQLite file path "
                                    "or URL, or postgresql://...")] = "smartsla-index.db",
    factory_address: FactoryOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    confirmations: Annotated[int, typer.Option("--confirmations", min=0, help="Index only blocks this deep "
                                               "under the head.")] = 0,
    from_block: Annotated[int, typer.Option("--from-block", min=0, help="First block to index (the factory's "
                                            "deployment block saves time on long chains).")] = 0,
    poll: Annotated[float, typer.Option("--poll", min=0.1, help="Seconds between indexer polls.")] = 2.0,
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="Allow this origin to call the "
                                                          "API from a browser (repeatable); none by default.")] = None,
    rate_limit: Annotated[float, typer.Option("--rate-limit", min=0, help="Requests a second per client IP "
                                              "(0: no limit).")] = 20.0,
    rate_burst: Annotated[int, typer.Option("--rate-burst", min=1, help="Burst size of the rate limit.")] = 60,
    read_token_env: Annotated[str | None, typer.Option("--read-token-env", metavar="VAR", help="Environment "
                                                       "variable holding a Bearer token that reads require "
                                                       "(default: public reads).")] = None,
    oracle_health_url: Annotated[str | None, typer.Option("--oracle-health-url", help="The oracle's /healthz URL "
                                                          "to include in /api/health.")] = None,
    oracle_metrics_url: Annotated[str | None, typer.Option("--oracle-metrics-url", help="The oracle's /metrics "
                                                           "URL: the running period's credit forecast.")] = None,
) -> None:
    """Index the factory's agreements and serve the REST API (/api, /docs) and the dashboard."""
    import uvicorn

    from ..api.app import ApiSettings, create_app
    from ..index_store import IndexStore
    from ..indexer import Indexer

    if rpc_url == EMBEDDED:
        raise BadInput("serve needs a chain that outlives it (--rpc-url http://...); try `smartsla demo --serve`")
    token = None
    if read_token_env:
        token = os.environ.get(read_token_env, "").strip()
        if len(token) < 16:
            raise BadInput(f"environment variable {read_token_env} must hold a token of at least 16 characters")
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        _console(stderr=True).print(f"[yellow]warning:[/] listening on {escape(host)} with public read access")
    chain = _connect(rpc_url)
    factory = _factory(chain, factory_address)
    store = IndexStore.open(db)
    indexer = Indexer(chain, store, factory.address, start_block=from_block, confirmations=confirmations)
    settings = ApiSettings(rpc_url=rpc_url, cors_origins=tuple(cors_origin or ()), rate_limit_per_s=rate_limit,
                           rate_limit_burst=rate_burst, read_token=token, oracle_health_url=oracle_health_url,
                           oracle_metrics_url=oracle_metrics_url,
                           confirmations=confirmations, poll_s=poll)
    web_app = create_app(store, settings=settings, chain=chain, indexer=indexer, run_indexer=True)
    console = _console()
    console.print(f"Indexing factory [cyan]{factory.address}[/] on chain id {chain.chain_id} into {escape(db)}")
    console.print(f"Dashboard http://{host}:{port}/  ·  API docs http://{host}:{port}/docs")
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


# ---------------------------------------------------------------------------- signing with a keystore
keystore_app = typer.Typer(help="Encrypted key files for signing withdraw/terminate locally.", no_args_is_help=True)
app.add_typer(keystore_app, name="keystore")

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


@keystore_app.command("new")
@cli_errors
def keystore_new(
    out: Annotated[Path, typer.Option("--out", help="Key file to create (never overwritten).")],
    password_env: PasswordEnv = "SMARTSLA_KEYSTORE_PASSWORD",
) -> None:
    """Create a fresh key in a new encrypted key file and print its address."""
    from .. import keystore

    address = keystore.create(out, _password(password_env, confirm=True))
    _console().print(f"created {escape(str(out))} for address [bold cyan]{address}[/] (mode 0600)")


@keystore_app.command("import")
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
    if sender not in (terms.customer, terms.provider):
        raise BadInput(f"the key file's address {sender} is neither the customer nor the provider of "
                       f"{agreement.address}")
    role = "customer" if sender == terms.customer else "provider"
    snap = agreement.snapshot()
    owed = snap.owed_to_customer if role == "customer" else snap.owed_to_provider
    fmt = _amount_formatter(chain, terms.asset)
    if owed == 0:
        fail(f"nothing is owed to the {role} {sender} by {agreement.address}", 1)
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
    if sender != roles[what]:
        raise BadInput(f"only the {party} {roles[what]} deposits the {what} of {agreement.address}; "
                       f"the key file is for {sender}")
    amount = terms.total_fees if what == "fees" else terms.collateral
    fmt = _amount_formatter(chain, terms.asset)
    # Check what the contract would refuse, and say it in words, before spending gas.
    snap = agreement.snapshot()
    if snap.status != Status.Pending:
        fail(f"{agreement.address} is {snap.status.name}: deposits are accepted only while it is Pending", 1)
    if (snap.fees_deposited if what == "fees" else snap.collateral_deposited):
        fail(f"the {party} has already deposited the {what} of {agreement.address}", 1)
    now = max(int(time.time()), chain.now())  # the next block is stamped no earlier than either
    if now >= terms.start:
        fail(f"the term of {agreement.address} started at {fmt_time(terms.start)}: a deposit now would let a "
             "party activate the agreement with hindsight, so it is refused (cancel to recover a deposit)", 1)
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
    if sender != terms.customer:
        raise BadInput(f"only the customer {terms.customer} may terminate; the key file is for {sender}")
    tx = agreement.terminate(sender)
    event = agreement.contract.events.Terminated().process_receipt(tx.receipt)[0]["args"]
    fmt = _amount_formatter(chain, terms.asset)
    _console().print(f"Terminated {agreement.address} (block {tx.block_number}): {fmt(int(event['refundedFees']))} "
                     f"of fees refunded to the customer, {fmt(int(event['returnedCollateral']))} of collateral "
                     "returned to the provider. Withdraw with `smartsla withdraw`.")


# Command groups with a home of their own register themselves on `app` when imported.
from . import actions, rules, spec  # noqa: E402, F401
