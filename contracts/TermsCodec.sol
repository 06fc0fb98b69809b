// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Terms, Options, Service, Tier} from "./SlaTypes.sol";

/// @title Compact encoding of agreement terms.
/// @notice The factory stores each agreement's terms in the bytecode of its EIP-1167 clone
/// ("immutable args"): they cannot change after creation, and bytes of code cost 200 gas where
/// a storage slot costs 22,100. abi.encode would spend 32 bytes on every uint16, so the terms
/// are packed tightly instead (about 220 bytes for one oracle and one service with three tiers).
/// @dev Layout (big-endian, no padding):
///   0 provider(20) 20 customer(20) 40 asset(20)
///   60 start(8) 68 periodLength(4) 72 periodCount(2) 74 feePerPeriod(16) 90 collateral(16)
///   106 creditCapBps(2) 108 terminationPpm(4) 112 quorum(1) 113 oracleCount(1)
///   114 oracles: address(20) each
///   then disputeWindow(4) arbiter(20) maintenanceNotice(4) maintenanceBudget(4) periodEndCount(2)
///   periodEnds(4 each)
///   then serviceCount(1) and services: id(32) objectivePpm(4) weightBps(2) kind(1) tierCount(1),
///   then per tier belowPpm(4) creditBps(2)
library TermsCodec {
    uint256 internal constant HEADER_LENGTH = 114;

    /// @notice Packs terms; the caller has validated them (counts fit in one byte).
    function encode(Terms memory t, Options memory o) internal pure returns (bytes memory out) {
        out = abi.encodePacked(
            t.provider,
            t.customer,
            t.asset,
            t.start,
            t.periodLength,
            t.periodCount,
            t.feePerPeriod,
            t.collateral,
            t.creditCapBps,
            t.terminationPpm,
            t.quorum,
            uint8(t.oracles.length)
        );
        for (uint256 i = 0; i < t.oracles.length; ++i) {
            out = abi.encodePacked(out, t.oracles[i]);
        }
        out = abi.encodePacked(
            out, o.disputeWindow, o.arbiter, o.maintenanceNotice, o.maintenanceBudget, uint16(o.periodEnds.length)
        );
        for (uint256 i = 0; i < o.periodEnds.length; ++i) {
            out = abi.encodePacked(out, o.periodEnds[i]);
        }
        out = abi.encodePacked(out, uint8(t.services.length));
        for (uint256 i = 0; i < t.services.length; ++i) {
            Service memory s = t.services[i];
            uint8 kind = o.serviceKinds.length == 0 ? 0 : o.serviceKinds[i];
            out = abi.encodePacked(out, s.id, s.objectivePpm, s.weightBps, kind, uint8(s.tiers.length));
            for (uint256 j = 0; j < s.tiers.length; ++j) {
                out = abi.encodePacked(out, s.tiers[j].belowPpm, s.tiers[j].creditBps);
            }
        }
    }

    /// @notice Unpacks what `encode` packed (service kinds always come back explicit).
    function decode(bytes memory b) internal pure returns (Terms memory t, Options memory o) {
        t.provider = address(uint160(_read(b, 0, 160)));
        t.customer = address(uint160(_read(b, 20, 160)));
        t.asset = address(uint160(_read(b, 40, 160)));
        t.start = uint64(_read(b, 60, 64));
        t.periodLength = uint32(_read(b, 68, 32));
        t.periodCount = uint16(_read(b, 72, 16));
        t.feePerPeriod = uint128(_read(b, 74, 128));
        t.collateral = uint128(_read(b, 90, 128));
        t.creditCapBps = uint16(_read(b, 106, 16));
        t.terminationPpm = uint32(_read(b, 108, 32));
        t.quorum = uint8(_read(b, 112, 8));
        uint256 oracleCount = _read(b, 113, 8);
        t.oracles = new address[](oracleCount);
        uint256 off = HEADER_LENGTH;
        for (uint256 i = 0; i < oracleCount; ++i) {
            t.oracles[i] = address(uint160(_read(b, off, 160)));
            off += 20;
        }
        o.disputeWindow = uint32(_read(b, off, 32));
        o.arbiter = address(uint160(_read(b, off + 4, 160)));
        o.maintenanceNotice = uint32(_read(b, off + 24, 32));
        o.maintenanceBudget = uint32(_read(b, off + 28, 32));
        uint256 endCount = _read(b, off + 32, 16);
        off += 34;
        o.periodEnds = new uint32[](endCount);
        for (uint256 i = 0; i < endCount; ++i) {
            o.periodEnds[i] = uint32(_read(b, off, 32));
            off += 4;
        }
        uint256 serviceCount = _read(b, off, 8);
        off += 1;
        t.services = new Service[](serviceCount);
        o.serviceKinds = new uint8[](serviceCount);
        for (uint256 i = 0; i < serviceCount; ++i) {
            Service memory s = t.services[i];
            s.id = bytes32(_read(b, off, 256));
            s.objectivePpm = uint32(_read(b, off + 32, 32));
            s.weightBps = uint16(_read(b, off + 36, 16));
            o.serviceKinds[i] = uint8(_read(b, off + 38, 8));
            uint256 tierCount = _read(b, off + 39, 8);
            off += 40;
            s.tiers = new Tier[](tierCount);
            for (uint256 j = 0; j < tierCount; ++j) {
                s.tiers[j] = Tier({belowPpm: uint32(_read(b, off, 32)), creditBps: uint16(_read(b, off + 4, 16))});
                off += 6;
            }
        }
    }

    /// @dev Reads `bits` bits starting at byte `offset` of `b`, as an unsigned integer. No bounds
    /// check: `b` is always what `encode` wrote into a clone's code (the factory is the only
    /// writer and code cannot change), and every read of a settlement would pay for the check.
    function _read(bytes memory b, uint256 offset, uint256 bits) private pure returns (uint256 value) {
        assembly ("memory-safe") {
            value := shr(sub(256, bits), mload(add(add(b, 32), offset)))
        }
    }
}
