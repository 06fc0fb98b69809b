"""Fixtures for the web tests: the demo's chain indexed into SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web_helpers import quiet_demo

from smartsla.web.demo_serve import DemoServer, build_demo_server


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """The demo lifecycle (a terminated agreement) plus a live agreement with a credit owed,
    indexed into a fresh SQLite file. No server signing, no rate limit (tests call a lot)."""
    db: Path = tmp_path_factory.mktemp("index") / "index.db"
    server = build_demo_server(quiet_demo(), db_path=db, server_signing=False, run_indexer=False,
                               rate_limit_per_s=0)
    yield server
    server.store.close()
