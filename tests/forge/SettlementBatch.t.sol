// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {SettlementBatch, ISettleWithReports} from "contracts/SettlementBatch.sol";
import {Terms, SignedReport, PPM} from "contracts/SlaTypes.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";

import {Fixture} from "./utils/Fixture.sol";
import {VmExtra} from "./utils/TestBase.sol";

/// @title SettlementBatch against a hostile submitter: items that fail, that call anything but
/// settleWithReports, that name an address without code, reports replayed on another agreement,
/// items reordered. Single-oracle agreements (quorum 1), settled only through signed reports.
contract SettlementBatchTest is Fixture {
    SettlementBatch internal batch;
    Agreement[] internal ags;

    function setUp() public {
        _setUpFixture(1);
        batch = new SettlementBatch();
        for (uint256 i = 0; i < 3; ++i) {
            Terms memory t = _terms(1, address(0));
            Agreement a = _open(t);
            _fund(a, t);
            ags.push(a);
        }
        _toEnd(ags[0], 0);
    }

    function _item(Agreement a, uint256 period, Agreement signedFor) internal returns (SettlementBatch.Item memory) {
        SignedReport[] memory r = new SignedReport[](1);
        r[0] = _sign(signedFor, oracleKeys[0], period, _values(PPM, PPM));
        return SettlementBatch.Item(address(a), abi.encodeCall(ISettleWithReports.settleWithReports, (period, r)));
    }

    /// @dev The (index, reason) of every ItemFailed the batch emitted since recordLogs.
    function _failures() internal returns (uint256[] memory indexes, bytes[] memory reasons) {
        bytes32 sig = keccak256("ItemFailed(uint256,address,uint256,bytes)");
        VmExtra.Log[] memory logs = vmx.getRecordedLogs();
        uint256 n = 0;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(batch) && logs[i].topics[0] == sig) ++n;
        }
        indexes = new uint256[](n);
        reasons = new bytes[](n);
        n = 0;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(batch) && logs[i].topics[0] == sig) {
                indexes[n] = uint256(logs[i].topics[1]);
                (, reasons[n]) = abi.decode(logs[i].data, (uint256, bytes));
                ++n;
            }
        }
    }

    /// @notice One item fails (its period already settled): the others settle, the failure is
    /// reported with the agreement's own error, and nothing is settled twice.
    function test_oneFailingItemIsReportedAndTheOthersSettle() public {
        SettlementBatch.Item[] memory items = new SettlementBatch.Item[](3);
        for (uint256 i = 0; i < 3; ++i) {
            items[i] = _item(ags[i], 0, ags[i]);
        }
        (, SignedReport[] memory early) = abi.decode(_slice(items[1].data), (uint256, SignedReport[]));
        vm.prank(stranger);
        ags[1].settleWithReports(0, early);
        vmx.recordLogs();
        vm.prank(stranger); // anyone may submit: the signatures are the authority
        bool[] memory ok = batch.settleMany(items);
        assertTrue(ok[0] && !ok[1] && ok[2], "only item 1 failed");
        (uint256[] memory idx, bytes[] memory why) = _failures();
        assertEq(idx.length, 1, "one failure reported");
        assertEq(idx[0], 1, "item 1");
        assertEq(why[0], abi.encodeWithSelector(Agreement.PeriodAlreadySettled.selector, 0), "named by its error");
        for (uint256 i = 0; i < 3; ++i) {
            assertEq(ags[i].snapshot().settledPeriods, 1, "each period settled exactly once");
        }
    }

    /// @notice A report signed for agreement 0 offered to agreement 1 in the same batch: refused
    /// (the signature binds the agreement), agreement 0 settles, agreement 1 does not.
    function test_reportReplayedOnAnotherAgreementFails() public {
        SettlementBatch.Item[] memory items = new SettlementBatch.Item[](2);
        items[0] = _item(ags[0], 0, ags[0]);
        items[1] = _item(ags[1], 0, ags[0]);
        vmx.recordLogs();
        bool[] memory ok = batch.settleMany(items);
        assertTrue(ok[0] && !ok[1], "replay refused");
        (, bytes[] memory why) = _failures();
        assertEq(bytes4(why[0]), ISlaErrors.NotACommitteeMember.selector, "recovered to a stranger");
        assertEq(ags[1].snapshot().settledPeriods, 0, "agreement 1 untouched");
    }

    /// @notice Items in any order settle the same periods with the same credits.
    function test_reorderedItemsSettleTheSame() public {
        SettlementBatch.Item[] memory items = new SettlementBatch.Item[](3);
        for (uint256 i = 0; i < 3; ++i) {
            items[2 - i] = _item(ags[i], 0, ags[i]);
        }
        bool[] memory ok = batch.settleMany(items);
        for (uint256 i = 0; i < 3; ++i) {
            assertTrue(ok[i], "settled");
            assertEq(ags[i].snapshot().settledPeriods, 1, "settled once");
            assertEq(ags[i].snapshot().owedToProvider, 1 ether, "fee released");
        }
    }

    /// @notice The batch forwards nothing but settleWithReports: an item encoding another call
    /// (here `withdraw()`, `expire()`) is reported as NotASettlement and never sent; an item
    /// naming an address without code is reported as NotAContract (a call to it "succeeds").
    function test_onlySettlementsAreForwardedAndOnlyToContracts() public {
        SettlementBatch.Item[] memory items = new SettlementBatch.Item[](4);
        items[0] = SettlementBatch.Item(address(ags[0]), abi.encodeCall(Agreement.withdraw, ()));
        items[1] = SettlementBatch.Item(address(ags[0]), abi.encodeCall(Agreement.expire, ()));
        items[2] = _item(Agreement(stranger), 0, ags[0]);
        items[3] = _item(ags[2], 0, ags[2]);
        vmx.recordLogs();
        bool[] memory ok = batch.settleMany(items);
        assertTrue(!ok[0] && !ok[1] && !ok[2] && ok[3], "only the real settlement");
        (uint256[] memory idx, bytes[] memory why) = _failures();
        assertEq(idx.length, 3, "three failures");
        assertEq(why[0], abi.encodeWithSelector(SettlementBatch.NotASettlement.selector, 0), "withdraw refused");
        assertEq(why[1], abi.encodeWithSelector(SettlementBatch.NotASettlement.selector, 1), "expire refused");
        assertEq(why[2], abi.encodeWithSelector(SettlementBatch.NotAContract.selector, stranger), "no code");
    }

    function test_emptyAndOversizedBatchesAreRefused() public {
        vm.expectRevert(abi.encodeWithSelector(SettlementBatch.BadBatchSize.selector, 0));
        batch.settleMany(new SettlementBatch.Item[](0));
        vm.expectRevert(abi.encodeWithSelector(SettlementBatch.BadBatchSize.selector, 201));
        batch.settleMany(new SettlementBatch.Item[](201));
    }

    /// @dev The arguments of an encoded call (without its selector).
    function _slice(bytes memory call) internal pure returns (bytes memory out) {
        out = new bytes(call.length - 4);
        for (uint256 i = 4; i < call.length; ++i) {
            out[i - 4] = call[i];
        }
    }
}
