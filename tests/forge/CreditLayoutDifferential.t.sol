// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {VmExtra} from "./utils/TestBase.sol";

import {Agreement} from "contracts/Agreement.sol";
import {
    Terms, Options, Service, Tier, Snapshot, SignedReport, PeriodState, Status, PPM, BPS,
    KIND_AVAILABILITY, KIND_LATENCY, KIND_COMPOSITE
} from "contracts/SlaTypes.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";

import {Fixture} from "./utils/Fixture.sol";
import {TermsGen} from "./utils/TermsGen.sol";
import {AgreementV0} from "./mocks/AgreementV0.sol";
import {Vm} from "forge-std/Vm.sol";

/// @dev Receives a withdrawal and records the agreement's first state slot (storage slot 2, after
/// EIP712's two strings) as it is during the payment.
contract SlotProbe {
    Vm internal constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    address internal immutable target;
    uint256 public seen;

    constructor(address target_) {
        target = target_;
    }

    receive() external payable {
        seen = uint256(VM.load(target, bytes32(uint256(2))));
    }
}

/// @title Credits paid by `Agreement` equal an independent model and the old contract (helper C,
/// wave 8: the credit's storage layout).
/// @notice Random terms (1-5 services, 1-4 tiers, availability, latency and composite services,
/// cap, termination threshold, small or large collateral, with or without a dispute window) and
/// random measured values. Every period is settled on today's `Agreement` (compact reports) and
/// on `AgreementV0` (main 15ff5ba, ABI-encoded reports) with the same signed figures, and the
/// credit each pays is also computed here from the terms (tiers, weights, cap, collateral left).
/// Between settlements the parties withdraw at random (twice in a row sometimes), a stranger tries
/// to, disputes are opened and resolved and periods finalized. After every step: same outcome or
/// the same revert, same `PeriodSettled` data, same snapshot, same holdings, and each contract
/// holds exactly what its books say. At the end both pay out everything, the same amounts to the
/// same parties. These tests hold on the layout before the change and after it.
contract CreditLayoutDifferentialTest is Fixture {
    address internal arbiter = vm.addr(0xA2B17E2);
    Agreement internal nw;
    AgreementV0 internal od;
    uint8[] internal kinds;
    bool internal windowed;
    uint256 internal seed;
    uint256 internal nonce;
    uint256 internal paidNewCustomer;
    uint256 internal paidOldCustomer;
    uint256 internal paidNewProvider;
    uint256 internal paidOldProvider;
    uint256 internal creditsSeen;
    uint256 internal exhaustedSeen;

    bytes32 internal constant PERIOD_SETTLED =
        keccak256("PeriodSettled(uint256,uint32[],uint256[],uint256,uint256,bool,uint32)");

    function setUp() public {
        _setUpFixture(3);
    }

    function _rand() internal returns (uint256) {
        return uint256(keccak256(abi.encode(seed, ++nonce)));
    }

    // ------------------------------------------------------------ terms

    /// @dev A latency service from an availability one: objective in ms, tier thresholds rising.
    function _latency(Service memory s) internal returns (Service memory) {
        uint256 objective = 50 + _rand() % 950;
        s.objective = uint32(objective);
        uint256 at = objective;
        for (uint256 j = 0; j < s.tiers.length; ++j) {
            at += (j == 0 && _rand() % 3 == 0) ? 0 : 1 + _rand() % 400;
            s.tiers[j].threshold = uint32(at);
        }
        return s;
    }

    function _open() internal {
        start = uint64(block.timestamp + 1 hours);
        Terms memory tm = _terms(1, address(0));
        tm.periodCount = uint16(1 + _rand() % 5);
        tm.feePerPeriod = uint128(_rand() % 4 == 0 ? 1 + _rand() % 1000 : 1 ether);
        tm.creditCapBps = uint16(_rand() % 3 == 0 ? BPS : 1 + _rand() % BPS);
        tm.terminationPpm = uint32(_rand() % 2 == 0 ? 0 : 900_000);
        // Small collateral half the time, so that credits exhaust it.
        tm.collateral = uint128(_rand() % 2 == 0 ? uint256(tm.feePerPeriod) * (1 + _rand() % 8) / 10 : 3 * tm.feePerPeriod);
        tm.services = TermsGen.services(_rand(), 5, 4);
        Options memory o = _defaultOptions();
        uint256 n = tm.services.length;
        o.serviceKinds = new uint8[](n);
        for (uint256 i = 0; i < n; ++i) {
            uint256 r = _rand() % 6;
            if (r == 0) {
                o.serviceKinds[i] = KIND_LATENCY;
                tm.services[i] = _latency(tm.services[i]);
            } else if (r == 1 && i > 0 && o.serviceKinds[0] == KIND_AVAILABILITY) {
                o.serviceKinds[i] = KIND_COMPOSITE;
            }
        }
        // A composite needs an availability service: service 0 stays one when it is the only kind left.
        windowed = _rand() % 3 == 0;
        if (windowed) {
            o.disputeWindow = 3 days;
            o.arbiter = arbiter;
        }
        nw = Agreement(factory.createAgreementWithOptions(tm, o));
        od = AgreementV0(Clones.cloneWithImmutableArgs(address(new AgreementV0()), Clones.fetchCloneArgs(address(nw))));
        kinds = nw.options().serviceKinds;
        _fund(nw, tm);
        _fund(Agreement(address(od)), tm);
        _compare();
    }

    // ------------------------------------------------------------ the independent model

    function _tierBps(uint256 i, uint32 value) internal view returns (uint256 bps) {
        Terms memory t = nw.terms();
        Service memory s = t.services[i];
        bool latency = kinds[i] == KIND_LATENCY;
        if (latency ? value <= s.objective : value >= s.objective) return 0;
        for (uint256 j = 0; j < s.tiers.length; ++j) {
            bool beyond = latency ? value > s.tiers[j].threshold : value < s.tiers[j].threshold;
            if (!beyond) break;
            bps = s.tiers[j].creditBps;
        }
    }

    /// @dev The credit the terms promise for `reported` (composites computed from the
    /// availability services), before the collateral limit.
    function _modelCredit(uint32[] memory reported) internal view returns (uint256 total) {
        Terms memory t = nw.terms();
        uint256 n = reported.length;
        uint256 weighted;
        uint256 weights;
        for (uint256 i = 0; i < n; ++i) {
            if (kinds[i] == KIND_AVAILABILITY) {
                weighted += uint256(reported[i]) * t.services[i].weightBps;
                weights += t.services[i].weightBps;
            }
        }
        for (uint256 i = 0; i < n; ++i) {
            uint32 v = kinds[i] == KIND_COMPOSITE ? uint32(weighted / weights) : reported[i];
            total += uint256(t.feePerPeriod) * t.services[i].weightBps * _tierBps(i, v) / (uint256(BPS) * BPS);
        }
        uint256 cap = uint256(t.feePerPeriod) * t.creditCapBps / BPS;
        if (total > cap) total = cap;
    }

    function _values() internal returns (uint32[] memory v) {
        Terms memory t = nw.terms();
        uint256 n = t.services.length;
        v = new uint32[](n);
        for (uint256 i = 0; i < n; ++i) {
            Service memory s = t.services[i];
            uint256 r = _rand();
            if (kinds[i] == KIND_LATENCY) {
                uint256 top = s.tiers[s.tiers.length - 1].threshold + 100;
                v[i] = uint32(r % 4 == 0 ? s.objective : (r >> 8) % top);
            } else if (r % 4 == 0) {
                v[i] = PPM;
            } else if (r % 4 == 1) {
                // at or next to a tier's threshold
                uint256 j = (r >> 8) % s.tiers.length;
                uint256 th = s.tiers[j].threshold;
                v[i] = uint32(th - ((r >> 16) % 2 == 0 || th == 0 ? 0 : 1));
            } else {
                v[i] = uint32(800_000 + (r >> 8) % 200_001);
            }
        }
    }

    // ------------------------------------------------------------ both contracts

    function _books(Snapshot memory s) internal pure returns (uint256) {
        return uint256(s.feesEscrowed) + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider
            + s.pendingToCustomer + s.pendingToProvider;
    }

    function _compare() internal view {
        Terms memory t = nw.terms();
        Snapshot memory sn = nw.snapshot();
        Snapshot memory so = od.snapshot();
        assertEq(abi.encode(sn), abi.encode(so), "same snapshot");
        assertEq(address(nw).balance, _books(sn), "new: holdings = books");
        assertEq(address(od).balance, _books(so), "old: holdings = books");
        for (uint256 p = 0; p < t.periodCount; ++p) {
            (PeriodState a, uint256 b, uint256 c) = nw.periodState(p);
            (PeriodState x, uint256 y, uint256 z) = od.periodState(p);
            assertEq(abi.encode(a, b, c), abi.encode(x, y, z), "same period state");
        }
    }

    /// @dev `callNew` to the new contract, `callOld` to the old one, from `sender`: the same
    /// outcome (or revert data), the same PeriodSettled log if any, the same books after.
    function _both(address sender, bytes memory callNew, bytes memory callOld) internal returns (bool) {
        uint256 heldNew = address(nw).balance;
        uint256 heldOld = address(od).balance;
        vmx.recordLogs();
        vm.prank(sender);
        (bool okNew, bytes memory outNew) = address(nw).call(callNew);
        bytes memory settledNew = _periodSettled(vmx.getRecordedLogs());
        vmx.recordLogs();
        vm.prank(sender);
        (bool okOld, bytes memory outOld) = address(od).call(callOld);
        bytes memory settledOld = _periodSettled(vmx.getRecordedLogs());
        assertTrue(okNew == okOld, "same outcome");
        if (!okNew) assertEq(outNew, outOld, "same revert");
        assertEq(settledNew, settledOld, "same PeriodSettled");
        uint256 paidNew = heldNew - address(nw).balance;
        uint256 paidOld = heldOld - address(od).balance;
        assertEq(paidNew, paidOld, "same amount paid");
        if (sender == customer) {
            paidNewCustomer += paidNew;
            paidOldCustomer += paidOld;
        } else if (sender == provider) {
            paidNewProvider += paidNew;
            paidOldProvider += paidOld;
        } else {
            assertEq(paidNew, 0, "nobody else is paid");
        }
        _compare();
        return okNew;
    }

    function _same(address sender, bytes memory data) internal returns (bool) {
        return _both(sender, data, data);
    }

    function _periodSettled(VmExtra.Log[] memory logs) internal pure returns (bytes memory) {
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].topics.length > 0 && logs[i].topics[0] == PERIOD_SETTLED) {
                return abi.encode(logs[i].topics, logs[i].data);
            }
        }
        return "";
    }

    /// @dev Settles `period` on both with one report of random values; the credit paid (what the
    /// customer's balance, or its pending balance under a dispute window, grew by) is the model's,
    /// limited by the collateral left.
    function _settle(uint256 period) internal {
        _toEnd(nw, period);
        uint32[] memory values = _values();
        Snapshot memory before = nw.snapshot();
        SignedReport[] memory repNew = new SignedReport[](1);
        SignedReport[] memory repOld = new SignedReport[](1);
        repNew[0] = _sign(nw, oracleKeys[0], period, values);
        repOld[0] = _sign(Agreement(address(od)), oracleKeys[0], period, values);
        bool ok = _both(
            oracles[1],
            abi.encodeCall(Agreement.settleCompact, (CompactReports.encode(period, repNew))),
            abi.encodeCall(AgreementV0.settleWithReports, (period, repOld))
        );
        assertTrue(ok, "settles");
        Snapshot memory afterwards = nw.snapshot();
        uint256 credit = uint256(afterwards.owedToCustomer) + afterwards.pendingToCustomer - before.owedToCustomer
            - before.pendingToCustomer;
        uint256 owed = _modelCredit(values);
        uint256 expected = owed < before.collateralEscrowed ? owed : before.collateralEscrowed;
        assertEq(credit, expected, "credit = the terms' credit, within the collateral");
        if (expected != 0) ++creditsSeen;
        if (owed > before.collateralEscrowed) ++exhaustedSeen;
    }

    function _withdrawals() internal {
        uint256 r = _rand() % 8;
        if (r == 0) {
            _same(customer, abi.encodeCall(Agreement.withdraw, ()));
            _same(customer, abi.encodeCall(Agreement.withdraw, ())); // the second pays nothing
        } else if (r == 1) {
            _same(provider, abi.encodeCall(Agreement.withdraw, ()));
        } else if (r == 2) {
            _same(stranger, abi.encodeCall(Agreement.withdraw, ()));
        } else if (r == 3 && windowed) {
            uint256 p = nw.snapshot().settledPeriods - 1;
            if (_same(customer, abi.encodeCall(Agreement.dispute, (p, bytes32(uint256(7)))))) {
                _same(arbiter, abi.encodeCall(Agreement.resolveDispute, (p, _values())));
            }
        } else if (r == 4 && windowed) {
            vm.warp(block.timestamp + 3 days);
            _same(stranger, abi.encodeCall(Agreement.finalize, (nw.snapshot().settledPeriods - 1)));
        }
    }

    function _run(uint256 seed_) internal {
        seed = seed_;
        nonce = 0;
        _open();
        Terms memory t = nw.terms();
        for (uint256 p = 0; p < t.periodCount; ++p) {
            _settle(p);
            _withdrawals();
        }
        // Wind down: pending periods final, both parties withdraw everything.
        vm.warp(block.timestamp + 7 days);
        for (uint256 p = 0; p < t.periodCount; ++p) {
            _same(stranger, abi.encodeCall(Agreement.finalize, (p)));
        }
        _same(customer, abi.encodeCall(Agreement.withdraw, ()));
        _same(provider, abi.encodeCall(Agreement.withdraw, ()));
        _same(customer, abi.encodeCall(Agreement.withdraw, ()));
        assertEq(_books(nw.snapshot()), 0, "nothing owed at the end");
        assertEq(address(nw).balance, 0, "new: everything paid out");
        assertEq(paidNewCustomer, paidOldCustomer, "customer paid the same");
        assertEq(paidNewProvider, paidOldProvider, "provider paid the same");
        assertEq(paidNewCustomer + paidNewProvider, uint256(t.feePerPeriod) * t.periodCount + t.collateral, "all paid");
    }

    /// forge-config: ci.fuzz.runs = 2000
    function testFuzz_creditsMatchTheModelAndTheOldContract(uint256 seed_) public {
        _run(seed_);
    }

    /// @notice Not vacuous: over fixed seeds, credits are paid, the collateral runs out, latency
    /// and composite services and dispute windows occur.
    function test_differentialReachesCreditsAndExhaustion() public {
        uint256 credits;
        uint256 exhausted;
        uint256 latency;
        uint256 composite;
        for (uint256 s = 1; s <= 40; ++s) {
            creditsSeen = 0;
            exhaustedSeen = 0;
            paidNewCustomer = paidOldCustomer = paidNewProvider = paidOldProvider = 0;
            _run(s);
            credits += creditsSeen;
            exhausted += exhaustedSeen;
            for (uint256 i = 0; i < kinds.length; ++i) {
                if (kinds[i] == KIND_LATENCY) ++latency;
                if (kinds[i] == KIND_COMPOSITE) ++composite;
            }
        }
        assertGe(credits, 21, "credits paid");
        assertGe(exhausted, 4, "collateral exhausted");
        assertGe(latency, 4, "latency services");
        assertGe(composite, 2, "composite services");
    }

    // ------------------------------------------------------------ the provider's and customer's attacks

    /// @notice A credit stays the customer's whatever the order of withdrawals: the provider
    /// withdrawing the released collateral at the end cannot take a credit the customer has not
    /// withdrawn yet, and the customer cannot withdraw a credit twice.
    function test_providerWithdrawingFirstLeavesTheCustomersCredit() public {
        Terms memory tm = _terms(1, address(0));
        tm.periodCount = 2;
        Agreement a = _open(tm);
        _fund(a, tm);
        uint32[] memory low = new uint32[](2);
        low[0] = 949_999; // the harshest compute tier: 100 % of its 60 % share
        low[1] = PPM;
        for (uint256 p = 0; p < 2; ++p) {
            _toEnd(a, p);
            SignedReport[] memory rep = new SignedReport[](1);
            rep[0] = _sign(a, oracleKeys[0], p, low);
            vm.prank(stranger);
            a.settleCompact(CompactReports.encode(p, rep));
        }
        Snapshot memory s = a.snapshot();
        assertEq(uint256(s.status), uint256(Status.Ended), "ended");
        assertEq(s.owedToCustomer, 1.2 ether, "two credits of 0.6");
        assertEq(s.owedToProvider, 2 ether + 0.8 ether, "fees and the collateral left");
        uint256 before = provider.balance;
        vm.prank(provider);
        a.withdraw();
        assertEq(provider.balance - before, 2.8 ether, "provider paid");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, provider));
        a.withdraw();
        assertEq(a.snapshot().owedToCustomer, 1.2 ether, "the customer's credit is still there");
        before = customer.balance;
        vm.prank(customer);
        a.withdraw();
        assertEq(customer.balance - before, 1.2 ether, "customer paid");
        vm.prank(customer);
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, customer));
        a.withdraw();
        assertEq(address(a).balance, 0, "all paid out");
    }

    /// @notice A customer who withdraws between credits gets each credit once, never more than
    /// the collateral: three periods each owing 0.6 against 1 ether of collateral pay 1 in all.
    function test_customerWithdrawingBetweenCreditsGetsEachOnceWithinTheCollateral() public {
        Terms memory tm = _terms(1, address(0));
        tm.collateral = 1 ether;
        Agreement a = _open(tm);
        _fund(a, tm);
        uint32[] memory low = new uint32[](2);
        low[0] = 949_999;
        low[1] = PPM;
        uint256 got = 0;
        for (uint256 p = 0; p < 3; ++p) {
            _toEnd(a, p);
            SignedReport[] memory rep = new SignedReport[](1);
            rep[0] = _sign(a, oracleKeys[0], p, low);
            vm.prank(stranger);
            a.settleCompact(CompactReports.encode(p, rep));
            uint256 before = customer.balance;
            if (a.snapshot().owedToCustomer != 0) {
                vm.prank(customer);
                a.withdraw();
            }
            got += customer.balance - before;
            vm.prank(customer);
            vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, customer));
            a.withdraw();
        }
        assertEq(got, 1 ether, "0.6 + 0.4 (the collateral left) + 0");
        Snapshot memory s = a.snapshot();
        assertEq(s.collateralEscrowed, 0, "collateral used up");
        assertEq(s.owedToProvider, 3 ether, "the fees, no collateral left");
        vm.prank(provider);
        a.withdraw();
        assertEq(address(a).balance, 0, "all paid out");
    }
    /// @notice The layout the assembly relies on (docs/security.md C-1, C-3): the reentrancy flag is
    /// byte 15 of the first state slot (set during the payment, clear before and after), the
    /// collateral its high 16 bytes, the customer's mark and balance the next slot's low and high
    /// halves. A reordering of the state variables fails here before it can flip another field.
    function test_storageLayoutTheAssemblyReliesOn() public {
        Terms memory tm = _terms(1, address(0));
        Agreement a = _open(tm);
        _fund(a, tm);
        uint32[] memory low = new uint32[](2);
        low[0] = 949_999; // 0.6 ether of credit
        low[1] = PPM;
        _toEnd(a, 0);
        SignedReport[] memory rep = new SignedReport[](1);
        rep[0] = _sign(a, oracleKeys[0], 0, low);
        a.settleCompact(CompactReports.encode(0, rep));
        uint256 first = uint256(vm.load(address(a), bytes32(uint256(2))));
        uint256 second = uint256(vm.load(address(a), bytes32(uint256(3))));
        assertEq(first >> 128, 1.4 ether, "collateral: high half of the first slot");
        assertEq((first >> 120) & 0xff, 0, "guard clear");
        assertEq(uint128(second), 2 ether, "mark: low half of the second slot");
        assertEq(second >> 128, 0, "balance: high half (the credit is not folded yet)");
        SlotProbe probe = new SlotProbe(address(a));
        vm.prank(customer);
        a.withdrawTo(payable(address(probe)));
        assertEq(address(probe).balance, 0.6 ether, "the credit paid");
        assertEq((probe.seen() >> 120) & 0xff, 1, "guard set during the payment");
        assertEq((uint256(vm.load(address(a), bytes32(uint256(2)))) >> 120) & 0xff, 0, "guard clear after");
        assertEq(uint256(vm.load(address(a), bytes32(uint256(3)))), 1.4 ether, "mark = collateral, balance 0");
    }
}
