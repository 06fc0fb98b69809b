// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Terms, Options, Service, Tier} from "contracts/SlaTypes.sol";

// tests/forge/mocks/TermsCodecV0.sol: contracts/TermsCodec.sol of main 4de4212 (the decoder that
// read field by field through `_read`), copied verbatim but for its name and import path, so
// that tests/forge/TermsCodecDifferential.t.sol compares the assembly decoder with it.
/// @title Compact encoding of agreement terms.
/// @notice The factory stores each agreement's terms in the bytecode of its EIP-1167 clone
/// ("immutable args"): they cannot change after creation, and bytes of code cost 200 gas where
/// a storage slot costs 22,100. abi.encode would spend 32 bytes on every uint16, so the terms
/// are packed tightly instead (about 270 bytes for one oracle and one service with three tiers).
/// The decoder checks at the end that it read exactly the bytes it was given
/// (`TermsLengthMismatch`): one comparison per decode, paid for by its unchecked offset arithmetic.
/// @dev Layout (big-endian, no padding):
///   0 provider(20) 20 customer(20) 40 asset(20)
///   60 start(8) 68 periodLength(4) 72 periodCount(2) 74 feePerPeriod(16) 90 collateral(16)
///   106 creditCapBps(2) 108 terminationPpm(4) 112 quorum(1) 113 oracleCount(1)
///   114 oracles: address(20) each
///   then disputeWindow(4) arbiter(20) maintenanceNotice(4) maintenanceBudget(4) sliceLength(4)
///   minMeasuredPpm(4) specHash(32) periodEndCount(2) periodEnds(4 each)
///   then serviceCount(1) and services: id(32) objective(4) weightBps(2) kind(1)
///   latencyPercentile(1) tierCount(1), then per tier threshold(4) creditBps(2)
library TermsCodecV0 {
    /// @notice The packed terms are not exactly as long as what their counts describe (a
    /// truncated or an over-long buffer): `consumed` bytes were read, the buffer holds `length`.
    error TermsLengthMismatch(uint256 consumed, uint256 length);

    uint256 internal constant HEADER_LENGTH = 114;
    /// @dev Byte offsets of the header fields (Agreement's fixed-offset readers use the hot ones).
    uint256 internal constant PROVIDER_OFFSET = 0;
    uint256 internal constant CUSTOMER_OFFSET = 20;
    uint256 internal constant ASSET_OFFSET = 40;
    uint256 internal constant START_OFFSET = 60;
    uint256 internal constant PERIOD_LENGTH_OFFSET = 68;
    uint256 internal constant PERIOD_COUNT_OFFSET = 72;
    uint256 internal constant FEE_OFFSET = 74;
    uint256 internal constant COLLATERAL_OFFSET = 90;
    uint256 internal constant CREDIT_CAP_OFFSET = 106;
    uint256 internal constant TERMINATION_OFFSET = 108;
    uint256 internal constant QUORUM_OFFSET = 112;
    uint256 internal constant ORACLE_COUNT_OFFSET = 113;
    /// @dev Sizes of the repeated items: an oracle address, a period end, a tier.
    uint256 internal constant ORACLE_LENGTH = 20;
    uint256 internal constant PERIOD_END_LENGTH = 4;
    uint256 internal constant TIER_LENGTH = 6;
    /// @dev Offset of creditBps inside a tier (threshold is at 0).
    uint256 internal constant CREDIT_BPS_OFFSET = 4;
    /// @dev disputeWindow, arbiter, maintenanceNotice, maintenanceBudget, sliceLength,
    /// minMeasuredPpm, specHash, periodEndCount.
    uint256 internal constant OPTIONS_LENGTH = 74;
    /// @dev Offsets inside the options block (after the oracles).
    uint256 internal constant ARBITER_OFFSET = 4;
    uint256 internal constant MAINTENANCE_NOTICE_OFFSET = 24;
    uint256 internal constant MAINTENANCE_BUDGET_OFFSET = 28;
    uint256 internal constant SLICE_LENGTH_OFFSET = 32;
    uint256 internal constant MIN_MEASURED_OFFSET = 36;
    uint256 internal constant SPEC_HASH_OFFSET = 40;
    uint256 internal constant PERIOD_END_COUNT_OFFSET = 72;
    /// @dev id, objective, weightBps, kind, latencyPercentile, tierCount (then a tier each).
    uint256 internal constant SERVICE_LENGTH = 41;
    /// @dev Offsets inside a service record.
    uint256 internal constant OBJECTIVE_OFFSET = 32;
    uint256 internal constant WEIGHT_OFFSET = 36;
    uint256 internal constant KIND_OFFSET = 38;
    uint256 internal constant PERCENTILE_OFFSET = 39;
    uint256 internal constant TIER_COUNT_OFFSET = 40;

    /// @notice Size in bytes of `encode(t, o)`.
    function packedLength(Terms memory t, Options memory o) internal pure returns (uint256 size) {
        size = HEADER_LENGTH + ORACLE_LENGTH * t.oracles.length + OPTIONS_LENGTH
            + PERIOD_END_LENGTH * o.periodEnds.length + 1;
        for (uint256 i = 0; i < t.services.length; ++i) {
            size += SERVICE_LENGTH + TIER_LENGTH * t.services[i].tiers.length;
        }
    }

    /// @notice Packs terms; the caller has validated them (counts fit in one byte, the size fits
    /// a clone). The output is allocated once and every field written in place, so the cost is
    /// linear in the size of the terms.
    function encode(Terms memory t, Options memory o) internal pure returns (bytes memory out) {
        uint256 size = packedLength(t, o);
        // 32 spare bytes: each write stores a whole word whose tail (zeros) the next field overwrites.
        out = new bytes(size + 32);
        assembly ("memory-safe") {
            mstore(out, size)
        }
        uint256 off = _put(out, 0, uint160(t.provider), 160);
        off = _put(out, off, uint160(t.customer), 160);
        off = _put(out, off, uint160(t.asset), 160);
        off = _put(out, off, t.start, 64);
        off = _put(out, off, t.periodLength, 32);
        off = _put(out, off, t.periodCount, 16);
        off = _put(out, off, t.feePerPeriod, 128);
        off = _put(out, off, t.collateral, 128);
        off = _put(out, off, t.creditCapBps, 16);
        off = _put(out, off, t.terminationPpm, 32);
        off = _put(out, off, t.quorum, 8);
        off = _put(out, off, t.oracles.length, 8);
        for (uint256 i = 0; i < t.oracles.length; ++i) {
            off = _put(out, off, uint160(t.oracles[i]), 160);
        }
        off = _put(out, off, o.disputeWindow, 32);
        off = _put(out, off, uint160(o.arbiter), 160);
        off = _put(out, off, o.maintenanceNotice, 32);
        off = _put(out, off, o.maintenanceBudget, 32);
        off = _put(out, off, o.sliceLength, 32);
        off = _put(out, off, o.minMeasuredPpm, 32);
        off = _put(out, off, uint256(o.specHash), 256);
        off = _put(out, off, o.periodEnds.length, 16);
        for (uint256 i = 0; i < o.periodEnds.length; ++i) {
            off = _put(out, off, o.periodEnds[i], 32);
        }
        off = _put(out, off, t.services.length, 8);
        for (uint256 i = 0; i < t.services.length; ++i) {
            Service memory s = t.services[i];
            off = _put(out, off, uint256(s.id), 256);
            off = _put(out, off, s.objective, 32);
            off = _put(out, off, s.weightBps, 16);
            off = _put(out, off, o.serviceKinds.length == 0 ? 0 : o.serviceKinds[i], 8);
            off = _put(out, off, o.latencyPercentiles.length == 0 ? 0 : o.latencyPercentiles[i], 8);
            off = _put(out, off, s.tiers.length, 8);
            for (uint256 j = 0; j < s.tiers.length; ++j) {
                off = _put(out, off, s.tiers[j].threshold, 32);
                off = _put(out, off, s.tiers[j].creditBps, 16);
            }
        }
    }

    /// @dev Writes the low `bits` bits of `value` big-endian at byte `offset` of `b` and returns
    /// the offset after them. Stores a whole word: the bytes after the field become zero, which
    /// is harmless because fields are written in rising order and `b` has 32 spare bytes.
    function _put(bytes memory b, uint256 offset, uint256 value, uint256 bits) private pure returns (uint256) {
        assembly ("memory-safe") {
            mstore(add(add(b, 32), offset), shl(sub(256, bits), value))
        }
        return offset + bits / 8;
    }

    /// @notice Unpacks what `encode` packed (service kinds and latency percentiles always come
    /// back explicit, one per service; a percentile of 0 means none).
    function decode(bytes memory b) internal pure returns (Terms memory t, Options memory o) {
        return decode(b, true);
    }

    /// @notice `decode`, skipping the description of the method when `withMethod` is false:
    /// `specHash` stays zero and `latencyPercentiles` empty. No settlement rule reads them (the
    /// oracles and the auditors do, through `options()`), so every settlement is spared their cost.
    function decode(bytes memory b, bool withMethod) internal pure returns (Terms memory t, Options memory o) {
        t.provider = address(uint160(_read(b, PROVIDER_OFFSET, 160)));
        t.customer = address(uint160(_read(b, CUSTOMER_OFFSET, 160)));
        t.asset = address(uint160(_read(b, ASSET_OFFSET, 160)));
        t.start = uint64(_read(b, START_OFFSET, 64));
        t.periodLength = uint32(_read(b, PERIOD_LENGTH_OFFSET, 32));
        t.periodCount = uint16(_read(b, PERIOD_COUNT_OFFSET, 16));
        t.feePerPeriod = uint128(_read(b, FEE_OFFSET, 128));
        t.collateral = uint128(_read(b, COLLATERAL_OFFSET, 128));
        t.creditCapBps = uint16(_read(b, CREDIT_CAP_OFFSET, 16));
        t.terminationPpm = uint32(_read(b, TERMINATION_OFFSET, 32));
        t.quorum = uint8(_read(b, QUORUM_OFFSET, 8));
        uint256 oracleCount = _read(b, ORACLE_COUNT_OFFSET, 8);
        t.oracles = new address[](oracleCount);
        uint256 off = HEADER_LENGTH;
        // Unchecked: every count is read from at most two bytes, so no offset comes near
        // overflowing; a wrong count is caught by the length check at the end.
        unchecked {
            for (uint256 i = 0; i < oracleCount; ++i) {
                t.oracles[i] = address(uint160(_read(b, off, 160)));
                off += ORACLE_LENGTH;
            }
            o.disputeWindow = uint32(_read(b, off, 32));
            o.arbiter = address(uint160(_read(b, off + ARBITER_OFFSET, 160)));
            o.maintenanceNotice = uint32(_read(b, off + MAINTENANCE_NOTICE_OFFSET, 32));
            o.maintenanceBudget = uint32(_read(b, off + MAINTENANCE_BUDGET_OFFSET, 32));
            o.sliceLength = uint32(_read(b, off + SLICE_LENGTH_OFFSET, 32));
            o.minMeasuredPpm = uint32(_read(b, off + MIN_MEASURED_OFFSET, 32));
            if (withMethod) o.specHash = bytes32(_read(b, off + SPEC_HASH_OFFSET, 256));
            uint256 endCount = _read(b, off + PERIOD_END_COUNT_OFFSET, 16);
            off += OPTIONS_LENGTH;
            o.periodEnds = new uint32[](endCount);
            for (uint256 i = 0; i < endCount; ++i) {
                o.periodEnds[i] = uint32(_read(b, off, 32));
                off += PERIOD_END_LENGTH;
            }
            uint256 serviceCount = _read(b, off, 8);
            off += 1;
            t.services = new Service[](serviceCount);
            o.serviceKinds = new uint8[](serviceCount);
            if (withMethod) o.latencyPercentiles = new uint8[](serviceCount);
            for (uint256 i = 0; i < serviceCount; ++i) {
                Service memory s = t.services[i];
                s.id = bytes32(_read(b, off, 256));
                s.objective = uint32(_read(b, off + OBJECTIVE_OFFSET, 32));
                s.weightBps = uint16(_read(b, off + WEIGHT_OFFSET, 16));
                o.serviceKinds[i] = uint8(_read(b, off + KIND_OFFSET, 8));
                if (withMethod) o.latencyPercentiles[i] = uint8(_read(b, off + PERCENTILE_OFFSET, 8));
                uint256 tierCount = _read(b, off + TIER_COUNT_OFFSET, 8);
                off += SERVICE_LENGTH;
                s.tiers = new Tier[](tierCount);
                for (uint256 j = 0; j < tierCount; ++j) {
                    s.tiers[j] = Tier({threshold: uint32(_read(b, off, 32)), creditBps: uint16(_read(b, off + CREDIT_BPS_OFFSET, 16))});
                    off += TIER_LENGTH;
                }
            }
        }
        // The counts read above describe exactly `b`: a truncated buffer (whose last reads ran
        // past its end into whatever memory follows) or trailing bytes are refused.
        if (off != b.length) revert TermsLengthMismatch(off, b.length);
    }

    /// @dev Reads `bits` bits starting at byte `offset` of `b`, as an unsigned integer. No bounds
    /// check per read (every read of a settlement would pay for it): `decode` checks once, at
    /// the end, that it read exactly `b.length` bytes.
    function _read(bytes memory b, uint256 offset, uint256 bits) private pure returns (uint256 value) {
        assembly ("memory-safe") {
            value := shr(sub(256, bits), mload(add(add(b, 32), offset)))
        }
    }
}
