// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Service, Tier, BPS, KIND_LATENCY} from "./SlaTypes.sol";

/// @title Credit arithmetic of smartsla agreements.
/// @notice Integer arithmetic only; the Python reference model (smartsla.credit) mirrors it
/// line by line and the tests compare both.
library CreditMath {
    /// @notice Credit share (bps of the service's fee share) earned by a measured value.
    /// @dev A value that meets the objective earns nothing. Otherwise the harshest tier whose
    /// threshold the value is beyond applies (strictly below for availability-like services,
    /// strictly above for latency); tiers are ordered from mildest to harshest.
    function tierCredit(Service memory service, uint8 kind, uint32 value) internal pure returns (uint16 creditBps) {
        Tier[] memory tiers = service.tiers;
        if (kind == KIND_LATENCY) {
            if (value <= service.objective) return 0;
            for (uint256 i = 0; i < tiers.length; ++i) {
                if (value > tiers[i].threshold) creditBps = tiers[i].creditBps;
                else break;
            }
            return creditBps;
        }
        if (value >= service.objective) return 0;
        for (uint256 i = 0; i < tiers.length; ++i) {
            if (value < tiers[i].threshold) creditBps = tiers[i].creditBps;
            else break;
        }
    }

    /// @notice Credit in asset units of one service for one period.
    function serviceCredit(Service memory service, uint8 kind, uint32 value, uint256 feePerPeriod)
        internal
        pure
        returns (uint256)
    {
        return (feePerPeriod * service.weightBps * tierCredit(service, kind, value)) / (uint256(BPS) * BPS);
    }

    /// @notice The period's cap on credits in asset units.
    function cap(uint256 feePerPeriod, uint16 creditCapBps) internal pure returns (uint256) {
        return (feePerPeriod * creditCapBps) / BPS;
    }
}
