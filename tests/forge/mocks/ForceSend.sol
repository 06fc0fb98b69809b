// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Pushes ether into a contract that has no payable entry point (SELFDESTRUCT still
/// moves the balance on shanghai): a donation the agreement cannot refuse.
contract ForceSend {
    constructor(address payable to) payable {
        selfdestruct(to);
    }
}
