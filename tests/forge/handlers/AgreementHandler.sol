// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {Agreement} from "contracts/Agreement.sol";
import {AgreementFactory} from "contracts/AgreementFactory.sol";
import {Terms, Options, Status, Snapshot, SignedReport, PeriodState, PPM, BPS} from "contracts/SlaTypes.sol";
import {TestToken} from "contracts/test/TestToken.sol";

import {Assertions, VmExtra} from "../utils/TestBase.sol";
import {TermsGen, Limits} from "../utils/TermsGen.sol";
import {RefModel} from "../utils/RefModel.sol";
import {ForceSend} from "../mocks/ForceSend.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {ISlaEvents} from "contracts/interfaces/ISlaEvents.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

/// @notice What the handler knows about one agreement: the money that went in and out, from
/// its own calls and from the events the agreement emitted.
struct Book {
    Agreement agreement;
    bool eth;
    uint256 fee;
    uint256 count;
    uint256 collateral;
    uint256 capBps;
    uint256 quorum;
    uint256 disputeWindow; // 0: payouts at settlement; else pending for that long, disputable
    uint256 start; // deposits close then
    uint256 feesIn; // deposited by the customer
    uint256 collateralIn; // deposited by the provider
    uint256 feesReleased; // PeriodSettled.feeEarned, summed
    uint256 creditsPaid; // PeriodSettled.creditPaid, summed, corrected by DisputeResolved
    uint256 maxCreditInPeriod;
    uint256 feesRefunded; // Cancelled / Terminated
    uint256 collateralReturned; // Cancelled / Terminated / Ended / CollateralReleased
    uint256 withdrawnByCustomer;
    uint256 withdrawnByProvider;
    uint256 donated; // forced in from outside (SELFDESTRUCT, plain token transfer)
    uint256 settlements; // PeriodSettled events seen
    bool terminal;
    Status terminalStatus;
}

