// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {Terms, SignedReport, PPM} from "contracts/SlaTypes.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

import {Fixture} from "./utils/Fixture.sol";

/// @title The compact report buffer of `Agreement.settleCompact` (issue 15) against a hostile
/// submitter: short, cut, over-long buffers and lying counts are refused by their length (never
/// read past the end as zeros), every byte is bound by a signature, and a report signed over the
/// EIP-712 digest computed from the specification (not by the contract) is accepted.
/// @notice Five oracles, quorum 3; two services.
contract CompactReportsTest is Fixture {
    Agreement internal a;

    function setUp() public {
        _setUpFixture(5);
        Terms memory t = _terms(3, address(0));
        a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
    }

    function _three(uint32[] memory last) internal returns (bytes memory) {
        SignedReport[] memory r = new SignedReport[](3);
        r[0] = _sign(a, oracleKeys[0], 0, _values(PPM, PPM));
        r[1] = _sign(a, oracleKeys[1], 0, _values(PPM, PPM));
        r[2] = _sign(a, oracleKeys[2], 0, last);
        return CompactReports.encode(0, r);
    }

    function _settle(bytes memory packed) internal returns (bool ok, bytes memory out) {
        vm.prank(stranger);
        (ok, out) = address(a).call(abi.encodeCall(Agreement.settleCompact, (packed)));
    }

    function _malformed(uint256 expected, uint256 length) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(Agreement.MalformedReports.selector, expected, length);
    }

    /// @notice Shorter than the header, cut by a byte, a byte too long, or a count that does not
    /// match the reports present: each refused with MalformedReports, nothing settled; the exact
    /// buffer settles.
    function test_shortOrLongBuffersAreRefused() public {
        bytes memory full = _three(_values(PPM, PPM));
        uint256 size = CompactReports.reportLength(2);
        assertEq(full.length, 3 + 3 * size, "layout");
        for (uint256 len = 0; len < 3; ++len) {
            bytes memory head = new bytes(len);
            for (uint256 i = 0; i < len; ++i) head[i] = full[i];
            (bool ok, bytes memory out) = _settle(head);
            assertTrue(!ok, "short");
            assertEq(out, _malformed(3, len), "shorter than the header");
        }
        bytes memory cut = new bytes(full.length - 1);
        for (uint256 i = 0; i < cut.length; ++i) cut[i] = full[i];
        (bool ok1, bytes memory out1) = _settle(cut);
        assertTrue(!ok1, "cut");
        assertEq(out1, _malformed(full.length, full.length - 1), "cut by a byte");
        (bool ok2, bytes memory out2) = _settle(abi.encodePacked(full, uint8(0)));
        assertTrue(!ok2, "long");
        assertEq(out2, _malformed(full.length, full.length + 1), "a byte too long");
        bytes memory more = abi.encodePacked(full);
        more[2] = bytes1(uint8(4));
        (bool ok3, bytes memory out3) = _settle(more);
        assertTrue(!ok3, "count 4");
        assertEq(out3, _malformed(3 + 4 * size, full.length), "a count above the reports present");
        more[2] = bytes1(uint8(2));
        (bool ok4, bytes memory out4) = _settle(more);
        assertTrue(!ok4, "count 2");
        assertEq(out4, _malformed(3 + 2 * size, full.length), "a count below the reports present");
        more[2] = bytes1(uint8(0));
        (bool ok5, bytes memory out5) = _settle(abi.encodePacked(full[0], full[1], uint8(0)));
        assertTrue(!ok5, "no report");
        assertEq(out5, abi.encodeWithSelector(ISlaErrors.QuorumNotReached.selector, 3, 0), "no report");
        assertEq(a.snapshot().settledPeriods, 0, "nothing settled");
        (bool ok6,) = _settle(full);
        assertTrue(ok6, "the exact buffer settles");
        assertEq(a.snapshot().settledPeriods, 1, "settled");
    }

    /// @notice The attack a missing length check would let through: the last value ends in a
    /// zero byte (999,936 = 0x000F4200), so a reader that treated bytes past the end as zeros (as
    /// ABI padding is) would read the signed value from a buffer missing that byte and accept it.
    /// It is refused; a cut that removes a non-zero byte is refused the same way.
    function test_cutTrailingZeroByteIsNotReadAsZero() public {
        bytes memory full = _three(_values(PPM, 999_936));
        assertEq(uint8(full[full.length - 1]), 0, "ends in a zero byte");
        bytes memory cut = new bytes(full.length - 1);
        for (uint256 i = 0; i < cut.length; ++i) cut[i] = full[i];
        (bool ok, bytes memory out) = _settle(cut);
        assertTrue(!ok, "refused");
        assertEq(out, _malformed(full.length, cut.length), "by its length");
        assertEq(a.snapshot().settledPeriods, 0, "nothing settled");
    }

    /// @notice Value counts that cancel out (one report a value over, the next a value short)
    /// keep the buffer's length right: the reports are read at the terms' offsets, so the second
    /// one is read shifted and its signature (over other bytes) recovers to a stranger. Refused,
    /// nothing settled; the contract never trusts a report's own idea of its length.
    function test_valueCountsThatCancelOutAreReadMisframedAndRefused() public {
        SignedReport[] memory r = new SignedReport[](3);
        uint32[] memory three = new uint32[](3);
        (three[0], three[1], three[2]) = (PPM, PPM, 0);
        uint32[] memory one = new uint32[](1);
        one[0] = PPM;
        r[0] = _sign(a, oracleKeys[0], 0, three);
        r[1] = _sign(a, oracleKeys[1], 0, one);
        r[2] = _sign(a, oracleKeys[2], 0, _values(PPM, PPM));
        bytes memory packed = CompactReports.encode(0, r);
        assertEq(packed.length, 3 + 3 * CompactReports.reportLength(2), "the length of three good reports");
        (bool ok, bytes memory out) = _settle(packed);
        assertTrue(!ok, "refused");
        bytes4 sel = bytes4(out);
        assertTrue(
            sel == ISlaErrors.NotACommitteeMember.selector || sel == bytes4(keccak256("ECDSAInvalidSignature()"))
                || sel == bytes4(keccak256("ECDSAInvalidSignatureS(bytes32)")),
            "by a signature that does not verify"
        );
        assertEq(a.snapshot().settledPeriods, 0, "nothing settled");
    }

    /// @notice Every byte counts: changing any one byte of a valid buffer (period, count, measured
    /// share, evidence root, deadline, signature, any value) makes it refused.
    function testFuzz_anyChangedByteIsRefused(uint256 pos, uint8 delta) public {
        vm.assume(delta != 0);
        bytes memory full = _three(_values(PPM, 999_000));
        pos = bound(pos, 0, full.length - 1);
        full[pos] = bytes1(uint8(full[pos]) ^ delta);
        (bool ok,) = _settle(full);
        assertTrue(!ok, "refused");
        assertEq(a.snapshot().settledPeriods, 0, "nothing settled");
    }

    /// @notice The contract hashes the packed fields itself: a signature over the EIP-712 digest
    /// computed here from the specification (domain: name, version, chain id, this agreement;
    /// Report(period, valuesPpm, measuredPpm, evidenceRoot, deadline)) is accepted, and the same
    /// reports are refused on another chain and for another agreement's period.
    function test_signatureOverTheSpecifiedDigestSettles() public {
        uint64 deadline = uint64(block.timestamp + 1 hours);
        bytes32 root = keccak256("root");
        bytes memory packed = abi.encodePacked(uint16(0), uint8(3));
        for (uint256 i = 0; i < 3; ++i) {
            uint32 x = uint32(PPM - i);
            uint32 measured = uint32(950_000 + i);
            bytes32 digest = _specDigest(address(a), block.chainid, 0, x, measured, root, deadline);
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(oracleKeys[i], digest);
            packed = abi.encodePacked(packed, measured, root, deadline, r, s, v, x, x);
        }
        uint256 chainId = block.chainid;
        vm.chainId(chainId + 1);
        (bool okOther,) = _settle(packed);
        assertTrue(!okOther, "refused on another chain");
        vm.chainId(chainId);
        vm.expectEmit(true, false, false, true, address(a));
        emit Agreement.PeriodSettled(0, _values(PPM - 1, PPM - 1), new uint256[](2), 0, 1 ether, false, 950_001);
        (bool ok, bytes memory out) = _settle(packed);
        assertEq(out, "", "no revert");
        assertTrue(ok, "settles on the medians");
    }

    function _specDigest(
        address agreement,
        uint256 chainId,
        uint256 period,
        uint32 x,
        uint32 measured,
        bytes32 root,
        uint64 deadline
    ) internal pure returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("smartsla Agreement"),
                keccak256("1"),
                chainId,
                agreement
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "Report(uint256 period,uint32[] valuesPpm,uint32 measuredPpm,bytes32 evidenceRoot,uint64 deadline)"
                ),
                period,
                keccak256(abi.encode(x, x)),
                measured,
                root,
                deadline
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }
}
