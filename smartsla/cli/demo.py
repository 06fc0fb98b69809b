"""`smartsla demo`: one agreement's whole life on a chain of its own (or a dev chain)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..chain import EMBEDDED
from ..demo import run_demo
from .common import BadInput, _console, cli_errors

app = typer.Typer()


@app.command()
@cli_errors
def demo(
    rpc_url: Annotated[str, typer.Option("--rpc-url", help="'embedded' (an in-process chain) or a dev chain's "
                                         "JSON-RPC URL (Anvil, Ganache: it travels in time).")] = EMBEDDED,
    serve: Annotated[bool, typer.Option("--serve", help="Afterwards keep the chain and serve the dashboard "
                                        "and API on it (until Ctrl-C).")] = False,
    host: Annotated[str, typer.Option("--host", help="Address to listen on with --serve.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port with --serve.")] = 8000,
    evidence_dir: Annotated[str | None, typer.Option(
        "--evidence-dir", help="Write each period's evidence bundle (the oracle's slice records) to this folder, "
        "for `smartsla verify ADDRESS PERIOD --bundle FILE` on a lasting chain.")] = None,
    multi_level: Annotated[bool, typer.Option("--multi-level", help="Instead: one organisation, three departments, "
                                              "one collateral pool (kind CorporateAgreement).")] = False,
) -> None:
    """Run one agreement's whole life, from deposits to withdrawals, and prove the books balance."""
    if multi_level:
        if serve or evidence_dir:
            raise BadInput("--multi-level runs on its own: without --serve or --evidence-dir")
        from ..demo_multilevel import run_multilevel_demo

        run_multilevel_demo(_console(), rpc_url)
        return
    result = run_demo(_console(), rpc_url, evidence_dir)
    if serve:
        from ..web.demo_serve import serve_demo

        serve_demo(result, host=host, port=port, console=_console())
