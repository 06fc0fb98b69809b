"""Issue 12, attacker's tests on a real chain: no report without evidence, a signature is bound to
its evidence root, every accepted report's root is in the settlement's events, and the terms
refuse a latency percentile where it has no meaning. Plus the Merkle rules of oracle.evidence."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sla_helpers import EC2_TIERS, EVIDENCE_ROOT
from web3 import Web3

from oracle.evidence import merkle_root, opaque_root, verify_proof
from smartsla.chain import REVERTS, _revert_data
from smartsla.errors import ContractReverted, decode_revert
from smartsla.reports import sign_report
from smartsla.terms import Kind, Service, Tier


@pytest.fixture
def committee(chain, roles):
    return [chain.new_account(fund_from=roles["deployer"]) for _ in range(3)]


def _active(chain, factory, roles, terms_for, **overrides):
    terms = terms_for(**overrides)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0))
    return ag


def test_a_direct_report_without_evidence_is_refused(chain, factory, roles, terms_for):
    ag = _active(chain, factory, roles, terms_for)
    with pytest.raises(ContractReverted, match=r"^MissingEvidence"):
        ag.settle(0, [1_000_000], 1_000_000, b"\0" * 32, roles["oracle"])
    assert ag.snapshot().settled_periods == 0
    settled = ag.settle(0, [1_000_000], 1_000_000, EVIDENCE_ROOT, roles["oracle"])
    assert settled.evidence == ((roles["oracle"], EVIDENCE_ROOT),)
    assert ag.evidence_roots(0) == [(roles["oracle"], EVIDENCE_ROOT)]


def test_a_signature_over_one_root_cannot_carry_another(chain, factory, roles, terms_for, committee):
    ag = _active(chain, factory, roles, terms_for, oracles=[a for a, _ in committee], quorum=3)
    deadline = chain.now() + 3_600
    honest = [sign_report(k, chain.chain_id, ag.address, 0, [1_000_000], 1_000_000, EVIDENCE_ROOT, deadline)
              for _, k in committee]
    # A relayer keeps the signatures and swaps one report's root for other evidence.
    forged_root = bytes(Web3.keccak(text="evidence that hides the outage"))
    swapped = honest[:2] + [type(honest[2])(**{**honest[2].__dict__, "evidence_root": forged_root})]
    with pytest.raises(ContractReverted, match=r"^NotACommitteeMember"):
        ag.settle_with_reports(0, swapped, roles["customer"])
    # A member who signed no evidence at all cannot count either.
    empty = sign_report(committee[2][1], chain.chain_id, ag.address, 0, [1_000_000], 1_000_000, b"\0" * 32, deadline)
    with pytest.raises(ContractReverted, match=r"^MissingEvidence"):
        ag.settle_with_reports(0, honest[:2] + [empty], roles["customer"])
    assert ag.snapshot().settled_periods == 0
    settled = ag.settle_with_reports(0, honest, roles["customer"])
    assert sorted(settled.evidence) == sorted((a, EVIDENCE_ROOT) for a, _ in committee)


def _latency_services(percentile_web: int, percentile_api: int) -> tuple[Service, ...]:
    return (Service.model_construct(name="web", objective=999_900, weight_bps=5_000, tiers=EC2_TIERS,
                                    kind=Kind.availability, latency_percentile=percentile_web),
            Service.model_construct(name="api", objective=300, weight_bps=5_000,
                                    tiers=(Tier(threshold=500, credit_bps=1_000),), kind=Kind.latency,
                                    latency_percentile=percentile_api))


def test_a_percentile_on_an_availability_service_is_refused(chain, factory, roles, terms_for):
    # Python refuses first, naming the service and the rule...
    with pytest.raises(ValidationError, match="a latency percentile \\(99\\) is only for latency services"):
        Service(name="web", objective=999_900, tiers=EC2_TIERS, latency_percentile=99)
    with pytest.raises(ValidationError, match="latency percentile 90 is not one of 50, 95, 99"):
        Service(name="api", kind="latency", objective=300, tiers=(Tier(threshold=500, credit_bps=1_000),),
                latency_percentile=90)
    # ... and the factory refuses whoever skips Python (terms built without validation).
    good = terms_for(services=(Service(name="web", objective=999_900, weight_bps=5_000, tiers=EC2_TIERS),
                               Service(name="api", kind="latency", objective=300, weight_bps=5_000,
                                       latency_percentile=95, tiers=(Tier(threshold=500, credit_bps=1_000),))))
    for services, error in ((_latency_services(99, 95), "PercentileOnNonLatencyService"),
                            (_latency_services(0, 90), "UnsupportedPercentile")):
        bad = good.model_construct(**{**dict(good), "services": services})
        fn = factory.contract.functions.createAgreementWithOptions(bad.to_abi(), bad.options_abi())
        with pytest.raises(REVERTS) as caught:
            fn.call({"from": roles["deployer"]})
        assert decode_revert(_revert_data(caught.value), "create").name == error
    created = factory.create_agreement(good, roles["deployer"])
    assert [s.latency_percentile for s in created.terms.services] == [0, 95]


def test_merkle_root_rules_match_openzeppelin():
    records = [b"UUUD", b"UUUU", b"NNXX"]
    # The leaf is OpenZeppelin's double hash of abi.encode(uint256 index, bytes32 recordHash).
    leaves = [bytes(Web3.keccak(Web3.keccak(i.to_bytes(32, "big") + bytes(Web3.keccak(r)))))
              for i, r in enumerate(records)]

    def pair(a: bytes, b: bytes) -> bytes:  # OpenZeppelin's commutative keccak of two nodes
        return bytes(Web3.keccak(min(a, b) + max(a, b)))

    root = opaque_root(records)
    assert root == pair(pair(leaves[0], leaves[1]), leaves[2]) == merkle_root(leaves)
    assert verify_proof([leaves[1], leaves[2]], root, leaves[0])
    assert verify_proof([pair(leaves[0], leaves[1])], root, leaves[2])
    flipped = bytes(Web3.keccak(Web3.keccak(bytes(32) + bytes(Web3.keccak(b"UUUU")))))  # one slice flipped
    assert not verify_proof([leaves[1], leaves[2]], root, flipped)
    assert opaque_root([b"UUUU"]) == flipped
    with pytest.raises(ValueError):
        merkle_root([])
