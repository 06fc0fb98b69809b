// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {Agreement} from "contracts/Agreement.sol";
import {AgreementFactory} from "contracts/AgreementFactory.sol";
import {Terms, Options, Status, Snapshot, SignedReport, Tier, PPM} from "contracts/SlaTypes.sol";
import {FeeOnTransferToken, TestToken} from "contracts/test/TestToken.sol";
import {FalseReturningToken} from "contracts/test/FalseReturningToken.sol";

import {Fixture, IMintable} from "./utils/Fixture.sol";
import {NoReturnToken, BlocklistToken, HookToken, ITransferHook, RebasingDownToken} from "./mocks/HostileTokens.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";

/// @notice A customer that is a contract and calls back into the agreement from a token hook.
contract ReentrantCustomer is ITransferHook {
    Agreement public agreement;
    uint8 public mode; // 1: withdraw again, 2: cancel during the deposit
    bytes public lastError;

    function setAgreement(Agreement a, uint8 m) external {
        agreement = a;
        mode = m;
    }

    function approve(IMintable token, uint256 amount) external {
        token.approve(address(agreement), amount);
    }

    function deposit() external {
        agreement.depositFees();
    }

    function withdraw() external {
        agreement.withdraw();
    }

    function onTokenTransfer(address, address, uint256) external {
        if (mode == 1) agreement.withdraw();
        if (mode == 2) {
            mode = 0;
            agreement.cancel();
        }
    }
}

