// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TermsCodec} from "contracts/TermsCodec.sol";
import {Terms, Options} from "contracts/SlaTypes.sol";

import {TestBase} from "./utils/TestBase.sol";
import {TermsGen, Limits} from "./utils/TermsGen.sol";
import {TermsCodecV0} from "./mocks/TermsCodecV0.sol";

/// @notice Both decoders behind external calls, so that a revert is data to compare.
contract CodecPair {
    function decodeNew(bytes memory b, bool withMethod) external pure returns (bytes memory) {
        (Terms memory t, Options memory o) = TermsCodec.decode(b, withMethod);
        return abi.encode(t, o);
    }

    function decodeOld(bytes memory b, bool withMethod) external pure returns (bytes memory) {
        (Terms memory t, Options memory o) = TermsCodecV0.decode(b, withMethod);
        return abi.encode(t, o);
    }

    /// @dev Decodes `b` twice, then writes into every array of the first result and fills fresh
    /// memory (allocated after both) with ones: the second result must not change, nor the first
    /// but for the writes. Returns the second result's encoding before and after, and the
    /// first's after the writes.
    function aliasing(bytes memory b, bool withMethod)
        external
        pure
        returns (bytes32 before2, bytes32 after2, bytes32 expected1, bytes32 after1)
    {
        (Terms memory t1, Options memory o1) = TermsCodec.decode(b, withMethod);
        (Terms memory t2, Options memory o2) = TermsCodec.decode(b, withMethod);
        before2 = keccak256(abi.encode(t2, o2));
        t1.provider = address(0xdead);
        t1.quorum = 0xee;
        if (t1.oracles.length != 0) t1.oracles[t1.oracles.length - 1] = address(0xbeef);
        if (o1.periodEnds.length != 0) o1.periodEnds[o1.periodEnds.length - 1] = 0xfeedf00d;
        o1.disputeWindow = 0xabcdef;
        for (uint256 i = 0; i < t1.services.length; ++i) {
            t1.services[i].objective = 0x12345678;
            o1.serviceKinds[i] = 0x77;
            if (withMethod) o1.latencyPercentiles[i] = 0x66;
            for (uint256 j = 0; j < t1.services[i].tiers.length; ++j) {
                t1.services[i].tiers[j].threshold = uint32(0x1000 + j);
                t1.services[i].tiers[j].creditBps = uint16(0x2000 + i);
            }
        }
        expected1 = keccak256(abi.encode(t1, o1));
        // Fresh memory past the free pointer: if any decoded array lay beyond it, this clobbers it.
        bytes memory junk = new bytes(8192);
        assembly ("memory-safe") {
            let p := add(junk, 32)
            for { let i := 0 } lt(i, 8192) { i := add(i, 32) } { mstore(add(p, i), not(0)) }
        }
        after2 = keccak256(abi.encode(t2, o2));
        after1 = keccak256(abi.encode(t1, o1));
    }
}

