// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CreditMath} from "contracts/CreditMath.sol";
import {Service, Tier, PPM, BPS, KIND_AVAILABILITY, KIND_LATENCY} from "contracts/SlaTypes.sol";

import {TestBase} from "./utils/TestBase.sol";
import {TermsGen} from "./utils/TermsGen.sol";
import {RefModel} from "./utils/RefModel.sol";

/// @title Fuzz tests of the credit arithmetic: CreditMath against an independent restatement,
/// and the properties the README promises (monotone, nothing at the objective, bounded by the
/// service's share of the fee, capped per period).
contract CreditMathTest is TestBase {
    function _service(uint256 seed) internal pure returns (Service memory) {
        return TermsGen.services(seed, 1, 8)[0];
    }

    /// @dev A latency service: thresholds in ms rising above the objective, credits rising.
    function _latencyService(uint256 seed) internal pure returns (Service memory s) {
        uint256 m = TermsGen.between(TermsGen.rand(seed, 1), 1, 8);
        s.id = bytes32(uint256(1));
        s.weightBps = uint16(TermsGen.between(TermsGen.rand(seed, 2), 1, BPS));
        s.objective = uint32(TermsGen.between(TermsGen.rand(seed, 3), 1, 10_000));
        s.tiers = new Tier[](m);
        uint256 below = s.objective;
        uint256 credit = 0;
        for (uint256 j = 0; j < m; ++j) {
            uint256 r = TermsGen.rand(seed, 10 + j);
            below = j == 0 && r % 3 == 0 ? below : below + 1 + r % 5_000;
            credit = TermsGen.between(r >> 64, credit + 1, BPS - (m - 1 - j));
            s.tiers[j] = Tier({threshold: uint32(below), creditBps: uint16(credit)});
        }
    }

    function testFuzz_availabilityCreditMatchesTheRestatement(uint256 seed, uint32 value, uint128 fee) public pure {
        Service memory s = _service(seed);
        value = uint32(bound(value, 0, PPM));
        assertEq(CreditMath.tierCredit(s, KIND_AVAILABILITY, value), RefModel.creditBps(s, value), "tier credit");
        assertEq(
            CreditMath.serviceCredit(s, KIND_AVAILABILITY, value, fee),
            RefModel.serviceCredit(s, value, fee),
            "service credit"
        );
    }

    function testFuzz_availabilityCreditIsMonotoneAndBounded(uint256 seed, uint32 a, uint32 b, uint128 fee) public pure {
        Service memory s = _service(seed);
        a = uint32(bound(a, 0, PPM));
        b = uint32(bound(b, 0, PPM));
        (uint32 lo, uint32 hi) = a <= b ? (a, b) : (b, a);
        uint256 creditLo = CreditMath.serviceCredit(s, KIND_AVAILABILITY, lo, fee);
        uint256 creditHi = CreditMath.serviceCredit(s, KIND_AVAILABILITY, hi, fee);
        assertGe(creditLo, creditHi, "a worse value never earns less");
        assertLe(creditLo, uint256(fee) * s.weightBps / BPS, "at most the service's share of the fee");
        if (hi >= s.objective) assertEq(creditHi, 0, "nothing at or above the objective");
        // just below the objective: the mildest tier if its threshold is the objective, else nothing
        if (s.objective > 0) {
            uint16 justBelow = CreditMath.tierCredit(s, KIND_AVAILABILITY, s.objective - 1);
            assertEq(justBelow, s.tiers[0].threshold == s.objective ? s.tiers[0].creditBps : 0, "just below");
        }
        // zero measured earns the harshest tier (unless that tier's threshold is 0 itself)
        Tier memory harshest = s.tiers[s.tiers.length - 1];
        if (harshest.threshold > 0) assertEq(CreditMath.tierCredit(s, KIND_AVAILABILITY, 0), harshest.creditBps, "zero value");
    }

    function testFuzz_latencyCreditMatchesTheRestatementAndIsMonotone(uint256 seed, uint32 a, uint32 b, uint128 fee)
        public
        pure
    {
        Service memory s = _latencyService(seed);
        (uint32 lo, uint32 hi) = a <= b ? (a, b) : (b, a);
        assertEq(CreditMath.tierCredit(s, KIND_LATENCY, lo), RefModel.latencyCreditBps(s, lo), "latency tier (lo)");
        assertEq(CreditMath.tierCredit(s, KIND_LATENCY, hi), RefModel.latencyCreditBps(s, hi), "latency tier (hi)");
        uint256 creditLo = CreditMath.serviceCredit(s, KIND_LATENCY, lo, fee);
        uint256 creditHi = CreditMath.serviceCredit(s, KIND_LATENCY, hi, fee);
        assertLe(creditLo, creditHi, "slower never earns less");
        assertLe(creditHi, uint256(fee) * s.weightBps / BPS, "at most the service's share of the fee");
        if (lo <= s.objective) assertEq(creditLo, 0, "nothing at or below the latency objective");
    }

    function testFuzz_capIsAShareOfTheFee(uint128 fee, uint16 capBps) public pure {
        capBps = uint16(bound(capBps, 1, BPS));
        uint256 c = CreditMath.cap(fee, capBps);
        assertLe(c, fee, "cap <= fee");
        assertEq(c, uint256(fee) * capBps / BPS, "cap formula");
        if (capBps == BPS) assertEq(c, fee, "a 100 % cap is the whole fee");
    }

    /// @notice The sum over services can never exceed the fee, whatever the values.
    function testFuzz_servicesTogetherNeverExceedTheFee(uint256 seed, uint256 valueSeed, uint128 fee) public pure {
        Service[] memory ss = TermsGen.services(seed, 16, 8);
        uint256 total;
        for (uint256 i = 0; i < ss.length; ++i) {
            uint32 v = uint32(bound(TermsGen.rand(valueSeed, i), 0, PPM));
            total += CreditMath.serviceCredit(ss[i], KIND_AVAILABILITY, v, fee);
        }
        assertLe(total, fee, "credits of all services <= fee");
    }

    /// @notice The AWS EC2 (region level) schedule, point by point.
    function test_awsEc2Schedule() public pure {
        Service memory s = TermsGen.awsService("compute", 10_000);
        uint32[8] memory values = [uint32(1_000_000), 999_900, 999_899, 990_000, 989_999, 950_000, 949_999, 0];
        uint16[8] memory credits = [uint16(0), 0, 1_000, 1_000, 3_000, 3_000, 10_000, 10_000];
        for (uint256 i = 0; i < 8; ++i) {
            assertEq(CreditMath.tierCredit(s, KIND_AVAILABILITY, values[i]), credits[i], "AWS tier");
        }
        assertEq(CreditMath.serviceCredit(s, KIND_AVAILABILITY, 989_999, 1 ether), 0.3 ether, "30 % of the fee");
    }
}
