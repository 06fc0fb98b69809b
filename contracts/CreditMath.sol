// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Service, Tier, BPS} from "./SlaTypes.sol";

/// @title Credit arithmetic of smartsla agreements.
/// @notice Integer arithmetic only; the Python reference model (smartsla.credit) mirrors it
/// line by line and the tests compare both.
library CreditMath {
    /// @notice Credit share (bps of the service's fee share) earned by a measured value.
    /// @dev A value at or above the objective earns nothing. Otherwise the harshest tier whose
    /// threshold the value is strictly below applies; tiers are ordered by falling threshold.
    function tierCredit(Service memory service, uint32 valuePpm) internal pure returns (uint16 creditBps) {
        if (valuePpm >= service.objectivePpm) return 0;
        Tier[] memory tiers = service.tiers;
        for (uint256 i = 0; i < tiers.length; ++i) {
            if (valuePpm < tiers[i].belowPpm) creditBps = tiers[i].creditBps;
            else break;
        }
    }

    /// @notice Credit in asset units of one service for one period.
    function serviceCredit(Service memory service, uint32 valuePpm, uint256 feePerPeriod)
        internal
        pure
        returns (uint256)
    {
        return (feePerPeriod * service.weightBps * tierCredit(service, valuePpm)) / (uint256(BPS) * BPS);
    }

    /// @notice The period's cap on credits in asset units.
    function cap(uint256 feePerPeriod, uint16 creditCapBps) internal pure returns (uint256) {
        return (feePerPeriod * creditCapBps) / BPS;
    }
}
