"""Helpers of the evidence end-to-end tests (test_verify_e2e, test_watchdog): a local HTTP
service with scheduled outages, and the CLI run in-process."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from typer.testing import CliRunner

from smartsla.cli import app


class Outage:
    """An HTTP server on 127.0.0.1 answering 500 inside the `down` wall-clock windows."""

    def __init__(self) -> None:
        self.down: list[tuple[float, float]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                now = time.time()
                self.send_response(500 if any(a <= now < b for a, b in outer.down) else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output
