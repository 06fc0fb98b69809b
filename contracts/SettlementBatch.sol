// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {SignedReport} from "./SlaTypes.sol";

/// @notice What the batch needs of an agreement: the signed-report settlement, which anyone may
/// call (the committee's signatures are the authority, not the sender).
interface ISettleWithReports {
    function settleWithReports(uint256 period, SignedReport[] calldata reports) external;
}

/// @title SettlementBatch
/// @notice Settles many agreements' periods in one transaction. Each item is tried on its own:
/// one agreement that reverts (already settled, period not ended, expired report...) does not
/// revert the others, and its revert data is emitted so the sender can name the error and retry
/// only that item. An item that settled is visible in the agreement's own PeriodSettled event.
/// @dev Stateless and holds no funds: it has no privilege on any agreement (settleWithReports
/// checks the signatures, not msg.sender), so relaying a call through it grants nothing. The loop
/// runs over the caller's own calldata, bounded by MAX_ITEMS, and the caller pays its gas.
/// Each item carries its call already ABI-encoded (`settleWithReports(period, reports)`) and the
/// batch forwards those bytes as they are: decoding and re-encoding the nested reports cost about
/// 2,000 gas per item. Only that one function can be called through the batch.
contract SettlementBatch {
    /// @notice The most items one batch may carry, so a batch always fits a block.
    uint256 public constant MAX_ITEMS = 200;

    /// @notice One agreement-period to settle.
    /// @param agreement The agreement (a clone made by the factory).
    /// @param data abi.encodeCall(ISettleWithReports.settleWithReports, (period, reports)).
    struct Item {
        address agreement;
        bytes data;
    }

    /// @notice Item `index` reverted, or was refused; `reason` is the revert data (a custom error
    /// of the agreement, or NotASettlement / NotAContract of this contract).
    event ItemFailed(uint256 indexed index, address indexed agreement, uint256 period, bytes reason);

    /// @notice The batch is empty or larger than MAX_ITEMS.
    /// @param count The number of items given.
    error BadBatchSize(uint256 count);

    /// @notice Item `index` is not a call of settleWithReports (reported in ItemFailed, never
    /// reverted: the other items still settle).
    /// @param index The item's position in the batch.
    error NotASettlement(uint256 index);

    /// @notice Item `index` names an address without code (reported in ItemFailed).
    /// @param agreement The address given.
    error NotAContract(address agreement);

    /// @notice Try to settle every item; returns which ones settled.
    /// @param items The agreements with their encoded settlement calls.
    /// @return ok ok[i] is true when item i settled.
    function settleMany(Item[] calldata items) external returns (bool[] memory ok) {
        uint256 count = items.length;
        if (count == 0 || count > MAX_ITEMS) revert BadBatchSize(count);
        ok = new bool[](count);
        for (uint256 i = 0; i < count; ++i) {
            address agreement = items[i].agreement;
            bytes calldata data = items[i].data;
            if (data.length < 36 || bytes4(data[:4]) != ISettleWithReports.settleWithReports.selector) {
                emit ItemFailed(i, agreement, 0, abi.encodeWithSelector(NotASettlement.selector, i));
                continue;
            }
            // slither-disable-next-line low-level-calls
            (bool success, bytes memory reason) = agreement.call(data);
            // A call to an address without code succeeds: it settled nothing. Checked after the
            // call, when the account is warm (100 gas instead of 2,600 before it).
            if (success && agreement.code.length == 0) {
                success = false;
                reason = abi.encodeWithSelector(NotAContract.selector, agreement);
            }
            if (success) {
                ok[i] = true;
            } else {
                emit ItemFailed(i, agreement, uint256(bytes32(data[4:36])), reason);
            }
        }
    }
}
