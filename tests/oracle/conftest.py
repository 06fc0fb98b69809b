"""Oracle test fixtures: free ports, small HTTP servers in threads, a throwaway PostgreSQL server.

External servers (PostgreSQL, Prometheus) come from Debian packages that scripts/setup.sh
installs. Where they are missing the tests skip with the reason, except under CI (CI=true),
where a missing server is a setup bug and fails.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from evidence_helpers import Outage
from node_helpers import missing_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Test modules get these helpers as fixtures: tests/ has no __init__.py, so a test module cannot
# import this conftest by a name of its own.
@pytest.fixture(name="free_port", scope="session")
def free_port_fixture() -> Callable[[], int]:
    """A function returning a currently free TCP port on 127.0.0.1."""
    return free_port


@pytest.fixture(name="http_server", scope="session")
def http_server_fixture() -> Callable[[type[BaseHTTPRequestHandler]], contextlib.AbstractContextManager[
        ThreadingHTTPServer]]:
    """`with http_server(Handler) as srv:` a real HTTP server on 127.0.0.1 in a thread."""
    return http_server


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on 127.0.0.1 in a background thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True  # a handler that hangs must not hold up teardown
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- PostgreSQL --------------------------------------------------------------------------------

def _pg_bindir() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(candidates[-1]) if candidates else None


class PgServer:
    """A PostgreSQL server of our own: temp data dir, free TCP port on 127.0.0.1, socket in the
    data dir, trust auth. It never touches the system cluster (port 5432, /var/run)."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.port = free_port()
        # Not under pytest's tmp dir: that is root-only (0700) and the server runs as `postgres`.
        self.dir = tempfile.mkdtemp(prefix="smartsla-pg-")
        self.data = os.path.join(self.dir, "data")
        self._as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._counter = itertools.count()

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(f"{self.bindir}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"),
                  "-w", "-t", "30", "start")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"t{next(self._counter)}_{int(time.time())}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = _pg_bindir()
    if bindir is None:
        missing_tool("PostgreSQL server binaries not found (Debian package postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing_tool("psycopg is not installed (pip install -e '.[dev]')")
    server = PgServer(bindir)  # type: ignore[arg-type]
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The same store tests run on an SQLite file and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/oracle.db"
    return request.getfixturevalue("pg_url")


# -- Prometheus --------------------------------------------------------------------------------

PROMETHEUS = "/usr/bin/prometheus"


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Debian's Prometheus server binary."""
    if not os.access(PROMETHEUS, os.X_OK):
        missing_tool(f"{PROMETHEUS} not found (Debian package prometheus)")
    return PROMETHEUS


@pytest.fixture
def outage() -> Iterator[Outage]:
    """An HTTP service on 127.0.0.1 answering 500 inside its `down` windows (evidence_helpers)."""
    o = Outage()
    yield o
    o.server.shutdown()
    o.server.server_close()
