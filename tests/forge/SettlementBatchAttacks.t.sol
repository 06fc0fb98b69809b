// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Agreement} from "contracts/Agreement.sol";
import {SettlementBatch} from "contracts/SettlementBatch.sol";
import {Terms, SignedReport, PPM} from "contracts/SlaTypes.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";
import {TestToken} from "contracts/test/TestToken.sol";

import {Fixture} from "./utils/Fixture.sol";
import {VmExtra} from "./utils/TestBase.sol";

/// @notice Records the exact calldata of each settleCompact it receives.
contract CalldataRecorder {
    bytes[] public received;

    function settleCompact(bytes calldata) external {
        received.push(msg.data);
    }

    function count() external view returns (uint256) {
        return received.length;
    }
}

/// @notice Burns every unit of gas it is given.
contract GasBurner {
    function settleCompact(bytes calldata) external pure {
        while (true) {}
    }
}

/// @notice Reverts with `size` bytes of revert data (the size is the payload's first 4 bytes).
contract ReturnBomb {
    function settleCompact(bytes calldata p) external pure {
        uint256 size = uint32(bytes4(p[0:4]));
        assembly {
            revert(0, size)
        }
    }
}

/// @notice Its settleCompact relays its payload to the batch (a reentrant item): the payload is
/// a whole batch.
contract ReenteringItem {
    SettlementBatch internal immutable batch;

    constructor(SettlementBatch b) {
        batch = b;
    }

    function settleCompact(bytes calldata p) external {
        batch.settleMany(p);
    }
}

