// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {TermsCodec} from "contracts/TermsCodec.sol";
import {Agreement} from "contracts/Agreement.sol";
import {AgreementFactory} from "contracts/AgreementFactory.sol";
import {Terms, Options, Service, Tier} from "contracts/SlaTypes.sol";

import {TestBase} from "./utils/TestBase.sol";
import {TermsGen, Limits} from "./utils/TermsGen.sol";

/// @notice Exposes the internal library to the tests.
contract CodecHarness {
    function encode(Terms memory t, Options memory o) external pure returns (bytes memory) {
        return TermsCodec.encode(t, o);
    }

    function decode(bytes memory b) external pure returns (Terms memory t, Options memory o) {
        return TermsCodec.decode(b);
    }

    function decodeWithoutMethod(bytes memory b) external pure returns (Terms memory t, Options memory o) {
        return TermsCodec.decode(b, false);
    }
}

/// @title Packed terms survive encode -> decode, in the library and through a real clone.
contract TermsCodecTest is TestBase {
    CodecHarness internal codec;
    AgreementFactory internal factory;

    Limits internal wide = Limits({
        maxServices: 16,
        maxTiers: 8,
        maxPeriods: type(uint16).max,
        minPeriodLength: 1,
        maxPeriodLength: type(uint32).max,
        maxFee: type(uint128).max,
        maxCollateral: type(uint128).max
    });

    function setUp() public {
        codec = new CodecHarness();
        factory = new AgreementFactory();
    }

    /// @dev Valid random terms over the full ranges of every field, and random options.
    function _random(uint256 seed) internal view returns (Terms memory t, Options memory o) {
        uint256 oracleCount = TermsGen.between(TermsGen.rand(seed, 50), 1, 16);
        address[] memory oracles = new address[](oracleCount);
        for (uint256 i = 0; i < oracleCount; ++i) oracles[i] = address(uint160(0x1000 + i + (TermsGen.rand(seed, 60 + i) << 16)));
        t = TermsGen.random(
            seed,
            wide,
            address(uint160(TermsGen.rand(seed, 70) | 1)) , // never zero
            address(uint160(TermsGen.rand(seed, 71) | 2)),
            oracles,
            TermsGen.rand(seed, 72) % 2 == 0 ? address(0) : address(uint160(TermsGen.rand(seed, 73))),
            uint64(TermsGen.between(TermsGen.rand(seed, 74), block.timestamp, type(uint64).max))
        );
        uint256 r = TermsGen.rand(seed, 80);
        if (r % 2 == 0) {
            o.disputeWindow = uint32(TermsGen.between(r >> 8, 1, type(uint32).max));
            o.arbiter = address(uint160(TermsGen.rand(seed, 81) | 4));
        }
        o.maintenanceNotice = uint32(r >> 40);
        // notice and budget go together
        o.maintenanceBudget = o.maintenanceNotice == 0 ? 0 : uint32(TermsGen.between(r >> 72, 1, type(uint32).max));
        // periods are whole minutes (TermsGen), so 1 s and 60 s slices divide them
        o.sliceLength = (r >> 104) % 2 == 0 ? 1 : 60;
        o.minMeasuredPpm = uint32(TermsGen.between(r >> 112, 0, 1_000_000));
        o.specHash = bytes32(TermsGen.rand(seed, 82)); // any document hash, zero included
        if ((r >> 80) % 2 == 0) {
            // explicit kinds: availability or composite (not latency: its tiers differ)
            o.serviceKinds = new uint8[](t.services.length);
            o.serviceKinds[0] = 0;
            for (uint256 i = 1; i < t.services.length; ++i) o.serviceKinds[i] = TermsGen.rand(seed, 90 + i) % 2 == 0 ? 0 : 3;
        }
    }

    function _explicitKinds(Options memory o, uint256 n) internal pure returns (Options memory) {
        if (o.serviceKinds.length == 0) o.serviceKinds = new uint8[](n);
        if (o.latencyPercentiles.length == 0) o.latencyPercentiles = new uint8[](n);
        return o;
    }

    function testFuzz_roundTrip(uint256 seed) public view {
        (Terms memory t, Options memory o) = _random(seed);
        bytes memory packed = codec.encode(t, o);
        (Terms memory t2, Options memory o2) = codec.decode(packed);
        assertEq(keccak256(abi.encode(t2)), keccak256(abi.encode(t)), "terms round trip");
        assertEq(keccak256(abi.encode(o2)), keccak256(abi.encode(_explicitKinds(o, t.services.length))), "options round trip");
        // packed: far smaller than abi.encode
        assertLe(packed.length, abi.encode(t, o).length / 3, "packed tightly");
    }

    /// @notice Through the factory: validated, cloned, and read back by the clone itself.
    function testFuzz_cloneReadsBackItsTerms(uint256 seed) public {
        (Terms memory t, Options memory o) = _random(seed);
        Agreement a = Agreement(factory.createAgreementWithOptions(t, o));
        assertTrue(factory.isAgreement(address(a)), "registered");
        assertEq(keccak256(abi.encode(a.terms())), keccak256(abi.encode(t)), "clone terms");
        assertEq(
            keccak256(abi.encode(a.options())), keccak256(abi.encode(_explicitKinds(o, t.services.length))), "clone options"
        );
    }

    /// @notice The largest terms the factory accepts (16 oracles, 16 services of 8 tiers) fit in
    /// a clone.
    function test_largestTermsFitInAClone() public {
        (Terms memory t, Options memory o) = _random(1);
        t.oracles = new address[](16);
        for (uint256 i = 0; i < 16; ++i) t.oracles[i] = address(uint160(0xA000 + i));
        t.quorum = 15; // odd
        t.services = new Service[](16);
        for (uint256 i = 0; i < 16; ++i) {
            Service memory s = t.services[i];
            s.id = bytes32(i + 1);
            s.objective = 1_000_000;
            s.weightBps = uint16(i < 15 ? 625 : 10_000 - 15 * 625);
            s.tiers = new Tier[](8);
            for (uint256 j = 0; j < 8; ++j) {
                s.tiers[j] = Tier({threshold: uint32(1_000_000 - 1_000 * j), creditBps: uint16(1_000 + 1_000 * j)});
            }
        }
        o.serviceKinds = new uint8[](0);
        Agreement a = Agreement(factory.createAgreementWithOptions(t, o));
        assertEq(keccak256(abi.encode(a.terms())), keccak256(abi.encode(t)), "largest terms round trip");
        assertLe(address(a).code.length, 24_576, "within the code size limit");
    }

    /// @dev `b` without its last `cut` bytes (the counts in the header stay intact).
    function _truncated(bytes memory b, uint256 cut) internal pure returns (bytes memory out) {
        out = new bytes(b.length - cut);
        for (uint256 i = 0; i < out.length; ++i) out[i] = b[i];
    }

    /// @notice A buffer shorter than its counts describe is refused with the lengths, not read
    /// past its end into whatever memory follows.
    function testFuzz_truncatedBufferReverts(uint256 seed, uint8 cut) public {
        (Terms memory t, Options memory o) = _random(seed);
        bytes memory packed = codec.encode(t, o);
        // at most the last tier: the counts that describe the rest are still in the buffer
        uint256 n = 1 + uint256(cut) % TermsCodec.TIER_LENGTH;
        bytes memory short = _truncated(packed, n);
        vm.expectRevert(abi.encodeWithSelector(TermsCodec.TermsLengthMismatch.selector, packed.length, short.length));
        codec.decode(short);
        vm.expectRevert(abi.encodeWithSelector(TermsCodec.TermsLengthMismatch.selector, packed.length, short.length));
        codec.decodeWithoutMethod(short);
    }

    /// @notice Trailing bytes after the last tier are refused too.
    function testFuzz_overLongBufferReverts(uint256 seed, uint8 extra) public {
        (Terms memory t, Options memory o) = _random(seed);
        bytes memory packed = codec.encode(t, o);
        uint256 n = 1 + uint256(extra) % 64;
        bytes memory long = bytes.concat(packed, new bytes(n));
        vm.expectRevert(abi.encodeWithSelector(TermsCodec.TermsLengthMismatch.selector, packed.length, long.length));
        codec.decode(long);
        vm.expectRevert(abi.encodeWithSelector(TermsCodec.TermsLengthMismatch.selector, packed.length, long.length));
        codec.decodeWithoutMethod(long);
    }
}
