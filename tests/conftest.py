"""Shared fixtures: a fresh embedded chain per test, the factory, and a terms builder."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sla_helpers import make_terms

from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.terms import Terms


@pytest.fixture
def chain() -> Chain:
    return Chain.connect("embedded")


@pytest.fixture
def roles(chain: Chain) -> dict[str, str]:
    a = chain.accounts
    return {"deployer": a[0], "provider": a[1], "customer": a[2], "oracle": a[3], "stranger": a[4]}


@pytest.fixture
def factory(chain: Chain, roles: dict[str, str]) -> Factory:
    return Factory.deploy(chain, roles["deployer"])


@pytest.fixture
def terms_for(chain: Chain, roles: dict[str, str]) -> Callable[..., Terms]:
    """Build terms starting a minute after the chain's current time (deposits close at the start),
    with overrides."""
    return lambda **overrides: make_terms(roles, chain.now() + 60, **overrides)
