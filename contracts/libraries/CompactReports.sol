// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SignedReport} from "../SlaTypes.sol";

/// @title Compact calldata of one period's signed reports (issue 15, batch settlement).
/// @notice `Agreement.settleCompact` takes the same reports as `settleWithReports`, packed
/// tightly instead of ABI-encoded: no offsets, no 32-byte padding of small numbers, the 65-byte
/// signature inline. The agreement reads each field with `calldataload` at a fixed offset (no
/// copy to memory), after checking once that the buffer is exactly as long as its report count
/// and the terms' service count make it: a short or over-long buffer is refused
/// (`Agreement.MalformedReports`), so no read ever runs past the end and reads zeros.
/// @dev Layout (big-endian, no padding):
///   0 period(2) 2 reportCount(1), then reportCount reports of REPORT_FIXED_LENGTH + 4 x services:
///   0 measuredPpm(4) 4 evidenceRoot(32) 36 deadline(8) 44 r(32) 76 s(32) 108 v(1)
///   109 valuesPpm: 4 bytes each, one per service of the terms (the count is the terms')
/// The EIP-712 report signed is unchanged (period as uint256): a period fits two bytes because
/// an agreement has at most 65,535 periods (`Terms.periodCount` is a uint16).
/// smartsla/compact_reports.py is the same layout in Python.
library CompactReports {
    uint256 internal constant HEADER_LENGTH = 3;
    uint256 internal constant REPORT_FIXED_LENGTH = 109;
    uint256 internal constant VALUE_LENGTH = 4;
    /// @dev Offsets inside a report.
    uint256 internal constant ROOT_OFFSET = 4;
    uint256 internal constant DEADLINE_OFFSET = 36;
    uint256 internal constant R_OFFSET = 44;
    uint256 internal constant S_OFFSET = 76;
    uint256 internal constant V_OFFSET = 108;
    uint256 internal constant VALUES_OFFSET = 109;

    /// @notice A report cannot be packed: its signature is not 65 bytes, or there are more than
    /// 255 reports, or the period does not fit two bytes (encoder only: never reached on-chain).
    error NotPackable();

    /// @notice Bytes of one report of an agreement with `services` services.
    function reportLength(uint256 services) internal pure returns (uint256) {
        return REPORT_FIXED_LENGTH + VALUE_LENGTH * services;
    }

    /// @notice Packs `reports` of `period` (for tests and off-chain tools written in Solidity).
    function encode(uint256 period, SignedReport[] memory reports) internal pure returns (bytes memory out) {
        if (period > type(uint16).max || reports.length > type(uint8).max) revert NotPackable();
        out = abi.encodePacked(uint16(period), uint8(reports.length));
        for (uint256 i = 0; i < reports.length; ++i) {
            SignedReport memory r = reports[i];
            if (r.signature.length != 65) revert NotPackable();
            out = abi.encodePacked(out, r.measuredPpm, r.evidenceRoot, r.deadline, r.signature);
            for (uint256 j = 0; j < r.valuesPpm.length; ++j) {
                out = abi.encodePacked(out, r.valuesPpm[j]);
            }
        }
    }
}
