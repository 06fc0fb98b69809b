"""`smartsla watch --config FILE`: the customer's watchdog (oracle.watchdog)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()  # `smartsla watch`, at the top level


@app.command("watch")
def watch_cmd(
    config: Annotated[Path, typer.Option("--config", help="Watchdog YAML: the oracle's format (docs/oracle.md) "
                                         "with the customer's key, plus tolerance_ppm / tolerance_ms.")],
    log_level: Annotated[str, typer.Option(help="Log level (JSON logs on stderr).")] = "INFO",
) -> None:
    """Measure the agreement's services like the oracle does and dispute, within the dispute
    window, every settled period whose figure differs from the customer's own (publishing the
    watchdog's evidence on its /evidence endpoint)."""
    from oracle.watchdog import main

    raise typer.Exit(main(["--config", str(config), "--log-level", log_level]))
