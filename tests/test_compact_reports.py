"""The compact report calldata (smartsla.compact_reports) against the contract that reads it
(Agreement.settleCompact, contracts/libraries/CompactReports.sol): a round trip on a real chain,
three reports of two services with distinct values, shares, roots and deadlines; a cut or
over-long buffer refused on-chain by its length; what cannot be packed refused here, naming
every problem."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sla_helpers import ETHER
from web3 import Web3

from smartsla.compact_reports import ITEM_HEAD_LENGTH, pack, pack_batch, report_length
from smartsla.credit import median
from smartsla.errors import ContractReverted
from smartsla.reports import sign_report
from smartsla.terms import Service, Tier

SERVICES = (Service(name="web", objective=999_000, weight_bps=5_000,
                    tiers=(Tier(threshold=999_000, credit_bps=1_000),)),
            Service(name="db", objective=999_000, weight_bps=5_000,
                    tiers=(Tier(threshold=999_000, credit_bps=1_000),)))


@pytest.fixture
def setting(chain, factory, roles, terms_for):
    members = [chain.new_account(fund_from=roles["deployer"]) for _ in range(3)]
    terms = terms_for(oracles=[a for a, _ in members], quorum=3, services=SERVICES)
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0))
    return chain, ag, members, roles


def _reports(chain, ag, members):
    values = [(999_500, 990_000), (998_000, 1_000_000), (999_999, 0)]
    measured = [1_000_000, 950_000, 970_000]
    return [sign_report(key, chain.chain_id, ag.address, 0, list(values[i]), measured[i],
                        bytes(Web3.keccak(text=f"evidence {i}")), chain.now() + 3_600 + i)
            for i, (_, key) in enumerate(members)]


def test_packed_reports_settle_on_the_contract_as_signed(setting):
    chain, ag, members, roles = setting
    reports = _reports(chain, ag, members)
    packed = pack(0, reports)
    assert len(packed) == 3 + 3 * report_length(2) == 3 + 3 * 117
    settled = ag.settle_with_reports(0, reports, roles["stranger"])  # packed by the client
    assert settled.values_ppm == (median([999_500, 998_000, 999_999]), median([990_000, 1_000_000, 0]))
    assert settled.measured_ppm == 970_000
    # each report's own root, attributed to its signer: every field went through intact
    assert sorted(settled.evidence) == sorted((r.signer, r.evidence_root) for r in reports)
    assert settled.service_credits == (0, ETHER // 20)  # db at 99 %: 10 % of its half of the fee
    assert settled.fee_earned == ETHER


def test_a_cut_or_long_buffer_is_refused_by_its_length(setting):
    chain, ag, members, roles = setting
    packed = pack(0, _reports(chain, ag, members))
    for wrong in (packed[:-1], packed + b"\0", packed[:2]):
        fn = ag.contract.functions.settleCompact(wrong)
        with pytest.raises(ContractReverted) as info:
            chain.transact(fn, roles["stranger"], action="settle")
        expected = 3 if len(wrong) < 3 else len(packed)
        assert (info.value.name, info.value.args_) == ("MalformedReports", (expected, len(wrong)))
    assert ag.snapshot().settled_periods == 0


def test_what_cannot_be_packed_is_refused_naming_every_problem(setting):
    chain, ag, members, _ = setting
    good = _reports(chain, ag, members)[0]
    bad = replace(good, values_ppm=(2**32, 1), measured_ppm=2**32)  # no EIP-712 signer encodes these
    short = replace(good, signature=good.signature[:64])
    with pytest.raises(ValueError) as info:
        pack(70_000, [bad, short])
    message = str(info.value)
    for part in ("period 70000", "report 0: measured share 4294967296", "report 0: value 0 4294967296",
                 "report 1: signature of 64 bytes"):
        assert part in message


def test_batch_items_are_address_length_payload():
    payload = b"\x00\x01\x01" + b"x" * 10
    address = "0x" + "ab" * 20
    packed = pack_batch([(address, payload), (address, b"")])
    assert packed == bytes.fromhex("ab" * 20) + b"\x00\x0d" + payload + bytes.fromhex("ab" * 20) + b"\x00\x00"
    assert ITEM_HEAD_LENGTH == 22
