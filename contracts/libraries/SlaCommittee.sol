// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title The oracle committee's rules, shared by `Agreement` and `CorporateAgreement`.
/// @notice One EIP-712 report type (with its evidence root) and one median rule, so both kinds
/// of agreement accept exactly the same signed reports and read them the same way.
library SlaCommittee {
    /// @notice EIP-712 type of an oracle report. The domain (name "smartsla Agreement", version
    /// "1", chain id, verifyingContract = the agreement) and the period make a signature useless
    /// on any other chain, agreement or period. The deadline makes an unused signature worthless
    /// after it. The evidence root is signed with the values. Each agreement encodes the struct
    /// in its `reportDigest` (inline: a library call there costs a settlement about 60 gas per
    /// report); the tests sign once with smartsla.reports and check both kinds accept it.
    bytes32 internal constant REPORT_TYPEHASH = keccak256(
        "Report(uint256 period,uint32[] valuesPpm,uint32 measuredPpm,bytes32 evidenceRoot,uint64 deadline)"
    );

    /// @dev Position of `who` in `members`, or type(uint256).max when not a member (at most 16).
    function memberIndex(address[] memory members, address who) internal pure returns (uint256) {
        for (uint256 i = 0; i < members.length; ++i) {
            if (members[i] == who) return i;
        }
        return type(uint256).max;
    }

    /// @dev Median by insertion sort (at most 16 committee reports, so the loop is bounded): the
    /// middle value of an odd count; of an even count the floor of the mean of the two middle
    /// values, neutral between higher-is-better and lower-is-better services.
    function median(uint32[] memory xs) internal pure returns (uint32) {
        uint256 n = xs.length;
        for (uint256 i = 1; i < n; ++i) {
            uint32 x = xs[i];
            uint256 j = i;
            while (j > 0 && xs[j - 1] > x) {
                xs[j] = xs[j - 1];
                --j;
            }
            xs[j] = x;
        }
        if (n % 2 == 1) return xs[n / 2];
        return uint32((uint256(xs[n / 2 - 1]) + xs[n / 2]) / 2);
    }
}
