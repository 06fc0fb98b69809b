// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {SettlementBatch} from "contracts/SettlementBatch.sol";
import {Terms, SignedReport, PPM} from "contracts/SlaTypes.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

import {Fixture} from "./utils/Fixture.sol";
import {VmExtra} from "./utils/TestBase.sol";

/// @title SettlementBatch against a hostile submitter: items that fail, that carry anything but
/// a settlement, that name an address without code, reports replayed on another agreement,
/// items reordered, framing that runs past the end. Single-oracle agreements (quorum 1), settled
/// only through signed reports packed as CompactReports, items packed as the batch reads them.
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

    /// @dev One report of `period`, signed for `signedFor`, packed.
    function _payload(Agreement signedFor, uint256 period) internal returns (bytes memory) {
        SignedReport[] memory r = new SignedReport[](1);
        r[0] = _sign(signedFor, oracleKeys[0], period, _values(PPM, PPM));
        return CompactReports.encode(period, r);
    }

    /// @dev One batch item: agreement(20) length(2) payload.
    function _item(address a, bytes memory payload) internal pure returns (bytes memory) {
        return abi.encodePacked(a, uint16(payload.length), payload);
    }

    /// @dev The (index, period, reason) of every ItemFailed the batch emitted since recordLogs.
    function _failures() internal returns (uint256[] memory indexes, uint256[] memory periods, bytes[] memory reasons) {
        bytes32 sig = keccak256("ItemFailed(uint256,address,uint256,bytes)");
        VmExtra.Log[] memory logs = vmx.getRecordedLogs();
        uint256 n = 0;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(batch) && logs[i].topics[0] == sig) ++n;
        }
        indexes = new uint256[](n);
        periods = new uint256[](n);
        reasons = new bytes[](n);
        n = 0;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == address(batch) && logs[i].topics[0] == sig) {
                indexes[n] = uint256(logs[i].topics[1]);
                (periods[n], reasons[n]) = abi.decode(logs[i].data, (uint256, bytes));
                ++n;
            }
        }
    }

    /// @notice One item fails (its period already settled): the others settle, the failure is
    /// reported with the agreement's own error and the item's period, nothing settles twice.
    function test_oneFailingItemIsReportedAndTheOthersSettle() public {
        bytes memory early = _payload(ags[1], 0);
        vm.prank(stranger);
        ags[1].settleCompact(early);
        bytes memory packed =
            abi.encodePacked(_item(address(ags[0]), _payload(ags[0], 0)), _item(address(ags[1]), early));
        packed = abi.encodePacked(packed, _item(address(ags[2]), _payload(ags[2], 0)));
        vmx.recordLogs();
        vm.prank(stranger); // anyone may submit: the signatures are the authority
        assertEq(batch.settleMany(packed), 2, "two settled");
        (uint256[] memory idx, uint256[] memory periods, bytes[] memory why) = _failures();
        assertEq(idx.length, 1, "one failure reported");
        assertEq(idx[0], 1, "item 1");
        assertEq(periods[0], 0, "its period");
        assertEq(why[0], abi.encodeWithSelector(Agreement.PeriodAlreadySettled.selector, 0), "named by its error");
        for (uint256 i = 0; i < 3; ++i) {
            assertEq(ags[i].snapshot().settledPeriods, 1, "each period settled exactly once");
        }
    }

    /// @notice A report signed for agreement 0 offered to agreement 1 in the same batch: refused
    /// (the signature binds the agreement), agreement 0 settles, agreement 1 does not.
    function test_reportReplayedOnAnotherAgreementFails() public {
        bytes memory packed =
            abi.encodePacked(_item(address(ags[0]), _payload(ags[0], 0)), _item(address(ags[1]), _payload(ags[0], 0)));
        vmx.recordLogs();
        assertEq(batch.settleMany(packed), 1, "one settled");
        (,, bytes[] memory why) = _failures();
        assertEq(bytes4(why[0]), ISlaErrors.NotACommitteeMember.selector, "recovered to a stranger");
        assertEq(ags[1].snapshot().settledPeriods, 0, "agreement 1 untouched");
    }

    /// @notice Items in any order settle the same periods with the same credits.
    function test_reorderedItemsSettleTheSame() public {
        bytes memory packed;
        for (uint256 i = 0; i < 3; ++i) {
            packed = abi.encodePacked(_item(address(ags[i]), _payload(ags[i], 0)), packed);
        }
        assertEq(batch.settleMany(packed), 3, "all settled");
        for (uint256 i = 0; i < 3; ++i) {
            assertEq(ags[i].snapshot().settledPeriods, 1, "settled once");
            assertEq(ags[i].snapshot().owedToProvider, 1 ether, "fee released");
        }
    }

    /// @notice The batch calls nothing but settleCompact: a payload that is another call's
    /// encoding (`withdraw()`) reaches settleCompact as bytes and is refused as malformed; a
    /// payload cut by one byte (which would otherwise read a zero value: a full credit) is
    /// refused by the agreement; an address without code is reported as NotAContract (a call to
    /// it "succeeds"); the implementation refuses (NotAClone). The last, valid item settles.
    function test_onlySettlementsAreCalledAndOnlyOnContracts() public {
        bytes memory good = _payload(ags[2], 0);
        bytes memory cut = _payload(ags[0], 0);
        assembly {
            mstore(cut, sub(mload(cut), 1))
        }
        bytes memory packed = abi.encodePacked(
            _item(address(ags[0]), abi.encodeCall(Agreement.withdraw, ())),
            _item(address(ags[0]), cut),
            _item(stranger, good),
            _item(factory.implementation(), good)
        );
        packed = abi.encodePacked(packed, _item(address(ags[2]), good));
        vmx.recordLogs();
        assertEq(batch.settleMany(packed), 1, "only the real settlement");
        (uint256[] memory idx,, bytes[] memory why) = _failures();
        assertEq(idx.length, 4, "four failures");
        // withdraw()'s selector read as a header: its third byte is a report count
        bytes memory w = abi.encodeCall(Agreement.withdraw, ());
        uint256 wanted = CompactReports.HEADER_LENGTH + uint8(w[2]) * CompactReports.reportLength(2);
        assertEq(why[0], abi.encodeWithSelector(Agreement.MalformedReports.selector, wanted, 4), "withdraw");
        assertEq(why[1], abi.encodeWithSelector(Agreement.MalformedReports.selector, cut.length + 1, cut.length), "cut");
        assertEq(why[2], abi.encodeWithSelector(SettlementBatch.NotAContract.selector, stranger), "no code");
        assertEq(why[3], abi.encodeWithSelector(ISlaErrors.NotAClone.selector), "implementation");
        assertEq(ags[0].snapshot().settledPeriods, 0, "agreement 0 untouched");
        assertEq(ags[2].snapshot().settledPeriods, 1, "agreement 2 settled");
    }

    /// @notice Framing the batch cannot trust (a head or a payload running past the end) refuses
    /// the whole batch, naming the item; so do an empty batch and one of more than MAX_ITEMS.
    function test_malformedEmptyAndOversizedBatchesAreRefused() public {
        bytes memory one = _item(address(ags[0]), _payload(ags[0], 0));
        vm.expectRevert(abi.encodeWithSelector(SettlementBatch.BadBatchSize.selector, 0));
        batch.settleMany("");
        // a second item's head cut short
        vm.expectRevert(abi.encodeWithSelector(SettlementBatch.MalformedBatch.selector, 1));
        batch.settleMany(abi.encodePacked(one, address(ags[1])));
        // a payload longer than what is left
        bytes memory long = abi.encodePacked(address(ags[1]), uint16(500), _payload(ags[1], 0));
        vm.expectRevert(abi.encodeWithSelector(SettlementBatch.MalformedBatch.selector, 1));
        batch.settleMany(abi.encodePacked(one, long));
        assertEq(ags[0].snapshot().settledPeriods, 0, "nothing settled by a refused batch");
        bytes memory many;
        bytes memory empty = _item(address(ags[1]), "");
        for (uint256 i = 0; i < 201; ++i) {
            many = abi.encodePacked(many, empty);
        }
        vm.expectRevert(abi.encodeWithSelector(SettlementBatch.BadBatchSize.selector, 201));
        batch.settleMany(many);
    }
}
