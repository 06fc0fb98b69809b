// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {console2} from "forge-std/console2.sol";

import {TestBase} from "./utils/TestBase.sol";
import {AgreementHandler} from "./handlers/AgreementHandler.sol";

/// @title The invariant handler is not vacuous: a deterministic random walk reaches every kind
/// of successful call (and the invariants hold at the end of each stretch).
contract HandlerReachTest is TestBase {
    bytes32[14] internal _actions = [
        bytes32("createAgreement"),
        "depositFees",
        "depositCollateral",
        "cancel",
        "settle",
        "settleWithReports",
        "terminate",
        "withdraw",
        "warp",
        "donate",
        "dispute",
        "resolveDispute",
        "finalize",
        "expire"
    ];

    function test_randomWalkReachesEveryAction() public {
        uint256 stretches = 50;
        uint256 steps = 25;
        uint256[14] memory attempts;
        uint256[14] memory successes;
        for (uint256 r = 0; r < stretches; ++r) {
            AgreementHandler h = new AgreementHandler();
            for (uint256 i = 0; i < steps; ++i) {
                uint256 seed = uint256(keccak256(abi.encode(r, i)));
                _step(h, seed);
            }
            h.windDown();
            for (uint256 k = 0; k < 14; ++k) {
                attempts[k] += h.attempts(_actions[k]);
                successes[k] += h.successes(_actions[k]);
            }
        }
        for (uint256 k = 0; k < 14; ++k) {
            console2.log(string(abi.encodePacked(_actions[k])), attempts[k], successes[k]);
            assertTrue(successes[k] > 0, string.concat("never succeeded: ", string(abi.encodePacked(_actions[k]))));
        }
    }

    function _step(AgreementHandler h, uint256 seed) internal {
        uint256 a = uint256(keccak256(abi.encode(seed, 1)));
        uint256 b = uint256(keccak256(abi.encode(seed, 2)));
        uint256 c = uint256(keccak256(abi.encode(seed, 3)));
        uint256 d = uint256(keccak256(abi.encode(seed, 4)));
        uint256 which = seed % 19; // 14..17: committee settlements and disputes, twice as often; 18: expiry
        if (which == 0) h.createAgreement(a);
        else if (which == 1) h.depositFees(a, b, c);
        else if (which == 2) h.depositCollateral(a, b, c);
        else if (which == 3) h.cancel(a, b);
        else if (which == 4 || which == 10) h.settle(a, b, c, d);
        else if (which == 5 || which == 14) h.settleWithReports(a, b, c, d, uint256(keccak256(abi.encode(seed, 5))));
        else if (which == 6) h.terminate(a, b);
        else if (which == 7) h.withdraw(a, b);
        else if (which == 8) h.warp(a, b);
        else if (which == 9) h.donate(a, b);
        else if (which == 11 || which == 15) h.dispute(a, b, c);
        else if (which == 12 || which == 16) h.resolveDispute(a, b, c, d);
        else if (which == 18) h.expire(a, b, c);
        else h.finalize(a, b, c);
    }
}
