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
