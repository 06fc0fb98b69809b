// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {Status, Snapshot} from "contracts/SlaTypes.sol";

import {TestBase, FuzzSelector} from "./utils/TestBase.sol";
import {AgreementHandler, Book} from "./handlers/AgreementHandler.sol";

/// @title Invariants of agreements under random sequences of calls by random actors.
/// @notice The handler (handlers/AgreementHandler.sol) is the only fuzzed contract. Each run
/// starts from two funded agreements (the README's example in ether with one oracle; the same in
/// tokens with a 2-of-3 committee, 1.5 ether of collateral and a three-day dispute window) and may open two more with random valid
/// terms (ether or ERC-20, committee of 1 to 3, quorum 1 to 3, half of them with a dispute
/// window and an arbiter); every run ends with
/// `afterInvariant`, which winds every agreement down and checks the final payouts.
contract AgreementInvariantTest is TestBase {
    AgreementHandler internal handler;

    function setUp() public {
        handler = new AgreementHandler();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](15);
        selectors[0] = AgreementHandler.createAgreement.selector;
        selectors[1] = AgreementHandler.depositFees.selector;
        selectors[2] = AgreementHandler.depositCollateral.selector;
        selectors[3] = AgreementHandler.cancel.selector;
        selectors[4] = AgreementHandler.settle.selector;
        selectors[5] = AgreementHandler.settleWithReports.selector;
        selectors[6] = AgreementHandler.terminate.selector;
        selectors[7] = AgreementHandler.withdraw.selector;
        selectors[8] = AgreementHandler.warp.selector;
        selectors[9] = AgreementHandler.donate.selector;
        // settling is the interesting part: give it a second ticket
        selectors[10] = AgreementHandler.settle.selector;
        selectors[11] = AgreementHandler.dispute.selector;
        selectors[12] = AgreementHandler.resolveDispute.selector;
        selectors[13] = AgreementHandler.finalize.selector;
        selectors[14] = AgreementHandler.expire.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice The agreement holds exactly what its books say (escrowed fees and collateral plus
    /// what each party can withdraw), plus whatever was forced in from outside.
    function _balanceEqualsBooks(uint256 i, Book memory b, Snapshot memory s) internal view {
        uint256 books = uint256(s.feesEscrowed) + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider
            + s.pendingToCustomer + s.pendingToProvider;
        assertEq(handler.balanceOf(i, address(b.agreement)), books + b.donated, "balance = books + donations");
    }

    /// @notice No party is ever owed more than the terms allow, and every unit is accounted for.
    function _payoutsWithinTerms(Book memory b, Snapshot memory s) internal pure {
        uint256 totalFees = b.fee * b.count;
        uint256 toCustomer = s.owedToCustomer + s.pendingToCustomer + b.withdrawnByCustomer;
        uint256 toProvider = s.owedToProvider + s.pendingToProvider + b.withdrawnByProvider;
        assertLe(toCustomer, totalFees + b.collateral, "customer <= fees + collateral");
        assertLe(toProvider, totalFees + b.collateral, "provider <= fees + collateral");
        assertLe(b.creditsPaid, b.collateral, "credits <= collateral");
        assertLe(b.creditsPaid, b.collateralIn, "credits <= collateral deposited");
        assertEq(toCustomer, b.feesRefunded + b.creditsPaid, "customer entitlement = refunds + credits");
        assertEq(toProvider, b.feesReleased + b.collateralReturned, "provider entitlement = fees + collateral back");
        assertEq(b.feesReleased + b.feesRefunded + s.feesEscrowed, b.feesIn, "every fee accounted for");
        assertEq(
            b.creditsPaid + b.collateralReturned + s.collateralEscrowed, b.collateralIn, "every unit of collateral accounted for"
        );
    }

    /// @notice A period settles at most once; PeriodSettled events agree with the counter.
    function _periodSettlesAtMostOnce(Book memory b, Snapshot memory s) internal view {
        uint256 sum;
        for (uint256 p = 0; p < b.count; ++p) {
            uint256 n = handler.settledEvents(address(b.agreement), p);
            assertLe(n, 1, "a period settled twice");
            assertEq(n, p < s.settledPeriods ? 1 : 0, "settled periods are exactly 0..settledPeriods-1");
            sum += n;
        }
        assertEq(sum, s.settledPeriods, "events = settled counter");
        assertEq(b.settlements, s.settledPeriods, "no settlement outside the term");
        assertLe(s.settledPeriods, b.count, "never more periods than the term");
    }

    /// @notice The credit of any one period never exceeds the cap (nor the period's fee).
    function _creditPerPeriodWithinCap(Book memory b) internal pure {
        assertLe(b.maxCreditInPeriod, b.fee * b.capBps / 10_000, "period credit <= cap");
        assertLe(b.maxCreditInPeriod, b.fee, "period credit <= fee");
    }

    /// @notice Only committee members settle: strangers and parties were tried and always refused.
    function _onlyCommitteeSettles() internal view {
        assertEq(handler.nonMemberSettleSuccesses(), 0, "a non-member settled a period");
    }

    /// @notice Status and flags agree; terminal statuses empty the escrow.
    function _statusConsistent(Book memory b, Snapshot memory s) internal pure {
        if (s.status == Status.Pending) {
            assertTrue(!(s.feesDeposited && s.collateralDeposited), "pending with both deposits");
            assertEq(s.settledPeriods, 0, "pending yet settled");
        }
        if (s.status == Status.Active) {
            assertTrue(s.feesDeposited && s.collateralDeposited, "active without both deposits");
            assertEq(s.feesEscrowed, b.fee * (b.count - s.settledPeriods), "fees of the unsettled periods escrowed");
        }
        if (s.status == Status.Ended) assertEq(s.settledPeriods, b.count, "ended early");
        if (
            s.status == Status.Ended || s.status == Status.Terminated || s.status == Status.Cancelled
                || s.status == Status.Expired
        ) {
            assertEq(s.feesEscrowed, 0, "terminal status keeps fees");
            if (s.pendingPeriods == 0) assertEq(s.collateralEscrowed, 0, "collateral kept with nothing pending");
        }
        if (b.disputeWindow == 0) {
            assertEq(uint256(s.pendingToCustomer) + s.pendingToProvider + s.pendingPeriods, 0, "pending without a window");
        }
        assertLe(s.pendingPeriods, s.settledPeriods, "pending periods are settled ones");
        assertEq(s.pendingToProvider, b.fee * s.pendingPeriods, "a fee pending per pending period");
        if (s.status == Status.Terminated) assertTrue(s.disasterOccurred, "terminated without a disaster");
        if (b.terminal) assertTrue(s.status == b.terminalStatus, "terminal status changed");
    }

    // ------------------------------------------------------------------ the campaign
    // Forge runs one campaign (runs x depth calls) per invariant function, so all six checks sit in
    // one: each runs after every call of every run (profile ci: 10,000 runs of 20 calls). Two
    // functions (two campaigns) cost twice the handler's calls and wind-downs for the same checks
    // per sequence; under the parallel pytest run the second core is busy anyway.

    /// @notice Money: the balance equals the books, payouts stay within the terms and every unit
    /// is accounted for, status and flags agree. Settlement rules: a period settles at most once,
    /// credits stay under the cap, and only committee members settle.
    function invariant_agreementRules() public view {
        for (uint256 i = 0; i < handler.bookCount(); ++i) {
            // one read of each book and snapshot for all the checks (the checks after each call
            // cost more than the call itself: reading them once per check doubled the campaign)
            Book memory b = handler.book(i);
            Snapshot memory s = b.agreement.snapshot();
            _balanceEqualsBooks(i, b, s);
            _payoutsWithinTerms(b, s);
            _statusConsistent(b, s);
            _periodSettlesAtMostOnce(b, s);
            _creditPerPeriodWithinCap(b);
        }
        _onlyCommitteeSettles();
    }

    /// @notice After every run: the term ends, everything is withdrawn, the agreements hold
    /// nothing (but donations), and each party got exactly its due.
    function afterInvariant() public {
        handler.windDown();
    }
}
