"""Helpers for the web tests (import as `web_helpers`: conftest modules share one name)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from eth_account import Account
from fastapi import FastAPI
from rich.console import Console
from sla_helpers import ETHER
from typer.testing import CliRunner

from smartsla import keystore
from smartsla.chain import Chain
from smartsla.cli import app
from smartsla.demo import DemoResult, run_demo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` in a real uvicorn on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def quiet_demo() -> DemoResult:
    with open(os.devnull, "w") as sink:
        return run_demo(Console(file=sink, width=120))


# ---------------------------------------------------------------------------- the CLI with key files
PASSWORD = "correct horse battery staple"


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`smartsla ARGS` in process: (exit code, output)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})
    return result.exit_code, result.output


def party_with_keystore(chain: Chain, tmp_path: Path, name: str) -> tuple[str, Path]:
    """A fresh funded account with a fast key file (password PASSWORD); its key also added to `chain`."""
    account = Account.create()
    path = tmp_path / f"{name}.json"
    keystore.create(path, PASSWORD, account.key, kdf="pbkdf2", iterations=2)  # fast for tests
    tx = chain.w3.eth.send_transaction({"from": chain.accounts[0], "to": account.address, "value": 50 * ETHER})
    chain.w3.eth.wait_for_transaction_receipt(tx)
    chain.add_key(account.key)  # the test itself deposits for this party
    return account.address, path
