// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {Agreement} from "contracts/Agreement.sol";
import {Terms, Options, Status, Snapshot, SignedReport, PeriodState, PPM} from "contracts/SlaTypes.sol";
import {TestToken} from "contracts/test/TestToken.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";

import {Fixture} from "./utils/Fixture.sol";
import {AgreementV0} from "./mocks/AgreementV0.sol";
import {SettlementBatch} from "contracts/SettlementBatch.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

/// @title The counted-fee / flagged-collateral accounting (issue 15, helper W) against the
/// accounting it replaced, on the same random sequences (helper Z's review, Z-1).
/// @notice Two clones carry the same packed terms: one of today's `Agreement`, one of
/// `AgreementV0` (contracts/Agreement.sol of main 15ff5ba, copied verbatim but for its name), so
/// the old contract moved every fee and the released collateral between storage slots and the
/// new one counts them. Every step (deposits, cancel, settlements with 1-3 signed reports or
/// direct, mutated signatures, disputes, resolutions, finalizations, termination, expiry,
/// withdrawals by every party, time passing) is sent to both by the same sender at the same
/// time, and after each one: both succeed or both revert with the same error, both snapshots and
/// every period's state are equal, both hold the same amount, and each holds exactly what its
/// books say (escrowed + owed + pending). After the sequence both wind down (expiry, finalize,
/// withdrawals): both paid out everything, the same amounts to the same parties.
contract SettlementAccountingAttacksTest is Fixture {
    address internal arbiter = vm.addr(0xA2B17E2);
    Agreement internal nw;
    AgreementV0 internal od;
    TestToken internal token;
    uint256 internal seed;
    uint256 internal nonce;
    uint256 internal periodCount;
    // What each contract paid out by withdrawal, per party: must match between them.
    uint256 internal paidNew;
    uint256 internal paidOld;
    // Successes per selector and reverts per error, for the reach test (not vacuous).
    mapping(bytes4 => uint256) internal successes;
    mapping(bytes4 => uint256) internal failures;
    uint256 internal exhausted;

    function setUp() public {
        _setUpFixture(3);
        token = new TestToken();
    }

    function _rand() internal returns (uint256) {
        return uint256(keccak256(abi.encode(seed, ++nonce)));
    }

    function _open() internal {
        bool erc20 = _rand() % 2 == 0;
        Terms memory t = _terms(_rand() % 2 == 0 ? 1 : 3, erc20 ? address(token) : address(0));
        t.periodCount = uint16(1 + _rand() % 6);
        // Small collateral half the time, so that credits exhaust it.
        t.collateral = _rand() % 2 == 0 ? 0.35 ether : 2 ether;
        Options memory o = _defaultOptions();
        if (_rand() % 2 == 0) {
            o.disputeWindow = 3 days;
            o.arbiter = arbiter;
        }
        nw = Agreement(factory.createAgreementWithOptions(t, o));
        od = AgreementV0(Clones.cloneWithImmutableArgs(address(new AgreementV0()), Clones.fetchCloneArgs(address(nw))));
        periodCount = t.periodCount;
        if (erc20) {
            // Both parties can pay both contracts, approved once.
            address[2] memory who = [customer, provider];
            for (uint256 i = 0; i < 2; ++i) {
                token.mint(who[i], 100 ether);
                vm.prank(who[i]);
                token.approve(address(nw), type(uint256).max);
                vm.prank(who[i]);
                token.approve(address(od), type(uint256).max);
            }
        }
    }

    function _erc20() internal view returns (bool) {
        return nw.terms().asset != address(0);
    }

    function _held(address a) internal view returns (uint256) {
        return _erc20() ? token.balanceOf(a) : a.balance;
    }

    /// @dev Sends `callNew` to the new contract and `callOld` to the old one, from `sender`, and
    /// requires the same outcome (success, or the same revert data). Returns whether it succeeded.
    function _both(address sender, bytes memory callNew, bytes memory callOld, uint256 value)
        internal
        returns (bool)
    {
        vm.deal(sender, sender.balance + 2 * value);
        uint256 heldNew = _held(address(nw));
        uint256 heldOld = _held(address(od));
        vm.prank(sender);
        (bool okNew, bytes memory outNew) = address(nw).call{value: value}(callNew);
        vm.prank(sender);
        (bool okOld, bytes memory outOld) = address(od).call{value: value}(callOld);
        assertTrue(okNew == okOld, string.concat("same outcome: new ", okNew ? "succeeded" : "reverted"));
        if (okNew) ++successes[bytes4(callNew)];
        else ++failures[bytes4(outNew)];
        if (!okNew && keccak256(outNew) != keccak256(outOld)) {
            // A mutated signature names its own recovered signer or s, which depend on the
            // digest, and the digest on the contract's address: the same error, another argument.
            bytes4 sel = bytes4(outNew);
            assertTrue(sel == bytes4(outOld), "same error");
            assertTrue(
                sel == ISlaErrors.NotACommitteeMember.selector || sel == ECDSA.ECDSAInvalidSignatureS.selector,
                "same revert"
            );
        }
        // What left each contract (withdrawals) or came in (deposits).
        uint256 afterNew = _held(address(nw));
        uint256 afterOld = _held(address(od));
        if (afterNew < heldNew) paidNew += heldNew - afterNew;
        if (afterOld < heldOld) paidOld += heldOld - afterOld;
        assertEq(heldNew, heldOld, "same holdings before");
        assertEq(afterNew, afterOld, "same holdings after");
        _compare();
        return okNew;
    }

    function _same(address sender, bytes memory data, uint256 value) internal returns (bool) {
        return _both(sender, data, data, value);
    }

    function _books(Snapshot memory s) internal pure returns (uint256) {
        return uint256(s.feesEscrowed) + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider
            + s.pendingToCustomer + s.pendingToProvider;
    }

    function _compare() internal {
        Snapshot memory sn = nw.snapshot();
        Snapshot memory so = od.snapshot();
        assertEq(abi.encode(sn), abi.encode(so), "same snapshot");
        assertEq(_held(address(nw)), _books(sn), "new: holdings = books");
        assertEq(_held(address(od)), _books(so), "old: holdings = books");
        if (sn.status == Status.Active && sn.collateralEscrowed == 0) ++exhausted;
        for (uint256 p = 0; p < periodCount; ++p) {
            (PeriodState a, uint256 b, uint256 c) = nw.periodState(p);
            (PeriodState x, uint256 y, uint256 z) = od.periodState(p);
            assertEq(abi.encode(a, b, c), abi.encode(x, y, z), "same period state");
        }
    }

    // ------------------------------------------------------------ reports

    function _value() internal returns (uint32) {
        uint256 r = _rand() % 9;
        if (r < 3) return PPM;
        if (r == 8) return 700_000;
        if (r == 3) return 999_950; // tier 1 of compute
        if (r == 4) return 995_000;
        if (r == 5) return 989_000;
        if (r == 6) return 960_000;
        return 800_000; // below the termination threshold: a disaster
    }

    /// @dev A signature for `a`, sometimes mutated (high s, v of 0/1, 64 or 66 bytes, garbage):
    /// both contracts must refuse a mutation with the same error.
    function _mutate(bytes memory sig) internal returns (bytes memory) {
        uint256 r = _rand() % 24;
        if (r > 4) return sig;
        (bytes32 rr, bytes32 ss) = abi.decode(sig, (bytes32, bytes32));
        uint8 v = uint8(sig[64]);
        if (r == 0) {
            // The other signature of the same message: s' = n - s, v flipped (malleability).
            uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
            return abi.encodePacked(rr, bytes32(n - uint256(ss)), v == 27 ? uint8(28) : uint8(27));
        }
        if (r == 1) return abi.encodePacked(rr, ss, v - 27); // v = 0 / 1
        if (r == 2) return abi.encodePacked(rr, ss); // 64 bytes (no compact form accepted)
        if (r == 3) return abi.encodePacked(rr, ss, v, uint8(0)); // 66 bytes
        return abi.encodePacked(bytes32(_rand()), ss, v); // another r: another signer or none
    }

    function _report(address a, uint256 key, uint256 period, uint32[] memory values, uint32 measured, uint64 deadline)
        internal
        returns (SignedReport memory r)
    {
        bytes32 digest = Agreement(a).reportDigest(period, values, measured, EVIDENCE_ROOT, deadline);
        (uint8 v, bytes32 rr, bytes32 ss) = vm.sign(key, digest);
        r = SignedReport({
            valuesPpm: values,
            measuredPpm: measured,
            evidenceRoot: EVIDENCE_ROOT,
            deadline: deadline,
            signature: abi.encodePacked(rr, ss, v)
        });
    }

    function _settleWithReports() internal {
        uint256 period = nw.snapshot().settledPeriods;
        uint256 r = _rand() % 10;
        if (r == 0 && period > 0) period -= 1; // already settled
        else if (r == 1) period += 1; // out of order
        // Quorum 1: one to three reports; quorum 3: three, sometimes two (refused).
        uint256 k = nw.terms().quorum == 1 ? 1 + _rand() % 3 : (_rand() % 6 == 0 ? 2 : 3);
        SignedReport[] memory repNew = new SignedReport[](k);
        SignedReport[] memory repOld = new SignedReport[](k);
        uint256 first = _rand() % 3;
        bool duplicate = _rand() % 12 == 0;
        for (uint256 i = 0; i < k; ++i) {
            uint32[] memory values = _values(_value(), _value());
            uint32 measured = _rand() % 5 == 0 ? 850_000 : (_rand() % 2 == 0 ? PPM : 950_000);
            uint64 deadline = _rand() % 15 == 0 ? uint64(block.timestamp - 1) : uint64(block.timestamp + 1 days);
            uint256 key = oracleKeys[duplicate ? first : (first + i) % 3];
            repNew[i] = _report(address(nw), key, period, values, measured, deadline);
            repOld[i] = _report(address(od), key, period, values, measured, deadline);
            if (_rand() % 6 == 0) {
                // Same mutation on both sides (same random draws).
                uint256 saved = nonce;
                repNew[i].signature = _mutate(repNew[i].signature);
                nonce = saved;
                repOld[i].signature = _mutate(repOld[i].signature);
            }
        }
        // The new contract takes the same reports packed (CompactReports), the old one ABI-encoded.
        for (uint256 i = 0; i < k; ++i) {
            if (repNew[i].signature.length != 65) {
                // A 64- or 66-byte signature cannot be packed at all (65 bytes per report): it
                // never reaches the new contract; the old one refused it too, so both books stay.
                vm.prank(stranger);
                (bool okOld, bytes memory outOld) =
                    address(od).call(abi.encodeCall(AgreementV0.settleWithReports, (period, repOld)));
                assertTrue(!okOld, "old: a signature of another length is refused");
                ++failures[bytes4(outOld)];
                return;
            }
        }
        bool settledNow = _both(
            stranger,
            abi.encodeCall(Agreement.settleCompact, (CompactReports.encode(period, repNew))),
            abi.encodeCall(AgreementV0.settleWithReports, (period, repOld)),
            0
        );
        // A customer who just got its disaster often terminates at once, mid-period.
        if (settledNow && nw.snapshot().disasterOccurred && _rand() % 2 == 0) {
            vm.warp(block.timestamp + _rand() % 1 days);
            _same(customer, abi.encodeCall(Agreement.terminate, ()), 0);
        }
    }

    // ------------------------------------------------------------ the random walk

    function _step() internal {
        uint256 action = _rand() % 16;
        uint256 settled = nw.snapshot().settledPeriods;
        // Mostly the last settled period (the one a dispute can still reach), sometimes any.
        uint256 anyPeriod = settled > 0 && _rand() % 3 != 0 ? settled - 1 : _rand() % periodCount;
        if (_rand() % 3 == 0) {
            // Short jumps, to the end of the period to report (most often), or a long one.
            uint256[8] memory jumps = [uint256(1), 1 hours, 2 days, 4 days, 0, 0, 0, 31 days];
            uint256 j = _rand() % (seed % 2 == 0 ? 8 : 7); // odd seeds: no long jump
            if (jumps[j] != 0) vm.warp(block.timestamp + jumps[j]);
            else if (settled < periodCount && block.timestamp < nw.periodEnd(settled)) vm.warp(nw.periodEnd(settled));
        }
        if (action == 0) {
            _same(customer, abi.encodeCall(Agreement.attestSatisfaction, (anyPeriod, PPM)), 0);
        } else if (action == 1) {
            uint256 fees = _erc20() ? 0 : 1 ether * periodCount;
            _same(_rand() % 5 == 0 ? provider : customer, abi.encodeCall(Agreement.depositFees, ()), fees);
        } else if (action == 2) {
            uint256 collateral = _erc20() ? 0 : nw.terms().collateral;
            _same(_rand() % 5 == 0 ? customer : provider, abi.encodeCall(Agreement.depositCollateral, ()), collateral);
        } else if (action == 3) {
            if (_rand() % 3 == 0) _same(_rand() % 2 == 0 ? customer : provider, abi.encodeCall(Agreement.cancel, ()), 0);
        } else if (action <= 6) {
            _settleWithReports();
        } else if (action == 7) {
            // A member reports directly (quorum 1 only).
            _same(
                oracles[_rand() % 3],
                abi.encodeCall(Agreement.settle, (settled, _values(_value(), _value()), PPM, EVIDENCE_ROOT)),
                0
            );
        } else if (action == 8) {
            address who = [customer, provider, stranger][_rand() % 3];
            bool disputed = _same(who, abi.encodeCall(Agreement.dispute, (anyPeriod, bytes32(uint256(1)))), 0);
            // The arbiter often answers at once (then the period is final with its figures).
            if (disputed && _rand() % 2 == 0) {
                _same(arbiter, abi.encodeCall(Agreement.resolveDispute, (anyPeriod, _values(_value(), _value()))), 0);
            }
        } else if (action == 9) {
            address who = _rand() % 6 == 0 ? stranger : arbiter;
            _same(who, abi.encodeCall(Agreement.resolveDispute, (anyPeriod, _values(_value(), _value()))), 0);
        } else if (action == 10) {
            _same(stranger, abi.encodeCall(Agreement.finalize, (anyPeriod)), 0);
        } else if (action == 11) {
            _same(_rand() % 5 == 0 ? provider : customer, abi.encodeCall(Agreement.terminate, ()), 0);
        } else if (action == 12) {
            _same(stranger, abi.encodeCall(Agreement.expire, ()), 0);
        } else {
            address who = [customer, provider, provider, customer, stranger][_rand() % 5];
            if (_rand() % 3 == 0) _same(who, abi.encodeCall(Agreement.withdrawTo, (payable(stranger))), 0);
            else _same(who, abi.encodeCall(Agreement.withdraw, ()), 0);
        }
    }

    /// @dev The term ends, what is left settles, expires or is cancelled, pending periods become
    /// final, both parties withdraw: both contracts hold nothing and paid the same.
    function _windDown() internal {
        _same(customer, abi.encodeCall(Agreement.cancel, ()), 0);
        uint256 expiry = nw.periodEnd(periodCount - 1) + 30 days + 1;
        if (block.timestamp < expiry) vm.warp(expiry); // (the walk may have gone past it)
        _same(stranger, abi.encodeCall(Agreement.expire, ()), 0);
        vm.warp(block.timestamp + 7 days);
        for (uint256 p = 0; p < periodCount; ++p) {
            _same(stranger, abi.encodeCall(Agreement.finalize, (p)), 0);
        }
        _same(customer, abi.encodeCall(Agreement.withdraw, ()), 0);
        _same(provider, abi.encodeCall(Agreement.withdraw, ()), 0);
        Snapshot memory s = nw.snapshot();
        assertEq(_books(s), 0, string.concat("nothing owed at the end ", vmx.toString(abi.encode(s))));
        assertEq(_held(address(nw)), 0, "new: everything paid out");
        assertEq(_held(address(od)), 0, "old: everything paid out");
        assertEq(paidNew, paidOld, "same total paid");
    }

    /// @notice Random sequences of every action, on the old and the new accounting. Each run is
    /// a 40-step walk on two agreements (about 40 ms): fewer runs than the suite's fuzz default.
    /// forge-config: ci.fuzz.runs = 1000
    /// forge-config: nightly.fuzz.runs = 10000
    function testFuzz_sameBooksAsTheOldAccounting(uint256 seed_) public {
        seed = seed_;
        _open();
        // Usually funded before the start; sometimes not (cancel, deposits refused later).
        if (_rand() % 8 != 0) _step1Deposits();
        for (uint256 i = 0; i < 40; ++i) {
            _step();
        }
        _windDown();
    }

    /// @notice The walk is not vacuous: over a few fixed seeds every action succeeds sometimes,
    /// credits exhaust the collateral, and every mutated signature and wrong order is refused.
    function test_walkReachesEveryAction() public {
        for (uint256 i = 1; i <= 24; ++i) {
            vm.warp(1_700_000_000);
            (nonce, paidNew, paidOld) = (0, 0, 0);
            testFuzz_sameBooksAsTheOldAccounting(i);
        }
        bytes4[11] memory acts = [
            Agreement.depositFees.selector,
            Agreement.depositCollateral.selector,
            Agreement.cancel.selector,
            Agreement.settleCompact.selector,
            Agreement.settle.selector,
            Agreement.dispute.selector,
            Agreement.resolveDispute.selector,
            Agreement.finalize.selector,
            Agreement.terminate.selector,
            Agreement.expire.selector,
            Agreement.withdrawTo.selector
        ];
        for (uint256 i = 0; i < acts.length; ++i) {
            assertGe(successes[acts[i]], 1, string.concat("action succeeded: ", vmx.toString(abi.encode(acts[i]))));
        }
        assertGe(successes[Agreement.withdraw.selector], 1, "withdraw succeeded");
        assertGe(exhausted, 1, "a credit exhausted the collateral");
        bytes4[7] memory errs = [
            ECDSA.ECDSAInvalidSignatureS.selector,
            ECDSA.ECDSAInvalidSignature.selector,
            ECDSA.ECDSAInvalidSignatureLength.selector,
            ISlaErrors.DuplicateSigner.selector,
            ISlaErrors.QuorumNotReached.selector,
            ISlaErrors.ReportExpired.selector,
            ISlaErrors.PeriodNotMeasured.selector
        ];
        for (uint256 i = 0; i < errs.length; ++i) {
            assertGe(failures[errs[i]], 1, string.concat("refused with: ", vmx.toString(abi.encode(errs[i]))));
        }
    }

    function _step1Deposits() internal {
        uint256 fees = _erc20() ? 0 : 1 ether * periodCount;
        uint256 collateral = _erc20() ? 0 : nw.terms().collateral;
        _same(customer, abi.encodeCall(Agreement.depositFees, ()), fees);
        _same(provider, abi.encodeCall(Agreement.depositCollateral, ()), collateral);
        vm.warp(start);
    }
}

