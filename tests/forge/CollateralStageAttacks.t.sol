// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {Terms, Options, Snapshot, SignedReport, PPM} from "contracts/SlaTypes.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

import {Fixture} from "./utils/Fixture.sol";
import {ReentrantParty} from "./mocks/ReentrantParty.sol";

/// @title Helper Z's review of the collateral stage, the derived customer balance and the guard
/// flag in slot 2 (wave 8, Z8): fixed attacks with exact amounts, and withdrawal orders against
/// an independent model.
contract CollateralStageAttacksTest is Fixture {
    bytes4 internal constant REENTERED = bytes4(keccak256("ReentrancyGuardReentrantCall()"));
    uint256 internal constant SLOT1 = 2; // after EIP712's two fallback strings
    uint256 internal constant FLAG = 1 << 120; // `_entered`, byte 15

    function setUp() public {
        _setUpFixture(1);
    }

    function _settlePayload(Agreement a, uint256 period, uint32 v) internal returns (bytes memory) {
        SignedReport[] memory r = new SignedReport[](1);
        r[0] = _sign(a, oracleKeys[0], period, _values(v, v));
        return CompactReports.encode(period, r);
    }

    function _settle(Agreement a, uint256 period, uint32 v) internal {
        _toEnd(a, period);
        a.settleCompact(_settlePayload(a, period, v));
    }

    function _books(Agreement a) internal view returns (uint256) {
        Snapshot memory s = a.snapshot();
        return uint256(s.feesEscrowed) + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider
            + s.pendingToCustomer + s.pendingToProvider;
    }

    /// @notice The customer's withdrawal writes its balance and the mark in assembly, then pays a
    /// contract customer, which calls back: a signed settlement with a credit (no dispute window:
    /// the collateral alone goes down, the credit is derived from the mark) and the disaster
    /// termination (a refund to the balance, the collateral left released). Nothing is lost or
    /// paid twice: the customer is owed exactly the new credit and the refund, the provider
    /// exactly its fees and the collateral left, once each.
    function test_customerReenteringWithSettlementAndTerminationIsPaidOnce() public {
        ReentrantParty cust = new ReentrantParty();
        Terms memory t = _terms(1, address(0));
        t.customer = address(cust);
        Agreement a = _open(t);
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        vm.deal(address(cust), fees);
        vm.prank(address(cust));
        a.depositFees{value: fees}();
        vm.deal(provider, t.collateral);
        vm.prank(provider);
        a.depositCollateral{value: t.collateral}();

        _settle(a, 0, 800_000); // a disaster: the whole fee (cap 100 %)
        assertEq(a.snapshot().owedToCustomer, 1 ether, "credit of period 0");
        _toEnd(a, 1); // period 1 ended, not reported: terminate needs it reported first
        bytes[] memory plan = new bytes[](3);
        plan[0] = abi.encodeCall(Agreement.settleCompact, (_settlePayload(a, 1, 989_000))); // 30 %
        plan[1] = abi.encodeCall(Agreement.terminate, ());
        plan[2] = abi.encodeCall(Agreement.withdraw, ());
        cust.arm(address(a), plan);
        vm.prank(address(cust));
        a.withdraw();
        bytes memory results = cust.takeResults(address(a));
        (bool ok0,) = abi.decode(_slice(results, 0), (bool, bytes));
        assertTrue(ok0, "settled inside the payment");
        assertEq(address(cust).balance, 1 ether, "first payment: the credit of period 0");
        Snapshot memory s = a.snapshot();
        assertEq(s.owedToCustomer, 0.3 ether + 1 ether, "the credit of period 1 and the refund of period 2");
        assertEq(s.owedToProvider, 2 ether + 0.7 ether, "two fees and the collateral left");
        assertEq(address(a).balance, _books(a), "holdings = books");
        assertEq(uint256(vm.load(address(a), bytes32(SLOT1))) & FLAG, 0, "flag down");

        vm.prank(address(cust));
        a.withdraw();
        vm.prank(provider);
        a.withdraw();
        assertEq(address(cust).balance, 2.3 ether, "customer: credits 1.3 and refund 1");
        assertEq(provider.balance, 2.7 ether, "provider: fees 2 and collateral 0.7");
        assertEq(address(a).balance, 0, "nothing left");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, address(cust)));
        vm.prank(address(cust));
        a.withdraw();
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, provider));
        vm.prank(provider);
        a.withdraw();
    }

    /// @dev The `i`-th abi.encode(bool, bytes) record of ReentrantParty's results (the first).
    function _slice(bytes memory all, uint256) internal pure returns (bytes memory out) {
        uint256 len;
        assembly ("memory-safe") {
            len := mload(add(all, 96))
        }
        uint256 size = 96 + (len + 31) / 32 * 32;
        out = new bytes(size);
        for (uint256 i = 0; i < size; ++i) out[i] = all[i];
    }

    /// @notice The guard flag shares slot 2 with the collateral, the stage and the counters: with
    /// the flag forced up, a settlement's packed writes (a credit lowering the collateral, the
    /// last period releasing it) leave it up, and every guarded function refuses; once it is
    /// down again each party is paid exactly once.
    function test_packedWritesKeepTheGuardFlag() public {
        Terms memory t = _terms(1, address(0));
        t.periodCount = 2;
        Agreement a = _open(t);
        _fund(a, t);
        bytes32 slot = bytes32(SLOT1);
        vm.store(address(a), slot, bytes32(uint256(vm.load(address(a), slot)) | FLAG));
        _settle(a, 0, 989_000); // 0.3 credit
        _settle(a, 1, 800_000); // last period, a whole fee: Ended, released
        uint256 word = uint256(vm.load(address(a), slot));
        assertEq(word & FLAG, FLAG, "a settlement's writes cleared the flag");
        assertEq(word >> 128, 2 ether - 1.3 ether, "collateral left, in the same slot");
        assertEq((word >> 112) & 0xff, 1, "stage: released");
        vm.expectRevert(abi.encodeWithSelector(Agreement.ReentrancyGuardReentrantCall.selector));
        vm.prank(customer);
        a.withdraw();
        vm.expectRevert(abi.encodeWithSelector(Agreement.ReentrancyGuardReentrantCall.selector));
        vm.prank(provider);
        a.withdrawTo(payable(stranger));

        vm.store(address(a), slot, bytes32(word & ~FLAG));
        vm.prank(customer);
        a.withdraw();
        vm.prank(provider);
        a.withdraw();
        assertEq(customer.balance, 1.3 ether, "customer: the two credits");
        assertEq(provider.balance, 2 ether + 0.7 ether, "provider: fees and the collateral left");
        assertEq(address(a).balance, 0, "nothing left");
    }

    /// @notice Withdrawals in any order, at any time, without a dispute window, with the
    /// collateral sometimes exhausted: the customer receives exactly the credits (each period's
    /// quoted credit, limited by the collateral left) and the provider exactly the fees and the
    /// collateral left, whatever the order; a second withdrawal at the end is refused for both.
    /// forge-config: ci.fuzz.runs = 1000
    function testFuzz_withdrawalOrderPaysTheModel(uint256 seed, bool small) public {
        Terms memory t = _terms(1, address(0));
        t.periodCount = 4;
        t.collateral = small ? 0.35 ether : 2 ether;
        Agreement a = _open(t);
        _fund(a, t);
        uint32[5] memory pick = [PPM, 989_000, 960_000, 800_000, 999_950];
        uint256 left = t.collateral;
        uint256 credits = 0;
        for (uint256 p = 0; p < t.periodCount; ++p) {
            uint32 v = pick[uint256(keccak256(abi.encode(seed, p))) % 5];
            _toEnd(a, p);
            (, uint256 quoted) = a.quoteCredit(_values(v, v));
            uint256 credit = quoted > left ? left : quoted;
            left -= credit;
            credits += credit;
            a.settleCompact(_settlePayload(a, p, v));
            uint256 order = uint256(keccak256(abi.encode(seed, p, "order"))) % 4;
            if (order & 1 != 0) _tryWithdraw(a, customer);
            if (order & 2 != 0) _tryWithdraw(a, provider);
            assertEq(address(a).balance, _books(a), "holdings = books");
        }
        // Ended: the collateral left is released to the provider.
        if (uint256(keccak256(abi.encode(seed, "last"))) % 2 == 0) {
            _tryWithdraw(a, customer);
            _tryWithdraw(a, provider);
        } else {
            _tryWithdraw(a, provider);
            _tryWithdraw(a, customer);
        }
        assertEq(customer.balance, credits, "customer: exactly the credits");
        assertEq(provider.balance, uint256(t.feePerPeriod) * t.periodCount + left, "provider: fees and collateral left");
        assertEq(address(a).balance, 0, "nothing left");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, customer));
        vm.prank(customer);
        a.withdraw();
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, provider));
        vm.prank(provider);
        a.withdraw();
    }

    function _tryWithdraw(Agreement a, address who) internal {
        Snapshot memory s = a.snapshot();
        uint256 owed = who == customer ? s.owedToCustomer : s.owedToProvider;
        uint256 before = who.balance;
        vm.prank(who);
        (bool ok,) = address(a).call(abi.encodeCall(Agreement.withdraw, ()));
        assertTrue(ok == (owed != 0), "a withdrawal succeeds exactly when something is owed");
        assertEq(who.balance - before, owed, "paid what the snapshot said");
    }

    /// @notice With a dispute window the collateral backing a pending credit is not the
    /// provider's: the term expires with a period pending (nothing released), the customer
    /// disputes, the arbiter raises the credit to exhaust the collateral; only then is the rest
    /// (none) released. The provider never receives collateral that paid a credit.
    function test_expiryWithAPendingCreditHoldsTheCollateral() public {
        Terms memory t = _terms(1, address(0));
        t.periodCount = 2;
        t.collateral = 0.35 ether;
        Options memory o = _defaultOptions();
        o.disputeWindow = 3 days;
        o.arbiter = stranger;
        Agreement a = Agreement(factory.createAgreementWithOptions(t, o));
        _fund(a, t);
        _toEnd(a, 0);
        (, uint256 reported) = a.quoteCredit(_values(989_000, 989_000));
        assertEq(reported, 0.3 ether, "30 %");
        _settle(a, 0, 989_000); // 0.3 pending
        vm.prank(customer);
        a.dispute(0, bytes32(uint256(1)));
        vm.warp(a.periodEnd(1) + 30 days); // period 1 never reported
        a.expire();
        Snapshot memory s = a.snapshot();
        assertEq(s.collateralEscrowed, 0.05 ether, "held while a credit is disputed");
        assertEq(s.pendingToCustomer, 0.3 ether, "the credit pending");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, provider));
        vm.prank(provider);
        a.withdraw(); // nothing final: neither the fee of period 0 nor any collateral
        vm.prank(stranger);
        a.resolveDispute(0, _values(800_000, 800_000)); // 1 ether, limited to the 0.35 held
        s = a.snapshot();
        assertEq(s.collateralEscrowed, 0, "released: none left");
        assertEq(s.owedToCustomer, 1 ether + 0.35 ether, "fee of period 1 refunded and the whole collateral");
        assertEq(s.owedToProvider, 1 ether, "the fee of period 0 only");
        vm.prank(provider);
        a.withdraw();
        vm.prank(customer);
        a.withdraw();
        assertEq(address(a).balance, 0, "nothing left");
        assertEq(provider.balance, 1 ether, "provider: one fee, no collateral");
        assertEq(customer.balance, 1.35 ether, "customer: refund and collateral");
    }

    /// @notice The EIP-712 domain, now hashed in scratch memory, still follows the chain: a
    /// report signed before a fork to another chain id is refused there, one signed over
    /// `reportDigest` on the new chain (OpenZeppelin's EIP712) is accepted.
    /// forge-config: ci.fuzz.runs = 256
    function testFuzz_reportsAreBoundToTheChain(uint64 otherChain) public {
        vm.assume(otherChain != block.chainid && otherChain != 0);
        Terms memory t = _terms(1, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        bytes memory signedHere = _settlePayload(a, 0, 800_000);
        vm.chainId(otherChain);
        // The recovered address is some other one: only the error is predictable.
        (bool ok, bytes memory out) = address(a).call(abi.encodeCall(Agreement.settleCompact, (signedHere)));
        assertTrue(!ok, "a report of the old chain accepted");
        assertEq(bytes32(bytes4(out)), bytes32(ISlaErrors.NotACommitteeMember.selector), "refused as a stranger's");
        a.settleCompact(_settlePayload(a, 0, 800_000));
        assertEq(a.snapshot().settledPeriods, 1, "settled on the new chain");
    }
}
