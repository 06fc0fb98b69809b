// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "forge-std/Vm.sol";

/// @notice Cheatcodes that forge-std 1.1.2 (the npm distribution) does not declare; Forge 1.x
/// implements them at the same address.
interface VmExtra {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory);
    function toString(uint256) external pure returns (string memory);
    function toString(address) external pure returns (string memory);
    function toString(bytes memory) external pure returns (string memory);
}

/// @notice What Forge reads from `targetSelectors()` (same ABI as forge-std's StdInvariant).
struct FuzzSelector {
    address addr;
    bytes4[] selectors;
}

/// @title Cheatcodes, assertions that revert, and `bound`: for tests and invariant handlers alike.
abstract contract Assertions {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    /// @dev The evidence root the tests' reports carry: any non-zero root satisfies the contract
    /// (a zero one is refused with MissingEvidence).
    bytes32 internal constant EVIDENCE_ROOT = keccak256("smartsla test evidence");
    VmExtra internal constant vmx = VmExtra(address(uint160(uint256(keccak256("hevm cheat code")))));

    // ------------------------------------------------------------ assertions (revert on failure)
    function fail(string memory what) internal pure {
        revert(string.concat("assertion failed: ", what));
    }

    function assertTrue(bool ok, string memory what) internal pure {
        if (!ok) fail(what);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) fail(string.concat(what, ": ", vmx.toString(a), " != ", vmx.toString(b)));
    }

    function assertEq(address a, address b, string memory what) internal pure {
        if (a != b) fail(string.concat(what, ": ", vmx.toString(a), " != ", vmx.toString(b)));
    }

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        if (a != b) fail(string.concat(what, ": bytes32 differ"));
    }

    function assertEq(bytes memory a, bytes memory b, string memory what) internal pure {
        if (keccak256(a) != keccak256(b)) fail(string.concat(what, ": ", vmx.toString(a), " != ", vmx.toString(b)));
    }

    function assertLe(uint256 a, uint256 b, string memory what) internal pure {
        if (a > b) fail(string.concat(what, ": ", vmx.toString(a), " > ", vmx.toString(b)));
    }

    function assertGe(uint256 a, uint256 b, string memory what) internal pure {
        if (a < b) fail(string.concat(what, ": ", vmx.toString(a), " < ", vmx.toString(b)));
    }

    // ------------------------------------------------------------ fuzz helpers
    /// @dev Maps x into [min, max] (inclusive), like forge-std's bound, without logging.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: max < min");
        if (x >= min && x <= max) return x;
        uint256 size = max - min + 1;
        if (size == 0) return x; // the whole uint256 range
        return min + (x % size);
    }
}

/// @title Minimal test base for Forge 1.x.
/// @notice Why not forge-std's Test: the npm forge-std (1.1.2) imports `ds-test/test.sol`, which
/// the package does not ship, its assertions only set a flag (Forge 1.x ignores it unless
/// `legacy_assertions` is on) and its helpers are public functions the invariant fuzzer would
/// call. So: forge-std's Vm interface, assertions that revert, a `bound` without logs, and the
/// invariant-targeting getters Forge looks for.
abstract contract TestBase is Assertions {
    bool public IS_TEST = true;

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;
    address[] private _targetSenders;

    // ------------------------------------------------------------ invariant targeting
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    function targetSenders() public view returns (address[] memory) {
        return _targetSenders;
    }

    function targetContract(address c) internal {
        _targetContracts.push(c);
    }

    function targetSelector(FuzzSelector memory s) internal {
        _targetSelectors.push(s);
    }

    function targetSender(address s) internal {
        _targetSenders.push(s);
    }
}