/// @notice A provider contract that, while its withdrawal pays it, makes the last period final
/// (which releases the collateral) and tries to withdraw again.
contract ReenteringProvider {
    Agreement public agreement;
    uint256 public finalizeOnReceipt = type(uint256).max;
    bytes public secondWithdrawal;
    bool public finalizedInside;

    function set(Agreement a) external {
        agreement = a;
    }

    function armFinalize(uint256 period) external {
        finalizeOnReceipt = period;
    }

    function deposit() external payable {
        agreement.depositCollateral{value: msg.value}();
    }

    function withdraw() external {
        agreement.withdraw();
    }

    receive() external payable {
        if (finalizeOnReceipt == type(uint256).max) return;
        uint256 period = finalizeOnReceipt;
        finalizeOnReceipt = type(uint256).max;
        agreement.finalize(period); // not guarded: anyone may finalize
        finalizedInside = true;
        try agreement.withdraw() {
            secondWithdrawal = "paid";
        } catch (bytes memory reason) {
            secondWithdrawal = reason;
        }
    }
}

/// @title Reentrancy through withdraw and duplicate batch items against the counted books.
contract SettlementAccountingReentryTest is Fixture {
    function _settle(Agreement a, uint256 period, uint32 value) internal {
        _toEnd(a, period);
        SignedReport[] memory r = new SignedReport[](1);
        r[0] = _sign(a, oracleKeys[0], period, _values(value, value));
        a.settleCompact(CompactReports.encode(period, r));
    }

    /// @notice The provider re-enters during its withdrawal: finalizing the last period there
    /// releases the collateral (a flag, the amount stays in its slot), and a second withdrawal
    /// inside is refused by the guard. The next withdrawal pays the last fee and the collateral
    /// left exactly once; the customer's credit is untouched.
    function test_reenteringProviderIsPaidEachFeeAndTheCollateralOnce() public {
        _setUpFixture(1);
        ReenteringProvider p = new ReenteringProvider();
        Terms memory t = _terms(1, address(0));
        t.provider = address(p);
        Options memory o = _defaultOptions();
        o.disputeWindow = 3 days;
        o.arbiter = stranger;
        Agreement a = Agreement(factory.createAgreementWithOptions(t, o));
        p.set(a);
        uint256 fees = uint256(t.feePerPeriod) * t.periodCount;
        vm.deal(customer, fees);
        vm.prank(customer);
        a.depositFees{value: fees}();
        p.deposit{value: t.collateral}();
        _settle(a, 0, PPM);
        _settle(a, 1, 989_000); // a credit
        _settle(a, 2, PPM); // the last period: Ended, collateral held until it is final
        vm.warp(block.timestamp + 3 days);
        a.finalize(0);
        a.finalize(1);
        uint256 credit = a.snapshot().owedToCustomer;
        assertTrue(credit > 0, "a credit");
        assertEq(a.snapshot().collateralEscrowed, t.collateral - credit, "collateral held while period 2 is pending");

        p.armFinalize(2);
        p.withdraw(); // pays fees 0 and 1; inside: finalize(2), withdraw again
        assertTrue(p.finalizedInside(), "period 2 finalized inside the payment");
        assertEq(bytes4(p.secondWithdrawal()), bytes4(keccak256("ReentrancyGuardReentrantCall()")), "guarded");
        assertEq(address(p).balance, 2 * uint256(t.feePerPeriod), "first withdrawal: two fees");
        Snapshot memory s = a.snapshot();
        assertEq(s.collateralEscrowed, 0, "collateral released (to the provider)");
        assertEq(s.owedToProvider, t.feePerPeriod + t.collateral - credit, "last fee and the collateral left");
        assertEq(address(a).balance, uint256(s.owedToProvider) + s.owedToCustomer, "books");

        p.withdraw();
        assertEq(address(p).balance, fees + t.collateral - credit, "every fee and the collateral left, once");
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NothingToWithdraw.selector, address(p)));
        p.withdraw();
        vm.prank(customer);
        a.withdraw();
        assertEq(customer.balance, credit, "the customer's credit");
        assertEq(address(a).balance, 0, "nothing left");
    }

    /// @notice A batch submitter repeats one item, and adds one for the implementation (not a
    /// clone): the period settles once, its fee
    /// is counted once, the others are reported as failures.
    function test_duplicateBatchItemsSettleOnce() public {
        _setUpFixture(1);
        SettlementBatch batch = new SettlementBatch();
        Terms memory t = _terms(1, address(0));
        Agreement a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
        SignedReport[] memory r = new SignedReport[](1);
        r[0] = _sign(a, oracleKeys[0], 0, _values(989_000, PPM));
        bytes memory payload = CompactReports.encode(0, r);
        bytes memory item = abi.encodePacked(address(a), uint16(payload.length), payload);
        bytes memory packed = abi.encodePacked(item, item);
        packed = abi.encodePacked(packed, factory.implementation(), uint16(payload.length), payload, item);
        vm.prank(stranger);
        assertEq(batch.settleMany(packed), 1, "only the first settles");
        Snapshot memory s = a.snapshot();
        assertEq(s.settledPeriods, 1, "one period");
        assertEq(s.owedToProvider, t.feePerPeriod, "one fee");
        assertEq(s.feesEscrowed, uint256(t.feePerPeriod) * (t.periodCount - 1), "one fee out of the escrow");
        assertTrue(s.owedToCustomer > 0, "one credit");
        assertEq(address(a).balance, _books(s), "books");
        // The implementation refuses: a settlement there is not a settlement of anything.
        Agreement implementation = Agreement(factory.implementation());
        vm.expectRevert(abi.encodeWithSelector(ISlaErrors.NotAClone.selector));
        implementation.settleCompact(payload);
    }

    function _books(Snapshot memory s) internal pure returns (uint256) {
        return uint256(s.feesEscrowed) + s.collateralEscrowed + s.owedToCustomer + s.owedToProvider
            + s.pendingToCustomer + s.pendingToProvider;
    }
}
