// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Service, Tier, Department, KIND_AVAILABILITY} from "../SlaTypes.sol";
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
    function creditsInto(
        Service[] memory services,
        Department memory dep,
        uint16 corporateCapBps,
        uint32[] memory values,
        uint256[] memory serviceCredits
    ) internal pure returns (uint256 total) {
        uint256 n = services.length;
        for (uint256 i = 0; i < n; ++i) {
            if (dep.serviceMask & (1 << i) == 0) continue;
            Service memory s = services[i];
            // A copy: the department's overrides must not leak into the next department's credit.
            Service memory own =
                Service({id: s.id, objectivePpm: s.objectivePpm, weightBps: dep.weightsBps[i], tiers: s.tiers});
            if (dep.objectives[i] != 0) {
                // A department's own objective moves the mildest tier with it: a stricter
                // objective means "below it, the first credit applies".
                own.objectivePpm = dep.objectives[i];
                own.tiers = _moveFirstTier(s.tiers, dep.objectives[i]);
            }
            serviceCredits[i] = CreditMath.serviceCredit(own, KIND_AVAILABILITY, values[i], dep.feePerPeriod);
            total += serviceCredits[i];
        }
        uint256 cap = CreditMath.cap(dep.feePerPeriod, dep.creditCapBps == 0 ? corporateCapBps : dep.creditCapBps);
        if (total > cap) total = cap;
    }

    /// @dev A copy of `tiers` whose mildest threshold is `objective` (at most 8 tiers).
    function _moveFirstTier(Tier[] memory tiers, uint32 objective) private pure returns (Tier[] memory out) {
        out = new Tier[](tiers.length);
        for (uint256 j = 0; j < tiers.length; ++j) {
            out[j] = Tier({belowPpm: j == 0 ? objective : tiers[j].belowPpm, creditBps: tiers[j].creditBps});
        }
    }
}