/// @title Helper Z's review of the assembly TermsCodec.decode (wave 8, Z8): against the decoder
/// it replaced (tests/forge/mocks/TermsCodecV0.sol, main 4de4212), on valid packed terms and on
/// every kind of damage (truncated, extended, a byte changed anywhere, a count changed), with and
/// without the method's description; and its memory safety (two decodes never share memory,
/// nothing lies past the free memory pointer).
contract TermsCodecDifferentialTest is TestBase {
    CodecPair internal pair;

    Limits internal wide = Limits({
        maxServices: 6,
        maxTiers: 5,
        maxPeriods: type(uint16).max,
        minPeriodLength: 1,
        maxPeriodLength: type(uint32).max,
        maxFee: type(uint128).max,
        maxCollateral: type(uint128).max
    });

    function setUp() public {
        pair = new CodecPair();
    }

    /// @dev Random packed terms (any field values: the decoder does not validate), with 1-8
    /// oracles, 0-6 explicit period ends, explicit kinds and percentiles half the time.
    function _packed(uint256 seed) internal view returns (bytes memory) {
        uint256 oracleCount = TermsGen.between(TermsGen.rand(seed, 50), 1, 8);
        address[] memory oracles = new address[](oracleCount);
        for (uint256 i = 0; i < oracleCount; ++i) oracles[i] = address(uint160(TermsGen.rand(seed, 60 + i)));
        Terms memory t = TermsGen.random(
            seed,
            wide,
            address(uint160(TermsGen.rand(seed, 70))),
            address(uint160(TermsGen.rand(seed, 71))),
            oracles,
            address(uint160(TermsGen.rand(seed, 73))),
            uint64(TermsGen.rand(seed, 74))
        );
        Options memory o;
        uint256 r = TermsGen.rand(seed, 80);
        o.disputeWindow = uint32(r);
        o.arbiter = address(uint160(TermsGen.rand(seed, 81)));
        o.maintenanceNotice = uint32(r >> 32);
        o.maintenanceBudget = uint32(r >> 64);
        o.sliceLength = uint32(r >> 96);
        o.minMeasuredPpm = uint32(r >> 128);
        o.specHash = bytes32(TermsGen.rand(seed, 82));
        uint256 ends = (r >> 160) % 7;
        o.periodEnds = new uint32[](ends);
        for (uint256 i = 0; i < ends; ++i) o.periodEnds[i] = uint32(TermsGen.rand(seed, 100 + i));
        if ((r >> 170) % 2 == 0) {
            o.serviceKinds = new uint8[](t.services.length);
            o.latencyPercentiles = new uint8[](t.services.length);
            for (uint256 i = 0; i < t.services.length; ++i) {
                o.serviceKinds[i] = uint8(TermsGen.rand(seed, 120 + i));
                o.latencyPercentiles[i] = uint8(TermsGen.rand(seed, 140 + i));
            }
        }
        return TermsCodec.encode(t, o);
    }

    /// @dev `b` damaged by `kind`: 0 none, 1 truncated, 2 extended, 3 one byte changed, 4 a
    /// count byte changed (oracle count, period-end count, service count, a tier count).
    function _damage(bytes memory b, uint256 kind, uint256 r) internal pure returns (bytes memory out) {
        if (kind == 1) {
            uint256 cut = 1 + r % b.length;
            out = new bytes(b.length - cut);
            for (uint256 i = 0; i < out.length; ++i) out[i] = b[i];
            return out;
        }
        if (kind == 2) {
            out = bytes.concat(b, abi.encodePacked(keccak256(abi.encode(r)), keccak256(abi.encode(r, 1))));
            uint256 keep = b.length + 1 + (r >> 8) % 64;
            assembly ("memory-safe") {
                mstore(out, keep)
            }
            return out;
        }
        out = bytes.concat(b);
        if (kind == 3) {
            out[r % out.length] = bytes1(uint8(r >> 16));
            return out;
        }
        if (kind == 4) {
            uint8 v = uint8(r >> 16);
            uint256 oracleCount = uint8(b[TermsCodec.ORACLE_COUNT_OFFSET]);
            uint256 opts = TermsCodec.HEADER_LENGTH + oracleCount * TermsCodec.ORACLE_LENGTH;
            uint256 which = (r >> 24) % 4;
            if (which == 0) {
                out[TermsCodec.ORACLE_COUNT_OFFSET] = bytes1(v);
            } else if (which == 1) {
                out[opts + TermsCodec.PERIOD_END_COUNT_OFFSET + (r >> 32) % 2] = bytes1(v);
            } else {
                uint256 endCount = uint16(bytes2(abi.encodePacked(b[opts + 72], b[opts + 73])));
                uint256 at = opts + TermsCodec.OPTIONS_LENGTH + endCount * TermsCodec.PERIOD_END_LENGTH;
                if (which == 2) out[at] = bytes1(v); // service count
                else out[at + 1 + TermsCodec.TIER_COUNT_OFFSET] = bytes1(v); // first service's tiers
            }
        }
    }

    function _both(bytes memory b, bool withMethod)
        internal
        view
        returns (bool okNew, bytes memory outNew, bool okOld, bytes memory outOld)
    {
        (okNew, outNew) = address(pair).staticcall(abi.encodeCall(CodecPair.decodeNew, (b, withMethod)));
        (okOld, outOld) = address(pair).staticcall(abi.encodeCall(CodecPair.decodeOld, (b, withMethod)));
    }

    function _word(bytes memory b, uint256 i) internal pure returns (uint256 w) {
        assembly ("memory-safe") {
            w := mload(add(add(b, 36), mul(i, 32)))
        }
    }

    /// @notice Valid or damaged, the assembly decoder does what the old one did: both return the
    /// same terms, or both refuse with TermsLengthMismatch for the buffer's length. When the
    /// counts describe fewer bytes than the buffer holds (every read stayed inside it), both
    /// name the same count of bytes read; past the end each read its own memory, so only the
    /// refusal is compared.
    /// forge-config: ci.fuzz.runs = 2000
    function testFuzz_decodersAgree(uint256 seed, uint8 kind, uint256 r, bool withMethod) public view {
        bytes memory packed = _packed(seed);
        bytes memory b = _damage(packed, kind % 5, r);
        (bool okNew, bytes memory outNew, bool okOld, bytes memory outOld) = _both(b, withMethod);
        assertTrue(okNew == okOld, "one decoder accepted what the other refused");
        if (okNew) {
            assertEq(outNew, outOld, "decoded terms differ");
            if (kind % 5 == 0) assertEq(b.length, packed.length, "undamaged");
            return;
        }
        assertEq(bytes32(bytes4(outNew)), bytes32(TermsCodec.TermsLengthMismatch.selector), "new: not a length error");
        assertEq(bytes32(bytes4(outOld)), bytes32(TermsCodecV0.TermsLengthMismatch.selector), "old: not a length error");
        assertEq(_word(outNew, 1), b.length, "new: the buffer's length");
        assertEq(_word(outOld, 1), b.length, "old: the buffer's length");
        if (_word(outOld, 0) < b.length) assertEq(_word(outNew, 0), _word(outOld, 0), "bytes read within the buffer");
    }

    /// @notice Undamaged terms always decode, identically (not vacuous: the fuzz above may
    /// mostly see refusals).
    /// forge-config: ci.fuzz.runs = 1000
    function testFuzz_validTermsDecodeIdentically(uint256 seed, bool withMethod) public view {
        bytes memory b = _packed(seed);
        (bool okNew, bytes memory outNew, bool okOld, bytes memory outOld) = _both(b, withMethod);
        assertTrue(okNew && okOld, "valid terms refused");
        assertEq(outNew, outOld, "decoded terms differ");
    }

    /// @notice Two decodes share no memory, and nothing decoded lies past the free memory
    /// pointer (memory allocated afterwards never changes a decoded value).
    /// forge-config: ci.fuzz.runs = 1000
    function testFuzz_decodesDoNotAlias(uint256 seed, bool withMethod) public view {
        (bytes32 before2, bytes32 after2, bytes32 expected1, bytes32 after1) = pair.aliasing(_packed(seed), withMethod);
        assertEq(after2, before2, "writing into one decode changed another, or fresh memory overlapped it");
        assertEq(after1, expected1, "fresh memory overlapped the first decode");
        assertTrue(before2 != expected1, "the writes changed nothing (vacuous)");
    }
}
