// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title An ERC-20 that answers `false` instead of reverting when it refuses a transfer (as
/// some early tokens do), for tests. Anyone may mint; the owner of a balance may switch the
/// refusal on for transfers *from* it (`refuseFrom`) or *to* it (`refuseTo`).
/// @notice A caller that ignores the returned bool would book a deposit that never arrived, or
/// a payout that never left; SafeERC20 turns `false` into a revert.
contract FalseReturningToken is ERC20 {
    mapping(address => bool) public refuseFrom;
    mapping(address => bool) public refuseTo;

    constructor() ERC20("False Returning Token", "FALSE") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Test switch: refuse (return false) every transfer from `who`.
    function setRefuseFrom(address who, bool on) external {
        refuseFrom[who] = on;
    }

    /// @notice Test switch: refuse (return false) every transfer to `who`.
    function setRefuseTo(address who, bool on) external {
        refuseTo[who] = on;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        if (refuseFrom[msg.sender] || refuseTo[to] || balanceOf(msg.sender) < value) return false;
        return super.transfer(to, value);
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (refuseFrom[from] || refuseTo[to] || balanceOf(from) < value || allowance(from, msg.sender) < value) {
            return false;
        }
        return super.transferFrom(from, to, value);
    }
}
