// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What the batch needs of an agreement: the compact signed-report settlement
/// (`Agreement.settleCompact`, see CompactReports), which anyone may call (the committee's
/// signatures are the authority, not the sender).
interface ISettleCompact {
    function settleCompact(bytes calldata packed) external;
}

/// @title SettlementBatch
/// @notice Settles many agreements' periods in one transaction. Each item is tried on its own:
/// one agreement that reverts (already settled, period not ended, expired report...) does not
/// revert the others, and its revert data is emitted so the sender can name the error and retry
/// only that item. An item that settled is visible in the agreement's own PeriodSettled event.
/// @dev Stateless and holds no funds: it has no privilege on any agreement (settleCompact checks
/// the signatures, not msg.sender), so relaying a call through it grants nothing, and it calls
/// nothing but settleCompact. The loop runs over the caller's own calldata, bounded by
/// MAX_ITEMS, and the caller pays its gas.
/// The items are packed back to back, `agreement(20 bytes) length(2 bytes) payload(length
/// bytes)`, the payload being the agreement's CompactReports buffer: no ABI offsets or padding
/// (about 700 gas of calldata per item less than an ABI-encoded `Item[]`), and each payload is
/// copied once into the call's memory, which every item reuses.
contract SettlementBatch {
    /// @notice The most items one batch may carry, so a batch always fits a block.
    uint256 public constant MAX_ITEMS = 200;

    /// @dev Bytes of an item's head: the agreement's address and the payload's length.
    uint256 private constant ITEM_HEAD_LENGTH = 22;

    /// @notice Item `index` reverted, or was refused; `reason` is the revert data (a custom error
    /// of the agreement, or NotAContract of this contract). `period`: the first two bytes of the
    /// item's payload (the period it meant to settle), 0 if it is shorter.
    event ItemFailed(uint256 indexed index, address indexed agreement, uint256 period, bytes reason);

    /// @notice The batch is empty or holds more than MAX_ITEMS items.
    /// @param count The number of items given (MAX_ITEMS + 1 when there are more).
    error BadBatchSize(uint256 count);

    /// @notice The packed items end inside item `index`'s 22-byte head or its payload: the batch
    /// is refused whole, since its framing cannot be trusted past that point (a submitter's bug,
    /// never one agreement's failure).
    /// @param index The position of the item that runs past the end.
    error MalformedBatch(uint256 index);

    /// @notice Item `index` names an address without code (reported in ItemFailed).
    /// @param agreement The address given.
    error NotAContract(address agreement);

    /// @notice Try to settle every item through its agreement's `settleCompact`.
    /// @param packed The items, back to back: agreement(20) length(2) payload(length).
    /// @return settled How many items settled (each failed one is reported in ItemFailed).
    function settleMany(bytes calldata packed) external returns (uint256 settled) {
        uint256 end = packed.length;
        uint256 pos = 0;
        uint256 index = 0;
        bytes4 selector = ISettleCompact.settleCompact.selector;
        while (pos < end) {
            if (index == MAX_ITEMS) revert BadBatchSize(MAX_ITEMS + 1);
            if (end - pos < ITEM_HEAD_LENGTH) revert MalformedBatch(index);
            address agreement;
            uint256 length;
            uint256 at;
            assembly ("memory-safe") {
                at := add(packed.offset, pos)
                let head := calldataload(at)
                agreement := shr(96, head)
                length := and(shr(80, head), 0xffff)
            }
            pos += ITEM_HEAD_LENGTH;
            if (end - pos < length) revert MalformedBatch(index);
            bool success;
            // settleCompact(payload) ABI-encoded past the free memory pointer: the selector, the
            // offset of the bytes, their length, the payload (no tail padding is needed: the
            // agreement reads exactly `length` bytes, and the ABI decoder only checks the end).
            // slither-disable-next-line low-level-calls
            assembly ("memory-safe") {
                let p := mload(0x40)
                mstore(p, selector)
                mstore(add(p, 4), 0x20)
                mstore(add(p, 36), length)
                calldatacopy(add(p, 68), add(at, 22), length)
                success := call(gas(), agreement, 0, p, add(68, length), 0, 0)
            }
            pos += length;
            // A call to an address without code succeeds: it settled nothing. Checked after the
            // call, when the account is warm (100 gas instead of 2,600 before it).
            if (success && agreement.code.length != 0) {
                ++settled;
            } else {
                bytes memory reason =
                    success ? abi.encodeWithSelector(NotAContract.selector, agreement) : _returnData();
                uint256 period = 0;
                if (length >= 2) {
                    assembly ("memory-safe") {
                        period := shr(240, calldataload(add(at, 22)))
                    }
                }
                emit ItemFailed(index, agreement, period, reason);
            }
            ++index;
        }
        if (index == 0) revert BadBatchSize(0);
    }

    /// @dev The revert data of the call just made.
    function _returnData() private pure returns (bytes memory data) {
        assembly ("memory-safe") {
            data := mload(0x40)
            mstore(data, returndatasize())
            returndatacopy(add(data, 32), 0, returndatasize())
            mstore(0x40, add(add(data, 32), and(add(returndatasize(), 31), not(31))))
        }
    }
}
