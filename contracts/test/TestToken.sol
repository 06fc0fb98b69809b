// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title A plain ERC-20 for tests and demos: anyone may mint.
contract TestToken is ERC20 {
    constructor() ERC20("smartsla Test Token", "SLAT") {}

    /// @notice Mints `amount` to `to` (test token: no access control on purpose).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @title An ERC-20 that burns 1 % of every transfer (a fee-on-transfer token), for tests.
contract FeeOnTransferToken is ERC20 {
    constructor() ERC20("Fee On Transfer", "FOT") {}

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}