/// @title Drives agreements through random deposits, settlements, cancellations, terminations,
/// withdrawals, donations and clock jumps, by random actors.
/// @notice Every call to an agreement is predicted first: success, or the exact custom error
/// the contract must revert with. A wrong prediction, or a success whose balances and books
/// differ from the reference model, makes the handler revert, and the campaign (with
/// fail_on_revert = true) fails with the sequence that caused it. The agreements' own reverts
/// never reach the fuzzer: they are caught and compared.
contract AgreementHandler is Assertions {
    uint256 public constant MAX_AGREEMENTS = 4;
    uint256 internal constant START_TIME = 1_700_000_000;

    AgreementFactory public immutable factory;
    TestToken public immutable token;
    address public immutable provider;
    address public immutable customer;
    address public immutable arbiter;

    uint256[] internal _oracleKeys; // committee candidates; an agreement's committee is a prefix
    address[] public oracles;
    uint256[] internal _strangerKeys;
    address[] public strangers;
    address[] public actors; // provider, customer, oracles, strangers

    uint256 public clock;
    Book[] internal _books;
    /// agreement => period => PeriodSettled events seen
    mapping(address => mapping(uint256 => uint256)) public settledEvents;

    // figures for the summary
    mapping(bytes32 => uint256) public attempts;
    mapping(bytes32 => uint256) public successes;
    /// custom error selector => times an agreement reverted with it, as predicted
    mapping(bytes4 => uint256) public revertsSeen;
    /// direct reports (`settle`) by non-members; signed reports may come from anyone
    uint256 public nonMemberSettleAttempts;
    uint256 public nonMemberSettleSuccesses;
    /// agreement => period => the pending (disputable) figure was a disaster
    mapping(address => mapping(uint256 => bool)) internal _pendingDisaster;

    Limits internal _limits = Limits({
        maxServices: 3,
        maxTiers: 4,
        maxPeriods: 6,
        minPeriodLength: 1 hours,
        maxPeriodLength: 3 days,
        maxFee: 1e24,
        maxCollateral: 1e25
    });

    constructor() {
        factory = new AgreementFactory();
        token = new TestToken();
        provider = vm.addr(0xA11CE);
        customer = vm.addr(0xB0B);
        arbiter = vm.addr(0xA4B1);
        for (uint256 i = 0; i < 3; ++i) {
            _oracleKeys.push(0x0A0 + i);
            oracles.push(vm.addr(0x0A0 + i));
        }
        for (uint256 i = 0; i < 2; ++i) {
            _strangerKeys.push(0x5000 + i);
            strangers.push(vm.addr(0x5000 + i));
        }
        actors.push(provider);
        actors.push(customer);
        for (uint256 i = 0; i < 3; ++i) actors.push(oracles[i]);
        for (uint256 i = 0; i < 2; ++i) actors.push(strangers[i]);
        actors.push(arbiter);
        clock = START_TIME;
        vm.warp(clock);
        // Agreement 0: the README's example (two AWS-like services, ether, one oracle, no window).
        address[] memory committee = new address[](1);
        committee[0] = oracles[0];
        // Deposits close at the start: both agreements start an hour from now.
        Terms memory t0 = TermsGen.example(provider, customer, committee, 1, address(0), uint64(clock + 1 hours));
        t0.periodLength = 1 days; // short periods: a run of a few dozen calls sees several of them
        _open(t0, _noOptions());
        // ...already funded, so that every run starts with an active agreement
        Book storage b = _books[0];
        vm.deal(customer, b.fee * b.count);
        vm.prank(customer);
        b.agreement.depositFees{value: b.fee * b.count}();
        vm.deal(provider, b.collateral);
        vm.prank(provider);
        b.agreement.depositCollateral{value: b.collateral}();
        b.feesIn = b.fee * b.count;
        b.collateralIn = b.collateral;
        // Agreement 1: the same services in tokens, a committee of three with quorum 1 (so that
        // one, two or three signed reports settle: even counts take the neutral median), a
        // smaller collateral and a three-day dispute window; funded as well.
        address[] memory three = new address[](3);
        for (uint256 i = 0; i < 3; ++i) three[i] = oracles[i];
        Terms memory t1 = TermsGen.example(provider, customer, three, 1, address(token), uint64(clock + 1 hours));
        t1.periodLength = 1 days;
        t1.collateral = 1.5 ether; // runs out after a bad period or two: corrections then hit the limit
        Options memory o1 = _noOptions();
        o1.disputeWindow = 3 days;
        o1.arbiter = arbiter;
        _open(t1, o1);
        b = _books[1];
        token.mint(customer, b.fee * b.count);
        vm.prank(customer);
        token.approve(address(b.agreement), b.fee * b.count);
        vm.prank(customer);
        b.agreement.depositFees();
        token.mint(provider, b.collateral);
        vm.prank(provider);
        token.approve(address(b.agreement), b.collateral);
        vm.prank(provider);
        b.agreement.depositCollateral();
        b.feesIn = b.fee * b.count;
        b.collateralIn = b.collateral;
    }

    // ================================================================ reads for the invariants
    function bookCount() external view returns (uint256) {
        return _books.length;
    }

    function book(uint256 i) external view returns (Book memory) {
        return _books[i];
    }

    function balanceOf(uint256 i, address who) public view returns (uint256) {
        return _books[i].eth ? who.balance : token.balanceOf(who);
    }

    // ================================================================ actions
    function createAgreement(uint256 seed) external {
        _count("createAgreement");
        if (_books.length >= MAX_AGREEMENTS) return;
        vm.warp(clock);
        uint256 n = 1 + seed % 3;
        address[] memory committee = new address[](n);
        for (uint256 i = 0; i < n; ++i) committee[i] = oracles[i];
        address asset = (seed >> 8) % 2 == 0 ? address(0) : address(token);
        // start now or up to four periods ahead (the factory refuses a start in the past; a
        // start at `clock` leaves no time to deposit: only cancel remains)
        uint256 len = bound(seed >> 16, _limits.minPeriodLength, _limits.maxPeriodLength);
        uint256 offset = bound(seed >> 64, 0, 4 * len);
        uint64 start = uint64(clock + offset);
        Terms memory t = TermsGen.random(seed, _limits, provider, customer, committee, asset, start);
        Options memory o = _noOptions();
        if ((seed >> 128) % 2 == 0) {
            // half the new agreements have a dispute window (payouts pending, disputable)
            o.disputeWindow = uint32(bound(seed >> 136, 1 hours, 2 days));
            o.arbiter = arbiter;
        }
        _open(t, o);
        _success("createAgreement");
    }

    function depositFees(uint256 aSeed, uint256 actorSeed, uint256 amountSeed) external {
        _count("depositFees");
        vm.warp(clock);
        (uint256 idx, Book storage b) = _pickFor(aSeed, PENDING);
        address who = actorSeed % 4 != 0 ? customer : _actor(actorSeed >> 2);
        Snapshot memory s = b.agreement.snapshot();
        uint256 amount = b.fee * b.count;
        (uint256 value, uint256 allowance) = _fund(b, who, amount, amountSeed);

        bytes memory expected;
        if (who != customer) expected = abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, who);
        else if (s.status != Status.Pending) expected = abi.encodeWithSelector(ISlaErrors.WrongStatus.selector, s.status);
        else if (s.feesDeposited) expected = abi.encodeWithSelector(ISlaErrors.AlreadyDeposited.selector);
        else if (block.timestamp >= b.start) expected = abi.encodeWithSelector(ISlaErrors.TermStarted.selector, b.start);
        else expected = _pullError(b, amount, value, allowance);

        uint256 agreementBefore = balanceOf(idx, address(b.agreement));
        uint256 whoBefore = balanceOf(idx, who);
        bool ok;
        bytes memory err;
        vm.prank(who);
        try b.agreement.depositFees{value: value}() {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        _expect(ok, err, expected, "depositFees");
        if (!ok) return;
        _success("depositFees");
        b.feesIn += amount;
        assertEq(balanceOf(idx, address(b.agreement)), agreementBefore + amount, "fees reached the escrow");
        assertEq(balanceOf(idx, who), whoBefore - amount, "fees left the customer");
        Snapshot memory after_ = b.agreement.snapshot();
        assertEq(after_.feesEscrowed, amount, "fees escrowed");
        assertTrue(after_.feesDeposited, "fees flag");
        assertTrue((after_.status == Status.Active) == s.collateralDeposited, "activation needs both deposits");
    }

    function depositCollateral(uint256 aSeed, uint256 actorSeed, uint256 amountSeed) external {
        _count("depositCollateral");
        vm.warp(clock);
        (uint256 idx, Book storage b) = _pickFor(aSeed, PENDING);
        address who = actorSeed % 4 != 0 ? provider : _actor(actorSeed >> 2);
        Snapshot memory s = b.agreement.snapshot();
        uint256 amount = b.collateral;
        (uint256 value, uint256 allowance) = _fund(b, who, amount, amountSeed);

        bytes memory expected;
        if (who != provider) expected = abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, who);
        else if (s.status != Status.Pending) expected = abi.encodeWithSelector(ISlaErrors.WrongStatus.selector, s.status);
        else if (s.collateralDeposited) expected = abi.encodeWithSelector(ISlaErrors.AlreadyDeposited.selector);
        else if (block.timestamp >= b.start) expected = abi.encodeWithSelector(ISlaErrors.TermStarted.selector, b.start);
        else expected = _pullError(b, amount, value, allowance);

        uint256 agreementBefore = balanceOf(idx, address(b.agreement));
        uint256 whoBefore = balanceOf(idx, who);
        bool ok;
        bytes memory err;
        vm.prank(who);
        try b.agreement.depositCollateral{value: value}() {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        _expect(ok, err, expected, "depositCollateral");
        if (!ok) return;
        _success("depositCollateral");
        b.collateralIn += amount;
        assertEq(balanceOf(idx, address(b.agreement)), agreementBefore + amount, "collateral reached the escrow");
        assertEq(balanceOf(idx, who), whoBefore - amount, "collateral left the provider");
        Snapshot memory after_ = b.agreement.snapshot();
        assertEq(after_.collateralEscrowed, amount, "collateral escrowed");
        assertTrue((after_.status == Status.Active) == s.feesDeposited, "activation needs both deposits");
    }

    function cancel(uint256 aSeed, uint256 actorSeed) external {
        _count("cancel");
        vm.warp(clock);
        (, Book storage b) = _pick(aSeed);
        address who = _actor(actorSeed);
        Snapshot memory s = b.agreement.snapshot();
        bytes memory expected;
        if (who != customer && who != provider) expected = abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, who);
        else if (s.status != Status.Pending) expected = abi.encodeWithSelector(ISlaErrors.WrongStatus.selector, s.status);
        bool ok;
        bytes memory err;
        vm.prank(who);
        try b.agreement.cancel() {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        _expect(ok, err, expected, "cancel");
        if (!ok) return;
        _success("cancel");
        b.feesRefunded += s.feesEscrowed;
        b.collateralReturned += s.collateralEscrowed;
        Snapshot memory after_ = b.agreement.snapshot();
        assertTrue(after_.status == Status.Cancelled, "cancelled");
        assertEq(after_.owedToCustomer, s.owedToCustomer + s.feesEscrowed, "fees back to the customer");
        assertEq(after_.owedToProvider, s.owedToProvider + s.collateralEscrowed, "collateral back to the provider");
        _observe(b);
    }

    /// @notice A direct report (quorum 1 only), by a member most of the time, else by anyone.
    function settle(uint256 aSeed, uint256 actorSeed, uint256 periodSeed, uint256 valueSeed) external {
        _count("settle");
        vm.warp(clock);
        (, Book storage b) = _pickFor(aSeed, ACTIVE_QUORUM_1);
        Terms memory t = b.agreement.terms();
        address who = actorSeed % 4 != 0 ? t.oracles[(actorSeed >> 8) % t.oracles.length] : _actor(actorSeed >> 8);
        Snapshot memory s = b.agreement.snapshot();
        uint256 period = _choosePeriod(periodSeed, s.settledPeriods);
        _maybeReachEnd(b, periodSeed >> 64, period, s);
        uint32[] memory values = _values(valueSeed, t, valueSeed % 32 == 0 ? 1 : 0);
        uint32 measured = _measured(valueSeed >> 128);

        bool member = _isMember(t, who);
        if (!member) ++nonMemberSettleAttempts;
        bytes memory expected;
        if (!member) expected = abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, who);
        else if (t.quorum > 1) expected = abi.encodeWithSelector(ISlaErrors.QuorumNotReached.selector, t.quorum, 1);
        else expected = _settleError(t, s, period, values, measured);

        bool ok;
        bytes memory err;
        vmx.recordLogs();
        vm.prank(who);
        try b.agreement.settle(period, values, measured, EVIDENCE_ROOT) {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        VmExtra.Log[] memory logs = _logs();
        _expect(ok, err, expected, "settle");
        if (!ok) return;
        if (!member) ++nonMemberSettleSuccesses;
        _success("settle");
        _afterSettle(b, t, s, period, values, measured, logs);
    }

    /// @notice Signed reports (vm.sign over Agreement.reportDigest), submitted by anyone: mostly
    /// distinct members, and sometimes strangers, duplicates, too few, a wrong number of values,
    /// an expired deadline, or a signature made for another period (a replay).
    struct ReportCall {
        uint256 idx;
        Terms t;
        address who;
        Snapshot s;
        uint256 period;
        uint256 valueSeed;
        uint256 signerSeed;
        bool member;
    }

    function settleWithReports(uint256 aSeed, uint256 actorSeed, uint256 periodSeed, uint256 valueSeed, uint256 signerSeed)
        external
    {
        _count("settleWithReports");
        vm.warp(clock);
        ReportCall memory c;
        Book storage b;
        (c.idx, b) = _pickFor(aSeed, (aSeed >> 64) % 2 == 0 ? ACTIVE_COMMITTEE : ACTIVE);
        c.t = b.agreement.terms();
        c.who = actorSeed % 4 != 0 ? c.t.oracles[(actorSeed >> 8) % c.t.oracles.length] : _actor(actorSeed >> 8);
        c.s = b.agreement.snapshot();
        c.period = _choosePeriod(periodSeed, c.s.settledPeriods);
        // The compact reports carry a two-byte period (an agreement has at most 65,535 periods):
        // the far-out-of-range choices become the largest ones it can express, still out of order.
        if (c.period > type(uint16).max) c.period = type(uint16).max - (c.period & 1);
        _maybeReachEnd(b, periodSeed >> 64, c.period, c.s);
        c.valueSeed = valueSeed;
        c.signerSeed = signerSeed;
        c.member = _isMember(c.t, c.who);
        _settleWithReports(b, c);
    }

    function _settleWithReports(Book storage b, ReportCall memory c) internal {
        uint256[] memory keys = _signers(c.signerSeed, c.t);
        ReportPlan memory p = _reports(b.agreement, c.t, c.period, keys, c.valueSeed, c.signerSeed);
        SignedReport[] memory reports = p.reports;
        bytes memory expected = p.expected;
        bytes memory packed = CompactReports.encode(c.period, reports);
        uint256 wanted = CompactReports.HEADER_LENGTH + reports.length * CompactReports.reportLength(p.n);
        if (packed.length != wanted) {
            // A report with a wrong number of values makes the buffer's length wrong: refused
            // before anything else is read.
            expected = abi.encodeWithSelector(Agreement.MalformedReports.selector, wanted, packed.length);
        } else if (reports.length < c.t.quorum || reports.length == 0) {
            expected = abi.encodeWithSelector(ISlaErrors.QuorumNotReached.selector, c.t.quorum, reports.length);
        } else if (_misframed(reports, p.n)) {
            _expectMisframedRefused(b, c, packed);
            return;
        } else if (expected.length == 0) {
            expected = _settleError(c.t, c.s, c.period, p.medians, p.measured);
        }

        bool ok;
        bytes memory err;
        vmx.recordLogs();
        vm.prank(c.who);
        try b.agreement.settleCompact(packed) {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        VmExtra.Log[] memory logs = _logs();
        _expect(ok, err, expected, "settleWithReports");
        if (!ok) return;
        _success("settleWithReports");
        // The accepted signers are the oracles of the EvidenceCommitted events (one per report).
        uint256 committed;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(b.agreement) && logs[i].topics[0] == ISlaEvents.EvidenceCommitted.selector) {
                assertEq(uint256(logs[i].topics[1]), c.period, "EvidenceCommitted period");
                address oracle = address(uint160(uint256(logs[i].topics[2])));
                for (uint256 m = 0; m < c.t.oracles.length; ++m) {
                    if (c.t.oracles[m] == oracle) committed |= 1 << m;
                }
            }
        }
        assertEq(committed, p.signers, "EvidenceCommitted by exactly the signers");
        _afterSettle(b, c.t, c.s, c.period, p.medians, p.measured, logs);
    }

    /// @dev Some report has a wrong number of values although the buffer's length is right (one
    /// report a value short, another one over).
    function _misframed(SignedReport[] memory reports, uint256 n) internal pure returns (bool) {
        for (uint256 i = 0; i < reports.length; ++i) {
            if (reports[i].valuesPpm.length != n) return true;
        }
        return false;
    }

    /// @dev Counts that cancel out keep the length right but shift the reports after the first
    /// wrong one: each is read at the wrong offsets, so its signature recovers to a stranger or
    /// none (or an earlier check of an aligned report fails). Which error depends on the bytes
    /// read; what matters is that the call is refused and nothing settles.
    function _expectMisframedRefused(Book storage b, ReportCall memory c, bytes memory packed) internal {
        vm.prank(c.who);
        try b.agreement.settleCompact(packed) {
            fail("settleCompact of misframed reports succeeded");
        } catch (bytes memory e) {
            bytes4 sel = bytes4(e);
            assertTrue(
                sel == ISlaErrors.NotACommitteeMember.selector || sel == ECDSA.ECDSAInvalidSignature.selector
                    || sel == ECDSA.ECDSAInvalidSignatureS.selector || sel == ISlaErrors.ReportExpired.selector
                    || sel == ISlaErrors.DuplicateSigner.selector || sel == ISlaErrors.MissingEvidence.selector,
                string.concat("misframed reports refused, not with ", vmx.toString(e))
            );
        }
        assertEq(b.agreement.snapshot().settledPeriods, c.s.settledPeriods, "misframed reports settle nothing");
    }

    function terminate(uint256 aSeed, uint256 actorSeed) external {
        _count("terminate");
        vm.warp(clock);
        (, Book storage b) = _pickFor(aSeed, ACTIVE_DISASTER);
        address who = actorSeed % 2 == 0 ? customer : _actor(actorSeed >> 1);
        Snapshot memory s = b.agreement.snapshot();
        bytes memory expected;
        if (who != customer) expected = abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, who);
        else if (s.status != Status.Active) expected = abi.encodeWithSelector(ISlaErrors.WrongStatus.selector, s.status);
        else if (!s.disasterOccurred) expected = abi.encodeWithSelector(ISlaErrors.NoDisaster.selector);
        else if (s.settledPeriods < b.agreement.terms().periodCount && block.timestamp >= b.agreement.periodEnd(s.settledPeriods)) {
            expected = abi.encodeWithSelector(Agreement.PeriodAwaitingReport.selector, uint256(s.settledPeriods));
        }
        bool ok;
        bytes memory err;
        vm.prank(who);
        try b.agreement.terminate() {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        _expect(ok, err, expected, "terminate");
        if (!ok) return;
        _success("terminate");
        uint256 released = s.pendingPeriods == 0 ? s.collateralEscrowed : 0;
        // the served seconds of the period in progress are the provider's (rounded down)
        uint256 from = b.agreement.periodEnd(s.settledPeriods - 1);
        uint256 to = b.agreement.periodEnd(s.settledPeriods);
        uint256 earned = b.fee * (block.timestamp - from) / (to - from);
        b.feesRefunded += s.feesEscrowed - earned;
        b.feesReleased += earned;
        b.collateralReturned += released;
        Snapshot memory after_ = b.agreement.snapshot();
        assertTrue(after_.status == Status.Terminated, "terminated");
        assertEq(after_.feesEscrowed, 0, "no fee left in escrow");
        assertEq(after_.collateralEscrowed, s.collateralEscrowed - released, "collateral kept only for pending periods");
        assertEq(after_.owedToCustomer, s.owedToCustomer + s.feesEscrowed - earned, "unserved fees back");
        assertEq(after_.owedToProvider, s.owedToProvider + released + earned, "served time and collateral left back");
        _observe(b);
    }

    /// @notice Anyone ends an agreement whose periods were not all reported within
    /// REPORT_DEADLINE of the term's end; half the time the clock first jumps to that deadline
    /// (or a second before it), since a run's warps rarely get there. The unsettled periods' fees
    /// go back to the customer, the collateral left to the provider once nothing is pending
    /// (helper Z's review, Z8-8: the campaign never expired an agreement before).
    function expire(uint256 aSeed, uint256 actorSeed, uint256 jumpSeed) external {
        _count("expire");
        (, Book storage b) = _pickFor(aSeed, ACTIVE);
        Agreement a = b.agreement;
        uint256 expiresAt = a.periodEnd(b.count - 1) + a.REPORT_DEADLINE();
        if (jumpSeed % 2 == 0) {
            uint256 target = (jumpSeed >> 8) % 4 == 0 ? expiresAt - 1 : expiresAt;
            if (target > clock) clock = target;
        }
        vm.warp(clock);
        address who = _actor(actorSeed);
        Snapshot memory s = a.snapshot();
        bytes memory expected;
        if (s.status != Status.Active) expected = abi.encodeWithSelector(ISlaErrors.WrongStatus.selector, s.status);
        else if (block.timestamp < expiresAt) expected = abi.encodeWithSelector(ISlaErrors.NotExpired.selector, expiresAt);
        bool ok;
        bytes memory err;
        vm.prank(who);
        try a.expire() {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        _expect(ok, err, expected, "expire");
        if (!ok) return;
        _success("expire");
        uint256 released = s.pendingPeriods == 0 ? s.collateralEscrowed : 0;
        b.feesRefunded += s.feesEscrowed;
        b.collateralReturned += released;
        Snapshot memory n = a.snapshot();
        assertTrue(n.status == Status.Expired, "expired");
        assertEq(n.feesEscrowed, 0, "no fee left in escrow");
        assertEq(n.collateralEscrowed, s.collateralEscrowed - released, "collateral kept only for pending periods");
        assertEq(n.owedToCustomer, s.owedToCustomer + s.feesEscrowed, "unreported fees back");
        assertEq(n.owedToProvider, s.owedToProvider + released, "collateral left back");
        assertEq(n.pendingToCustomer, s.pendingToCustomer, "pending credits stay pending");
        _observe(b);
    }

    function withdraw(uint256 aSeed, uint256 actorSeed) external {
        _count("withdraw");
        vm.warp(clock);
        (uint256 idx, Book storage b) = _pick(aSeed);
        address who = actorSeed % 4 == 0 ? _actor(actorSeed >> 2) : (actorSeed % 4 == 1 ? provider : customer);
        // a quarter of the time to another address (withdrawTo), rarely the zero address
        address to = (actorSeed >> 64) % 4 != 0 ? who : ((actorSeed >> 66) % 8 == 0 ? address(0) : strangers[0]);
        if (_withdraw(idx, b, who, to)) _success("withdraw");
    }

    /// @notice Moves the clock forward: by a random amount, or to (one second before) the end of
    /// the next period to settle of some agreement.
    function warp(uint256 seed, uint256 aSeed) external {
        _count("warp");
        if (seed % 2 == 0) {
            (, Book storage b) = _pick(aSeed);
            Snapshot memory s = b.agreement.snapshot();
            uint256 end = b.agreement.periodEnd(s.settledPeriods);
            uint256 target = (seed >> 8) % 2 == 0 ? end : end - 1;
            if (target > clock) clock = target;
        } else {
            clock += bound(seed >> 8, 0, 4 days);
        }
        vm.warp(clock);
        _success("warp");
    }

    /// @notice Someone pushes money into an agreement without calling it.
    function donate(uint256 aSeed, uint256 amountSeed) external {
        _count("donate");
        (uint256 idx, Book storage b) = _pick(aSeed);
        uint256 amount = bound(amountSeed, 1, 1e20);
        uint256 before = balanceOf(idx, address(b.agreement));
        if (b.eth) {
            vm.deal(address(this), amount);
            new ForceSend{value: amount}(payable(address(b.agreement)));
        } else {
            token.mint(address(b.agreement), amount);
        }
        b.donated += amount;
        assertEq(balanceOf(idx, address(b.agreement)), before + amount, "donation arrived");
        _success("donate");
    }

    // ---------------------------------------------------------------- disputes
    /// @dev A settled period most of the time (the latest one half of that), else any.
    function _settledPeriod(Book storage b, uint256 seed) internal view returns (uint256) {
        uint256 settled = b.agreement.snapshot().settledPeriods;
        if (settled == 0 || seed % 8 == 0) return bound(seed >> 8, 0, b.count + 1);
        if (seed % 2 == 0) return settled - 1;
        return (seed >> 8) % settled;
    }

    /// @dev Three times in four, a period in state `want` (if any); else `_settledPeriod`.
    function _periodIn(Book storage b, uint256 seed, PeriodState want) internal view returns (uint256) {
        if ((seed >> 200) % 4 != 0) {
            uint256 from = seed % b.count;
            for (uint256 k = 0; k < b.count; ++k) {
                uint256 p = (from + k) % b.count;
                (PeriodState st,,) = b.agreement.periodState(p);
                if (st == want) return p;
            }
        }
        return _settledPeriod(b, seed);
    }

    /// @notice A party (or anyone) disputes a settled period.
    function dispute(uint256 aSeed, uint256 actorSeed, uint256 periodSeed) external {
        _count("dispute");
        vm.warp(clock);
        (, Book storage b) = _pickFor(aSeed, WITH_WINDOW);
        address who = actorSeed % 4 == 0 ? _actor(actorSeed >> 2) : (actorSeed % 4 == 1 ? provider : customer);
        uint256 period = _periodIn(b, periodSeed, PeriodState.Pending);
        (PeriodState st,, uint256 finalAfter) = b.agreement.periodState(period);
        Snapshot memory s = b.agreement.snapshot();
        bytes memory expected;
        if (who != customer && who != provider) expected = abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, who);
        else if (st != PeriodState.Pending) expected = abi.encodeWithSelector(ISlaErrors.WrongPeriodState.selector, period, st);
        else if (block.timestamp >= finalAfter) {
            expected = abi.encodeWithSelector(ISlaErrors.DisputeWindowClosed.selector, period, finalAfter);
        }
        bool ok;
        bytes memory err;
        vm.prank(who);
        try b.agreement.dispute(period, bytes32(actorSeed)) {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        _expect(ok, err, expected, "dispute");
        if (!ok) return;
        _success("dispute");
        (st,,) = b.agreement.periodState(period);
        assertTrue(st == PeriodState.Disputed, "disputed");
        assertEq(keccak256(abi.encode(b.agreement.snapshot())), keccak256(abi.encode(s)), "a dispute moves no money");
    }

    struct Resolution {
        uint256 period;
        PeriodState state;
        uint256 previous;
        uint256 modelCredit;
        bool disaster;
        uint256 credit;
        uint256 available;
    }

    /// @notice The arbiter (or anyone) settles a disputed period with corrected values.
    function resolveDispute(uint256 aSeed, uint256 actorSeed, uint256 periodSeed, uint256 valueSeed) external {
        _count("resolveDispute");
        vm.warp(clock);
        (, Book storage b) = _pickFor(aSeed, WITH_WINDOW);
        Terms memory t = b.agreement.terms();
        address who = actorSeed % 4 != 0 ? arbiter : _actor(actorSeed >> 2);
        Resolution memory r;
        r.period = _periodIn(b, periodSeed, PeriodState.Disputed);
        (r.state, r.previous,) = b.agreement.periodState(r.period);
        uint32[] memory values = _values(valueSeed, t, valueSeed % 32 == 0 ? 1 : 0);
        Snapshot memory s = b.agreement.snapshot();
        bytes memory expected;
        if (b.disputeWindow == 0 || who != arbiter) expected = abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, who);
        else if (r.state != PeriodState.Disputed) {
            expected = abi.encodeWithSelector(ISlaErrors.WrongPeriodState.selector, r.period, r.state);
        } else {
            expected = _valuesError(t, values);
        }
        bool ok;
        bytes memory err;
        vmx.recordLogs();
        vm.prank(who);
        try b.agreement.resolveDispute(r.period, values) {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        VmExtra.Log[] memory logs = _logs();
        _expect(ok, err, expected, "resolveDispute");
        if (!ok) return;
        _success("resolveDispute");
        (r.modelCredit, r.disaster) = RefModel.periodCredit(t, values);
        r.available = s.collateralEscrowed + r.previous;
        r.credit = r.modelCredit < r.available ? r.modelCredit : r.available;
        b.creditsPaid = b.creditsPaid - r.previous + r.credit;
        if (r.credit > b.maxCreditInPeriod) b.maxCreditInPeriod = r.credit;
        uint256 released = _released(b, logs);
        Snapshot memory n = b.agreement.snapshot();
        assertEq(n.collateralEscrowed, r.available - r.credit - released, "collateral after the correction");
        assertEq(n.pendingToCustomer, s.pendingToCustomer - r.previous, "pending credit cleared");
        assertEq(n.pendingToProvider, s.pendingToProvider - t.feePerPeriod, "pending fee cleared");
        assertEq(n.pendingPeriods, s.pendingPeriods - 1, "one pending period fewer");
        assertEq(n.owedToCustomer, s.owedToCustomer + r.credit, "corrected credit payable");
        assertEq(n.owedToProvider, s.owedToProvider + t.feePerPeriod + released, "fee payable");
        assertTrue(n.disasterOccurred == (s.disasterOccurred || r.disaster), "disaster from the correction");
        (PeriodState st, uint256 credit,) = b.agreement.periodState(r.period);
        assertTrue(st == PeriodState.Final, "final");
        assertEq(credit, r.credit, "recorded credit");
    }

    /// @notice Anyone makes a period payable after its window (half the time the clock is first
    /// moved to that moment).
    function finalize(uint256 aSeed, uint256 actorSeed, uint256 periodSeed) external {
        _count("finalize");
        vm.warp(clock);
        (, Book storage b) = _pickFor(aSeed, WITH_WINDOW);
        uint256 period = _periodIn(b, periodSeed, (periodSeed >> 100) % 2 == 0 ? PeriodState.Pending : PeriodState.Disputed);
        (PeriodState st, uint256 credit, uint256 until) = b.agreement.periodState(period);
        if (st == PeriodState.Disputed) until += b.disputeWindow;
        if ((periodSeed >> 128) % 2 == 0 && (st == PeriodState.Pending || st == PeriodState.Disputed) && until > clock) {
            clock = until;
            vm.warp(clock);
        }
        _finalize(b, period, st, credit, until, _actor(actorSeed));
    }

    function _finalize(Book storage b, uint256 period, PeriodState st, uint256 credit, uint256 until, address who)
        internal
        returns (bool ok)
    {
        Snapshot memory s = b.agreement.snapshot();
        bytes memory expected;
        if (st != PeriodState.Pending && st != PeriodState.Disputed) {
            expected = abi.encodeWithSelector(ISlaErrors.WrongPeriodState.selector, period, st);
        } else if (block.timestamp < until) {
            expected = abi.encodeWithSelector(ISlaErrors.DisputeWindowOpen.selector, period, until);
        }
        bytes memory err;
        vmx.recordLogs();
        vm.prank(who);
        try b.agreement.finalize(period) {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
        VmExtra.Log[] memory logs = _logs();
        _expect(ok, err, expected, "finalize");
        if (!ok) return false;
        _success("finalize");
        uint256 released = _released(b, logs);
        Snapshot memory n = b.agreement.snapshot();
        assertEq(n.pendingToCustomer, s.pendingToCustomer - credit, "pending credit cleared");
        assertEq(n.pendingToProvider, s.pendingToProvider - b.fee, "pending fee cleared");
        assertEq(n.owedToCustomer, s.owedToCustomer + credit, "credit payable as reported");
        assertEq(n.owedToProvider, s.owedToProvider + b.fee + released, "fee payable");
        assertEq(n.collateralEscrowed, s.collateralEscrowed - released, "collateral released only at the very end");
        assertEq(n.pendingPeriods, s.pendingPeriods - 1, "one pending period fewer");
        bool dis = _pendingDisaster[address(b.agreement)][period];
        assertTrue(n.disasterOccurred == (s.disasterOccurred || dis), "the final figure opens the disaster clause");
    }

    /// @dev Collateral handed back to the provider (CollateralReleased) in these logs.
    function _released(Book storage b, VmExtra.Log[] memory logs) internal returns (uint256 amount) {
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(b.agreement) && logs[i].topics[0] == ISlaEvents.CollateralReleased.selector) {
                amount += abi.decode(logs[i].data, (uint256));
            }
        }
        b.collateralReturned += amount;
        Snapshot memory n = b.agreement.snapshot();
        bool done = (n.status == Status.Ended || n.status == Status.Terminated || n.status == Status.Expired)
            && n.pendingPeriods == 0;
        if (done) assertEq(n.collateralEscrowed, 0, "collateral released once nothing is pending");
    }

    function _valuesError(Terms memory t, uint32[] memory values) internal pure returns (bytes memory) {
        if (values.length != t.services.length) {
            return abi.encodeWithSelector(ISlaErrors.WrongNumberOfValues.selector, t.services.length, values.length);
        }
        for (uint256 i = 0; i < values.length; ++i) {
            if (values[i] > PPM) return abi.encodeWithSelector(ISlaErrors.ValueAboveOneHundredPercent.selector, i, values[i]);
        }
        return "";
    }

    // ================================================================ end of a run
    /// @notice After the term: settles what is left (or cancels what never started), lets both
    /// parties withdraw, and checks that the agreement holds nothing but donations and that each
    /// party got exactly what the books promised.
    function windDown() external {
        for (uint256 i = 0; i < _books.length; ++i) {
            Book storage b = _books[i];
            Agreement a = b.agreement;
            Terms memory t = a.terms();
            uint256 end = a.periodEnd(t.periodCount - 1);
            if (end > clock) clock = end;
            vm.warp(clock);
            Snapshot memory s = a.snapshot();
            if (s.status == Status.Pending) {
                vm.prank(customer);
                a.cancel();
                b.feesRefunded += s.feesEscrowed;
                b.collateralReturned += s.collateralEscrowed;
            }
            while (a.snapshot().status == Status.Active) {
                _settlePerfect(b, t);
            }
            for (uint256 p = 0; p < t.periodCount; ++p) {
                (PeriodState st, uint256 credit, uint256 until) = a.periodState(p);
                if (st != PeriodState.Pending && st != PeriodState.Disputed) continue;
                if (st == PeriodState.Disputed) until += b.disputeWindow;
                if (until > clock) clock = until;
                vm.warp(clock);
                assertTrue(_finalize(b, p, st, credit, until, customer), "finalize at the end");
            }
            _observe(b);
            s = a.snapshot();
            if (s.owedToCustomer > 0) assertTrue(_withdraw(i, b, customer, customer), "customer withdraws at the end");
            if (s.owedToProvider > 0) assertTrue(_withdraw(i, b, provider, provider), "provider withdraws at the end");
            s = a.snapshot();
            assertEq(s.feesEscrowed + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider, 0, "books empty");
            assertEq(balanceOf(i, address(a)), b.donated, "agreement holds nothing but donations");
            assertEq(b.withdrawnByCustomer, b.feesRefunded + b.creditsPaid, "customer got refunds + credits");
            assertEq(b.withdrawnByProvider, b.feesReleased + b.collateralReturned, "provider got fees + collateral left");
            assertEq(b.withdrawnByCustomer + b.withdrawnByProvider, b.feesIn + b.collateralIn, "all deposits paid out");
        }
    }

    // ================================================================ internals
    /// @dev What createAgreement agrees to: one-minute slices, 90 % measured at least.
    function _noOptions() internal pure returns (Options memory o) {
        o.sliceLength = 60;
        o.minMeasuredPpm = 900_000;
    }

    function _open(Terms memory t, Options memory o) internal {
        address a = o.disputeWindow == 0 ? factory.createAgreement(t) : factory.createAgreementWithOptions(t, o);
        assertTrue(factory.isAgreement(a), "registered");
        assertEq(keccak256(abi.encode(Agreement(a).terms())), keccak256(abi.encode(t)), "terms round trip");
        Book storage b = _books.push();
        b.agreement = Agreement(a);
        b.eth = t.asset == address(0);
        b.fee = t.feePerPeriod;
        b.count = t.periodCount;
        b.collateral = t.collateral;
        b.capBps = t.creditCapBps;
        b.quorum = t.quorum;
        b.disputeWindow = o.disputeWindow;
        b.start = t.start;
    }

    function _pick(uint256 seed) internal view returns (uint256 idx, Book storage b) {
        idx = seed % _books.length;
        b = _books[idx];
    }

    uint8 internal constant ANY = 0;
    uint8 internal constant PENDING = 1;
    uint8 internal constant ACTIVE = 2;
    uint8 internal constant ACTIVE_QUORUM_1 = 3;
    uint8 internal constant ACTIVE_DISASTER = 4;
    uint8 internal constant WITH_WINDOW = 5;
    uint8 internal constant ACTIVE_COMMITTEE = 6;

    /// @dev Three times in four, the first agreement (from a random one on) in the state the
    /// action needs; else (or if none is) any agreement. Keeps short runs meaningful.
    function _pickFor(uint256 seed, uint8 want) internal view returns (uint256 idx, Book storage b) {
        (idx, b) = _pick(seed);
        if (want == ANY || (seed >> 128) % 4 == 0) return (idx, b);
        for (uint256 k = 0; k < _books.length; ++k) {
            uint256 j = (idx + k) % _books.length;
            if (want == WITH_WINDOW) {
                if (_books[j].disputeWindow != 0) return (j, _books[j]);
                continue;
            }
            Snapshot memory s = _books[j].agreement.snapshot();
            bool fits = want == PENDING
                ? s.status == Status.Pending
                : s.status == Status.Active
                    && (want == ACTIVE || (want == ACTIVE_DISASTER && s.disasterOccurred)
                        || (want == ACTIVE_QUORUM_1 && _books[j].quorum == 1)
                        || (want == ACTIVE_COMMITTEE && _books[j].quorum > 1));
            if (fits) return (j, _books[j]);
        }
    }

    /// @dev Half the time, when the next period has not ended yet, the clock jumps to its end.
    function _maybeReachEnd(Book storage b, uint256 seed, uint256 period, Snapshot memory s) internal {
        if (seed % 2 != 0 || period != s.settledPeriods || s.status != Status.Active) return;
        uint256 end = b.agreement.periodEnd(period);
        if (end > clock) {
            clock = end;
            vm.warp(clock);
        }
    }

    function _actor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    function _isMember(Terms memory t, address who) internal pure returns (bool) {
        for (uint256 i = 0; i < t.oracles.length; ++i) {
            if (t.oracles[i] == who) return true;
        }
        return false;
    }

    function _count(bytes32 what) internal {
        ++attempts[what];
    }

    function _success(bytes32 what) internal {
        ++successes[what];
    }

    /// @dev Gives `who` the means to pay `amount` (sometimes wrongly: a wrong ether value, a short
    /// allowance, ether sent along with a token deposit); returns the ether value to send and the
    /// token allowance granted.
    function _fund(Book storage b, address who, uint256 amount, uint256 seed)
        internal
        returns (uint256 value, uint256 allowance)
    {
        if (b.eth) {
            value = seed % 8 == 0 ? bound(seed >> 8, 0, amount + 1) : amount;
        } else {
            value = seed % 16 == 1 ? 1 : 0;
            allowance = seed % 8 == 0 ? bound(seed >> 8, 0, amount) : amount;
            token.mint(who, amount);
            vm.prank(who);
            token.approve(address(b.agreement), allowance);
        }
        vm.deal(who, value);
    }

    function _pullError(Book storage b, uint256 amount, uint256 value, uint256 allowance)
        internal
        view
        returns (bytes memory)
    {
        if (b.eth) {
            if (value != amount) return abi.encodeWithSelector(ISlaErrors.WrongAmount.selector, amount, value);
            return "";
        }
        if (value != 0) return abi.encodeWithSelector(ISlaErrors.WrongAmount.selector, 0, value);
        if (allowance < amount) {
            return abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientAllowance.selector, address(b.agreement), allowance, amount
            );
        }
        return "";
    }

    /// @dev Mostly the next period to settle; sometimes one already settled or one further on.
    function _choosePeriod(uint256 seed, uint256 settled) internal pure returns (uint256) {
        uint256 mode = seed % 8;
        if (mode == 0 && settled > 0) return bound(seed >> 8, 0, settled - 1);
        if (mode == 1) return settled + 1 + bound(seed >> 8, 0, 3);
        if (mode == 2) return type(uint256).max - bound(seed >> 8, 0, 1);
        return settled;
    }

    /// @dev One value per service (plus `extra`, or one fewer when seed says so): edge values
    /// (0, objective, objective - 1, 100 %, termination threshold - 1), values above 100 %, and
    /// random values mostly near 100 %.
    function _values(uint256 seed, Terms memory t, uint256 extra) internal pure returns (uint32[] memory values) {
        uint256 n = t.services.length;
        uint256 len = n + extra;
        if (seed % 64 == 1 && n > 0) len = n - 1;
        values = new uint32[](len);
        for (uint256 i = 0; i < len; ++i) {
            uint256 r = TermsGen.rand(seed, i);
            uint256 objective = i < n ? t.services[i].objective : PPM;
            uint256 kind = r % 16;
            uint256 v;
            if (kind == 0) v = 0;
            else if (kind == 1) v = PPM;
            else if (kind == 2) v = objective;
            else if (kind == 3) v = objective - 1;
            else if (kind == 4) v = t.terminationPpm > 0 ? t.terminationPpm - 1 : 0;
            else if (kind == 5) v = PPM + 1 + (r >> 8) % 1000;
            else if (kind == 6) v = (r >> 8) % (PPM + 1);
            else if (kind < 11) v = PPM - (r >> 8) % 60_000;
            else if (kind == 11) v = t.terminationPpm > 0 ? t.terminationPpm - 1 - (r >> 8) % t.terminationPpm : 0;
            else v = PPM;
            values[i] = uint32(v);
        }
    }

    /// @dev The error `_settle` must raise for these arguments, in the contract's order of checks.
    function _settleError(Terms memory t, Snapshot memory s, uint256 period, uint32[] memory values, uint32 measured)
        internal
        view
        returns (bytes memory)
    {
        if (s.status != Status.Active) return abi.encodeWithSelector(ISlaErrors.WrongStatus.selector, s.status);
        if (period < s.settledPeriods) return abi.encodeWithSelector(Agreement.PeriodAlreadySettled.selector, period);
        if (period != s.settledPeriods) {
            return abi.encodeWithSelector(ISlaErrors.PeriodOutOfOrder.selector, s.settledPeriods, period);
        }
        uint256 endsAt = uint256(t.start) + (period + 1) * uint256(t.periodLength);
        if (block.timestamp < endsAt) return abi.encodeWithSelector(ISlaErrors.PeriodNotEnded.selector, period, endsAt);
        if (measured > PPM) return abi.encodeWithSelector(ISlaErrors.MeasuredShareAboveOneHundredPercent.selector, measured);
        if (measured < MIN_MEASURED) {
            return abi.encodeWithSelector(ISlaErrors.PeriodNotMeasured.selector, period, measured, MIN_MEASURED);
        }
        if (values.length != t.services.length) {
            return abi.encodeWithSelector(ISlaErrors.WrongNumberOfValues.selector, t.services.length, values.length);
        }
        for (uint256 i = 0; i < values.length; ++i) {
            if (values[i] > PPM) {
                return abi.encodeWithSelector(ISlaErrors.ValueAboveOneHundredPercent.selector, i, values[i]);
            }
        }
        return "";
    }

    uint32 internal constant MIN_MEASURED = 900_000;

    /// @dev A measured share: mostly all of the period, sometimes just enough, below the minimum,
    /// or above 100 %.
    function _measured(uint256 seed) internal pure returns (uint32) {
        uint256 mode = seed % 32;
        if (mode == 0) return uint32(bound(seed >> 8, 0, MIN_MEASURED - 1));
        if (mode == 1) return uint32(PPM + 1 + (seed >> 8) % 1000);
        if (mode == 2) return MIN_MEASURED;
        if (mode < 8) return uint32(bound(seed >> 8, MIN_MEASURED, PPM));
        return PPM;
    }

    /// @dev Private keys of the reports' signers: mostly distinct members of the committee
    /// (as many as the quorum, or more), sometimes a random draw from members and strangers.
    function _signers(uint256 seed, Terms memory t) internal view returns (uint256[] memory keys) {
        uint256 n = t.oracles.length;
        if (seed % 8 == 0) {
            uint256 k = bound(seed >> 8, 0, 5);
            keys = new uint256[](k);
            for (uint256 i = 0; i < k; ++i) {
                uint256 pick = TermsGen.rand(seed, i) % 5;
                keys[i] = pick < 3 ? _oracleKeys[pick] : _strangerKeys[pick - 3];
            }
        } else {
            uint256 k = bound(seed >> 8, t.quorum, n);
            if (seed % 8 == 1 && t.quorum > 1) k = t.quorum - 1; // one short
            keys = new uint256[](k);
            uint256 offset = (seed >> 16) % n;
            for (uint256 i = 0; i < k; ++i) keys[i] = _oracleKeys[(offset + i) % n];
        }
    }

    struct ReportPlan {
        Agreement a;
        uint256 period;
        uint256 n;
        uint256 valueSeed;
        uint256 signerSeed;
        uint256 signers;
        bool failed;
        bytes expected;
        uint32[] honest;
        uint32[][] columns; // one per service, then the measured shares
        SignedReport[] reports;
        uint32[] medians;
        uint32 measured;
    }

    /// @dev Builds and signs the reports; records the first error the contract must raise while
    /// reading them (empty if none), the per-service medians, the median measured share and the
    /// signers' bitmask.
    function _reports(
        Agreement a,
        Terms memory t,
        uint256 period,
        uint256[] memory keys,
        uint256 valueSeed,
        uint256 signerSeed
    ) internal returns (ReportPlan memory p) {
        p.a = a;
        p.period = period;
        p.n = t.services.length;
        p.valueSeed = valueSeed;
        p.signerSeed = signerSeed;
        p.honest = _values(valueSeed, t, 0);
        if (p.honest.length != p.n) p.honest = _values(valueSeed + 1, t, 0); // exact count for the base
        p.columns = new uint32[][](p.n + 1);
        for (uint256 s = 0; s <= p.n; ++s) p.columns[s] = new uint32[](keys.length);
        p.reports = new SignedReport[](keys.length);
        for (uint256 i = 0; i < keys.length; ++i) {
            p.reports[i] = _oneReport(p, t, keys, i);
        }
        p.medians = new uint32[](p.n);
        if (!p.failed && keys.length > 0) {
            for (uint256 s = 0; s < p.n; ++s) p.medians[s] = RefModel.median(p.columns[s]);
            p.measured = RefModel.median(p.columns[p.n]);
        }
    }

    function _oneReport(ReportPlan memory p, Terms memory t, uint256[] memory keys, uint256 i)
        internal
        returns (SignedReport memory report)
    {
        // values: the honest ones, or a liar's/independent ones, or (first report) a wrong count
        uint32[] memory v =
            TermsGen.rand(p.valueSeed, 1000 + i) % 4 == 0 ? _values(TermsGen.rand(p.valueSeed, 2000 + i), t, 0) : p.honest;
        if (i == 0 && (p.signerSeed >> 32) % 16 == 0) v = _values(p.valueSeed, t, 1);
        // a signature made for another period is a replay
        uint256 signedPeriod = (p.signerSeed >> 40) % 16 == 0 && i == keys.length - 1 ? p.period ^ 1 : p.period;
        uint256 r = TermsGen.rand(p.signerSeed, 3000 + i);
        uint32 measured = _measured(r);
        // mostly valid for a day; sometimes expired a second ago, or expiring right now (valid)
        uint64 deadline = uint64(r % 16 == 0 ? block.timestamp - 1 : r % 16 == 1 ? block.timestamp : block.timestamp + 1 days);
        address signer;
        (report, signer) = _signOne(p.a, keys[i], p.period, signedPeriod, v, measured, deadline);
        if (p.failed) return report;
        p.failed = true;
        if (deadline < block.timestamp) {
            p.expected = abi.encodeWithSelector(ISlaErrors.ReportExpired.selector, i, uint256(deadline));
            return report;
        }
        if (v.length != p.n) {
            p.expected = abi.encodeWithSelector(ISlaErrors.WrongNumberOfValues.selector, p.n, v.length);
            return report;
        }
        if (signer == address(0)) {
            p.expected = abi.encodeWithSelector(ECDSA.ECDSAInvalidSignature.selector);
            return report;
        }
        uint256 index = type(uint256).max;
        for (uint256 m = 0; m < t.oracles.length; ++m) {
            if (t.oracles[m] == signer) index = m;
        }
        if (index == type(uint256).max) {
            p.expected = abi.encodeWithSelector(ISlaErrors.NotACommitteeMember.selector, signer);
            return report;
        }
        if (p.signers & (1 << index) != 0) {
            p.expected = abi.encodeWithSelector(ISlaErrors.DuplicateSigner.selector, signer);
            return report;
        }
        p.failed = false;
        p.signers |= 1 << index;
        for (uint256 s = 0; s < p.n; ++s) p.columns[s][i] = v[s];
        p.columns[p.n][i] = measured;
    }

    struct Expected {
        uint256 period;
        uint32 measured;
        uint256 modelCredit;
        uint256 paid;
        uint256 returned;
        bool disaster;
        bool last;
        bool pending;
        uint256 collateralBefore;
    }

    /// @dev Signs `v` for `signedPeriod`; returns the report and the address the contract will
    /// recover when it checks the report against `period`.
    function _signOne(
        Agreement a,
        uint256 key,
        uint256 period,
        uint256 signedPeriod,
        uint32[] memory v,
        uint32 measured,
        uint64 deadline
    ) internal returns (SignedReport memory report, address recovered) {
        (uint8 sv, bytes32 sr, bytes32 ss) = vm.sign(key, a.reportDigest(signedPeriod, v, measured, EVIDENCE_ROOT, deadline));
        report = SignedReport({valuesPpm: v, measuredPpm: measured, evidenceRoot: EVIDENCE_ROOT, deadline: deadline, signature: abi.encodePacked(sr, ss, sv)});
        recovered = ecrecover(a.reportDigest(period, v, measured, EVIDENCE_ROOT, deadline), sv, sr, ss);
    }

    /// @dev Checks a successful settlement against the reference model and records its events.
    function _afterSettle(
        Book storage b,
        Terms memory t,
        Snapshot memory s,
        uint256 period,
        uint32[] memory values,
        uint32 measured,
        VmExtra.Log[] memory logs
    ) internal {
        Expected memory e;
        e.period = period;
        e.measured = measured;
        (e.modelCredit, e.disaster) = RefModel.periodCredit(t, values);
        e.collateralBefore = s.collateralEscrowed;
        e.paid = e.modelCredit < e.collateralBefore ? e.modelCredit : e.collateralBefore;
        e.last = s.settledPeriods + 1 == t.periodCount;
        e.pending = b.disputeWindow != 0;
        e.returned = e.last && !e.pending ? e.collateralBefore - e.paid : 0;
        _checkSettleLogs(b, t, values, logs, e);
        Snapshot memory n = b.agreement.snapshot();
        assertEq(n.settledPeriods, s.settledPeriods + 1, "settled count");
        assertEq(n.feesEscrowed, s.feesEscrowed - t.feePerPeriod, "fee left the escrow");
        assertEq(n.collateralEscrowed, e.collateralBefore - e.paid - e.returned, "collateral escrow");
        if (e.pending) {
            assertEq(n.pendingToCustomer, s.pendingToCustomer + e.paid, "credit pending");
            assertEq(n.pendingToProvider, s.pendingToProvider + t.feePerPeriod, "fee pending");
            assertEq(n.pendingPeriods, s.pendingPeriods + 1, "one more pending period");
            assertEq(n.owedToCustomer, s.owedToCustomer, "nothing payable yet (customer)");
            assertEq(n.owedToProvider, s.owedToProvider, "nothing payable yet (provider)");
            (PeriodState st, uint256 credit, uint256 finalAfter) = b.agreement.periodState(e.period);
            assertTrue(st == PeriodState.Pending, "period pending");
            assertEq(credit, e.paid, "pending credit");
            assertEq(finalAfter, block.timestamp + b.disputeWindow, "final after the window");
            _pendingDisaster[address(b.agreement)][e.period] = e.disaster;
            assertTrue(n.disasterOccurred == s.disasterOccurred, "a disputable disaster opens nothing yet");
        } else {
            assertEq(n.owedToCustomer, s.owedToCustomer + e.paid, "customer owed the credit");
            assertEq(n.owedToProvider, s.owedToProvider + t.feePerPeriod + e.returned, "provider owed the fee");
            assertTrue(n.disasterOccurred == (s.disasterOccurred || e.disaster), "disaster sticks");
        }
        assertTrue((n.status == Status.Ended) == e.last, "ends after the last period");
        _observe(b);
    }

    function _checkSettleLogs(
        Book storage b,
        Terms memory t,
        uint32[] memory values,
        VmExtra.Log[] memory logs,
        Expected memory e
    ) internal {
        uint256 seen;
        bool sawShortfall;
        bool sawEnded;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter != address(b.agreement)) continue;
            bytes32 topic = logs[i].topics[0];
            if (topic == Agreement.PeriodSettled.selector) {
                ++seen;
                _checkPeriodSettled(b, t, values, logs[i], e);
            } else if (topic == Agreement.CollateralExhausted.selector) {
                sawShortfall = true;
                assertEq(abi.decode(logs[i].data, (uint256)), e.modelCredit - e.collateralBefore, "shortfall");
            } else if (topic == Agreement.Ended.selector) {
                sawEnded = true;
                uint256 r = abi.decode(logs[i].data, (uint256));
                assertEq(r, e.returned, "collateral returned at the end");
                b.collateralReturned += r;
            }
        }
        assertEq(seen, 1, "one PeriodSettled per settlement");
        assertTrue(
            sawShortfall == (e.modelCredit > e.collateralBefore), "CollateralExhausted iff the credit exceeds the collateral"
        );
        assertTrue(sawEnded == e.last, "Ended after the last period");
    }

    function _checkPeriodSettled(
        Book storage b,
        Terms memory t,
        uint32[] memory values,
        VmExtra.Log memory log,
        Expected memory e
    ) internal {
        uint256 p = uint256(log.topics[1]);
        ++settledEvents[address(b.agreement)][p];
        ++b.settlements;
        SettledLog memory d;
        (d.vs, d.serviceCredits, d.creditPaid, d.feeEarned, d.disaster, d.measured) =
            abi.decode(log.data, (uint32[], uint256[], uint256, uint256, bool, uint32));
        assertEq(d.measured, e.measured, "PeriodSettled measured share");
        assertEq(p, e.period, "PeriodSettled period");
        assertEq(keccak256(abi.encode(d.vs)), keccak256(abi.encode(values)), "PeriodSettled values");
        for (uint256 k = 0; k < d.vs.length; ++k) {
            assertEq(d.serviceCredits[k], RefModel.serviceCredit(t.services[k], d.vs[k], t.feePerPeriod), "service credit");
        }
        assertEq(d.creditPaid, e.paid, "credit paid = min(model credit, collateral left)");
        assertEq(d.feeEarned, t.feePerPeriod, "fee released");
        assertTrue(d.disaster == e.disaster, "disaster flag");
        b.creditsPaid += d.creditPaid;
        b.feesReleased += d.feeEarned;
        if (d.creditPaid > b.maxCreditInPeriod) b.maxCreditInPeriod = d.creditPaid;
    }

    struct SettledLog {
        uint32[] vs;
        uint256[] serviceCredits;
        uint256 creditPaid;
        uint256 feeEarned;
        bool disaster;
        uint32 measured;
    }

    function _withdraw(uint256 idx, Book storage b, address who, address to) internal returns (bool ok) {
        Snapshot memory s = b.agreement.snapshot();
        uint256 owed;
        bytes memory expected;
        if (who == customer) owed = s.owedToCustomer;
        else if (who == provider) owed = s.owedToProvider;
        if (to == address(0)) {
            expected = abi.encodeWithSelector(ISlaErrors.InvalidRecipient.selector);
        } else if (who != customer && who != provider) {
            expected = abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, who);
        } else if (owed == 0) {
            expected = abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, who);
        }
        uint256 agreementBefore = balanceOf(idx, address(b.agreement));
        uint256 toBefore = balanceOf(idx, to);
        bytes memory err;
        vm.prank(who);
        if (to == who) {
            try b.agreement.withdraw() {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
        } else {
            try b.agreement.withdrawTo(payable(to)) {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
        }
        _expect(ok, err, expected, "withdraw");
        if (!ok) return false;
        assertEq(balanceOf(idx, to), toBefore + owed, "the recipient received what the party was owed");
        assertEq(balanceOf(idx, address(b.agreement)), agreementBefore - owed, "the escrow paid it");
        Snapshot memory n = b.agreement.snapshot();
        if (who == customer) {
            b.withdrawnByCustomer += owed;
            assertEq(n.owedToCustomer, 0, "customer paid off");
            assertEq(n.owedToProvider, s.owedToProvider, "provider untouched");
        } else {
            b.withdrawnByProvider += owed;
            assertEq(n.owedToProvider, 0, "provider paid off");
            assertEq(n.owedToCustomer, s.owedToCustomer, "customer untouched");
        }
    }

    /// @dev Settles the next period with perfect values (used by windDown).
    function _settlePerfect(Book storage b, Terms memory t) internal {
        Snapshot memory s = b.agreement.snapshot();
        uint32[] memory values = new uint32[](t.services.length);
        for (uint256 i = 0; i < values.length; ++i) values[i] = PPM;
        vmx.recordLogs();
        if (t.quorum == 1) {
            vm.prank(t.oracles[0]);
            b.agreement.settle(s.settledPeriods, values, PPM, EVIDENCE_ROOT);
        } else {
            SignedReport[] memory reports = new SignedReport[](t.quorum);
            uint64 deadline = uint64(block.timestamp);
            for (uint256 i = 0; i < t.quorum; ++i) {
                (uint8 v, bytes32 r, bytes32 ss) =
                    vm.sign(_oracleKeys[i], b.agreement.reportDigest(s.settledPeriods, values, PPM, EVIDENCE_ROOT, deadline));
                reports[i] =
                    SignedReport({valuesPpm: values, measuredPpm: PPM, evidenceRoot: EVIDENCE_ROOT, deadline: deadline, signature: abi.encodePacked(r, ss, v)});
            }
            vm.prank(t.oracles[0]);
            b.agreement.settleCompact(CompactReports.encode(s.settledPeriods, reports));
        }
        _afterSettle(b, t, s, s.settledPeriods, values, PPM, _logs());
    }

    /// @dev Terminal statuses never change.
    function _observe(Book storage b) internal {
        Status st = b.agreement.snapshot().status;
        if (b.terminal) {
            assertTrue(st == b.terminalStatus, "a terminal status changed");
        } else if (st == Status.Ended || st == Status.Terminated || st == Status.Cancelled || st == Status.Expired) {
            b.terminal = true;
            b.terminalStatus = st;
        }
    }

    function _expect(bool ok, bytes memory err, bytes memory expected, string memory what) internal {
        if (expected.length >= 4) ++revertsSeen[bytes4(expected)];
        if (expected.length == 0) {
            if (!ok) fail(string.concat(what, " reverted unexpectedly: ", vmx.toString(err)));
        } else {
            if (ok) fail(string.concat(what, " succeeded; expected revert ", vmx.toString(expected)));
            if (keccak256(err) != keccak256(expected)) {
                fail(string.concat(what, " reverted with ", vmx.toString(err), "; expected ", vmx.toString(expected)));
            }
        }
    }

    function _logs() internal returns (VmExtra.Log[] memory) {
        return vmx.getRecordedLogs();
    }
}
