// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Terms, Service, Tier, PPM, BPS} from "contracts/SlaTypes.sol";

/// @notice Bounds for random terms.
struct Limits {
    uint256 maxServices; // 1..16
    uint256 maxTiers; // 1..8
    uint256 maxPeriods; // 1..65535
    uint256 minPeriodLength;
    uint256 maxPeriodLength;
    uint256 maxFee; // per period
    uint256 maxCollateral;
}

/// @title Valid random terms from a seed, and the AWS EC2 (region level) example terms.
library TermsGen {
    function rand(uint256 seed, uint256 salt) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, salt)));
    }

    function between(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        if (hi == type(uint256).max && lo == 0) return x;
        return lo + (x % (hi - lo + 1));
    }

    /// @notice AWS EC2 region-level schedule: objective 99.99 %, tiers 10 % / 30 % / 100 %.
    function awsService(bytes32 id, uint16 weightBps) internal pure returns (Service memory s) {
        s.id = id;
        s.objective = 999_900;
        s.weightBps = weightBps;
        s.tiers = new Tier[](3);
        s.tiers[0] = Tier({threshold: 999_900, creditBps: 1_000});
        s.tiers[1] = Tier({threshold: 990_000, creditBps: 3_000});
        s.tiers[2] = Tier({threshold: 950_000, creditBps: 10_000});
    }

    function example(
        address provider,
        address customer,
        address[] memory oracles,
        uint8 quorum,
        address asset,
        uint64 start
    ) internal pure returns (Terms memory t) {
        t.provider = provider;
        t.customer = customer;
        t.oracles = oracles;
        t.quorum = quorum;
        t.asset = asset;
        t.start = start;
        t.periodLength = 30 days;
        t.periodCount = 3;
        t.feePerPeriod = 1 ether;
        t.collateral = 2 ether;
        t.creditCapBps = 10_000;
        t.terminationPpm = 900_000;
        t.services = new Service[](2);
        t.services[0] = awsService("compute", 6_000);
        t.services[1] = awsService("storage", 4_000);
        t.services[1].objective = 999_000;
        t.services[1].tiers[0].threshold = 999_000;
    }

    /// @notice Random services that pass AgreementFactory.validate: weights sum to 100 %,
    /// thresholds strictly falling and at most the objective, credits strictly rising in 1..10000.
    function services(uint256 seed, uint256 maxServices, uint256 maxTiers)
        internal
        pure
        returns (Service[] memory ss)
    {
        uint256 n = between(rand(seed, 1), 1, maxServices);
        ss = new Service[](n);
        uint256 weightLeft = BPS;
        for (uint256 i = 0; i < n; ++i) {
            uint256 r = rand(seed, 100 + i);
            Service memory s = ss[i];
            s.id = bytes32(i + 1 + (r << 8));
            uint256 left = n - 1 - i;
            s.weightBps = uint16(i + 1 == n ? weightLeft : between(r >> 16, 1, weightLeft - left));
            weightLeft -= s.weightBps;
            uint256 m = between(r >> 32, 1, maxTiers);
            // objective: mostly realistic (>= 90 %), sometimes anywhere in [m-1+1, 100 %]
            uint256 objective = (r >> 40) % 4 == 0
                ? between(r >> 48, m, PPM)
                : between(r >> 48, 900_000, PPM);
            s.objective = uint32(objective);
            s.tiers = new Tier[](m);
            uint256 prevBelow = objective + 1;
            uint256 prevCredit = 0;
            for (uint256 j = 0; j < m; ++j) {
                uint256 rj = rand(r, j);
                uint256 tiersAfter = m - 1 - j;
                uint256 below = j == 0 && rj % 3 == 0 ? objective : between(rj >> 8, tiersAfter, prevBelow - 1);
                uint256 credit = between(rj >> 128, prevCredit + 1, BPS - tiersAfter);
                s.tiers[j] = Tier({threshold: uint32(below), creditBps: uint16(credit)});
                prevBelow = below;
                prevCredit = credit;
            }
        }
    }

    /// @notice Random valid terms (parties and committee given); amounts within `lim`, and
    /// feePerPeriod x periodCount + collateral below 2^128 (see docs/security.md, finding F1).
    function random(
        uint256 seed,
        Limits memory lim,
        address provider,
        address customer,
        address[] memory oracles,
        address asset,
        uint64 start
    ) internal pure returns (Terms memory t) {
        t.provider = provider;
        t.customer = customer;
        t.oracles = oracles;
        t.quorum = uint8(between(rand(seed, 2), 1, oracles.length));
        if (t.quorum % 2 == 0) t.quorum -= 1; // the factory requires an odd quorum
        t.asset = asset;
        t.start = start;
        // whole minutes: the default slice is 60 s
        t.periodLength = uint32(between(rand(seed, 3), lim.minPeriodLength, lim.maxPeriodLength) / 60 * 60);
        if (t.periodLength == 0) t.periodLength = 60;
        t.periodCount = uint16(between(rand(seed, 4), 1, lim.maxPeriods));
        _amounts(t, rand(seed, 5), lim);
        t.services = services(rand(seed, 6), lim.maxServices, lim.maxTiers);
    }

    function _amounts(Terms memory t, uint256 r, Limits memory lim) private pure {
        uint256 maxFee = lim.maxFee;
        if (maxFee > type(uint128).max / t.periodCount) maxFee = type(uint128).max / t.periodCount;
        // amounts: tiny, or anywhere up to the limit
        t.feePerPeriod = uint128(r % 5 == 0 ? between(r >> 8, 1, 100) : between(r >> 8, 1, maxFee));
        uint256 capBps = (r >> 64) % 3 == 0 ? BPS : between(r >> 72, 1, BPS);
        t.creditCapBps = uint16(capBps);
        uint256 totalFees = uint256(t.feePerPeriod) * t.periodCount;
        uint256 maxCollateral = lim.maxCollateral;
        if (maxCollateral > type(uint128).max - totalFees) maxCollateral = type(uint128).max - totalFees;
        uint256 periodCap = uint256(t.feePerPeriod) * capBps / BPS;
        uint256 mode = (r >> 96) % 5;
        uint256 collateral;
        if (mode == 1) collateral = between(r >> 104, 0, periodCap); // less than one bad period
        else if (mode == 2) collateral = periodCap * t.periodCount; // covers every period at the cap
        else if (mode > 2) collateral = between(r >> 104, 0, maxCollateral);
        if (collateral > maxCollateral) collateral = maxCollateral;
        t.collateral = uint128(collateral);
        uint256 tm = (r >> 160) % 3;
        t.terminationPpm = uint32(tm == 0 ? 0 : tm == 1 ? 950_000 : between(r >> 168, 0, PPM));
    }
}
