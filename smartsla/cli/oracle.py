"""`smartsla oracle run|check`: the oracle daemon (package `oracle`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import _console, fail

app = typer.Typer(help="Run and check the oracle daemon.", no_args_is_help=True)


@app.command("run")
def oracle_run(
    config: Annotated[Path, typer.Option("--config", help="Oracle YAML configuration.")],
    log_level: Annotated[str, typer.Option(help="Log level (JSON logs on stderr).")] = "INFO",
) -> None:
    """Run the oracle daemon until SIGTERM: probe, store, report each period on-chain."""
    from oracle.__main__ import main as oracle_main

    raise typer.Exit(oracle_main(["--config", str(config), "--log-level", log_level]))


@app.command("check")
def oracle_check(config: Annotated[Path, typer.Option("--config", help="Oracle YAML configuration.")]) -> None:
    """Validate the configuration file only (no chain, no key needed)."""
    from oracle.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        fail(str(exc), code=2)
    _console().print(f"[green]ok[/]: {config} serves {len(cfg.agreements)} listed agreement(s)"
                     f"{' and discovers more' if cfg.discover else ''}")


@app.command("status")
def oracle_status(
    url: Annotated[str, typer.Option("--url", help="The daemon's listener, e.g. http://127.0.0.1:9464 "
                                                   "(its /healthz is read).")],
) -> None:
    """Whether the daemon's settlements can be mined now. Exit 1 when sending is blocked (the base
    fee at or above chain.max_fee_gwei, or a transaction stuck below it that the cap forbids
    replacing): reports wait, and if it lasts until the report deadline the fees go back to the
    customer."""
    import requests

    try:
        health = requests.get(url.rstrip("/") + "/healthz", timeout=10).json()
    except (requests.RequestException, ValueError) as exc:
        fail(f"cannot read {url.rstrip('/')}/healthz: {exc}", code=2)
    sending = health.get("sending") or {}
    console = _console()
    console.print(f"oracle {health.get('oracle')}: {len(health.get('agreements') or [])} agreement(s) served")
    cap, base = sending.get("cap_gwei"), sending.get("base_fee_gwei")
    fees = f"base fee {base} gwei, cap {cap} gwei, replacements {sending.get('replacements', 0)}"
    if sending.get("state") == "blocked":
        console.print(f"[red]sending BLOCKED[/] ({sending.get('reason')}, for {sending.get('blocked_s')} s): "
                      f"{sending.get('detail')}; {fees}")
        raise typer.Exit(1)
    console.print(f"sending {sending.get('state', 'unknown')}: {fees}")
