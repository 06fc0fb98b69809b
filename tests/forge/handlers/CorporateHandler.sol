// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CorporateAgreement, Department} from "contracts/CorporateAgreement.sol";
import {Service, Tier} from "contracts/SlaTypes.sol";

import {Assertions} from "../utils/TestBase.sol";

/// @title Drives one funded multi-level agreement with random valid calls by its parties and
/// strangers: reports, single and whole-period settlements, time, expiry, withdrawals.
/// @notice Every action checks its preconditions first, so a revert is a bug (fail_on_revert).
/// Four departments (different subsets, fees, caps, an objective override), three one-hour
/// periods, a pool of the worst case plus 1 ether.
contract CorporateHandler is Assertions {
    uint16 public constant PERIODS = 3;
    uint256 public constant DEPARTMENTS = 4;
    address public constant PROVIDER = address(0xB0B1);
    address public constant ORGANISATION = address(0xB0B2);
    address public constant ORACLE = address(0xB0B3);

    CorporateAgreement public agreement;
    mapping(address party => uint256) public withdrawn;
    uint256 public calls;

    constructor() {
        uint64 start = uint64(block.timestamp + 1 hours);
        CorporateAgreement probe = _deploy(start, type(uint128).max);
        agreement = _deploy(start, uint128(uint256(probe.worstCasePerPeriod()) * PERIODS + 1 ether));
        uint256 fees = agreement.totalFees();
        vm.deal(ORGANISATION, fees);
        vm.prank(ORGANISATION);
        agreement.depositFees{value: fees}(fees);
        uint256 pool = agreement.collateral();
        vm.deal(PROVIDER, pool);
        vm.prank(PROVIDER);
        agreement.depositCollateral{value: pool}();
    }

    function _deploy(uint64 start, uint128 collateral) internal returns (CorporateAgreement c) {
        Service[] memory s = new Service[](3);
        s[0].id = "email";
        s[0].objectivePpm = 999_000;
        s[0].tiers = new Tier[](2);
        s[0].tiers[0] = Tier(999_000, 1_000);
        s[0].tiers[1] = Tier(990_000, 2_500);
        s[1].id = "erp";
        s[1].objectivePpm = 995_000;
        s[1].tiers = new Tier[](2);
        s[1].tiers[0] = Tier(995_000, 1_000);
        s[1].tiers[1] = Tier(980_000, 3_000);
        s[2].id = "vpn";
        s[2].objectivePpm = 990_000;
        s[2].tiers = new Tier[](1);
        s[2].tiers[0] = Tier(990_000, 2_000);
        c = new CorporateAgreement(PROVIDER, ORGANISATION, ORACLE, address(0), start, 1 hours, PERIODS, 5_000, collateral, s);
        c.addDepartments(departments());
    }

    function departments() public pure returns (Department[] memory d) {
        d = new Department[](DEPARTMENTS);
        for (uint256 i = 0; i < DEPARTMENTS; ++i) {
            d[i].payout = payoutOf(i);
            d[i].feePerPeriod = uint128(feeOf(i));
            d[i].objectives = new uint32[](3);
            d[i].weightsBps = new uint16[](3);
        }
        d[0].serviceMask = 3;
        d[0].weightsBps[0] = 3_000;
        d[0].weightsBps[1] = 7_000;
        d[0].objectives[1] = 999_000;
        d[0].creditCapBps = 10_000;
        d[1].serviceMask = 5;
        d[1].weightsBps[0] = 5_000;
        d[1].weightsBps[2] = 5_000;
        d[2].serviceMask = 7;
        d[2].weightsBps[0] = 2_000;
        d[2].weightsBps[1] = 2_000;
        d[2].weightsBps[2] = 6_000;
        d[3].serviceMask = 4;
        d[3].weightsBps[2] = 10_000;
        d[3].creditCapBps = 1_000;
    }

    function payoutOf(uint256 d) public pure returns (address) {
        return address(uint160(0xD000 + d));
    }

    function feeOf(uint256 d) public pure returns (uint256) {
        return (d + 1) * 0.5 ether;
    }

    /// @notice Every party that can be owed money: provider, organisation, the departments.
    function parties() public pure returns (address[] memory p) {
        p = new address[](DEPARTMENTS + 2);
        p[0] = PROVIDER;
        p[1] = ORGANISATION;
        for (uint256 i = 0; i < DEPARTMENTS; ++i) {
            p[i + 2] = payoutOf(i);
        }
    }

    // ------------------------------------------------------------ actions

    function report(uint32 a, uint32 b, uint32 c) external {
        ++calls;
        CorporateAgreement g = agreement;
        uint256 next = g.reportedPeriods();
        if (g.expired() || next >= PERIODS || block.timestamp < g.periodEnd(next) || block.timestamp >= g.expiresAt()) {
            return;
        }
        uint32[] memory v = new uint32[](3);
        // Often a clean period, often an outage, anything in between.
        v[0] = uint32(bound(a, 900_000, 1_000_000));
        v[1] = uint32(bound(b, 0, 1_000_000));
        v[2] = uint32(bound(c, 985_000, 1_000_000));
        vm.prank(ORACLE);
        g.report(next, v);
    }

    function settle(uint256 dept, address caller) external {
        ++calls;
        CorporateAgreement g = agreement;
        uint256 d = bound(dept, 0, DEPARTMENTS - 1);
        uint256 next = g.settledPeriodsOf(d);
        if (next >= g.reportedPeriods()) return;
        address payout = payoutOf(d);
        uint256 before = g.owed(payout);
        vm.prank(caller);
        g.settleDepartment(d, next);
        assertLe(g.owed(payout) - before, g.worstCreditOf(d), "a credit within the department's reservation");
    }

    function settlePeriod(uint256 period, address caller) external {
        ++calls;
        CorporateAgreement g = agreement;
        uint256 reported = g.reportedPeriods();
        if (reported == 0) return;
        uint256 p = bound(period, 0, reported - 1);
        for (uint256 d = 0; d < DEPARTMENTS; ++d) {
            if (g.settledPeriodsOf(d) < p) return; // a department behind: settle it first
        }
        vm.prank(caller);
        g.settleDepartments(p, 0, DEPARTMENTS);
    }

    function warp(uint256 secondsAhead) external {
        ++calls;
        vm.warp(block.timestamp + bound(secondsAhead, 0, 20 days));
    }

    function expire(address caller) external {
        ++calls;
        CorporateAgreement g = agreement;
        if (g.expired() || block.timestamp < g.expiresAt() || g.reportedPeriods() == PERIODS) return;
        vm.prank(caller);
        g.expire();
    }

    function withdraw(uint256 who) external {
        ++calls;
        address[] memory p = parties();
        address party = p[bound(who, 0, p.length - 1)];
        uint256 amount = agreement.owed(party);
        if (amount == 0) return;
        vm.prank(party);
        agreement.withdraw();
        withdrawn[party] += amount;
    }
}
