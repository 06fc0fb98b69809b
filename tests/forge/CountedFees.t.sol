// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {Terms, Snapshot, SignedReport, PPM} from "contracts/SlaTypes.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";

import {Fixture} from "./utils/Fixture.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

/// @title Fees released by counting settled periods, collateral released by a flag (issue 15):
/// a provider withdrawing between settlements and after the end gets each fee and the collateral
/// left exactly once, the customer never touches them, and the books match the balance at
/// every step.
contract CountedFeesTest is Fixture {
    Agreement internal a;
    uint256 internal fee;
    uint256 internal periods;
    uint256 internal collateral;

    function setUp() public {
        _setUpFixture(1);
        Terms memory t = _terms(1, address(0));
        a = _open(t);
        _fund(a, t);
        (fee, periods, collateral) = (t.feePerPeriod, periods, collateral);
    }

    function _settle(uint256 period, uint32 value) internal {
        _toEnd(a, period);
        SignedReport[] memory r = new SignedReport[](1);
        r[0] = _sign(a, oracleKeys[0], period, _values(value, value));
        a.settleCompact(CompactReports.encode(period, r));
    }

    function _booksMatch() internal view {
        Snapshot memory s = a.snapshot();
        assertEq(
            address(a).balance,
            uint256(s.feesEscrowed) + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider
                + s.pendingToCustomer + s.pendingToProvider,
            "balance = books"
        );
    }

    function test_eachFeeAndTheCollateralPaidOnce() public {
        Terms memory t = a.terms();
        (fee, periods, collateral) = (t.feePerPeriod, t.periodCount, t.collateral);
        assertEq(periods, 3, "three periods");
        _settle(0, PPM);
        assertEq(a.snapshot().feesEscrowed, fee * (periods - 1), "one fee left the escrow");
        assertEq(a.snapshot().owedToProvider, fee, "one fee owed");
        _booksMatch();
        uint256 before = provider.balance;
        vm.prank(provider);
        a.withdraw();
        assertEq(provider.balance - before, fee, "first fee paid");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, provider));
        a.withdraw(); // the counter was reset: the same fee cannot be withdrawn twice
        _booksMatch();

        _settle(1, 989_000); // a credit: 30 % of compute's 60 % share
        uint256 credit = a.snapshot().owedToCustomer;
        assertTrue(credit > 0, "credit owed");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.Unauthorized.selector, stranger));
        vm.prank(stranger);
        a.withdraw();
        for (uint256 p = 2; p < periods; ++p) {
            _settle(p, PPM);
        }
        Snapshot memory s = a.snapshot();
        assertEq(s.feesEscrowed, 0, "every fee out of the escrow");
        assertEq(s.collateralEscrowed, 0, "collateral released");
        assertEq(s.owedToProvider, fee * (periods - 1) + collateral - credit, "fees and collateral left");
        _booksMatch();

        before = provider.balance;
        vm.prank(provider);
        a.withdraw();
        assertEq(provider.balance - before, fee * (periods - 1) + collateral - credit, "paid once");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, provider));
        a.withdraw(); // the released collateral was zeroed: not paid twice
        before = customer.balance;
        vm.prank(customer);
        a.withdraw();
        assertEq(customer.balance - before, credit, "the customer gets its credit, nothing of the provider's");
        assertEq(address(a).balance, 0, "nothing left");
        _booksMatch();
    }
}
