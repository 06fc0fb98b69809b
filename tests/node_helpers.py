"""Local development chains (Anvil, Ganache from node_modules) for tests: one way to start them and
one behaviour when the tool is missing — skipped on a developer's machine, a failure under CI
(where scripts/setup.sh installs it).

tests/conftest.py declares the `anvil` and `ganache` fixtures with `node_fixture`; a module that
wants one node for all its tests declares its own: `anvil = node_fixture("anvil", scope="module")`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import pytest

from smartsla.localnode import LocalNode, NodeToolMissing, start_node


def missing_tool(reason: str) -> NoReturn:
    """Skip on a developer's machine, fail under CI (where setup.sh should have installed it)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI: scripts/setup.sh should have installed it)")
    pytest.skip(f"{reason}: run scripts/setup.sh (as root for the system packages)")


def start_or_skip(kind: str, **kwargs: Any) -> LocalNode:
    """`start_node(kind, **kwargs)`, or skip/fail (see missing_tool) when node_modules lacks it."""
    try:
        return start_node(kind, **kwargs)  # type: ignore[arg-type]
    except NodeToolMissing as exc:
        missing_tool(str(exc))


def node_fixture(kind: str, *, scope: str = "function", **kwargs: Any) -> Callable[..., Iterator[LocalNode]]:
    """A pytest fixture yielding a fresh `kind` node on a free port, stopped afterwards."""

    @pytest.fixture(scope=scope)  # type: ignore[call-overload]
    def _node() -> Iterator[LocalNode]:
        node = start_or_skip(kind, **kwargs)
        try:
            yield node
        finally:
            node.stop()

    return _node  # type: ignore[no-any-return]
