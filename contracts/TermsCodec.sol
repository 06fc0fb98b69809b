// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Terms, Options, Service, Tier} from "./SlaTypes.sol";

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
library TermsCodec {
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
        uint256 off;
        // In assembly: every settlement decodes the terms, and field by field through a reader
        // function it cost ~3,700 gas for one service (issue 15: batch settlement). Memory
        // layout of the structs (one word per field, in declaration order, a dynamic member by
        // its pointer): Terms provider 0x00, customer 0x20, oracles 0x40, quorum 0x60, asset 0x80,
        // start 0xa0, periodLength 0xc0, periodCount 0xe0, feePerPeriod 0x100, collateral 0x120,
        // creditCapBps 0x140, terminationPpm 0x160, services 0x180; Options disputeWindow 0x00,
        // arbiter 0x20, maintenanceNotice 0x40, serviceKinds 0x60, periodEnds 0x80,
        // maintenanceBudget 0xa0, sliceLength 0xc0, minMeasuredPpm 0xe0, specHash 0x100,
        // latencyPercentiles 0x120; Service id 0x00, objective 0x20, weightBps 0x40, tiers 0x60;
        // Tier threshold 0x00, creditBps 0x20. Arrays: length, then one word per element (a
        // pointer for structs). Everything is allocated past the free memory pointer, which is
        // moved once at the end. No bounds check per read (a read past the end of `b` reads
        // other memory): the length check after the block refuses any buffer whose counts do
        // not describe exactly its length.
        assembly ("memory-safe") {
            let p := add(b, 32)
            mstore(t, shr(96, mload(p))) // provider
            mstore(add(t, 0x20), shr(96, mload(add(p, CUSTOMER_OFFSET))))
            mstore(add(t, 0x80), shr(96, mload(add(p, ASSET_OFFSET))))
            mstore(add(t, 0xa0), shr(192, mload(add(p, START_OFFSET))))
            mstore(add(t, 0xc0), shr(224, mload(add(p, PERIOD_LENGTH_OFFSET))))
            mstore(add(t, 0xe0), shr(240, mload(add(p, PERIOD_COUNT_OFFSET))))
            mstore(add(t, 0x100), shr(128, mload(add(p, FEE_OFFSET))))
            mstore(add(t, 0x120), shr(128, mload(add(p, COLLATERAL_OFFSET))))
            mstore(add(t, 0x140), shr(240, mload(add(p, CREDIT_CAP_OFFSET))))
            mstore(add(t, 0x160), shr(224, mload(add(p, TERMINATION_OFFSET))))
            mstore(add(t, 0x60), byte(0, mload(add(p, QUORUM_OFFSET))))
            let n := byte(0, mload(add(p, ORACLE_COUNT_OFFSET)))
            let q := add(p, HEADER_LENGTH)
            let fmp := mload(0x40)
            // oracles
            mstore(fmp, n)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(add(fmp, shl(5, add(i, 1))), shr(96, mload(q)))
                q := add(q, ORACLE_LENGTH)
            }
            mstore(add(t, 0x40), fmp)
            fmp := add(fmp, shl(5, add(n, 1)))
            // options
            mstore(o, shr(224, mload(q))) // disputeWindow
            mstore(add(o, 0x20), shr(96, mload(add(q, ARBITER_OFFSET))))
            mstore(add(o, 0x40), shr(224, mload(add(q, MAINTENANCE_NOTICE_OFFSET))))
            mstore(add(o, 0xa0), shr(224, mload(add(q, MAINTENANCE_BUDGET_OFFSET))))
            mstore(add(o, 0xc0), shr(224, mload(add(q, SLICE_LENGTH_OFFSET))))
            mstore(add(o, 0xe0), shr(224, mload(add(q, MIN_MEASURED_OFFSET))))
            if withMethod { mstore(add(o, 0x100), mload(add(q, SPEC_HASH_OFFSET))) }
            n := shr(240, mload(add(q, PERIOD_END_COUNT_OFFSET)))
            q := add(q, OPTIONS_LENGTH)
            // period ends
            mstore(fmp, n)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(add(fmp, shl(5, add(i, 1))), shr(224, mload(q)))
                q := add(q, PERIOD_END_LENGTH)
            }
            mstore(add(o, 0x80), fmp)
            fmp := add(fmp, shl(5, add(n, 1)))
            // services, with their kinds (and percentiles) in arrays of their own
            n := byte(0, mload(q))
            q := add(q, 1)
            let services := fmp
            mstore(services, n)
            let kinds := add(services, shl(5, add(n, 1)))
            mstore(kinds, n)
            fmp := add(kinds, shl(5, add(n, 1)))
            let percentiles := 0x60
            if withMethod {
                percentiles := fmp
                mstore(percentiles, n)
                fmp := add(percentiles, shl(5, add(n, 1)))
            }
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                let s := fmp
                mstore(add(services, shl(5, add(i, 1))), s)
                mstore(s, mload(q)) // id
                mstore(add(s, 0x20), shr(224, mload(add(q, OBJECTIVE_OFFSET))))
                mstore(add(s, 0x40), shr(240, mload(add(q, WEIGHT_OFFSET))))
                mstore(add(kinds, shl(5, add(i, 1))), byte(0, mload(add(q, KIND_OFFSET))))
                if withMethod { mstore(add(percentiles, shl(5, add(i, 1))), byte(0, mload(add(q, PERCENTILE_OFFSET)))) }
                let m := byte(0, mload(add(q, TIER_COUNT_OFFSET)))
                q := add(q, SERVICE_LENGTH)
                let tiers := add(s, 0x80)
                mstore(add(s, 0x60), tiers)
                mstore(tiers, m)
                let tier := add(tiers, shl(5, add(m, 1)))
                for { let j := 0 } lt(j, m) { j := add(j, 1) } {
                    mstore(add(tiers, shl(5, add(j, 1))), tier)
                    mstore(tier, shr(224, mload(q)))
                    mstore(add(tier, 0x20), shr(240, mload(add(q, CREDIT_BPS_OFFSET))))
                    tier := add(tier, 0x40)
                    q := add(q, TIER_LENGTH)
                }
                fmp := tier
            }
            mstore(add(t, 0x180), services)
            mstore(add(o, 0x60), kinds)
            if withMethod { mstore(add(o, 0x120), percentiles) }
            mstore(0x40, fmp)
            off := sub(q, p)
        }
        // The counts read above describe exactly `b`: a truncated buffer (whose last reads ran
        // past its end into whatever memory follows) or trailing bytes are refused.
        if (off != b.length) revert TermsLengthMismatch(off, b.length);
    }
}
