// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {AgreementFactory} from "contracts/AgreementFactory.sol";
import {Terms, Options, Snapshot, SignedReport, MaintenanceWindow, Service, Tier, PPM} from "contracts/SlaTypes.sol";

import {Fixture} from "./utils/Fixture.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {ISlaEvents} from "contracts/interfaces/ISlaEvents.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

/// @notice A party that cannot receive ether (a multisig without a receive function, say).
contract EtherRefuser {}

/// @title Review 2 (issue 10): one attack per finding, each of which succeeded on the old code.
/// @notice Committee of three oracles; the example terms (two AWS-like services, 30-day periods,
/// 1 ether a period, 2 ether collateral, disaster below 90 %), starting an hour from now.
contract ReviewFindingsTest is Fixture {
    address internal arbiter = vm.addr(0xA4B1);

    function setUp() public {
        _setUpFixture(3);
    }

    function _maintenanceOptions(uint32 notice, uint32 budget) internal pure returns (Options memory o) {
        o = _defaultOptions();
        o.maintenanceNotice = notice;
        o.maintenanceBudget = budget;
    }

    // ------------------------------------------------------------ finding 1
    /// @notice Default terms have no maintenance clause: the provider declaring "maintenance" over
    /// the rest of the term as an outage begins excludes nothing (old code: withNotice = true,
    /// budget 0 = unlimited, so every later figure read 100 %).
    function test_finding1_defaultTermsCannotEraseAnOutage() public {
        Terms memory t = _terms(1, address(0));
        // the factory refuses half a clause
        Options memory o = _maintenanceOptions(1 days, 0);
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.InvalidTerms.selector, "maintenance notice and budget go together"));
        factory.createAgreementWithOptions(t, o);
        o = _maintenanceOptions(0, 1 days);
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.InvalidTerms.selector, "maintenance notice and budget go together"));
        factory.createAgreementWithOptions(t, o);
        Agreement a = _open(t);
        _fund(a, t);
        vm.warp(t.start + 5 days); // the outage begins
        uint256 termEnd = a.periodEnd(t.periodCount - 1);
        vm.expectEmit(true, false, false, true, address(a));
        emit ISlaEvents.MaintenanceDeclared(0, uint64(block.timestamp), uint64(termEnd), uint64(block.timestamp), false);
        vm.prank(provider);
        a.declareMaintenance(uint64(block.timestamp), uint64(termEnd));
        MaintenanceWindow[] memory w = a.maintenanceWindows(0, 10);
        assertTrue(!w[0].excluded, "without a maintenance clause nothing is excluded");
    }

    /// @notice With a clause, a window declared with less than the notice is not excluded either.
    function test_finding1_shortNoticeIsNotExcluded() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = Agreement(factory.createAgreementWithOptions(t, _maintenanceOptions(1 days, 4 hours)));
        _fund(a, t);
        vm.warp(t.start);
        vm.prank(provider);
        a.declareMaintenance(uint64(t.start + 1 hours), uint64(t.start + 2 hours));
        assertTrue(!a.maintenanceWindows(0, 1)[0].excluded, "short notice counts as ordinary time");
    }

    // ------------------------------------------------------------ finding 2
    /// @notice 1,440 one-second windows cost 1,440 s of budget and erased a day of one-minute
    /// slices on the old code. Now a window with notice must cover whole slices, so it is charged
    /// what it excludes, and an agreement holds at most 64 windows.
    function test_finding2_oneSecondWindowsCannotEraseADay() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = Agreement(factory.createAgreementWithOptions(t, _maintenanceOptions(1 days, 2 days)));
        _fund(a, t);
        uint64 day = uint64(t.start + 2 days); // a slice boundary
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.MisalignedWindow.selector, day, day + 1, 60));
        vm.prank(provider);
        a.declareMaintenance(day, day + 1);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.MisalignedWindow.selector, day + 59, day + 60, 60));
        vm.prank(provider);
        a.declareMaintenance(day + 59, day + 60);
        // aligned one-slice windows: each charged a full slice, at most 64 of them
        for (uint64 i = 0; i < 64; ++i) {
            vm.prank(provider);
            a.declareMaintenance(day + 120 * i, day + 120 * i + 60);
        }
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.TooManyMaintenanceWindows.selector, 64));
        vm.prank(provider);
        a.declareMaintenance(day + 120 * 64, day + 120 * 64 + 60);
        assertEq(a.maintenanceCount(), 64, "64 windows");
        for (uint256 i = 0; i < 64; ++i) assertTrue(a.maintenanceWindows(i, 1)[0].excluded, "excluded");
    }

    function test_finding2_budgetIsChargedInWholeSlices() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = Agreement(factory.createAgreementWithOptions(t, _maintenanceOptions(1 days, 1 hours)));
        _fund(a, t);
        uint64 from = uint64(t.start + 2 days);
        vm.prank(provider);
        a.declareMaintenance(from, from + 59 minutes);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.MaintenanceBudgetExceeded.selector, 120, 60));
        vm.prank(provider);
        a.declareMaintenance(from + 1 hours, from + 1 hours + 2 minutes);
    }

    /// @notice Slice lengths must divide every period.
    function test_finding2_slicesDivideThePeriods() public {
        Terms memory t = _terms(1, address(0));
        Options memory o = _defaultOptions();
        o.sliceLength = 7;
        vm.expectRevert(
            abi.encodeWithSelector(AgreementFactory.InvalidTerms.selector, "period length is not a whole number of slices")
        );
        factory.createAgreementWithOptions(t, o);
        t.periodLength = 0;
        o.sliceLength = 60;
        o.periodEnds = new uint32[](3);
        (o.periodEnds[0], o.periodEnds[1], o.periodEnds[2]) = (60, 120, 181);
        vm.expectRevert(
            abi.encodeWithSelector(AgreementFactory.InvalidTerms.selector, "period end is not a whole number of slices")
        );
        factory.createAgreementWithOptions(t, o);
    }

    // ------------------------------------------------------------ finding 3
    function _withWindow() internal returns (Agreement a, Terms memory t) {
        t = _terms(1, address(0));
        Options memory o = _defaultOptions();
        o.disputeWindow = 3 days;
        o.arbiter = arbiter;
        a = Agreement(factory.createAgreementWithOptions(t, o));
        _fund(a, t);
        _toEnd(a, 0);
    }

    /// @notice Old code: a disputable disaster report let the customer terminate in the same
    /// block, and a report the arbiter corrected to no disaster kept the clause open.
    function test_finding3_disasterFromPendingCannotTerminate() public {
        (Agreement a,) = _withWindow();
        vm.prank(oracles[0]);
        a.settle(0, _values(800_000, PPM), PPM, EVIDENCE_ROOT); // a (wrong) disaster report
        assertTrue(!a.snapshot().disasterOccurred, "a disputable figure opens nothing");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NoDisaster.selector));
        vm.prank(customer);
        a.terminate();
        vm.prank(provider);
        a.dispute(0, keccak256("the probes were down, not the service"));
        vm.prank(arbiter);
        a.resolveDispute(0, _values(PPM, PPM)); // no disaster after all
        assertTrue(!a.snapshot().disasterOccurred, "the corrected figure decides");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NoDisaster.selector));
        vm.prank(customer);
        a.terminate();
    }

    /// @notice A disaster that becomes final (window passed, or confirmed by the arbiter) opens it.
    function test_finding3_finalDisasterOpensTheClause() public {
        (Agreement a,) = _withWindow();
        vm.prank(oracles[0]);
        a.settle(0, _values(800_000, PPM), PPM, EVIDENCE_ROOT);
        (,, uint256 finalAfter) = a.periodState(0);
        vm.warp(finalAfter);
        a.finalize(0);
        assertTrue(a.snapshot().disasterOccurred, "final disaster");
        vm.prank(customer);
        a.terminate();
    }

    // ------------------------------------------------------------ finding 4
    /// @notice Old code: terminating a second before the period's end refunded its whole fee.
    /// Now the provider keeps the served part, to the second (rounded down).
    function test_finding4_terminateRefundsOnlyWhatWasNotServed() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        vm.prank(oracles[0]);
        a.settle(0, _values(800_000, PPM), PPM, EVIDENCE_ROOT); // disaster: credit 0.6 ether of compute's 60 %
        uint256 from = a.periodEnd(0);
        uint256 len = a.periodEnd(1) - from;
        vm.warp(from + len - 1); // 29 days, 23 h, 59 min, 59 s served
        uint256 earned = uint256(t.feePerPeriod) * (len - 1) / len;
        uint256 refund = 2 * uint256(t.feePerPeriod) - earned;
        vm.expectEmit(true, false, false, true, address(a));
        emit Agreement.Terminated(customer, refund, t.collateral - 0.6 ether, earned);
        vm.prank(customer);
        a.terminate();
        Snapshot memory s = a.snapshot();
        assertEq(s.owedToCustomer, 0.6 ether + refund, "credit + the unserved second + period 2");
        assertEq(s.owedToProvider, uint256(t.feePerPeriod) + earned + t.collateral - 0.6 ether, "served time");
        assertEq(s.owedToCustomer + s.owedToProvider, address(a).balance, "everything accounted for");
    }

    // ------------------------------------------------------------ finding 5
    /// @notice Two reports (a quorum of one, two submitted): old code took the lower one, so a
    /// single bribed member reporting 0 removed the credit. Now: the mean of the middle two.
    function test_finding5_evenReportsTakeTheNeutralMedian() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        SignedReport[] memory r = new SignedReport[](2);
        r[0] = _sign(a, oracleKeys[0], 0, _values(980_000, PPM));
        r[1] = _sign(a, oracleKeys[1], 0, _values(PPM, PPM));
        a.settleCompact(CompactReports.encode(0, r));
        // median of compute: (980,000 + 1,000,000) / 2 = 990,000: the 10 % tier of 60 % of 1 ether
        assertEq(a.snapshot().owedToCustomer, 0.06 ether, "neutral median");
    }

    function test_finding5_evenQuorumIsRefused() public {
        Terms memory t = _terms(2, address(0));
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.InvalidTerms.selector, "quorum must be odd"));
        factory.createAgreement(t);
    }

    // ------------------------------------------------------------ finding 6
    function _calendar(uint256 periods) internal view returns (Terms memory t, Options memory o) {
        t = _terms(1, address(0));
        t.periodLength = 0;
        t.periodCount = uint16(periods);
        o = _defaultOptions();
        o.periodEnds = new uint32[](periods);
        for (uint256 i = 0; i < periods; ++i) o.periodEnds[i] = uint32((i + 1) * 1 hours);
    }

    /// @notice 2,000 calendar periods: validate accepted them on the old code, but the quadratic
    /// encoding ran out of gas in any block. Linear now: they are created within 30M gas.
    function test_finding6_twoThousandPeriodsAreCreatedInOneBlock() public {
        (Terms memory t, Options memory o) = _calendar(2_000);
        factory.validate(t, o);
        uint256 before = gasleft();
        Agreement a = Agreement(factory.createAgreementWithOptions{gas: 30_000_000}(t, o));
        assertLe(before - gasleft(), 30_000_000, "fits a block");
        assertEq(a.periodEnd(1_999), t.start + 2_000 hours, "read back");
    }

    /// @notice validate refuses terms that no clone can hold, naming the size.
    function test_finding6_validateRefusesWhatCannotBeCreated() public {
        (Terms memory t, Options memory o) = _calendar(6_200);
        uint256 size = 114 + 20 * 3 + 74 + 4 * 6_200 + 1 + 2 * (41 + 3 * 6);
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.TermsTooLarge.selector, size, 24_531));
        factory.validate(t, o);
    }

    /// @notice The largest terms the factory accepts (16 oracles, 16 services of 8 tiers and as
    /// many calendar periods as fit) are really created.
    function test_finding6_maximalValidTermsAreCreated() public {
        Terms memory t = _terms(1, address(0));
        t.oracles = new address[](16);
        for (uint256 i = 0; i < 16; ++i) t.oracles[i] = vm.addr(0x0A0 + i);
        t.quorum = 15;
        t.services = new Service[](16);
        for (uint256 i = 0; i < 16; ++i) {
            Service memory s = t.services[i];
            s.id = bytes32(i + 1);
            s.objective = 1_000_000;
            s.weightBps = 625;
            s.tiers = new Tier[](8);
            for (uint256 j = 0; j < 8; ++j) {
                s.tiers[j] = Tier({threshold: uint32(1_000_000 - 1_000 * j), creditBps: uint16(1_000 + 1_000 * j)});
            }
        }
        uint256 fixedPart = 114 + 20 * 16 + 74 + 1 + 16 * (41 + 8 * 6);
        uint256 periods = (24_531 - fixedPart) / 4;
        t.periodLength = 0;
        t.periodCount = uint16(periods);
        Options memory o = _defaultOptions();
        o.periodEnds = new uint32[](periods);
        for (uint256 i = 0; i < periods; ++i) o.periodEnds[i] = uint32((i + 1) * 1 hours);
        Agreement a = Agreement(factory.createAgreementWithOptions{gas: 30_000_000}(t, o));
        assertEq(address(a).code.length, 45 + fixedPart + 4 * periods, "clone size");
        assertLe(address(a).code.length, 24_576, "within EIP-170");
        assertEq(keccak256(abi.encode(a.terms())), keccak256(abi.encode(t)), "round trip");
    }

    // ------------------------------------------------------------ finding 7
    /// @notice Old code: a party could deposit after the start, with hindsight of the first days.
    function test_finding7_depositAfterStartIsRefused() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = _open(t);
        vm.deal(customer, 3 ether);
        vm.prank(customer);
        a.depositFees{value: 3 ether}();
        vm.warp(t.start);
        vm.deal(provider, t.collateral);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.TermStarted.selector, t.start));
        vm.prank(provider);
        a.depositCollateral{value: t.collateral}();
        vm.prank(customer);
        a.cancel(); // all that is left
        assertEq(a.snapshot().owedToCustomer, 3 ether, "fees back");
    }

    function test_finding7_startInThePastIsRefused() public {
        Terms memory t = _terms(1, address(0));
        t.start = uint64(block.timestamp - 1);
        vm.expectRevert(abi.encodeWithSelector(AgreementFactory.InvalidTerms.selector, "start is in the past"));
        factory.createAgreement(t);
    }

    /// @notice A customer that cannot receive ether had no way to get its credit out.
    function test_finding7_withdrawToPaysAnotherAddress() public {
        Terms memory t = _terms(1, address(0));
        t.customer = address(new EtherRefuser());
        customer = t.customer;
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        vm.prank(oracles[0]);
        a.settle(0, _values(989_000, PPM), PPM, EVIDENCE_ROOT); // 0.18 ether credit
        vm.expectRevert();
        vm.prank(customer);
        a.withdraw();
        address payable treasury = payable(vm.addr(0x7EA5));
        vm.expectEmit(true, true, false, true, address(a));
        emit ISlaEvents.Withdrawn(customer, treasury, 0.18 ether);
        vm.prank(customer);
        a.withdrawTo(treasury);
        assertEq(treasury.balance, 0.18 ether, "paid to the treasury");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.InvalidRecipient.selector));
        vm.prank(provider);
        a.withdrawTo(payable(address(0)));
    }

    /// @notice Old code: a signed report was valid forever.
    function test_finding7_expiredReportIsRefused() public {
        Terms memory t = _terms(3, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        uint64 deadline = uint64(block.timestamp + 1 hours);
        SignedReport[] memory r = new SignedReport[](3);
        for (uint256 i = 0; i < 3; ++i) r[i] = _signFull(a, oracleKeys[i], 0, _values(0, 0), PPM, deadline);
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.ReportExpired.selector, 0, deadline));
        a.settleCompact(CompactReports.encode(0, r));
    }

    // ------------------------------------------------------------ finding 10
    /// @notice Old code: a figure for a period nobody measured settled like any other.
    function test_finding10_reportBelowTheMinimumMeasuredShareIsRefused() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.PeriodNotMeasured.selector, 0, 899_999, 900_000));
        vm.prank(oracles[0]);
        a.settle(0, _values(0, 0), 899_999, EVIDENCE_ROOT);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.MeasuredShareAboveOneHundredPercent.selector, PPM + 1));
        vm.prank(oracles[0]);
        a.settle(0, _values(0, 0), PPM + 1, EVIDENCE_ROOT);
        // signed reports: the median share counts (two of three below the minimum)
        SignedReport[] memory r = new SignedReport[](3);
        uint64 deadline = uint64(block.timestamp + 1 hours);
        r[0] = _signFull(a, oracleKeys[0], 0, _values(0, 0), PPM, deadline);
        r[1] = _signFull(a, oracleKeys[1], 0, _values(0, 0), 500_000, deadline);
        r[2] = _signFull(a, oracleKeys[2], 0, _values(0, 0), 400_000, deadline);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.PeriodNotMeasured.selector, 0, 500_000, 900_000));
        a.settleCompact(CompactReports.encode(0, r));
        vm.expectEmit(true, false, false, true, address(a));
        uint32[] memory v = _values(PPM, PPM);
        emit Agreement.PeriodSettled(0, v, new uint256[](2), 0, t.feePerPeriod, false, 950_000);
        vm.prank(oracles[0]);
        a.settle(0, v, 950_000, EVIDENCE_ROOT);
    }

    // ------------------------------------------------------------ batch settlement
    /// @notice The signatures are the authority: a stranger submits a quorum of signed reports
    /// and the period settles (old code: Unauthorized). A stranger's own report is still refused.
    function test_anyoneCanSubmitAQuorumOfSignedReports() public {
        Terms memory t = _terms(3, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        SignedReport[] memory r = new SignedReport[](3);
        for (uint256 i = 0; i < 3; ++i) r[i] = _sign(a, oracleKeys[i], 0, _values(989_000, PPM));
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, stranger));
        vm.prank(stranger);
        a.settle(0, _values(PPM, PPM), PPM, EVIDENCE_ROOT);
        vm.prank(stranger);
        a.settleCompact(CompactReports.encode(0, r));
        assertEq(a.snapshot().settledPeriods, 1, "settled by a stranger's submission");
        assertEq(a.snapshot().owedToCustomer, 0.18 ether, "on the members' figures");
    }
}
