"""The embedded chain's gas estimate (smartsla.chain._estimate_gas_embedded): a gas the transaction
succeeds with, named reverts as before, in a few EVM runs instead of py-evm's dozen (the estimate
before every transaction was three quarters of the embedded-chain tests' CPU, issue 13 item 9)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth.vm.forks.frontier.state import FrontierState

from smartsla.chain import Chain
from smartsla.client import Factory
from smartsla.errors import ContractReverted
from smartsla.terms import Terms


@pytest.fixture
def evm_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the EVM's runs of a transaction (every fork's state inherits Frontier's)."""
    runs: list[int] = []
    apply = FrontierState.apply_transaction

    def counted(self: FrontierState, transaction: object) -> object:
        runs.append(1)
        return apply(self, transaction)

    monkeypatch.setattr(FrontierState, "apply_transaction", counted)
    yield runs


def test_estimate_is_a_gas_the_transaction_succeeds_with_in_at_most_three_runs(
        chain: Chain, factory: Factory, roles: dict[str, str], terms_for: object, evm_runs: list[int]) -> None:
    terms: Terms = terms_for()  # type: ignore[operator]
    # createAgreement clones the implementation and initialises it: calls that forward 63/64 of the gas.
    tx = {"from": roles["deployer"], "to": factory.address,
          "data": factory.contract.encode_abi("createAgreement", [terms.to_abi()])}
    evm_runs.clear()
    estimate = chain.w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
    assert 1 <= len(evm_runs) <= 3  # py-evm's bisection to within 21,000 gas: 13 runs here
    receipt = chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_transaction({**tx, "gas": estimate}))  # type: ignore[typeddict-item]
    assert receipt["status"] == 1 and receipt["gasUsed"] <= estimate


def test_a_reverting_transaction_still_fails_estimation_with_its_named_error(
        factory: Factory, roles: dict[str, str], terms_for: object) -> None:
    terms: Terms = terms_for()  # type: ignore[operator]
    agreement = factory.create_agreement(terms, roles["deployer"])
    agreement.deposit_fees(roles["customer"])
    with pytest.raises(ContractReverted, match=r"^Unauthorized\("):  # the estimate is what reverts
        agreement.cancel(roles["stranger"])
    assert agreement.balance() == terms.total_fees
