// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {Agreement} from "contracts/Agreement.sol";
import {AgreementFactory} from "contracts/AgreementFactory.sol";
import {Terms, Options, Snapshot, SignedReport, Tier, PPM, KIND_LATENCY} from "contracts/SlaTypes.sol";

import {Fixture} from "./utils/Fixture.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

/// @title Issue 12: every report carries its evidence root, and the terms fix the measurement
/// method (slice, least measured share, latency percentiles) and the signed document's hash.
/// @notice Attacker's view: a report without evidence, a signature moved onto other evidence,
/// a percentile slipped onto a service that has none.
contract EvidenceTest is Fixture {
    Agreement internal direct; // quorum 1: direct reports
    Agreement internal committee; // quorum 3 of 5: signed reports

    event EvidenceCommitted(uint256 indexed period, address indexed oracle, bytes32 evidenceRoot);

    function setUp() public {
        _setUpFixture(5);
        Terms memory t1 = _terms(1, address(0));
        direct = _open(t1);
        _fund(direct, t1);
        Terms memory t3 = _terms(3, address(0));
        committee = _open(t3);
        _fund(committee, t3);
        _toEnd(direct, 0);
    }

    // ------------------------------------------------------------------ reports

    /// @notice A member's direct report with a zero root is refused: no figure without evidence.
    function test_directReportWithoutEvidenceIsRefused() public {
        vm.expectRevert(ISlaErrors.MissingEvidence.selector);
        vm.prank(oracles[0]);
        direct.settle(0, _values(PPM, PPM), PPM, bytes32(0));
        assertEq(direct.snapshot().settledPeriods, 0, "nothing settled");
    }

    /// @notice A direct report commits its root in an event naming the member.
    function test_directReportCommitsItsRoot() public {
        bytes32 root = keccak256("period 0 evidence");
        vm.expectEmit(true, true, false, true, address(direct));
        emit EvidenceCommitted(0, oracles[0], root);
        vm.prank(oracles[0]);
        direct.settle(0, _values(PPM, PPM), PPM, root);
        assertEq(direct.snapshot().settledPeriods, 1, "settled");
    }

    /// @notice A member that signed a zero root (no evidence) cannot make it count, even with a
    /// quorum of otherwise valid reports.
    function test_signedReportWithoutEvidenceIsRefused() public {
        uint64 deadline = uint64(block.timestamp + 1 days);
        SignedReport[] memory r = new SignedReport[](3);
        r[0] = _sign(committee, oracleKeys[0], 0, _values(PPM, PPM));
        r[1] = _sign(committee, oracleKeys[1], 0, _values(PPM, PPM));
        r[2] = _signEvidence(committee, oracleKeys[2], 0, _values(PPM, PPM), PPM, bytes32(0), deadline);
        vm.expectRevert(ISlaErrors.MissingEvidence.selector);
        committee.settleCompact(CompactReports.encode(0, r));
        assertEq(committee.snapshot().settledPeriods, 0, "nothing settled");
    }

    /// @notice The root is signed: a relayer who swaps one report's root for other evidence
    /// (say, evidence that hides an outage) breaks the signature; it recovers to a stranger.
    function test_signatureOverOneRootCannotBeReplayedWithAnother() public {
        SignedReport[] memory r = new SignedReport[](3);
        r[0] = _sign(committee, oracleKeys[0], 0, _values(PPM, PPM));
        r[1] = _sign(committee, oracleKeys[1], 0, _values(PPM, PPM));
        r[2] = _sign(committee, oracleKeys[2], 0, _values(PPM, PPM));
        bytes32 other = keccak256("forged evidence");
        r[2].evidenceRoot = other;
        address recovered = ECDSA.recover(
            committee.reportDigest(0, r[2].valuesPpm, r[2].measuredPpm, other, r[2].deadline), r[2].signature
        );
        assertTrue(recovered != oracles[2], "the digest depends on the root");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, recovered));
        committee.settleCompact(CompactReports.encode(0, r));
        assertEq(committee.snapshot().settledPeriods, 0, "nothing settled");
    }

    /// @notice Every accepted signed report commits its own root, attributed to its signer.
    function test_everySignedReportCommitsItsRoot() public {
        uint64 deadline = uint64(block.timestamp + 1 days);
        SignedReport[] memory r = new SignedReport[](3);
        for (uint256 i = 0; i < 3; ++i) {
            bytes32 root = keccak256(abi.encode("evidence of member", i));
            r[i] = _signEvidence(committee, oracleKeys[i], 0, _values(PPM, PPM), PPM, root, deadline);
        }
        for (uint256 i = 0; i < 3; ++i) {
            vm.expectEmit(true, true, false, true, address(committee));
            emit EvidenceCommitted(0, oracles[i], r[i].evidenceRoot);
        }
        committee.settleCompact(CompactReports.encode(0, r));
        assertEq(committee.snapshot().settledPeriods, 1, "settled");
    }

    /// @notice The root is an OpenZeppelin Merkle root: a service's leaf (the double hash of its
    /// index and record hash, as oracle/evidence.py builds it) is proved against it on-chain.
    function test_rootIsAnOpenZeppelinMerkleRoot() public pure {
        bytes32 l0 = keccak256(bytes.concat(keccak256(abi.encode(uint256(0), keccak256("UUUD")))));
        bytes32 l1 = keccak256(bytes.concat(keccak256(abi.encode(uint256(1), keccak256("UUUU")))));
        bytes32 l2 = keccak256(bytes.concat(keccak256(abi.encode(uint256(2), keccak256("NNXX")))));
        bytes32 n01 = l0 < l1 ? keccak256(abi.encode(l0, l1)) : keccak256(abi.encode(l1, l0));
        bytes32 root = n01 < l2 ? keccak256(abi.encode(n01, l2)) : keccak256(abi.encode(l2, n01));
        bytes32[] memory proof = new bytes32[](2);
        proof[0] = l1;
        proof[1] = l2;
        assertTrue(MerkleProof.verify(proof, root, l0), "leaf 0 proved");
        proof = new bytes32[](1);
        proof[0] = n01;
        assertTrue(MerkleProof.verify(proof, root, l2), "leaf 2 (carried up) proved");
    }

    // ------------------------------------------------------------------ the method in the terms

    function _latencyTerms() internal view returns (Terms memory t, Options memory o) {
        t = _terms(1, address(0));
        t.start = uint64(block.timestamp + 1 hours);
        t.services[1].objective = 500; // ms
        t.services[1].tiers = new Tier[](1);
        t.services[1].tiers[0] = Tier({threshold: 1_000, creditBps: 1_000});
        o = _defaultOptions();
        o.serviceKinds = new uint8[](2);
        o.serviceKinds[1] = KIND_LATENCY;
        o.latencyPercentiles = new uint8[](2);
        o.latencyPercentiles[1] = 95;
        o.specHash = keccak256("canonical spec");
    }

    /// @notice The method and the document's hash are in the clone's immutable terms.
    function test_methodAndSpecHashAreReadBack() public {
        (Terms memory t, Options memory o) = _latencyTerms();
        o.sliceLength = 300;
        o.minMeasuredPpm = 950_000;
        Agreement a = Agreement(factory.createAgreementWithOptions(t, o));
        Options memory back = a.options();
        assertEq(back.specHash, keccak256("canonical spec"), "spec hash");
        assertEq(back.latencyPercentiles.length, 2, "one percentile per service");
        assertEq(back.latencyPercentiles[0], 0, "availability: none");
        assertEq(back.latencyPercentiles[1], 95, "latency: p95");
        assertEq(back.sliceLength, 300, "slice");
        assertEq(back.minMeasuredPpm, 950_000, "least measured share");
    }

    /// @notice A percentile on an availability service would let one party claim a different
    /// method than the terms mean: refused at creation.
    function test_percentileOnAvailabilityServiceIsRefused() public {
        (Terms memory t, Options memory o) = _latencyTerms();
        o.latencyPercentiles[0] = 99;
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.PercentileOnNonLatencyService.selector, 0, 99));
        factory.createAgreementWithOptions(t, o);
    }

    /// @notice Only the percentiles the oracles compute (50, 95, 99); a latency service without
    /// one while another has one is refused too.
    function test_unsupportedPercentileIsRefused() public {
        (Terms memory t, Options memory o) = _latencyTerms();
        o.latencyPercentiles[1] = 90;
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.UnsupportedPercentile.selector, 1, 90));
        factory.createAgreementWithOptions(t, o);
        o.latencyPercentiles[1] = 0;
        o.latencyPercentiles[0] = 0;
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.UnsupportedPercentile.selector, 1, 0));
        factory.createAgreementWithOptions(t, o);
    }

    /// @notice One percentile per service or none.
    function test_wrongNumberOfPercentilesIsRefused() public {
        (Terms memory t, Options memory o) = _latencyTerms();
        o.latencyPercentiles = new uint8[](1);
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.WrongNumberOfPercentiles.selector, 2, 1));
        factory.createAgreementWithOptions(t, o);
        o.latencyPercentiles = new uint8[](0); // none fixed: accepted
        factory.createAgreementWithOptions(t, o);
    }
}
