// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Terms, Service, PPM, BPS} from "contracts/SlaTypes.sol";

/// @title An independent restatement of the credit rules, for comparison with CreditMath.
/// @notice Written from the README, not from CreditMath: a value strictly below a tier's
/// threshold earns that tier's credit; of all tiers earned, the largest credit counts (tiers are
/// harsher the lower they go); nothing at or above the objective.
library RefModel {
    function creditBps(Service memory s, uint256 valuePpm) internal pure returns (uint256 best) {
        if (valuePpm >= s.objective) return 0;
        for (uint256 j = s.tiers.length; j > 0; --j) {
            if (valuePpm < s.tiers[j - 1].threshold && s.tiers[j - 1].creditBps > best) best = s.tiers[j - 1].creditBps;
        }
    }

    /// @notice Latency (lower is better, thresholds in ms): a value strictly above a tier's
    /// threshold earns it; the largest credit earned counts; nothing at or below the objective.
    function latencyCreditBps(Service memory s, uint256 valueMs) internal pure returns (uint256 best) {
        if (valueMs <= s.objective) return 0;
        for (uint256 j = 0; j < s.tiers.length; ++j) {
            if (valueMs > s.tiers[j].threshold && s.tiers[j].creditBps > best) best = s.tiers[j].creditBps;
        }
    }

    function serviceCredit(Service memory s, uint256 valuePpm, uint256 fee) internal pure returns (uint256) {
        // fee x (weight/10^4) x (credit/10^4), rounded down once
        return fee * s.weightBps * creditBps(s, valuePpm) / 1e8;
    }

    /// @return total credit for the period after the cap (before the collateral limit)
    /// @return disaster whether any service fell below the termination threshold
    function periodCredit(Terms memory t, uint32[] memory values) internal pure returns (uint256 total, bool disaster) {
        for (uint256 i = 0; i < values.length; ++i) {
            total += serviceCredit(t.services[i], values[i], t.feePerPeriod);
            if (values[i] < t.terminationPpm) disaster = true;
        }
        uint256 cap = uint256(t.feePerPeriod) * t.creditCapBps / BPS;
        if (total > cap) total = cap;
    }

    /// @notice Lower median of a copy of xs (selection by counting, not sorting).
    function lowerMedian(uint32[] memory xs) internal pure returns (uint32) {
        uint256 k = (xs.length - 1) / 2; // rank wanted, zero-based
        for (uint256 i = 0; i < xs.length; ++i) {
            uint256 below;
            uint256 equal;
            for (uint256 j = 0; j < xs.length; ++j) {
                if (xs[j] < xs[i]) ++below;
                else if (xs[j] == xs[i]) ++equal;
            }
            if (below <= k && k < below + equal) return xs[i];
        }
        revert("unreachable");
    }

    /// @notice Rank `k` (zero-based) of a copy of xs, by counting.
    function rank(uint32[] memory xs, uint256 k) internal pure returns (uint32) {
        for (uint256 i = 0; i < xs.length; ++i) {
            uint256 below;
            uint256 equal;
            for (uint256 j = 0; j < xs.length; ++j) {
                if (xs[j] < xs[i]) ++below;
                else if (xs[j] == xs[i]) ++equal;
            }
            if (below <= k && k < below + equal) return xs[i];
        }
        revert("unreachable");
    }

    /// @notice The neutral median: the middle value of an odd count, the floor of the mean of the
    /// two middle values of an even count.
    function median(uint32[] memory xs) internal pure returns (uint32) {
        uint256 n = xs.length;
        if (n % 2 == 1) return rank(xs, n / 2);
        return uint32((uint256(rank(xs, n / 2 - 1)) + rank(xs, n / 2)) / 2);
    }

    function ppmMax() internal pure returns (uint256) {
        return PPM;
    }
}
