// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {Agreement} from "contracts/Agreement.sol";
import {Terms, Snapshot, SignedReport, PPM} from "contracts/SlaTypes.sol";

import {Fixture} from "./utils/Fixture.sol";
import {RefModel} from "./utils/RefModel.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

/// @title The oracle committee: EIP-712 reports signed with vm.sign, quorum, median, replays.
/// @notice Five oracles, quorum 3 (tolerates one liar: 2f + 1 = 3).
contract CommitteeTest is Fixture {
    Agreement internal a;

    function _t() internal view returns (Terms memory) {
        return _terms(3, address(0));
    }

    function setUp() public {
        _setUpFixture(5);
        a = _open(_t());
        _fund(a, _t());
    }

    function _three(uint256 period, uint32[] memory v0, uint32[] memory v1, uint32[] memory v2)
        internal
        returns (SignedReport[] memory r)
    {
        r = new SignedReport[](3);
        r[0] = _sign(a, oracleKeys[0], period, v0);
        r[1] = _sign(a, oracleKeys[1], period, v1);
        r[2] = _sign(a, oracleKeys[2], period, v2);
    }

    /// @notice The digest is EIP-712 over Report(uint256 period,uint32[] valuesPpm,uint32
    /// measuredPpm,uint64 deadline), with the agreement (the clone, not the implementation) as
    /// verifying contract.
    function testFuzz_digestIsEip712(
        uint256 period,
        uint32 x,
        uint32 y,
        uint32 measured,
        bytes32 root,
        uint64 deadline
    ) public view {
        uint32[] memory values = _values(x, y);
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("smartsla Agreement"),
                keccak256("1"),
                block.chainid,
                address(a)
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Report(uint256 period,uint32[] valuesPpm,uint32 measuredPpm,bytes32 evidenceRoot,uint64 deadline)"
                ),
                period,
                keccak256(abi.encode(x, y)),
                measured,
                root,
                deadline
            )
        );
        assertEq(
            a.reportDigest(period, values, measured, root, deadline),
            keccak256(abi.encodePacked("\x19\x01", domain, structHash)),
            "digest"
        );
    }

    /// @notice Any 3 to 5 distinct members with any values: the period settles on the median of
    /// each service (of 4 reports, the floor of the mean of the middle two), and the credit is
    /// what the terms give for those medians.
    function testFuzz_settlesOnTheMedian(uint256 seed, uint8 k) public {
        k = uint8(bound(k, 3, 5));
        _toEnd(a, 0);
        SignedReport[] memory reports = new SignedReport[](k);
        uint32[][] memory columns = new uint32[][](2);
        columns[0] = new uint32[](k);
        columns[1] = new uint32[](k);
        for (uint256 i = 0; i < k; ++i) {
            uint32 x = uint32(bound(uint256(keccak256(abi.encode(seed, i, 0))), 900_000, PPM));
            uint32 y = uint32(bound(uint256(keccak256(abi.encode(seed, i, 1))), 900_000, PPM));
            columns[0][i] = x;
            columns[1][i] = y;
            reports[i] = _sign(a, oracleKeys[(seed % 5 + i) % 5], 0, _values(x, y));
        }
        uint32[] memory medians = _values(RefModel.median(columns[0]), RefModel.median(columns[1]));
        Terms memory t = _t();
        (uint256 credit,) = RefModel.periodCredit(t, medians);
        vm.prank(oracles[seed % 5]);
        a.settleCompact(CompactReports.encode(0, reports));
        Snapshot memory s = a.snapshot();
        assertEq(s.settledPeriods, 1, "settled");
        assertEq(s.owedToCustomer, credit < t.collateral ? credit : t.collateral, "credit of the medians");
    }

    /// @notice One liar among three reports moves nothing, whichever extreme it claims.
    function test_oneLiarCannotMoveTheCredit() public {
        _toEnd(a, 0);
        uint32[] memory honest = _values(999_950, 999_500);
        SignedReport[] memory r = _three(0, honest, honest, _values(0, 0));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
        assertEq(a.snapshot().owedToCustomer, 0, "liar claiming 0 % outvoted");
        _toEnd(a, 1);
        uint32[] memory bad = _values(989_000, 999_500); // 30 % of compute's 60 % share
        r = _three(1, bad, _values(PPM, PPM), bad);
        vm.prank(oracles[1]);
        a.settleCompact(CompactReports.encode(1, r));
        assertEq(a.snapshot().owedToCustomer, 0.18 ether, "liar claiming 100 % outvoted");
    }

    function test_reportSignedByAStrangerIsRefused() public {
        _toEnd(a, 0);
        SignedReport[] memory r = _three(0, _values(PPM, PPM), _values(PPM, PPM), _values(PPM, PPM));
        r[2] = _sign(a, 0x5000, 0, _values(PPM, PPM));
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, stranger));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
    }

    function test_oneSignerTwiceIsOneSigner() public {
        _toEnd(a, 0);
        SignedReport[] memory r = _three(0, _values(PPM, PPM), _values(PPM, PPM), _values(PPM, PPM));
        r[2] = _sign(a, oracleKeys[0], 0, _values(1, 1)); // member 0 again, other values
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.DuplicateSigner.selector, oracles[0]));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
    }

    function test_tooFewReportsAndDirectReportsAreRefused() public {
        _toEnd(a, 0);
        SignedReport[] memory r = new SignedReport[](2);
        r[0] = _sign(a, oracleKeys[0], 0, _values(PPM, PPM));
        r[1] = _sign(a, oracleKeys[1], 0, _values(PPM, PPM));
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.QuorumNotReached.selector, 3, 2));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.QuorumNotReached.selector, 3, 0));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, new SignedReport[](0)));
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.QuorumNotReached.selector, 3, 1));
        vm.prank(oracles[0]);
        a.settle(0, _values(PPM, PPM), PPM, EVIDENCE_ROOT);
    }

    /// @notice Replays: the same reports again, reports of another period, of another agreement
    /// with the same committee, or from another chain.
    function test_replayedReportsAreRefused() public {
        _toEnd(a, 1);
        SignedReport[] memory r0 = _three(0, _values(PPM, PPM), _values(PPM, PPM), _values(PPM, PPM));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r0));
        // the same reports again
        vm.expectRevert(abi.encodeWithSelector(Agreement.PeriodAlreadySettled.selector, 0));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r0));
        // period 0's reports offered for period 1: they recover to some other address
        address recovered = ECDSA.recover(a.reportDigest(1, r0[0].valuesPpm, r0[0].measuredPpm, r0[0].evidenceRoot, r0[0].deadline), r0[0].signature);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, recovered));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(1, r0));
        // another agreement with the same committee and terms
        Terms memory tb = _t();
        tb.start = uint64(block.timestamp + 1); // a start in the past is refused
        Agreement b = _open(tb);
        _fund(b, tb);
        SignedReport[] memory ra = _three(1, _values(0, 0), _values(0, 0), _values(0, 0));
        recovered = ECDSA.recover(b.reportDigest(0, ra[0].valuesPpm, ra[0].measuredPpm, ra[0].evidenceRoot, ra[0].deadline), ra[0].signature);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, recovered));
        vm.prank(oracles[0]);
        b.settleCompact(CompactReports.encode(0, ra));
        // another chain (a fork with a new chain id)
        uint256 chainId = block.chainid;
        vm.chainId(chainId + 1);
        recovered = ECDSA.recover(a.reportDigest(1, ra[0].valuesPpm, ra[0].measuredPpm, ra[0].evidenceRoot, ra[0].deadline), ra[0].signature);
        assertTrue(recovered != oracles[0], "the digest depends on the chain id");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, recovered));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(1, ra));
        vm.chainId(chainId);
    }

    /// @notice A malleated signature (s in the upper half) is refused outright.
    function test_highSSignatureIsRefused() public {
        _toEnd(a, 0);
        SignedReport[] memory r = _three(0, _values(PPM, PPM), _values(PPM, PPM), _values(PPM, PPM));
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(oracleKeys[2], a.reportDigest(0, r[2].valuesPpm, r[2].measuredPpm, r[2].evidenceRoot, r[2].deadline));
        bytes32 highS = bytes32(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 - uint256(s));
        r[2].signature = abi.encodePacked(rr, highS, v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignatureS.selector, highS));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
        // A 64-byte (EIP-2098) signature cannot even be expressed: the compact format carries
        // exactly 65 bytes per signature, and any other length makes the buffer malformed
        // (CompactReportsTest.test_shortOrLongBuffersAreRefused).
    }

    /// @notice 65 bytes that are no signature at all (r = s = 0).
    function test_garbageSignatureIsRefused() public {
        _toEnd(a, 0);
        SignedReport[] memory r = _three(0, _values(PPM, PPM), _values(PPM, PPM), _values(PPM, PPM));
        r[1].signature = new bytes(65);
        vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignature.selector));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
    }

    /// @notice The signature is read straight from calldata at a fixed offset (issue 15): the
    /// same checks as OpenZeppelin's ECDSA.recover, a v other than 27/28 refused.
    function test_signatureVIsChecked() public {
        _toEnd(a, 0);
        SignedReport[] memory r = _three(0, _values(PPM, PPM), _values(PPM, PPM), _values(PPM, PPM));
        bytes memory good = r[1].signature;
        for (uint256 v = 0; v < 256; v += 29) {
            if (v == 27 || v == 28) continue;
            bytes memory badV = abi.encodePacked(good);
            badV[64] = bytes1(uint8(v));
            r[1].signature = badV;
            vm.expectRevert(abi.encodeWithSelector(ECDSA.ECDSAInvalidSignature.selector));
            a.settleCompact(CompactReports.encode(0, r));
        }
        r[1].signature = good;
        a.settleCompact(CompactReports.encode(0, r));
        assertEq(a.snapshot().settledPeriods, 1, "the good signature settles");
    }

    function test_reportsBeforeThePeriodEndsAreRefused() public {
        uint256 end = a.periodEnd(0);
        vm.warp(end - 1);
        SignedReport[] memory r = _three(0, _values(PPM, PPM), _values(PPM, PPM), _values(PPM, PPM));
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.PeriodNotEnded.selector, 0, end));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
        vm.warp(end);
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
    }

    /// @notice A liar's value above 100 % is simply outvoted; a median above 100 % is refused.
    function test_valuesAbove100PercentInReports() public {
        _toEnd(a, 0);
        uint32[] memory bogus = _values(PPM + 1, 4_000_000_000);
        SignedReport[] memory r = _three(0, _values(PPM, PPM), _values(PPM, PPM), bogus);
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(0, r));
        _toEnd(a, 1);
        r = _three(1, _values(PPM, PPM), bogus, bogus);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.ValueAboveOneHundredPercent.selector, 0, PPM + 1));
        vm.prank(oracles[0]);
        a.settleCompact(CompactReports.encode(1, r));
    }
}