/// @title SettlementBatch (packed items) against a hostile submitter or a hostile item (review 6,
/// helper Z): what each callee receives exactly (no stale bytes of an earlier longer payload), a
/// length that swallows the next item, items naming contracts that are not agreements, a gas
/// burner, a revert-data bomb, a reentrant item.
contract SettlementBatchAttacksTest is Fixture {
    SettlementBatch internal batch;
    Agreement[] internal ags;

    function setUp() public {
        _setUpFixture(1);
        batch = new SettlementBatch();
        for (uint256 i = 0; i < 2; ++i) {
            Terms memory t = _terms(1, address(0));
            Agreement a = _open(t);
            _fund(a, t);
            ags.push(a);
        }
        _toEnd(ags[0], 0);
    }

    function _payload(Agreement a, uint256 period) internal returns (bytes memory) {
        SignedReport[] memory r = new SignedReport[](1);
        r[0] = _sign(a, oracleKeys[0], period, _values(PPM, PPM));
        return CompactReports.encode(period, r);
    }

    function _item(address a, bytes memory payload) internal pure returns (bytes memory) {
        return abi.encodePacked(a, uint16(payload.length), payload);
    }

    function _failedIndexes() internal returns (uint256[] memory indexes, bytes[] memory reasons) {
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

    /// @notice A long payload then a short one to the same recorder: the second call's calldata
    /// is exactly selector | 0x20 | length | payload (no byte of the first payload left behind,
    /// no padding read), and the first call's is its own payload, unpadded.
    function test_eachCalleeReceivesExactlyItsPayload() public {
        CalldataRecorder rec = new CalldataRecorder();
        bytes memory long = new bytes(300);
        for (uint256 i = 0; i < 300; ++i) long[i] = 0xAA;
        bytes memory short = hex"0102030405";
        batch.settleMany(abi.encodePacked(_item(address(rec), long), _item(address(rec), short), _item(address(rec), "")));
        assertEq(rec.count(), 3, "three calls");
        bytes4 sel = CalldataRecorder.settleCompact.selector;
        assertEq(rec.received(0), abi.encodePacked(sel, uint256(0x20), uint256(300), long), "first: its own bytes");
        assertEq(rec.received(1), abi.encodePacked(sel, uint256(0x20), uint256(5), short), "second: no stale bytes");
        assertEq(rec.received(2), abi.encodePacked(sel, uint256(0x20), uint256(0)), "third: empty");
    }

    /// @notice A length that covers the next item's head and payload: the batch cannot tell, so it
    /// makes one item of both, which the agreement refuses by length; nothing settles through
    /// the swallowed item, and a framing that then runs past the end refuses the batch whole.
    function test_lengthSwallowingTheNextItemSettlesNothing() public {
        bytes memory p0 = _payload(ags[0], 0);
        bytes memory p1 = _payload(ags[1], 0);
        bytes memory merged = abi.encodePacked(
            address(ags[0]), uint16(p0.length + 22 + p1.length), p0, address(ags[1]), uint16(p1.length), p1
        );
        vmx.recordLogs();
        uint256 settled = batch.settleMany(merged);
        assertEq(settled, 0, "nothing settled");
        (uint256[] memory idx, bytes[] memory reasons) = _failedIndexes();
        assertEq(idx.length, 1, "one item seen");
        assertEq(uint256(uint32(bytes4(reasons[0]))), uint256(uint32(Agreement.MalformedReports.selector)), "by length");
        assertEq(ags[0].snapshot().settledPeriods + ags[1].snapshot().settledPeriods, 0, "none settled");
        // One byte longer than the rest: past the end, the whole batch is refused.
        bytes memory past = abi.encodePacked(address(ags[0]), uint16(p0.length + 1), p0);
        vm.expectRevert(abi.encodeWithSelector(SettlementBatch.MalformedBatch.selector, 0));
        batch.settleMany(past);
    }

    /// @notice Items naming the factory, a token, the batch itself and a contract whose
    /// settleCompact succeeds: the batch sends no value and holds nothing to give; the real
    /// agreement after them settles. The "settled" count includes the item that merely did not
    /// revert (documented: only PeriodSettled proves a settlement).
    function test_nonAgreementContractsGetNothingAndLaterItemsSettle() public {
        TestToken token = new TestToken();
        CalldataRecorder fake = new CalldataRecorder();
        bytes memory p = _payload(ags[0], 0);
        bytes memory packed = abi.encodePacked(
            _item(address(factory), p), _item(address(token), p), _item(address(batch), p), _item(address(fake), p)
        );
        packed = abi.encodePacked(packed, _item(address(ags[0]), p));
        vmx.recordLogs();
        vm.deal(stranger, 1 ether);
        vm.prank(stranger);
        uint256 settled = batch.settleMany(packed);
        (uint256[] memory idx,) = _failedIndexes();
        assertEq(idx.length, 3, "factory, token, batch refused");
        assertEq(settled, 2, "the fake and the agreement did not revert");
        assertEq(ags[0].snapshot().settledPeriods, 1, "the agreement settled");
        assertEq(address(batch).balance + address(fake).balance, 0, "no value anywhere");
        assertEq(token.balanceOf(address(fake)), 0, "no token");
    }

    /// @notice A reentrant item whose settleCompact sends a whole batch settling ags[0] period 0,
    /// followed in the outer batch by the same settlement: settled once, the second reported.
    function test_reentrantItemSettlesOnce() public {
        ReenteringItem re = new ReenteringItem(batch);
        bytes memory inner = _item(address(ags[0]), _payload(ags[0], 0));
        bytes memory packed = abi.encodePacked(_item(address(re), inner), inner);
        vmx.recordLogs();
        uint256 settled = batch.settleMany(packed);
        assertEq(settled, 1, "the reentrant item (which settled inside)");
        assertEq(ags[0].snapshot().settledPeriods, 1, "settled once");
        (uint256[] memory idx, bytes[] memory reasons) = _failedIndexes();
        assertEq(idx.length, 1, "the replay refused");
        assertEq(uint256(uint32(bytes4(reasons[0]))), uint256(uint32(Agreement.PeriodAlreadySettled.selector)), "already");
    }

    /// @notice Gas griefing by a hostile item (an address that is not a factory clone; the daemon
    /// batches only agreements the factory created, smartsla.client Factory.agreement): the batch
    /// forwards all gas but 1/64 to each item, so after a gas burner the next item gets about
    /// 1/64 of the transaction's gas. With 1,500,000 gas (~23 k left) the agreement after it runs
    /// out of gas and the 1/64 of that left cannot pay ItemFailed: the whole transaction reverts,
    /// nothing settles. With 8,000,000 gas (~125 k left) the next item settles: the burner only
    /// wastes the sender's gas. Informational (Z7-4): a submitter must not batch non-clones.
    function test_gasBurnerItemStarvesTheNextItemUnlessTheLimitIs64TimesItsNeed() public {
        GasBurner burner = new GasBurner();
        bytes memory p = _payload(ags[0], 0);
        bytes memory packed = abi.encodePacked(_item(address(burner), p), _item(address(ags[0]), p));
        (bool ok,) = address(batch).call{gas: 1_500_000}(abi.encodeCall(SettlementBatch.settleMany, (packed)));
        assertTrue(!ok, "the whole batch ran out of gas");
        assertEq(ags[0].snapshot().settledPeriods, 0, "the later item did not settle");
        (bool ok2, bytes memory out) =
            address(batch).call{gas: 8_000_000}(abi.encodeCall(SettlementBatch.settleMany, (packed)));
        assertTrue(ok2, "completes");
        assertEq(abi.decode(out, (uint256)), 1, "the agreement settled after the burner");
        assertEq(ags[0].snapshot().settledPeriods, 1, "settled");
    }

    /// @notice A revert-data bomb: an item reverting with 200,000 bytes makes the batch copy them
    /// into memory and emit them (ItemFailed.reason); with enough gas the batch still completes
    /// and the next item settles; the batch pays for the copy (memory expansion) and the log,
    /// about 25 times what the bomb paid. Informational (Z7-4): only a non-clone item can do it.
    function test_hugeRevertDataIsReportedAndTheNextItemSettles() public {
        ReturnBomb bomb = new ReturnBomb();
        bytes memory p = _payload(ags[0], 0);
        bytes memory packed =
            abi.encodePacked(_item(address(bomb), abi.encodePacked(uint32(200_000))), _item(address(ags[0]), p));
        vmx.recordLogs();
        uint256 g = gasleft();
        uint256 settled = batch.settleMany(packed);
        g -= gasleft();
        assertEq(settled, 1, "the agreement settled");
        (uint256[] memory idx, bytes[] memory reasons) = _failedIndexes();
        assertEq(idx.length, 1, "the bomb reported");
        assertEq(reasons[0].length, 200_000, "all its revert data");
        // Measured 2,594,794 gas for the batch, of which the bomb's own memory and revert about
        // 0.1 M: the batch copies the data to memory, ABI-encodes it again for the event and
        // logs it at 8 gas a byte (amplification about 25x, Z7-4).
        assertGe(g, 2_000_000, "at the batch's expense");
    }
}
