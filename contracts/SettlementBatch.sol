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
/// only that item.
/// @dev Stateless and holds no funds: it has no privilege on any agreement (settleWithReports
/// checks the signatures, not msg.sender), so relaying a call through it grants nothing. The loop
/// runs over the caller's own calldata, bounded by MAX_ITEMS, and the caller pays its gas.
contract SettlementBatch {
    /// @notice The most items one batch may carry, so a batch always fits a block.
    uint256 public constant MAX_ITEMS = 200;

    /// @notice One agreement-period to settle.
    struct Item {
        address agreement;
        uint256 period;
        SignedReport[] reports;
    }

    /// @notice Item `index` settled `period` of `agreement`.
    event ItemSettled(uint256 indexed index, address indexed agreement, uint256 period);

    /// @notice Item `index` reverted; `reason` is the agreement's revert data (a custom error).
    event ItemFailed(uint256 indexed index, address indexed agreement, uint256 period, bytes reason);

    /// @notice The batch is empty or larger than MAX_ITEMS.
    /// @param count The number of items given.
    error BadBatchSize(uint256 count);

    /// @notice Try to settle every item; returns which ones settled.
    /// @param items The agreement-periods with their signed reports.
    /// @return ok ok[i] is true when item i settled.
    function settleMany(Item[] calldata items) external returns (bool[] memory ok) {
        uint256 count = items.length;
        if (count == 0 || count > MAX_ITEMS) revert BadBatchSize(count);
        ok = new bool[](count);
        for (uint256 i = 0; i < count; ++i) {
            Item calldata item = items[i];
            try ISettleWithReports(item.agreement).settleWithReports(item.period, item.reports) {
                ok[i] = true;
                emit ItemSettled(i, item.agreement, item.period);
            } catch (bytes memory reason) {
                emit ItemFailed(i, item.agreement, item.period, reason);
            }
        }
    }
}
