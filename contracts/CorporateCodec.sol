// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CorporateTerms, Department, Service, Tier} from "./SlaTypes.sol";

/// @title Compact encoding of a multi-level agreement's terms and departments.
/// @notice The corporate terms are the immutable args of the agreement's EIP-1167 clone (as
/// TermsCodec for a single agreement). 256 departments do not fit there (EIP-170: 24,576 bytes of
/// code), so their records are written by the factory into one or two data contracts ("SSTORE2":
/// code that starts with a STOP byte and is never run), whose addresses are in the terms. Both
/// are code: nobody can change them after creation, and reading one department costs one
/// EXTCODECOPY of its record, whatever the number of departments.
/// @dev Terms layout (big-endian, no padding), fixed offsets first:
///   0 provider(20) 20 organisation(20) 40 asset(20) 60 start(8) 68 periodLength(4)
///   72 periodCount(2) 74 collateral(16) 90 feesPerPeriod(16) 106 worstCasePerPeriod(16)
///   122 creditCapBps(2) 124 terminationPpm(4) 128 disputeWindow(4) 132 arbiter(20)
///   152 maintenanceNotice(4) 156 maintenanceBudget(4) 160 sliceLength(4) 164 minMeasuredPpm(4)
///   168 departmentCount(2) 170 recordLength(2) 172 chunkCapacity(2) 174 chunkCount(1)
///   175 quorum(1) 176 oracleCount(1) 177 serviceCount(1)
///   178 oracles: address(20) each; chunks: address(20) each; services: id(32) objective(4)
///   tierCount(1), then per tier threshold(4) creditBps(2).
/// Department record (`recordLength` = 58 + 6 x serviceCount bytes): payout(20) feePerPeriod(16)
///   worstCredit(16) serviceMask(4) creditCapBps(2), then per service objective(4) weightBps(2).
library CorporateCodec {
    uint256 internal constant PROVIDER = 0;
    uint256 internal constant ORGANISATION = 20;
    uint256 internal constant ASSET = 40;
    uint256 internal constant START = 60;
    uint256 internal constant PERIOD_LENGTH = 68;
    uint256 internal constant PERIOD_COUNT = 72;
    uint256 internal constant COLLATERAL = 74;
    uint256 internal constant FEES_PER_PERIOD = 90;
    uint256 internal constant WORST_PER_PERIOD = 106;
    uint256 internal constant CREDIT_CAP = 122;
    uint256 internal constant TERMINATION = 124;
    uint256 internal constant DISPUTE_WINDOW = 128;
    uint256 internal constant ARBITER = 132;
    uint256 internal constant MAINTENANCE_NOTICE = 152;
    uint256 internal constant MAINTENANCE_BUDGET = 156;
    uint256 internal constant SLICE_LENGTH = 160;
    uint256 internal constant MIN_MEASURED = 164;
    uint256 internal constant DEPARTMENT_COUNT = 168;
    uint256 internal constant RECORD_LENGTH = 170;
    uint256 internal constant CHUNK_CAPACITY = 172;
    uint256 internal constant CHUNK_COUNT = 174;
    uint256 internal constant QUORUM = 175;
    uint256 internal constant ORACLE_COUNT = 176;
    uint256 internal constant SERVICE_COUNT = 177;
    uint256 internal constant HEADER_LENGTH = 178;
    /// @dev Bytes of a department record before its per-service part.
    uint256 internal constant RECORD_HEAD = 58;

    /// @notice What the factory computed from the departments, stored with the terms.
    struct Totals {
        uint128 feesPerPeriod;
        uint128 worstCasePerPeriod;
        uint16 departmentCount;
        uint16 recordLength;
        uint16 chunkCapacity;
        address[] chunks;
    }

    function packedLength(CorporateTerms memory t, uint256 chunkCount) internal pure returns (uint256 size) {
        size = HEADER_LENGTH + 20 * (t.oracles.length + chunkCount);
        for (uint256 i = 0; i < t.services.length; ++i) {
            size += 37 + 6 * t.services[i].tiers.length;
        }
    }

    function encode(CorporateTerms memory t, Totals memory x) internal pure returns (bytes memory out) {
        uint256 size = packedLength(t, x.chunks.length);
        out = new bytes(size + 32);
        assembly ("memory-safe") {
            mstore(out, size)
        }
        uint256 off = _put(out, 0, uint160(t.provider), 160);
        off = _put(out, off, uint160(t.organisation), 160);
        off = _put(out, off, uint160(t.asset), 160);
        off = _put(out, off, t.start, 64);
        off = _put(out, off, t.periodLength, 32);
        off = _put(out, off, t.periodCount, 16);
        off = _put(out, off, t.collateral, 128);
        off = _put(out, off, x.feesPerPeriod, 128);
        off = _put(out, off, x.worstCasePerPeriod, 128);
        off = _put(out, off, t.creditCapBps, 16);
        off = _put(out, off, t.terminationPpm, 32);
        off = _put(out, off, t.disputeWindow, 32);
        off = _put(out, off, uint160(t.arbiter), 160);
        off = _put(out, off, t.maintenanceNotice, 32);
        off = _put(out, off, t.maintenanceBudget, 32);
        off = _put(out, off, t.sliceLength, 32);
        off = _put(out, off, t.minMeasuredPpm, 32);
        off = _put(out, off, x.departmentCount, 16);
        off = _put(out, off, x.recordLength, 16);
        off = _put(out, off, x.chunkCapacity, 16);
        off = _put(out, off, x.chunks.length, 8);
        off = _put(out, off, t.quorum, 8);
        off = _put(out, off, t.oracles.length, 8);
        off = _put(out, off, t.services.length, 8);
        for (uint256 i = 0; i < t.oracles.length; ++i) {
            off = _put(out, off, uint160(t.oracles[i]), 160);
        }
        for (uint256 i = 0; i < x.chunks.length; ++i) {
            off = _put(out, off, uint160(x.chunks[i]), 160);
        }
        for (uint256 i = 0; i < t.services.length; ++i) {
            Service memory s = t.services[i];
            off = _put(out, off, uint256(s.id), 256);
            off = _put(out, off, s.objective, 32);
            off = _put(out, off, s.tiers.length, 8);
            for (uint256 j = 0; j < s.tiers.length; ++j) {
                off = _put(out, off, s.tiers[j].threshold, 32);
                off = _put(out, off, s.tiers[j].creditBps, 16);
            }
        }
    }

    /// @notice Unpacks the corporate terms (services with weight 0).
    function decode(bytes memory b) internal pure returns (CorporateTerms memory t) {
        t.provider = address(uint160(read(b, PROVIDER, 160)));
        t.organisation = address(uint160(read(b, ORGANISATION, 160)));
        t.asset = address(uint160(read(b, ASSET, 160)));
        t.start = uint64(read(b, START, 64));
        t.periodLength = uint32(read(b, PERIOD_LENGTH, 32));
        t.periodCount = uint16(read(b, PERIOD_COUNT, 16));
        t.collateral = uint128(read(b, COLLATERAL, 128));
        t.creditCapBps = uint16(read(b, CREDIT_CAP, 16));
        t.terminationPpm = uint32(read(b, TERMINATION, 32));
        t.disputeWindow = uint32(read(b, DISPUTE_WINDOW, 32));
        t.arbiter = address(uint160(read(b, ARBITER, 160)));
        t.maintenanceNotice = uint32(read(b, MAINTENANCE_NOTICE, 32));
        t.maintenanceBudget = uint32(read(b, MAINTENANCE_BUDGET, 32));
        t.sliceLength = uint32(read(b, SLICE_LENGTH, 32));
        t.minMeasuredPpm = uint32(read(b, MIN_MEASURED, 32));
        t.quorum = uint8(read(b, QUORUM, 8));
        t.oracles = oracles(b);
        uint256 off = HEADER_LENGTH + 20 * (t.oracles.length + read(b, CHUNK_COUNT, 8));
        t.services = services(b, off);
    }

    function oracles(bytes memory b) internal pure returns (address[] memory out) {
        uint256 n = read(b, ORACLE_COUNT, 8);
        out = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            out[i] = address(uint160(read(b, HEADER_LENGTH + 20 * i, 160)));
        }
    }

    /// @notice The services, from byte `off` on (weight 0: each department weighs its own).
    function services(bytes memory b, uint256 off) internal pure returns (Service[] memory out) {
        uint256 n = read(b, SERVICE_COUNT, 8);
        out = new Service[](n);
        for (uint256 i = 0; i < n; ++i) {
            Service memory s = out[i];
            s.id = bytes32(read(b, off, 256));
            s.objective = uint32(read(b, off + 32, 32));
            uint256 tierCount = read(b, off + 36, 8);
            off += 37;
            s.tiers = new Tier[](tierCount);
            for (uint256 j = 0; j < tierCount; ++j) {
                s.tiers[j] = Tier({threshold: uint32(read(b, off, 32)), creditBps: uint16(read(b, off + 4, 16))});
                off += 6;
            }
        }
    }

    /// @notice Data-contract address of chunk `k`.
    function chunk(bytes memory b, uint256 k) internal pure returns (address) {
        return address(uint160(read(b, HEADER_LENGTH + 20 * (read(b, ORACLE_COUNT, 8) + k), 160)));
    }

    /// @notice Writes a department's record (its terms and its worst-case credit per period) at
    /// byte `at` of `out`, which has 32 spare bytes after its length (each write stores a word).
    function writeDepartment(bytes memory out, uint256 at, Department memory d, uint256 worstCredit, uint256 serviceCount)
        internal
        pure
    {
        uint256 off = _put(out, at, uint160(d.payout), 160);
        off = _put(out, off, d.feePerPeriod, 128);
        off = _put(out, off, worstCredit, 128);
        off = _put(out, off, d.serviceMask, 32);
        off = _put(out, off, d.creditCapBps, 16);
        for (uint256 i = 0; i < serviceCount; ++i) {
            off = _put(out, off, d.objectives[i], 32);
            off = _put(out, off, d.weightsBps[i], 16);
        }
    }

    function decodeDepartment(bytes memory r, uint256 serviceCount)
        internal
        pure
        returns (Department memory d, uint256 worstCredit)
    {
        d.payout = address(uint160(read(r, 0, 160)));
        d.feePerPeriod = uint128(read(r, 20, 128));
        worstCredit = read(r, 36, 128);
        d.serviceMask = uint32(read(r, 52, 32));
        d.creditCapBps = uint16(read(r, 56, 16));
        d.objectives = new uint32[](serviceCount);
        d.weightsBps = new uint16[](serviceCount);
        for (uint256 i = 0; i < serviceCount; ++i) {
            d.objectives[i] = uint32(read(r, RECORD_HEAD + 6 * i, 32));
            d.weightsBps[i] = uint16(read(r, RECORD_HEAD + 6 * i + 4, 16));
        }
    }

    function _put(bytes memory b, uint256 offset, uint256 value, uint256 bits) private pure returns (uint256) {
        assembly ("memory-safe") {
            mstore(add(add(b, 32), offset), shl(sub(256, bits), value))
        }
        return offset + bits / 8;
    }

    /// @dev `bits` bits at byte `offset` of `b` (no bounds check: `b` is what `encode` wrote into
    /// code only the factory writes).
    function read(bytes memory b, uint256 offset, uint256 bits) internal pure returns (uint256 value) {
        assembly ("memory-safe") {
            value := shr(sub(256, bits), mload(add(add(b, 32), offset)))
        }
    }
}
