"""Review 6 (helper Z): smartsla.compact_reports against the contract on a real chain, and the
readers of a compact settlement's events.

* Round trip (Hypothesis): random service counts (1-4), report counts (3-5 of a committee of
  five, quorum 3), values, measured shares, evidence roots and deadlines, packed by `pack`,
  settled by `settleCompact`: the period settles on each column's median (smartsla.credit.median,
  the reference model), each root attributed to its signer; and an independent decoder written
  here from the layout (contracts/libraries/CompactReports.sol) reads back every field.
* Unpackable input refused here, every problem named, nothing sent.
* Events: a compact settlement emits EvidenceCommitted per report and no ReportsAccepted; the
  indexer, the evidence audit (smartsla.verify.committed_roots) and the API's evidence index
  read the signers from EvidenceCommitted, so they still see every signer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from smartsla.compact_reports import HEADER_LENGTH, MAX_PAYLOAD, REPORT_FIXED_LENGTH, pack, pack_batch, report_length
from smartsla.credit import median
from smartsla.index_store import IndexStore
from smartsla.indexer import Indexer
from smartsla.reports import SignedReport, sign_report
from smartsla.terms import Service, Tier
from smartsla.verify import committed_roots

PPM = 1_000_000


def _services(n: int) -> tuple[Service, ...]:
    weights = [10_000 // n] * n
    weights[-1] += 10_000 - sum(weights)
    return tuple(Service(name=f"s{i}", objective=999_000, weight_bps=w,
                         tiers=(Tier(threshold=999_000, credit_bps=1_000),)) for i, w in enumerate(weights))


def _decode(packed: bytes, services: int) -> tuple[int, list[dict[str, Any]]]:
    """The layout, read independently of the encoder: period(2) count(1), then per report
    measured(4) root(32) deadline(8) r(32) s(32) v(1) values(4 each)."""
    period, k = int.from_bytes(packed[0:2], "big"), packed[2]
    size = REPORT_FIXED_LENGTH + 4 * services
    assert len(packed) == HEADER_LENGTH + k * size
    out = []
    for i in range(k):
        b = packed[3 + i * size: 3 + (i + 1) * size]
        out.append({"measured": int.from_bytes(b[0:4], "big"), "root": b[4:36],
                    "deadline": int.from_bytes(b[36:44], "big"), "signature": b[44:109],
                    "values": [int.from_bytes(b[109 + 4 * j: 113 + 4 * j], "big") for j in range(services)]})
    return period, out


@pytest.fixture
def committee(chain, roles):
    return [chain.new_account(fund_from=roles["deployer"]) for _ in range(5)]


# Each example deploys, funds and settles an agreement on the embedded chain (~3.3 s): four
# examples here; a larger run is `--hypothesis-seed` away.
@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_on_a_real_chain(chain, factory, roles, terms_for, committee, data) -> None:
    n = data.draw(st.integers(1, 4), label="services")
    k = data.draw(st.integers(3, 5), label="reports")
    terms = terms_for(oracles=[a for a, _ in committee], quorum=3, services=_services(n))
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0))
    signers = data.draw(st.permutations(range(5)), label="signers")[:k]
    reports: list[SignedReport] = []
    for i in signers:
        values = data.draw(st.lists(st.integers(0, PPM), min_size=n, max_size=n))
        measured = data.draw(st.integers(terms.min_measured_ppm, PPM))
        root = data.draw(st.binary(min_size=32, max_size=32).filter(lambda b: any(b)))
        deadline = chain.now() + data.draw(st.integers(3_600, 2**40))
        reports.append(sign_report(committee[i][1], chain.chain_id, ag.address, 0, values, measured, root, deadline))

    packed = pack(0, reports)
    period, decoded = _decode(packed, n)
    assert period == 0 and len(decoded) == k
    for r, d in zip(reports, decoded, strict=True):
        assert (d["measured"], d["root"], d["deadline"], d["signature"], d["values"]) == (
            r.measured_ppm, bytes(r.evidence_root), r.deadline, bytes(r.signature), list(r.values_ppm))

    settled = ag.settle_with_reports(0, reports, roles["stranger"])
    assert settled.values_ppm == tuple(median([r.values_ppm[j] for r in reports]) for j in range(n))
    assert settled.measured_ppm == median([r.measured_ppm for r in reports])
    assert sorted(settled.evidence) == sorted((r.signer, r.evidence_root) for r in reports)


def test_unpackable_input_is_refused_naming_every_problem(chain, committee) -> None:
    good = sign_report(committee[0][1], chain.chain_id, "0x" + "ab" * 20, 0, [PPM], PPM, b"\x01" * 32, 2**40)
    bad = [replace(good, values_ppm=(-1, 2**32)), replace(good, measured_ppm=-1),
           replace(good, evidence_root=b"\x01" * 31), replace(good, deadline=2**64),
           replace(good, deadline=-1), replace(good, signature=bytes(good.signature) + b"\0")]
    with pytest.raises(ValueError) as info:
        pack(-1, bad)
    message = str(info.value)
    for part in ("period -1", "report 0: value 0 -1", "report 0: value 1 4294967296", "report 1: measured share -1",
                 "report 2: evidence root of 31 bytes", "report 3: deadline 18446744073709551616",
                 "report 4: deadline -1", "report 5: signature of 66 bytes"):
        assert part in message, part
    with pytest.raises(ValueError, match="256 reports"):
        pack(0, [good] * 256)
    assert len(pack(65_535, [good] * 255)) == 3 + 255 * report_length(1)
    with pytest.raises(ValueError, match="65536 bytes"):
        pack_batch([("0x" + "ab" * 20, b"\0" * (MAX_PAYLOAD + 1))])
    with pytest.raises(ValueError):
        pack_batch([("0x1234", b"")])


def test_compact_settlement_events_are_read_by_indexer_and_audit(chain, factory, roles, terms_for, committee,
                                                                  tmp_path: Path) -> None:
    terms = terms_for(oracles=[a for a, _ in committee], quorum=3, services=_services(2))
    ag = factory.create_agreement(terms, roles["deployer"])
    ag.deposit_fees(roles["customer"])
    ag.deposit_collateral(roles["provider"])
    chain.mine_at(terms.period_end(0))
    reports = [sign_report(committee[i][1], chain.chain_id, ag.address, 0, [PPM, 999_500], PPM,
                           bytes(Web3.keccak(text=f"root {i}")), chain.now() + 3_600) for i in (4, 0, 2)]
    ag.settle_with_reports(0, reports, roles["stranger"])

    expected = {Web3.to_checksum_address(r.signer): "0x" + bytes(r.evidence_root).hex() for r in reports}
    assert committed_roots(ag, 0) == expected  # the evidence audit (smartsla verify)
    store = IndexStore.open(str(tmp_path / "index.db"))
    Indexer(chain, store, factory.address).sync()
    committed, total = store.events(ag.address, names=["EvidenceCommitted"], limit=100)
    assert total == 3
    indexed = {Web3.to_checksum_address(e["args"]["oracle"]): str(e["args"]["evidenceRoot"]).lower()
               for e in committed}
    assert indexed == expected  # what the API's evidence endpoint compares a bundle with
    settled, _ = store.events(ag.address, names=["PeriodSettled"], limit=10)
    assert len(settled) == 1
    _, accepted = store.events(ag.address, names=["ReportsAccepted"], limit=10)
    assert accepted == 0  # G-3: not emitted any more; nothing above needed it
