"""The ERC-20 path: deposits and withdrawals in a token, and tokens that would break the books."""

from __future__ import annotations

import pytest
from sla_helpers import ETHER, EVIDENCE_ROOT

from smartsla.client import Status
from smartsla.errors import ContractReverted


@pytest.fixture
def token(chain, roles):
    contract, _ = chain.deploy("TestToken", roles["deployer"])
    for who in ("customer", "provider"):
        chain.transact(contract.functions.mint(roles[who], 100 * ETHER), roles["deployer"])
    return contract


def test_token_lifecycle_moves_exactly_the_books(chain, factory, roles, terms_for, token):
    ag = factory.create_agreement(terms_for(asset=token.address), roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    assert ag.balance() == ag.terms.total_fees + ag.terms.collateral
    for period, value in enumerate([999_000, 1_000_000, 940_000]):
        chain.mine_at(ag.terms.period_end(period))
        ag.settle(period, [value], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    assert ag.snapshot().status is Status.Ended
    got_c = ag.withdraw(roles["customer"])
    got_p = ag.withdraw(roles["provider"])
    assert got_c == ETHER // 10 + ETHER  # 10 % and 100 % credits
    assert got_p == ag.terms.total_fees + ag.terms.collateral - got_c
    assert token.functions.balanceOf(roles["customer"]).call() == 100 * ETHER - ag.terms.total_fees + got_c
    assert ag.balance() == 0


def test_ether_sent_with_a_token_deposit_is_refused(chain, factory, roles, terms_for, token):
    ag = factory.create_agreement(terms_for(asset=token.address), roles["deployer"])
    chain.transact(token.functions.approve(ag.address, ag.terms.total_fees), roles["customer"])
    with pytest.raises(ContractReverted, match=r"^WrongAmount\(0, 1\)"):
        chain.transact(ag.contract.functions.depositFees(), roles["customer"], value=1)
    assert not ag.snapshot().fees_deposited


def test_missing_allowance_names_the_token_error(chain, factory, roles, terms_for, token):
    ag = factory.create_agreement(terms_for(asset=token.address), roles["deployer"])
    with pytest.raises(ContractReverted, match=r"^ERC20InsufficientAllowance"):
        chain.transact(ag.contract.functions.depositFees(), roles["customer"])


def test_fee_on_transfer_token_is_refused(chain, factory, roles, terms_for):
    fot, _ = chain.deploy("FeeOnTransferToken", roles["deployer"])
    chain.transact(fot.functions.mint(roles["customer"], 100 * ETHER), roles["deployer"])
    ag = factory.create_agreement(terms_for(asset=fot.address), roles["deployer"])
    with pytest.raises(ContractReverted, match=r"^WrongAmount"):
        ag.deposit_fees(roles["customer"])
    assert ag.balance() == 0
    assert fot.functions.balanceOf(roles["customer"]).call() == 100 * ETHER
