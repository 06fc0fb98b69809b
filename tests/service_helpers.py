"""A monitored service for the oracle's tests: HTTP on 127.0.0.1 that fails inside given
wall-clock windows (shared by tests/oracle/test_daemon.py and tests/test_operator_e2e.py)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _TargetServer(ThreadingHTTPServer):
    """A healthy target must take a burst of connections as a real server does. socketserver's
    listen backlog is 5: with ~30 targets checked each second on fresh connections, a burst
    overflowed it, the kernel dropped the SYN, the client retried it only after 1 s, and a
    healthy target read as a 1-s timeout (test_hanging_targets_... failed so, on old code too)."""

    request_queue_size = 256

class ScheduledService:
    """Answers `down_status` inside the windows of `down` (wall-clock [start, end) pairs, which a
    test may change at any time), 200 otherwise; waits `delay_s` before each answer; counts hits."""

    def __init__(self, down: list[tuple[float, float]] | None = None, *, down_status: int = 503) -> None:
        self.down: list[tuple[float, float]] = down if down is not None else []
        self.down_status = down_status
        self.delay_s = 0.0
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.hits += 1
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                now = time.time()
                bad = any(a <= now < b for a, b in outer.down)
                body = b"down" if bad else b"ok"
                self.send_response(outer.down_status if bad else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _TargetServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
