"""Probes against real servers on 127.0.0.1: status codes, keywords, hangs, TCP open and closed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oracle.probes import HttpProbe, Sample, TcpProbe, run_round

RELEASE = threading.Event()  # set at teardown so hanging handlers end


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._send(200, b"<html>status: all systems operational</html>")
        elif self.path == "/fail":
            self._send(500, b"internal error")
        elif self.path == "/redirect":
            self._send(302, b"", {"Location": "/ok"})
        elif self.path == "/hang":  # accept, read the request, never answer
            RELEASE.wait(30)
        elif self.path == "/drip":  # headers at once, then a byte every 0.2 s: only a total deadline stops it
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                if RELEASE.wait(0.2):
                    return
                self.wfile.write(b".")
                self.wfile.flush()
        else:
            self._send(404, b"no")


@pytest.fixture
def server(http_server: Callable[..., contextlib.AbstractContextManager[ThreadingHTTPServer]]
           ) -> Iterator[ThreadingHTTPServer]:
    RELEASE.clear()
    with http_server(Handler) as srv:
        yield srv
        RELEASE.set()


@pytest.fixture
def base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def run(probe: HttpProbe | TcpProbe) -> Sample:
    return asyncio.run(probe.run())


def test_http_200_is_ok_with_latency(base: str) -> None:
    sample = run(HttpProbe("web", f"{base}/ok"))
    assert sample.ok, sample
    assert sample.service == "web" and sample.detail == "status 200"
    assert sample.latency_ms is not None and 0 < sample.latency_ms < 2000
    assert abs(sample.ts - time.time()) < 5


def test_http_500_fails(base: str) -> None:
    sample = run(HttpProbe("web", f"{base}/fail"))
    assert not sample.ok and sample.detail == "status 500"


def test_expected_status_is_configurable(base: str) -> None:
    assert run(HttpProbe("web", f"{base}/fail", expected_status={500})).ok
    assert run(HttpProbe("web", f"{base}/redirect")).ok  # 302 is within the default 200-399
    assert not run(HttpProbe("web", f"{base}/redirect", expected_status={200})).ok
    assert run(HttpProbe("web", f"{base}/redirect", expected_status={200}, follow_redirects=True)).ok


def test_keyword_must_appear(base: str) -> None:
    found = run(HttpProbe("web", f"{base}/ok", keyword="operational"))
    assert found.ok and "keyword found" in found.detail
    missing = run(HttpProbe("web", f"{base}/ok", keyword="degraded"))
    assert not missing.ok and "'degraded' not found" in missing.detail


def test_refused_connection_is_a_failed_sample_not_an_exception(free_port: Callable[[], int]) -> None:
    sample = run(HttpProbe("web", f"http://127.0.0.1:{free_port()}/", timeout=2))
    assert not sample.ok and "Cannot connect" in sample.detail and sample.latency_ms is None


def test_dripping_body_is_cut_off_by_the_total_timeout(base: str) -> None:
    t0 = time.monotonic()
    sample = run(HttpProbe("web", f"{base}/drip", keyword="never", timeout=1.0))
    assert not sample.ok and sample.detail == "timeout after 1 s"
    assert time.monotonic() - t0 < 2


def test_tcp_open_and_closed(free_port: Callable[[], int]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        open_ = run(TcpProbe("db", "127.0.0.1", port, timeout=2))
    assert open_.ok and open_.latency_ms is not None
    closed = run(TcpProbe("db", "127.0.0.1", free_port(), timeout=2))
    assert not closed.ok and "ConnectionRefusedError" in closed.detail


class Broken:
    """A probe that breaks the contract: raises instead of returning a Sample."""

    service = "broken"
    timeout = 1.0

    async def run(self) -> Sample:
        raise RuntimeError("bug in a plug-in probe")


class Stubborn:
    """A probe that ignores its own timeout."""

    service = "stubborn"
    timeout = 0.3

    async def run(self) -> Sample:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def test_hanging_targets_do_not_block_the_round(base: str, silent_port: int, free_port: Callable[[], int]) -> None:
    timeout = 1.5
    probes = [
        HttpProbe("hang", f"{base}/hang", timeout=timeout),
        HttpProbe("silent-http", f"http://127.0.0.1:{silent_port}/", timeout=timeout),
        HttpProbe("ok", f"{base}/ok", timeout=timeout),
        HttpProbe("fail", f"{base}/fail", timeout=timeout),
        TcpProbe("tcp-open", "127.0.0.1", silent_port, timeout=timeout),
        TcpProbe("tcp-closed", "127.0.0.1", free_port(), timeout=timeout),
        Broken(),
        Stubborn(),
    ]
    t0 = time.monotonic()
    samples = asyncio.run(run_round(probes))
    elapsed = time.monotonic() - t0
    by = {s.service: s for s in samples}
    assert [s.service for s in samples] == [p.service for p in probes]  # one per probe, in order
    assert timeout <= elapsed < timeout + 1.0, elapsed  # about one timeout, not the sum of them
    assert not by["hang"].ok and by["hang"].detail == "timeout after 1.5 s"
    assert not by["silent-http"].ok and "timeout" in by["silent-http"].detail
    assert by["ok"].ok and not by["fail"].ok
    assert by["tcp-open"].ok and not by["tcp-closed"].ok
    assert not by["broken"].ok and "bug in a plug-in probe" in by["broken"].detail
    assert not by["stubborn"].ok and "overran" in by["stubborn"].detail


def test_round_of_many_probes_runs_concurrently(base: str) -> None:
    # 50 hanging targets cost one timeout, not 50 (and per-probe setup must not stall the loop)
    probes = [HttpProbe(f"hang{i}", f"{base}/hang", timeout=1.0) for i in range(50)]
    t0 = time.monotonic()
    samples = asyncio.run(run_round(probes))
    assert time.monotonic() - t0 < 1.6
    assert all(not s.ok for s in samples)


def test_prober_keeps_healthy_targets_on_schedule_beside_hanging_ones(base: str) -> None:
    # One concurrency slot, two hanging targets: the healthy ones still get every check on time
    # (a waiting check gives its slot back), and the hanging ones fail on every check (never
    # "not measured": a hanging service is down, not unobserved).
    from oracle.probes import Prober, Target

    interval = 0.3
    targets = [Target(("a", f"ok{i}"), HttpProbe(f"ok{i}", f"{base}/ok", timeout=interval), interval)
               for i in range(4)]
    targets += [Target(("a", f"hang{i}"), HttpProbe(f"hang{i}", f"{base}/hang", timeout=interval), interval)
                for i in range(2)]
    got: dict[str, list[Sample]] = {}
    skipped: list[object] = []
    prober = Prober(targets, max_in_flight=1, on_sample=lambda k, s, lag: got.setdefault(s.service, []).append(s),
                    on_skip=lambda k, n: skipped.append(k))

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(prober.run(stop))
        # ~15 intervals, for at least 8 checks each: a loaded machine (a full parallel run) slips
        # the schedule of a check that takes its whole timeout by a few ms each time, and 3 s
        # once gave a hanging target 7 checks instead of the ~10 of an idle machine.
        await asyncio.sleep(4.5)
        stop.set()
        await task

    asyncio.run(main())
    # A timeout during which the event loop itself ran late (another process took the CPU) is
    # rightly "not measured" (Prober.STALL_SHARE): only a prober that never stalled must have
    # measured every check. On an idle machine the loop runs a few ms late in all.
    if prober._lag_now() < Prober.STALL_SHARE * interval:
        assert not skipped, skipped
    for i in range(4):
        samples = got[f"ok{i}"]
        assert all(s.ok for s in samples)
        assert len(samples) >= 8, len(samples)  # ~15 intervals in 4.5 s
        gaps = [b.ts - a.ts for a, b in itertools.pairwise(samples)]
        assert max(gaps) < interval + 0.15, gaps
    for i in range(2):
        samples = got[f"hang{i}"]
        assert len(samples) >= 8 and not any(s.ok for s in samples)


def test_tcp_check_of_an_address_and_of_a_name_agree(free_port: Callable[[], int]) -> None:
    # an IP address takes the bare-socket path, a name the resolving one: same outcome and words
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        by_ip = run(TcpProbe("db", "127.0.0.1", port, timeout=2))
        by_name = run(TcpProbe("db", "localhost", port, timeout=2))
    assert by_ip.ok and by_name.ok and by_ip.detail == f"connected to 127.0.0.1:{port}"
    closed = free_port()
    refused_ip = run(TcpProbe("db", "127.0.0.1", closed, timeout=2))
    assert not refused_ip.ok and refused_ip.detail.startswith("ConnectionRefusedError")
    if socket.has_ipv6:
        with socket.socket(socket.AF_INET6) as v6:
            try:
                v6.bind(("::1", 0))
            except OSError:
                return  # no IPv6 loopback here
            v6.listen(8)
            assert run(TcpProbe("db", "::1", v6.getsockname()[1], timeout=2)).ok
