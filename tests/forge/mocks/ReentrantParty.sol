// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice A customer or provider that is a contract: when an agreement pays it ether, it calls
/// back into that agreement (as itself, the party) with the calls armed for it, and records each
/// outcome.
contract ReentrantParty {
    mapping(address => bytes[]) internal _plan;
    mapping(address => bytes[]) internal _results;

    function arm(address agreement, bytes[] memory calls) external {
        delete _plan[agreement];
        for (uint256 i = 0; i < calls.length; ++i) _plan[agreement].push(calls[i]);
    }

    /// @dev The outcomes recorded for `agreement` since the last call, then forgotten.
    function takeResults(address agreement) external returns (bytes memory all) {
        bytes[] storage r = _results[agreement];
        for (uint256 i = 0; i < r.length; ++i) all = bytes.concat(all, r[i]);
        delete _results[agreement];
    }

    receive() external payable {
        bytes[] memory calls = _plan[msg.sender];
        delete _plan[msg.sender];
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool ok, bytes memory out) = msg.sender.call(calls[i]);
            _results[msg.sender].push(abi.encode(ok, out));
        }
    }
}
