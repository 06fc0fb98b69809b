// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Service, Tier, Department, BPS} from "../SlaTypes.sol";
import {CreditMath} from "../CreditMath.sol";

/// @title A department's credit under a multi-level agreement.
/// @notice One home for the rule, used by the factory (each department's worst case, the pool it
/// must cover) and by the agreement (each settlement), so the two cannot disagree.
library DepartmentCredit {
    /// @dev Each covered service's credit for `values` under the department's terms, and the
    /// total capped by the department's cap (or `corporateCapBps`). Credits only grow as values
    /// fall, so the total for values of 0 (a total outage) bounds every other total.
    function credits(Service[] memory services, Department memory dep, uint16 corporateCapBps, uint32[] memory values)
        internal
        pure
        returns (uint256[] memory serviceCredits, uint256 total)
    {
        serviceCredits = new uint256[](services.length);
        total = creditsInto(services, dep, corporateCapBps, values, serviceCredits);
    }

    /// @dev `credits`, writing each service's credit into `serviceCredits` (one per service).
    /// Allocates nothing, so the factory can compute 256 departments' worst cases in one
    /// transaction without its memory cost growing quadratically.
    function creditsInto(
        Service[] memory services,
        Department memory dep,
        uint16 corporateCapBps,
        uint32[] memory values,
        uint256[] memory serviceCredits
    ) internal pure returns (uint256 total) {
        uint256 n = services.length;
        for (uint256 i = 0; i < n; ++i) {
            serviceCredits[i] = 0;
            if (dep.serviceMask & (1 << i) == 0) continue;
            uint256 bps = tierCredit(services[i], dep.objectives[i], values[i]);
            // CreditMath.serviceCredit with the department's weight: fee x weight x tier credit.
            serviceCredits[i] = (uint256(dep.feePerPeriod) * dep.weightsBps[i] * bps) / (uint256(BPS) * BPS);
            total += serviceCredits[i];
        }
        uint256 cap = CreditMath.cap(dep.feePerPeriod, dep.creditCapBps == 0 ? corporateCapBps : dep.creditCapBps);
        if (total > cap) total = cap;
    }

    /// @dev CreditMath.tierCredit for an availability service whose objective a department may
    /// override (`objective` non-zero): the override replaces the objective and moves the mildest
    /// tier's threshold with it ("below it, the first credit applies").
    function tierCredit(Service memory s, uint32 objective, uint32 value) internal pure returns (uint256 creditBps) {
        uint32 target = objective == 0 ? s.objective : objective;
        if (value >= target) return 0;
        Tier[] memory tiers = s.tiers;
        for (uint256 j = 0; j < tiers.length; ++j) {
            uint32 threshold = j == 0 && objective != 0 ? objective : tiers[j].threshold;
            if (value < threshold) creditBps = tiers[j].creditBps;
            else break;
        }
    }
}
