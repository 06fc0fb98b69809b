// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CorporateAgreement} from "contracts/CorporateAgreement.sol";
import {CorporateAgreementFactory} from "contracts/CorporateAgreementFactory.sol";
import {Service, Tier, Department, CorporateTerms, CorporateSnapshot, Status, PeriodState} from "contracts/SlaTypes.sol";

import {Assertions} from "../utils/TestBase.sol";

/// @title Drives one funded multi-level agreement with random valid calls by its parties and
/// strangers: reports, single and whole-period settlements, the disaster clause per department,
/// time, expiry, withdrawals.
/// @notice Every action checks its preconditions first, so a revert is a bug (fail_on_revert).
/// Four departments (different subsets, fees, caps, an objective override), three one-hour
/// periods, a pool of the worst case plus 1 ether, a committee of one, a disaster threshold of
/// 50 % (erp's figure is drawn from 0..100 %, so departments covering erp get terminated), and a
/// 30-minute dispute window with an arbiter (reports are disputed, corrected and finalized).
contract CorporateHandler is Assertions {
    uint16 public constant PERIODS = 3;
    uint256 public constant DEPARTMENTS = 4;
    address public constant PROVIDER = address(0xB0B1);
    address public constant ORGANISATION = address(0xB0B2);
    address public constant ORACLE = address(0xB0B3);
    address public constant ARBITER = address(0xB0B4);
    uint32 public constant WINDOW = 30 minutes;

    uint128 public constant EXTRA = 1 ether;
    bytes32 internal constant ROOT = keccak256("evidence");

    CorporateAgreementFactory public factory;
    CorporateAgreement public agreement;
    uint128 public collateral;
    mapping(address party => uint256) public withdrawn;
    /// @notice What the organisation was credited by terminations and by the expiry.
    uint256 public organisationRefunds;
    uint256 public terminations;
    uint256 public resolutions;
    uint256 public calls;

    constructor() {
        factory = new CorporateAgreementFactory();
        uint64 start = uint64(block.timestamp + 1 hours);
        CorporateAgreement probe = _deploy(start, type(uint64).max);
        collateral = uint128(uint256(probe.snapshot().worstCasePerPeriod) * PERIODS + EXTRA);
        agreement = _deploy(start, collateral);
        uint256 fees = agreement.totalFees();
        vm.deal(ORGANISATION, fees);
        vm.prank(ORGANISATION);
        agreement.depositFees{value: fees}();
        vm.deal(PROVIDER, collateral);
        vm.prank(PROVIDER);
        agreement.depositCollateral{value: collateral}();
    }

    function snap() public view returns (CorporateSnapshot memory) {
        return agreement.snapshot();
    }

    function _deploy(uint64 start, uint128 pool) internal returns (CorporateAgreement c) {
        Service[] memory s = new Service[](3);
        s[0].id = "email";
        s[0].objective = 999_000;
        s[0].tiers = new Tier[](2);
        s[0].tiers[0] = Tier(999_000, 1_000);
        s[0].tiers[1] = Tier(990_000, 2_500);
        s[1].id = "erp";
        s[1].objective = 995_000;
        s[1].tiers = new Tier[](2);
        s[1].tiers[0] = Tier(995_000, 1_000);
        s[1].tiers[1] = Tier(980_000, 3_000);
        s[2].id = "vpn";
        s[2].objective = 990_000;
        s[2].tiers = new Tier[](1);
        s[2].tiers[0] = Tier(990_000, 2_000);
        CorporateTerms memory t;
        t.provider = PROVIDER;
        t.organisation = ORGANISATION;
        t.start = start;
        t.periodLength = 1 hours;
        t.periodCount = PERIODS;
        t.collateral = pool;
        t.creditCapBps = 5_000;
        t.terminationPpm = 500_000;
        t.oracles = new address[](1);
        t.oracles[0] = ORACLE;
        t.quorum = 1;
        t.sliceLength = 60;
        t.disputeWindow = WINDOW;
        t.arbiter = ARBITER;
        t.services = s;
        c = CorporateAgreement(factory.createCorporateAgreement(t, departments()));
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
        uint256 next = snap().reportedPeriods;
        if (snap().status != Status.Active || block.timestamp < g.periodEnd(next) || block.timestamp >= g.expiresAt()) {
            return;
        }
        uint32[] memory v = new uint32[](3);
        // Often a clean period, often an outage, anything in between.
        v[0] = uint32(bound(a, 900_000, 1_000_000));
        v[1] = uint32(bound(b, 0, 1_000_000));
        v[2] = uint32(bound(c, 985_000, 1_000_000));
        vm.prank(ORACLE);
        g.settle(next, v, 1_000_000, ROOT);
    }

    function settle(uint256 dept, address caller) external {
        ++calls;
        CorporateAgreement g = agreement;
        uint256 d = bound(dept, 0, DEPARTMENTS - 1);
        (uint16 next, bool terminated, uint16 endPeriod) = g.departmentState(d);
        if (next >= snap().reportedPeriods || (terminated && next >= endPeriod)) return;
        (PeriodState state,,) = g.periodState(next);
        if (state != PeriodState.Final) return; // departments settle final periods only
        address payout = payoutOf(d);
        uint256 before = g.owed(payout);
        vm.prank(caller);
        g.settleDepartment(d, next);
        assertLe(g.owed(payout) - before, g.worstCreditOf(d), "a credit within the department's reservation");
    }

    function settlePeriod(uint256 period, address caller) external {
        ++calls;
        CorporateAgreement g = agreement;
        uint256 reported = snap().reportedPeriods;
        if (reported == 0) return;
        uint256 p = bound(period, 0, reported - 1);
        (PeriodState state,,) = g.periodState(p);
        if (state != PeriodState.Final) return;
        for (uint256 d = 0; d < DEPARTMENTS; ++d) {
            (uint16 settled, bool terminated, uint16 endPeriod) = g.departmentState(d);
            if (settled < p && !(terminated && p >= endPeriod)) return; // a department behind: settle it first
        }
        vm.prank(caller);
        g.settleDepartments(p, 0, DEPARTMENTS);
    }

    /// @notice The organisation or the provider disputes a pending period within its window.
    function dispute(uint256 period, bool byProvider) external {
        ++calls;
        uint256 reported = snap().reportedPeriods;
        if (reported == 0) return;
        uint256 p = bound(period, 0, reported - 1);
        (PeriodState state, uint256 finalAfter,) = agreement.periodState(p);
        if (state != PeriodState.Pending || block.timestamp >= finalAfter) return;
        vm.prank(byProvider ? PROVIDER : ORGANISATION);
        agreement.dispute(p, ROOT);
    }

    /// @notice The arbiter corrects a disputed period with any figures.
    function resolve(uint256 period, uint32 a, uint32 b, uint32 c) external {
        ++calls;
        uint256 reported = snap().reportedPeriods;
        if (reported == 0) return;
        uint256 p = bound(period, 0, reported - 1);
        (PeriodState state,,) = agreement.periodState(p);
        if (state != PeriodState.Disputed) return;
        uint32[] memory v = new uint32[](3);
        v[0] = uint32(bound(a, 0, 1_000_000));
        v[1] = uint32(bound(b, 0, 1_000_000));
        v[2] = uint32(bound(c, 0, 1_000_000));
        vm.prank(ARBITER);
        agreement.resolveDispute(p, v);
        ++resolutions;
    }

    /// @notice Anyone makes a period final once its window (two for an undecided dispute) passed.
    function finalize(uint256 period) external {
        ++calls;
        uint256 reported = snap().reportedPeriods;
        if (reported == 0) return;
        uint256 p = bound(period, 0, reported - 1);
        (PeriodState state, uint256 finalAfter,) = agreement.periodState(p);
        if (state == PeriodState.Disputed) finalAfter += WINDOW;
        else if (state != PeriodState.Pending) return;
        if (block.timestamp < finalAfter) return;
        agreement.finalize(p);
    }

    function warp(uint256 secondsAhead) external {
        ++calls;
        vm.warp(block.timestamp + bound(secondsAhead, 0, 20 days));
    }

    function expire(address caller) external {
        ++calls;
        CorporateAgreement g = agreement;
        CorporateSnapshot memory s = snap();
        if (s.status != Status.Active || block.timestamp < g.expiresAt()) return;
        uint256 expected = 0; // the unreported periods' fees of the departments still running
        for (uint256 d = 0; d < DEPARTMENTS; ++d) {
            (,bool terminated,) = g.departmentState(d);
            if (!terminated) expected += feeOf(d) * (PERIODS - s.reportedPeriods);
        }
        uint256 before = g.owed(ORGANISATION);
        vm.prank(caller);
        g.expire();
        assertEq(g.owed(ORGANISATION) - before, expected, "expiry refunds the unreported periods' fees");
        organisationRefunds += expected;
    }

    /// @notice The organisation invokes the disaster clause for a department whose service fell
    /// below 50 % in a reported period, before the next period ends.
    function terminate(uint256 dept, uint256 period) external {
        ++calls;
        CorporateAgreement g = agreement;
        CorporateSnapshot memory s = snap();
        if (s.status != Status.Active || s.reportedPeriods == 0) return;
        uint256 d = bound(dept, 0, DEPARTMENTS - 1);
        uint256 p = bound(period, 0, s.reportedPeriods - 1);
        (,bool terminated,) = g.departmentState(d);
        (PeriodState state,, uint16 mask) = g.periodState(p);
        if (terminated || state != PeriodState.Final || mask & g.department(d).serviceMask == 0) return;
        if (block.timestamp >= g.periodEnd(s.reportedPeriods)) return; // a period awaits its report
        uint256 before = g.owed(ORGANISATION);
        vm.prank(ORGANISATION);
        g.terminateDepartment(d, p);
        ++terminations;
        organisationRefunds += g.owed(ORGANISATION) - before;
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
