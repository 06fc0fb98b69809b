// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {ISlaErrors} from "../interfaces/ISlaErrors.sol";

/// @title The escrow asset of a smartsla agreement: native ETH (address(0)) or one ERC-20.
/// @notice One home for how money comes in and goes out, used by `Agreement` and
/// `CorporateAgreement` alike (internal functions: inlined, no external call, no gas added).
/// Money only ever comes in from the caller of a deposit and leaves by pull payments.
library SlaEscrow {
    using SafeERC20 for IERC20;

    /// @dev Takes exactly `amount` of `asset` from the caller of a payable deposit, which passes
    /// its `msg.value` as `sent`. In ETH the call must carry exactly `amount`; in an ERC-20 no
    /// ether, and a token that delivers less than asked (fee-on-transfer) is refused, so the
    /// escrow always holds what the books say.
    function pull(address asset, uint256 amount, uint256 sent) internal {
        if (asset == address(0)) {
            if (sent != amount) revert ISlaErrors.WrongAmount(amount, sent);
            return;
        }
        if (sent != 0) revert ISlaErrors.WrongAmount(0, sent);
        IERC20 token = IERC20(asset);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert ISlaErrors.WrongAmount(amount, received);
    }

    /// @dev Pays `amount` of `asset` to `to` (the caller updated its books first: checks,
    /// effects, then this interaction).
    function pay(address asset, address payable to, uint256 amount) internal {
        if (asset == address(0)) Address.sendValue(to, amount);
        else IERC20(asset).safeTransfer(to, amount);
    }
}