/// @title Hostile inputs: tokens that lie or fight back, extreme amounts, hostile callers and
/// factory inputs. Each test shows a clear error and that nothing is lost (or, for the known
/// issues of docs/security.md, what happens today).
contract HostileInputsTest is Fixture {
    function setUp() public {
        _setUpFixture(1);
    }

    function _books(Agreement a) internal view returns (uint256) {
        Snapshot memory s = a.snapshot();
        return uint256(s.feesEscrowed) + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider
            + s.pendingToCustomer + s.pendingToProvider;
    }

    function _settleAll(Agreement a, Terms memory t, uint32 x) internal {
        for (uint256 p = a.snapshot().settledPeriods; p < t.periodCount; ++p) {
            _toEnd(a, p);
            vm.prank(oracles[0]);
            a.settle(p, _values(x, x), PPM, EVIDENCE_ROOT);
        }
    }

    // ------------------------------------------------------------------ tokens
    function test_falseReturningTokenDepositIsRefusedAndNothingMoves() public {
        FalseReturningToken token = new FalseReturningToken();
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        token.mint(customer, fees);
        vm.prank(customer);
        token.approve(address(a), fees);
        token.setRefuseFrom(customer, true);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(token)));
        vm.prank(customer);
        a.depositFees();
        assertEq(token.balanceOf(customer), fees, "customer kept its tokens");
        assertEq(token.balanceOf(address(a)), 0, "escrow empty");
        assertTrue(!a.snapshot().feesDeposited, "nothing booked");
        // a balance too small also makes the token answer false
        token.setRefuseFrom(customer, false);
        vm.prank(customer);
        token.transfer(stranger, 1);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(token)));
        vm.prank(customer);
        a.depositFees();
    }

    function test_falseReturningTokenPayoutIsRefusedAndTheDebtKept() public {
        FalseReturningToken token = new FalseReturningToken();
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        _fund(a, t);
        _settleAll(a, t, 980_000); // 30 % / 10 % tiers: credits every period
        Snapshot memory s = a.snapshot();
        assertTrue(s.owedToCustomer > 0 && s.owedToProvider > 0, "both owed");
        token.setRefuseTo(customer, true);
        vm.expectRevert(abi.encodeWithSelector(SafeERC20.SafeERC20FailedOperation.selector, address(token)));
        vm.prank(customer);
        a.withdraw();
        assertEq(a.snapshot().owedToCustomer, s.owedToCustomer, "debt kept after the failed payout");
        // the other party is not held hostage
        vm.prank(provider);
        a.withdraw();
        assertEq(token.balanceOf(provider), s.owedToProvider, "provider paid");
        token.setRefuseTo(customer, false);
        vm.prank(customer);
        a.withdraw();
        assertEq(token.balanceOf(customer), s.owedToCustomer, "customer paid once the token accepts");
        assertEq(token.balanceOf(address(a)), 0, "escrow empty");
    }

    function test_tokenWithoutReturnValueWorks() public {
        NoReturnToken token = new NoReturnToken();
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        token.mint(customer, fees);
        vm.prank(customer);
        token.approve(address(a), fees);
        vm.prank(customer);
        a.depositFees();
        token.mint(provider, t.collateral);
        vm.prank(provider);
        token.approve(address(a), t.collateral);
        vm.prank(provider);
        a.depositCollateral();
        _settleAll(a, t, PPM);
        vm.prank(provider);
        a.withdraw();
        assertEq(token.balanceOf(provider), fees + t.collateral, "provider paid in a no-return token");
        assertEq(token.balanceOf(address(a)), 0, "escrow empty");
    }

    function test_feeOnTransferTokenIsRefusedAtDeposit() public {
        FeeOnTransferToken token = new FeeOnTransferToken();
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        token.mint(customer, fees);
        vm.prank(customer);
        token.approve(address(a), fees);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.WrongAmount.selector, fees, fees - fees / 100));
        vm.prank(customer);
        a.depositFees();
        assertEq(token.balanceOf(customer), fees, "nothing taken");
    }

    function test_blockedCustomerDoesNotBlockTheProvider() public {
        BlocklistToken token = new BlocklistToken();
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        _fund(a, t);
        _settleAll(a, t, 980_000);
        token.setBlocked(customer, true);
        vm.expectRevert(bytes("BlocklistToken: blocked"));
        vm.prank(customer);
        a.withdraw();
        vm.prank(provider);
        a.withdraw();
        assertEq(_books(a), a.snapshot().owedToCustomer, "only the blocked party's due is left");
        assertEq(token.balanceOf(address(a)), _books(a), "balance = books");
    }

    function test_reentrantWithdrawIsRefused() public {
        HookToken token = new HookToken();
        ReentrantCustomer attacker = new ReentrantCustomer();
        customer = address(attacker);
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        attacker.setAgreement(a, 0);
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        token.mint(address(attacker), fees);
        attacker.approve(IMintable(address(token)), fees);
        attacker.deposit();
        token.mint(provider, t.collateral);
        vm.prank(provider);
        token.approve(address(a), t.collateral);
        vm.prank(provider);
        a.depositCollateral();
        _settleAll(a, t, 0); // disaster every period: credits up to the collateral
        uint256 owed = a.snapshot().owedToCustomer;
        token.setHook(attacker);
        attacker.setAgreement(a, 1);
        vm.expectRevert(abi.encodeWithSelector(ReentrancyGuard.ReentrancyGuardReentrantCall.selector));
        attacker.withdraw();
        assertEq(a.snapshot().owedToCustomer, owed, "nothing paid twice, debt kept");
        attacker.setAgreement(a, 0);
        attacker.withdraw();
        assertEq(token.balanceOf(address(attacker)), owed, "paid exactly once");
        assertEq(token.balanceOf(address(a)), _books(a), "balance = books");
    }

    /// @notice cancel() has no reentrancy guard; called from a hook in the middle of the
    /// customer's own deposit it still leaves balance = books.
    function test_cancelFromADepositHookKeepsTheBooks() public {
        HookToken token = new HookToken();
        ReentrantCustomer attacker = new ReentrantCustomer();
        customer = address(attacker);
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        token.mint(address(attacker), fees);
        attacker.setAgreement(a, 2);
        attacker.approve(IMintable(address(token)), fees);
        token.setHook(attacker);
        attacker.deposit();
        Snapshot memory s = a.snapshot();
        assertTrue(s.status == Status.Cancelled, "cancelled from the hook");
        assertEq(s.owedToCustomer, fees, "the fees are owed back");
        assertEq(token.balanceOf(address(a)), _books(a), "balance = books");
        token.setHook(ITransferHook(address(0)));
        attacker.withdraw();
        assertEq(token.balanceOf(address(attacker)), fees, "all back");
    }

    /// @notice Limitation (docs/security.md): a token whose balance shrinks on its own breaks
    /// balance = books; the first to withdraw is paid in full, the last one is short.
    function test_limitation_rebasingDownTokenShortchangesTheLastWithdrawer() public {
        RebasingDownToken token = new RebasingDownToken();
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        _fund(a, t);
        _settleAll(a, t, PPM);
        token.slash(address(a), 1);
        uint256 held = token.balanceOf(address(a));
        uint256 owed = a.snapshot().owedToProvider;
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, address(a), held, owed));
        vm.prank(provider);
        a.withdraw();
    }

    /// @notice An asset address with no code: the factory accepts it; the deposit reverts (with
    /// no reason: the balance query returns nothing to decode) and nothing is booked.
    function test_assetWithoutCodeIsRefusedAtDeposit() public {
        Terms memory t = _terms(1, address(0xDEAD));
        Agreement a = _open(t);
        vm.expectRevert(bytes(""));
        vm.prank(customer);
        a.depositFees();
        assertTrue(!a.snapshot().feesDeposited, "nothing booked");
    }

    // ------------------------------------------------------------------ ether and callers
    function test_etherSentDirectlyOrWithATokenDepositIsRefused() public {
        TestToken token = new TestToken();
        Terms memory t = _terms(1, address(token));
        Agreement a = _open(t);
        vm.deal(stranger, 1 ether);
        vm.prank(stranger);
        (bool ok,) = address(a).call{value: 1 ether}("");
        assertTrue(!ok, "plain ether transfer refused");
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        token.mint(customer, fees);
        vm.prank(customer);
        token.approve(address(a), fees);
        vm.deal(customer, 1);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.WrongAmount.selector, 0, 1));
        vm.prank(customer);
        a.depositFees{value: 1}();
    }

    function test_implementationRefusesEveryCall() public {
        Agreement impl = Agreement(factory.implementation());
        vm.expectRevert(ISlaErrors.NotAClone.selector);
        impl.snapshot();
        vm.expectRevert(ISlaErrors.NotAClone.selector);
        impl.terms();
        vm.expectRevert(ISlaErrors.NotAClone.selector);
        vm.prank(oracles[0]);
        impl.settle(0, _values(PPM, PPM), PPM, EVIDENCE_ROOT);
        vm.expectRevert(ISlaErrors.NotAClone.selector);
        impl.withdraw();
    }

    function test_strangersMoveNothing() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _settleAll(a, t, 0);
        uint256 before = address(a).balance;
        vm.startPrank(stranger);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, stranger));
        a.withdraw();
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, stranger));
        a.cancel();
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, stranger));
        a.terminate();
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, stranger));
        a.declareMaintenance(uint64(block.timestamp + 1), uint64(block.timestamp + 2));
        vm.stopPrank();
        assertEq(address(a).balance, before, "nothing moved");
    }

    // ------------------------------------------------------------------ amounts
    /// @notice Zero collateral is accepted: credits are promised but never paid (the shortfall
    /// is announced by CollateralExhausted), fees still flow.
    function test_zeroCollateralPaysNoCredit() public {
        Terms memory t = _terms(1, address(0));
        t.collateral = 0;
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        vm.expectEmit(true, false, false, true, address(a));
        emit Agreement.CollateralExhausted(0, 1 ether);
        vm.prank(oracles[0]);
        a.settle(0, _values(0, 0), PPM, EVIDENCE_ROOT);
        Snapshot memory s = a.snapshot();
        assertEq(s.owedToCustomer, 0, "no credit");
        assertEq(s.owedToProvider, t.feePerPeriod, "fee released");
    }

    /// @notice The smallest fee (1 unit): every credit rounds down to 0, and that is all.
    function test_oneUnitFeeRoundsCreditsDown() public {
        Terms memory t = _terms(1, address(0));
        t.feePerPeriod = 1;
        Agreement a = _open(t);
        _fund(a, t);
        _settleAll(a, t, 0);
        Snapshot memory s = a.snapshot();
        assertEq(s.owedToCustomer, 0, "fee x weight x credit / 10^8 rounds down to 0");
        assertEq(s.owedToProvider, 3 + t.collateral, "fees and the whole collateral to the provider");
    }

    /// @notice Fixed F1 (docs/security.md): fees x periods + collateral above 2^128 - 1 used to be
    /// accepted, and the uint128 books then overflowed at the last settlement, locking the money
    /// for good. The factory refuses such terms; the largest total that fits is accepted.
    function test_fixed_F1_amountsAbove2pow128AreRefused() public {
        Terms memory t = _terms(1, address(0));
        t.periodCount = 1;
        t.feePerPeriod = type(uint128).max;
        t.collateral = 1;
        vm.expectRevert(
            abi.encodeWithSelector(AgreementFactory.InvalidTerms.selector, "total fees plus collateral overflow")
        );
        factory.createAgreement(t);
        t.collateral = 0;
        address created = factory.createAgreement(t); // exactly 2^128 - 1 in total still fits
        assertTrue(factory.isAgreement(created), "the largest total that fits is created");
    }

    // ------------------------------------------------------------------ timing
    /// @notice Fixed F2 (docs/security.md): after a disaster, the customer may not terminate while an
    /// ended period waits for its report: that period was served, its fee is the provider's once
    /// reported (front-running the oracle's settlement gains nothing). Termination works again
    /// once the period is settled.
    function test_fixed_F2_terminateWaitsForEndedPeriodsToBeReported() public {
        Terms memory t = _terms(1, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        vm.prank(oracles[0]);
        a.settle(0, _values(800_000, PPM), PPM, EVIDENCE_ROOT); // disaster (below 90 %)
        _toEnd(a, 1); // period 1 served perfectly and over, not yet reported
        vm.expectRevert(abi.encodeWithSelector(Agreement.PeriodAwaitingReport.selector, uint256(1)));
        vm.prank(customer);
        a.terminate();
        vm.prank(oracles[0]);
        a.settle(1, _values(PPM, PPM), PPM, EVIDENCE_ROOT);
        vm.prank(customer);
        a.terminate();
        Snapshot memory s = a.snapshot();
        assertEq(s.owedToProvider, 2 * t.feePerPeriod + t.collateral - 0.6 ether, "provider: both served fees");
        assertEq(s.owedToCustomer, 0.6 ether + t.feePerPeriod, "customer: credit + the unserved period's fee");
    }

    /// @notice Fixed F3 (docs/security.md): excluded maintenance is bounded by the agreed budget;
    /// declaring the rest of the term is refused.
    function test_fixed_F3_wholeTermCannotBeDeclaredAsMaintenance() public {
        Terms memory t = _terms(1, address(0));
        Options memory o = _defaultOptions();
        o.maintenanceNotice = 1 days;
        o.maintenanceBudget = 4 hours;
        Agreement a = Agreement(factory.createAgreementWithOptions(t, o));
        _fund(a, t);
        uint256 termEnd = a.periodEnd(t.periodCount - 1);
        uint64 from = uint64(t.start + 2 days);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.MaintenanceBudgetExceeded.selector, termEnd - from, 4 hours));
        vm.prank(provider);
        a.declareMaintenance(from, uint64(termEnd));
        assertEq(a.maintenanceCount(), 0, "refused");
    }

    // ------------------------------------------------------------------ factory
    function _two() internal returns (address[] memory two) {
        two = new address[](2);
        two[0] = vm.addr(0x0A0);
        two[1] = vm.addr(0x0A1);
    }

    function _kinds(uint8 first) internal pure returns (uint8[] memory k) {
        k = new uint8[](2);
        k[0] = first;
    }

    /// @notice Hostile factory input: one field of valid terms broken at a time; the factory
    /// refuses with InvalidTerms/InvalidService (never a panic), and nothing is created.
    function testFuzz_factoryRefusesBrokenTermsCleanly(uint8 which, uint256 noise) public {
        Terms memory t = _terms(1, address(0));
        Options memory o = _defaultOptions();
        which = uint8(bound(which, 0, 31));
        if (which == 0) t.provider = address(0);
        else if (which == 1) t.customer = t.provider;
        else if (which == 2) t.oracles[0] = t.customer;
        else if (which == 3) t.oracles = new address[](0);
        else if (which == 4) t.quorum = uint8(bound(noise, 2, 255));
        else if (which == 5) t.quorum = 0;
        else if (which == 6) t.periodLength = 0;
        else if (which == 7) t.periodCount = 0;
        else if (which == 8) t.feePerPeriod = 0;
        else if (which == 9) t.feePerPeriod = uint128(bound(noise, uint256(type(uint128).max) / 3 + 1, type(uint128).max));
        else if (which == 10) t.creditCapBps = uint16(bound(noise, 10_001, type(uint16).max));
        else if (which == 11) t.creditCapBps = 0;
        else if (which == 12) t.terminationPpm = uint32(bound(noise, PPM + 1, type(uint32).max));
        else if (which == 13) t.services[1].weightBps = uint16(bound(noise, 1, 3_999));
        else if (which == 14) t.services[1].id = t.services[0].id;
        else if (which == 15) t.services[0].id = bytes32(0);
        else if (which == 16) t.services[0].objective = uint32(bound(noise, PPM + 1, type(uint32).max));
        else if (which == 17) t.services[0].tiers[1].threshold = t.services[0].tiers[0].threshold;
        else if (which == 18) t.services[0].tiers[1].creditBps = t.services[0].tiers[0].creditBps;
        else if (which == 19) t.services[0].tiers[2].creditBps = uint16(bound(noise, 10_001, type(uint16).max));
        else if (which == 20) t.services[0].tiers = new Tier[](0);
        else if (which == 21) o.disputeWindow = uint32(bound(noise, 1, type(uint32).max)); // without an arbiter
        else if (which == 22) (o.disputeWindow, o.arbiter) = (1 days, t.customer);
        else if (which == 23) o.serviceKinds = new uint8[](1); // two services
        else if (which == 24) o.serviceKinds = _kinds(uint8(bound(noise, 4, 255)));
        else if (which == 25) o.maintenanceNotice = uint32(bound(noise, 1, type(uint32).max)); // no budget
        else if (which == 26) o.maintenanceBudget = uint32(bound(noise, 1, type(uint32).max)); // no notice
        else if (which == 27) o.sliceLength = noise % 2 == 0 ? 0 : uint32(bound(noise, 3601, type(uint32).max));
        else if (which == 28) o.sliceLength = 7; // 30 days is not a whole number of 7 s slices
        else if (which == 29) o.minMeasuredPpm = uint32(bound(noise, PPM + 1, type(uint32).max));
        else if (which == 30) t.start = uint64(bound(noise, 0, block.timestamp - 1));
        else if (which == 31) (t.oracles, t.quorum) = (_two(), 2); // even quorum
        uint256 before = factory.agreementCount();
        try factory.createAgreementWithOptions(t, o) {
            fail(string.concat("broken terms accepted: case ", vmx.toString(uint256(which))));
        } catch (bytes memory err) {
            bytes4 sel = bytes4(err);
            assertTrue(
                sel == AgreementFactory.InvalidTerms.selector || sel == AgreementFactory.InvalidService.selector,
                string.concat("unclear error for case ", vmx.toString(uint256(which)), ": ", vmx.toString(err))
            );
        }
        assertEq(factory.agreementCount(), before, "nothing created");
    }
}
