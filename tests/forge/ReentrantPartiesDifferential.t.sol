// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

import {Agreement} from "contracts/Agreement.sol";
import {Terms, Options, Status, Snapshot, SignedReport, PeriodState, PPM} from "contracts/SlaTypes.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

import {Fixture} from "./utils/Fixture.sol";
import {AgreementV0} from "./mocks/AgreementV0.sol";
import {ReentrantParty} from "./mocks/ReentrantParty.sol";

/// @title Helper Z's review of the slot-1 collateral / stage / reentrancy-flag layout (wave 8,
/// Z8): parties that are contracts re-enter the agreement while it pays them.
/// @notice The same random sequence goes to a clone of today's Agreement and to one of
/// AgreementV0 (tests/forge/mocks, the accounting before the layout change, with OpenZeppelin's
/// ReentrancyGuard in its own slot), with the same packed terms. Customer and provider are
/// ReentrantParty contracts: while a withdrawal pays them they call back, as the party, any of
/// withdraw, withdrawTo, terminate, expire, cancel, dispute, finalize, or submit a signed
/// settlement (with a credit, a disaster, or none) — the flag shares a slot with the collateral
/// and the stage, and the customer's withdrawal writes its balance and the mark in assembly. After
/// every step: the same outcome (same revert data), the same snapshot and period states, the same
/// holdings and payouts, the same outcomes inside the callbacks, holdings = books, and the guard
/// flag (byte 15 of slot 2) is down. At the end both wind down, pay out everything they were
/// given, and nothing stays in either.
contract ReentrantPartiesDifferentialTest is Fixture {
    address internal arbiter = vm.addr(0xA2B17E2);
    ReentrantParty internal cust;
    ReentrantParty internal prov;
    Agreement internal nw;
    AgreementV0 internal od;
    uint256 internal seed;
    uint256 internal nonce;
    uint256 internal periodCount;
    uint256 internal deposited;
    uint256 internal paidNew;
    uint256 internal paidOld;
    uint256 internal reentries; // callbacks that succeeded (not vacuous)
    uint256 internal guarded; // re-entered withdrawals refused
    uint256 internal callbacks; // callbacks run inside payments

    function setUp() public {
        _setUpFixture(1);
    }

    function _rand() internal returns (uint256) {
        return uint256(keccak256(abi.encode(seed, ++nonce)));
    }

    function _open() internal {
        cust = new ReentrantParty();
        prov = new ReentrantParty();
        Terms memory t = _terms(1, address(0));
        t.customer = address(cust);
        t.provider = address(prov);
        t.start = uint64(block.timestamp + 1 hours);
        t.periodCount = uint16(1 + _rand() % 4);
        t.collateral = _rand() % 2 == 0 ? 0.35 ether : 2 ether;
        Options memory o = _defaultOptions();
        if (_rand() % 2 == 0) {
            o.disputeWindow = 3 days;
            o.arbiter = arbiter;
        }
        nw = Agreement(factory.createAgreementWithOptions(t, o));
        od = AgreementV0(Clones.cloneWithImmutableArgs(address(new AgreementV0()), Clones.fetchCloneArgs(address(nw))));
        periodCount = t.periodCount;
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        // Mostly both deposits; sometimes one only (then cancel is possible).
        uint256 r = _rand() % 8;
        if (r != 0) {
            assertTrue(_same(address(cust), abi.encodeCall(Agreement.depositFees, ()), fees), "fees deposited");
            deposited += fees;
        }
        if (r != 1) {
            assertTrue(_same(address(prov), abi.encodeCall(Agreement.depositCollateral, ()), t.collateral), "collateral deposited");
            deposited += t.collateral;
        }
    }

    function _flagDown(address a) internal returns (bool) {
        return uint256(vm.load(a, bytes32(uint256(2)))) & (1 << 120) == 0;
    }

    function _books(Snapshot memory s) internal pure returns (uint256) {
        return uint256(s.feesEscrowed) + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider
            + s.pendingToCustomer + s.pendingToProvider;
    }

    function _compare() internal {
        Snapshot memory sn = nw.snapshot();
        Snapshot memory so = od.snapshot();
        assertEq(abi.encode(sn), abi.encode(so), "same snapshot");
        assertEq(address(nw).balance, _books(sn), "new: holdings = books");
        assertEq(address(od).balance, _books(so), "old: holdings = books");
        assertTrue(_flagDown(address(nw)), "the reentrancy flag is left up");
        for (uint256 p = 0; p < periodCount; ++p) {
            (PeriodState a, uint256 b, uint256 c) = nw.periodState(p);
            (PeriodState x, uint256 y, uint256 z) = od.periodState(p);
            assertEq(abi.encode(a, b, c), abi.encode(x, y, z), "same period state");
        }
    }

    /// @dev `callNew` to the new contract and `callOld` to the old, from `sender` (armed
    /// callbacks `armNew` / `armOld` for the party paid): the same outcome everywhere.
    function _both(
        address sender,
        bytes memory callNew,
        bytes memory callOld,
        uint256 value,
        bytes[] memory armNew,
        bytes[] memory armOld
    ) internal returns (bool) {
        vm.deal(sender, sender.balance + 2 * value);
        cust.arm(address(nw), armNew);
        prov.arm(address(nw), armNew);
        cust.arm(address(od), armOld);
        prov.arm(address(od), armOld);
        uint256 heldNew = address(nw).balance;
        uint256 heldOld = address(od).balance;
        vm.prank(sender);
        (bool okNew, bytes memory outNew) = address(nw).call{value: value}(callNew);
        vm.prank(sender);
        (bool okOld, bytes memory outOld) = address(od).call{value: value}(callOld);
        assertTrue(okNew == okOld, string.concat("same outcome: new ", okNew ? "succeeded" : "reverted"));
        if (!okNew) assertEq(outNew, outOld, "same revert");
        bytes memory inNew = bytes.concat(cust.takeResults(address(nw)), prov.takeResults(address(nw)));
        bytes memory inOld = bytes.concat(cust.takeResults(address(od)), prov.takeResults(address(od)));
        if (keccak256(inNew) != keccak256(inOld)) {
            // A settlement's report names its own signer, so its payload differs between the
            // two contracts; the outcomes of everything else are the same bytes.
            assertEq(inNew.length, inOld.length, "same callbacks");
        }
        _countCallbacks(inNew);
        cust.arm(address(nw), new bytes[](0));
        prov.arm(address(nw), new bytes[](0));
        cust.arm(address(od), new bytes[](0));
        prov.arm(address(od), new bytes[](0));
        if (address(nw).balance < heldNew) paidNew += heldNew - address(nw).balance;
        if (address(od).balance < heldOld) paidOld += heldOld - address(od).balance;
        assertEq(address(nw).balance, address(od).balance, "same holdings");
        _compare();
        return okNew;
    }

    function _countCallbacks(bytes memory all) internal {
        // Each result is abi.encode(bool, bytes): the flag is its first word.
        uint256 off = 0;
        while (off < all.length) {
            uint256 ok;
            uint256 len;
            assembly ("memory-safe") {
                ok := mload(add(add(all, 32), off))
                len := mload(add(add(all, 32), add(off, 64)))
            }
            ++callbacks;
            if (ok == 1) ++reentries;
            else if (len >= 4) {
                bytes4 sel;
                assembly ("memory-safe") {
                    sel := mload(add(add(all, 32), add(off, 96)))
                }
                if (sel == bytes4(keccak256("ReentrancyGuardReentrantCall()"))) ++guarded;
            }
            off += 96 + (len + 31) / 32 * 32;
        }
    }

    function _same(address sender, bytes memory data, uint256 value) internal returns (bool) {
        return _both(sender, data, data, value, new bytes[](0), new bytes[](0));
    }

    function _value() internal returns (uint32) {
        uint256 r = _rand() % 6;
        if (r < 2) return PPM;
        if (r == 2) return 989_000; // a credit
        if (r == 3) return 960_000; // a bigger one
        return 800_000; // a disaster (below 90 %)
    }

    function _settlePayload(address a, uint256 period, uint32[] memory values) internal returns (bytes memory) {
        SignedReport[] memory r = new SignedReport[](1);
        r[0] = _sign(Agreement(a), oracleKeys[0], period, values);
        // AgreementV0 predates settleCompact: the same signed report, ABI-encoded.
        if (a == address(od)) return abi.encodeCall(AgreementV0.settleWithReports, (period, r));
        return abi.encodeCall(Agreement.settleCompact, (CompactReports.encode(period, r)));
    }

    /// @dev A random callback plan, the same for both but for a settlement's signature.
    function _plans() internal returns (bytes[] memory pn, bytes[] memory po) {
        uint256 n = 1 + _rand() % 2;
        pn = new bytes[](n);
        po = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) {
            uint256 r = _rand() % 11;
            uint256 k = _rand() % (periodCount + 1);
            if (r == 0) pn[i] = abi.encodeCall(Agreement.withdraw, ());
            else if (r == 1) pn[i] = abi.encodeCall(Agreement.withdrawTo, (payable(stranger)));
            else if (r == 2) pn[i] = abi.encodeCall(Agreement.terminate, ());
            else if (r == 3) pn[i] = abi.encodeCall(Agreement.expire, ());
            else if (r == 4) pn[i] = abi.encodeCall(Agreement.cancel, ());
            else if (r == 5) pn[i] = abi.encodeCall(Agreement.dispute, (k, bytes32(uint256(1))));
            else if (r == 6) pn[i] = abi.encodeCall(Agreement.finalize, (k));
            po[i] = pn[i];
            if (r >= 7) {
                uint256 period = nw.snapshot().settledPeriods;
                uint32 v = _value();
                pn[i] = _settlePayload(address(nw), period, _values(v, v));
                po[i] = _settlePayload(address(od), period, _values(v, v));
            }
        }
    }

    function _step() internal {
        uint256 r = _rand() % 20;
        if (r < 3) {
            vm.warp(block.timestamp + _rand() % 10 days);
        } else if (r < 8) {
            uint256 period = nw.snapshot().settledPeriods;
            if (_rand() % 6 == 0) period += 1;
            uint32 v = _value();
            uint32 w = _rand() % 2 == 0 ? v : _value();
            if (period < periodCount && _rand() % 4 != 0) _toEnd(nw, period);
            _both(
                stranger,
                _settlePayload(address(nw), period, _values(v, w)),
                _settlePayload(address(od), period, _values(v, w)),
                0,
                new bytes[](0),
                new bytes[](0)
            );
        } else if (r == 8) {
            address who = _rand() % 2 == 0 ? address(cust) : address(prov);
            _same(who, abi.encodeCall(Agreement.dispute, (_rand() % periodCount, bytes32(uint256(7)))), 0);
        } else if (r == 9) {
            uint32 v = _value();
            _same(arbiter, abi.encodeCall(Agreement.resolveDispute, (_rand() % periodCount, _values(v, v))), 0);
        } else if (r == 10) {
            _same(stranger, abi.encodeCall(Agreement.finalize, (_rand() % periodCount)), 0);
        } else if (r == 11) {
            _same(address(cust), abi.encodeCall(Agreement.terminate, ()), 0);
        } else if (r == 12) {
            if (_rand() % 3 == 0) _same(stranger, abi.encodeCall(Agreement.expire, ()), 0);
        } else if (r == 13) {
            if (_rand() % 3 == 0) {
                _same(_rand() % 2 == 0 ? address(cust) : address(prov), abi.encodeCall(Agreement.cancel, ()), 0);
            }
        } else {
            address who = r < 17 ? address(cust) : address(prov);
            // Often at the end of the next period, so that a settlement inside the payment can
            // succeed.
            uint256 next = nw.snapshot().settledPeriods;
            if (next < periodCount && _rand() % 2 == 0) _toEnd(nw, next);
            (bytes[] memory pn, bytes[] memory po) = _plans();
            bytes memory call = _rand() % 4 == 0
                ? abi.encodeCall(Agreement.withdrawTo, (payable(stranger)))
                : abi.encodeCall(Agreement.withdraw, ());
            _both(who, call, call, 0, pn, po);
        }
    }

    function _windDown() internal {
        vm.warp(block.timestamp + 400 days);
        _same(stranger, abi.encodeCall(Agreement.expire, ()), 0);
        for (uint256 round = 0; round < 2; ++round) {
            for (uint256 p = 0; p < periodCount; ++p) _same(stranger, abi.encodeCall(Agreement.finalize, (p)), 0);
            vm.warp(block.timestamp + 7 days);
        }
        _same(address(cust), abi.encodeCall(Agreement.cancel, ()), 0);
        _same(address(cust), abi.encodeCall(Agreement.withdraw, ()), 0);
        _same(address(prov), abi.encodeCall(Agreement.withdraw, ()), 0);
        assertEq(address(nw).balance, 0, "new: everything paid out");
        assertEq(address(od).balance, 0, "old: everything paid out");
        assertEq(paidNew, deposited, "new: paid out what was deposited");
        assertEq(paidOld, deposited, "old: paid out what was deposited");
    }

    /// forge-config: ci.fuzz.runs = 1000
    function testFuzz_reentrantPartiesSameBooksAsV0(uint256 seed_) public {
        seed = seed_;
        _open();
        uint256 steps = 8 + _rand() % 25;
        for (uint256 i = 0; i < steps; ++i) _step();
        _windDown();
    }

    /// @notice Not vacuous: over fixed seeds, callbacks succeed inside payments and re-entered
    /// withdrawals are refused.
    function test_reach() public {
        for (uint256 s = 0; s < 40; ++s) {
            seed = s;
            nonce = 0;
            deposited = 0;
            paidNew = 0;
            paidOld = 0;
            _open();
            for (uint256 i = 0; i < 30; ++i) _step();
            _windDown();
        }
        assertGe(reentries, 5, string.concat("callbacks that changed something inside a payment, of ", vmx.toString(callbacks), " guarded ", vmx.toString(guarded)));
        assertGe(guarded, 5, "re-entered withdrawals refused");
    }
}
