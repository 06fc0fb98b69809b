// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {Agreement} from "contracts/Agreement.sol";
import {Terms, SignedReport, Snapshot, PeriodState, PPM} from "contracts/SlaTypes.sol";
import {ISlaErrors} from "contracts/interfaces/ISlaErrors.sol";
import {CompactReports} from "contracts/libraries/CompactReports.sol";

import {AgreementV0} from "./mocks/AgreementV0.sol";
import {Fixture} from "./utils/Fixture.sol";
import {VmExtra} from "./utils/TestBase.sol";
import {TermsGen} from "./utils/TermsGen.sol";

/// @title Review 6 (helper Z): `Agreement.settleCompact` against `AgreementV0.settleWithReports`
/// (the old ABI path, verbatim) on identical agreements, for random report sets, and the parser
/// against every single-byte change, cut and extension of a valid buffer.
/// @notice Committee of five plus two outsiders' keys; quorum 1, 3 or 5 (the factory requires an
/// odd quorum, so 2 is not a state any agreement can be in); one to five services; one to five
/// reports with random values (inside and outside 0..PPM), measured shares, roots (sometimes
/// zero), deadlines (sometimes expired), signed periods (sometimes another), signers (sometimes a
/// duplicate or an outsider) and signatures (sometimes high-s, v 0/1/29, another r).
/// Allowed differences, and only these: (1) the old contract emits ReportsAccepted, the new one
/// does not (G-3); (2) a report whose value count differs from the terms' cannot be told apart
/// by the new contract from any other buffer of the wrong length: the old one refuses it with
/// WrongNumberOfValues (or an error of an earlier check), the new one with MalformedReports, or,
/// when other reports' counts make the total length right, with the error of the misaligned read
/// (a signer outside the committee, a bad signature, a zero root, an expiry...): both must
/// refuse, neither may settle; (3) an error naming a recovered signer or an s value carries
/// another argument (the digest binds the contract's address). Everything else must be equal:
/// success, revert data, snapshot, period states, balances, and PeriodSettled (the medians).
contract CompactReportsDifferentialTest is Fixture {
    Agreement internal nw;
    AgreementV0 internal od;
    uint256 internal seed;
    uint256 internal nonce;
    uint256 internal constant OUTSIDER_A = 0xBAD1;
    bytes32 internal constant SETTLED_SIG =
        keccak256("PeriodSettled(uint256,uint32[],uint256[],uint256,uint256,bool,uint32)");

    function setUp() public {
        _setUpFixture(5);
    }

    function _rand() internal returns (uint256) {
        return uint256(keccak256(abi.encode(seed, ++nonce)));
    }

    function _open() internal returns (uint256 services) {
        uint256 q = _rand() % 3;
        Terms memory t = _terms(q == 0 ? 1 : (q == 1 ? 3 : 5), address(0));
        t.services = TermsGen.services(_rand(), 5, 3);
        t.periodCount = uint16(1 + _rand() % 3);
        nw = _open(t);
        od = AgreementV0(Clones.cloneWithImmutableArgs(address(new AgreementV0()), Clones.fetchCloneArgs(address(nw))));
        _fund(nw, t);
        _fund(Agreement(address(od)), t);
        return t.services.length;
    }

    function _value() internal returns (uint32) {
        uint256 r = _rand() % 10;
        if (r < 3) return PPM;
        if (r == 3) return uint32(_rand()); // anything, mostly above 100 %
        if (r == 4) return 0;
        if (r == 5) return PPM + 1;
        return uint32(900_000 + _rand() % 100_001);
    }

    function _key(uint256 i, uint256 first) internal returns (uint256) {
        uint256 r = _rand() % 16;
        if (r == 0) return OUTSIDER_A;
        if (r == 1) return oracleKeys[first]; // a duplicate of the first signer (unless it is the first)
        return oracleKeys[(first + i) % 5];
    }

    function _mutate(bytes memory sig) internal returns (bytes memory) {
        uint256 r = _rand() % 5;
        (bytes32 rr, bytes32 ss) = abi.decode(sig, (bytes32, bytes32));
        uint8 v = uint8(sig[64]);
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        if (r == 0) return abi.encodePacked(rr, bytes32(n - uint256(ss)), v == 27 ? uint8(28) : uint8(27));
        if (r == 1) return abi.encodePacked(rr, ss, v - 27); // 0 / 1
        if (r == 2) return abi.encodePacked(rr, ss, uint8(29));
        if (r == 3) return abi.encodePacked(rr, ss, v == 27 ? uint8(28) : uint8(27)); // the other point
        return abi.encodePacked(bytes32(_rand()), ss, v);
    }

    struct Draw {
        uint256 key;
        uint256 signedPeriod;
        uint32[] values;
        uint32 measured;
        bytes32 root;
        uint64 deadline;
        bool mutate;
        uint256 mutationNonce;
    }

    function _sig(address a, Draw memory d) internal returns (bytes memory sig) {
        bytes32 digest = Agreement(a).reportDigest(d.signedPeriod, d.values, d.measured, d.root, d.deadline);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(d.key, digest);
        sig = abi.encodePacked(r, s, v);
        if (d.mutate) {
            uint256 saved = nonce;
            nonce = d.mutationNonce;
            sig = _mutate(sig);
            nonce = saved;
        }
    }

    function _settledData(address emitter) internal returns (bool found, bytes memory data) {
        VmExtra.Log[] memory logs = vmx.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].emitter == emitter && logs[i].topics[0] == SETTLED_SIG) {
                return (true, abi.encode(logs[i].topics[1], logs[i].data));
            }
        }
    }

    function _compare(uint256 periods) internal view {
        Snapshot memory sn = nw.snapshot();
        Snapshot memory so = od.snapshot();
        assertEq(abi.encode(sn), abi.encode(so), "same snapshot");
        assertEq(address(nw).balance, address(od).balance, "same balance");
        for (uint256 p = 0; p < periods; ++p) {
            (PeriodState a, uint256 b, uint256 c) = nw.periodState(p);
            (PeriodState x, uint256 y, uint256 z) = od.periodState(p);
            assertEq(abi.encode(a, b, c), abi.encode(x, y, z), "same period state");
        }
    }

    /// @dev `k` random reports of `period`, signed for the new and the old contract alike.
    function _reports(uint256 services, uint256 period, uint256 k)
        internal
        returns (SignedReport[] memory rn, SignedReport[] memory ro, bool wrongCount)
    {
        uint256 first = _rand() % 5;
        // Half the rounds are clean (a quorum or more of distinct members, values in range, no
        // expiry, no mutation), so that settlements are common; the others perturb everything.
        bool clean = _rand() % 2 == 0;
        if (clean) k = nw.terms().quorum + _rand() % (6 - nw.terms().quorum);
        rn = new SignedReport[](k);
        ro = new SignedReport[](k);
        for (uint256 i = 0; i < k; ++i) {
            Draw memory d;
            d.key = clean ? oracleKeys[(first + i) % 5] : _key(i, first);
            d.signedPeriod = !clean && _rand() % 14 == 0 ? period + 1 : period;
            uint256 n = services;
            if (!clean && _rand() % 16 == 0) {
                n = _rand() % 2 == 0 ? services + 1 : services - 1;
                wrongCount = true;
            }
            d.values = new uint32[](n);
            for (uint256 j = 0; j < n; ++j) d.values[j] = clean ? uint32(900_000 + _rand() % 100_001) : _value();
            uint256 mr = clean ? 2 + _rand() % 4 : _rand() % 6;
            d.measured = mr == 0 ? uint32(_rand()) : (mr == 1 ? 850_000 : (mr == 2 ? 950_000 : PPM));
            d.root = !clean && _rand() % 14 == 0 ? bytes32(0) : bytes32(_rand());
            d.deadline = !clean && _rand() % 14 == 0
                ? uint64(block.timestamp - 1)
                : uint64(block.timestamp + _rand() % 3 days);
            d.mutate = !clean && _rand() % 10 == 0;
            d.mutationNonce = _rand();
            rn[i] = SignedReport(d.values, d.measured, d.root, d.deadline, _sig(address(nw), d));
            ro[i] = SignedReport(d.values, d.measured, d.root, d.deadline, _sig(address(od), d));
        }
    }

    struct Outcome {
        bool ok;
        bytes out;
        bool found;
        bytes settledEvent;
    }

    function _call(address target, bytes memory data) internal returns (Outcome memory o) {
        vmx.recordLogs();
        vm.prank(stranger);
        (o.ok, o.out) = target.call(data);
        (o.found, o.settledEvent) = _settledData(target);
    }

    /// @dev One random round: returns whether the new contract settled.
    function _round(uint256 services, uint256 periods) internal returns (bool) {
        uint256 settled = nw.snapshot().settledPeriods;
        uint256 period = settled;
        uint256 pr = _rand() % 12;
        if (pr == 0) period += 1;
        else if (pr == 1 && settled > 0) period -= 1;
        if (_rand() % 8 != 0 && settled < periods) _toEnd(nw, settled);
        (SignedReport[] memory rn, SignedReport[] memory ro, bool wrongCount) =
            _reports(services, period, 1 + _rand() % 5);
        Outcome memory n = _call(address(nw), abi.encodeCall(Agreement.settleCompact, (CompactReports.encode(period, rn))));
        Outcome memory o = _call(address(od), abi.encodeCall(AgreementV0.settleWithReports, (period, ro)));
        if (wrongCount) {
            // The new contract sees a buffer of the wrong length, or misaligned reports.
            assertTrue(!n.ok && !o.ok, "a wrong value count settles nowhere");
            assertTrue(!n.found && !o.found, "no PeriodSettled");
        } else {
            assertTrue(n.ok == o.ok, n.ok ? "only the new contract settled" : "only the old contract settled");
            if (!n.ok && keccak256(n.out) != keccak256(o.out)) {
                bytes4 sel = bytes4(n.out);
                assertEq(uint256(uint32(sel)), uint256(uint32(bytes4(o.out))), "same error");
                assertTrue(
                    sel == ISlaErrors.NotACommitteeMember.selector || sel == ECDSA.ECDSAInvalidSignatureS.selector,
                    "same revert data"
                );
            }
            assertTrue(n.found == n.ok && o.found == o.ok, "PeriodSettled iff settled");
            if (n.ok) assertEq(n.settledEvent, o.settledEvent, "same PeriodSettled (medians, credits, measured share)");
        }
        _compare(periods);
        return n.ok;
    }

    /// @notice Same outcome, state and medians on random report sets, over a few rounds (replays
    /// of a settled period included).
    /// forge-config: ci.fuzz.runs = 1000
    function testFuzz_compactMatchesTheOldAbiPath(uint256 seed_) public {
        seed = seed_;
        uint256 services = _open();
        uint256 periods = nw.terms().periodCount;
        for (uint256 round = 0; round < 4; ++round) {
            if (nw.snapshot().settledPeriods == periods) break;
            _round(services, periods);
        }
    }

    /// @notice Not vacuous: over fixed seeds, both settled many times and refused many times.
    function test_differentialReachesSettlementsAndRefusals() public {
        uint256 ok = 0;
        uint256 refused = 0;
        for (uint256 s = 0; s < 40; ++s) {
            seed = s;
            nonce = 0;
            vm.warp(1_700_000_000);
            uint256 services = _open();
            uint256 periods = nw.terms().periodCount;
            for (uint256 round = 0; round < 4; ++round) {
                if (nw.snapshot().settledPeriods == periods) break;
                if (_round(services, periods)) ++ok;
                else ++refused;
            }
        }
        assertGe(ok, 10, "settlements reached");
        assertGe(refused, 30, "refusals reached");
    }
}

/// @title The parser against every single-byte change, cut and extension of a valid buffer, and
/// buffers of the right shape but random content.
contract CompactReportsParsingTest is Fixture {
    Agreement internal a;

    function setUp() public {
        _setUpFixture(5);
        Terms memory t = _terms(3, address(0));
        a = _open(t);
        _fund(a, t);
        _toEnd(a, 0);
    }

    function _valid(uint256 k) internal returns (bytes memory) {
        SignedReport[] memory r = new SignedReport[](k);
        for (uint256 i = 0; i < k; ++i) {
            // Values and shares with zero bytes at both ends (0x000F4200, 0x000F4240 ...).
            r[i] = _signFull(a, oracleKeys[i], 0, _values(PPM, 999_936), 999_936, uint64(block.timestamp + 1 days));
        }
        return CompactReports.encode(0, r);
    }

    function _try(bytes memory packed) internal returns (bool ok, bytes memory out) {
        vm.prank(stranger);
        (ok, out) = address(a).call(abi.encodeCall(Agreement.settleCompact, (packed)));
    }

    function _refused(bytes memory packed, string memory what) internal {
        (bool ok,) = _try(packed);
        assertTrue(!ok, what);
        assertEq(a.snapshot().settledPeriods, 0, what);
    }

    /// @notice Every byte of a valid three-report buffer flipped (low bit and high bit) and set to
    /// 0x00 and 0xff where that changes it: refused, nothing settled; then the original settles.
    function test_everySingleByteChangeIsRefused() public {
        bytes memory full = _valid(3);
        for (uint256 pos = 0; pos < full.length; ++pos) {
            uint8 b = uint8(full[pos]);
            uint8[4] memory to = [b ^ 0x01, b ^ 0x80, 0x00, 0xff];
            for (uint256 m = 0; m < 4; ++m) {
                if (to[m] == b) continue;
                bytes memory x = abi.encodePacked(full);
                x[pos] = bytes1(to[m]);
                _refused(x, "a changed byte");
            }
        }
        (bool ok,) = _try(full);
        assertTrue(ok, "the original settles");
    }

    /// @notice Every cut (0 .. length-1 bytes kept) and every extension by 1..40 bytes (zeros or
    /// 0xff): refused by its length, nothing settled.
    function test_everyCutAndExtensionIsRefused() public {
        bytes memory full = _valid(3);
        for (uint256 len = 0; len < full.length; ++len) {
            bytes memory cut = new bytes(len);
            for (uint256 i = 0; i < len; ++i) cut[i] = full[i];
            (bool ok, bytes memory out) = _try(cut);
            assertTrue(!ok, "cut");
            assertEq(uint256(uint32(bytes4(out))), uint256(uint32(Agreement.MalformedReports.selector)), "by length");
        }
        for (uint256 extra = 1; extra <= 40; ++extra) {
            bytes memory zeros = new bytes(extra);
            bytes memory ones = new bytes(extra);
            for (uint256 i = 0; i < extra; ++i) ones[i] = 0xff;
            _refused(abi.encodePacked(full, zeros), "zeros appended");
            _refused(abi.encodePacked(full, ones), "0xff appended");
        }
        assertEq(a.snapshot().settledPeriods, 0, "nothing settled");
    }

    /// @notice The count byte lying in every way (0..255) over three reports: only 3 settles.
    function test_everyCountByteButTheTrueOneIsRefused() public {
        bytes memory full = _valid(3);
        for (uint256 c = 0; c < 256; ++c) {
            if (c == 3) continue;
            bytes memory x = abi.encodePacked(full);
            x[2] = bytes1(uint8(c));
            _refused(x, "a lying count");
        }
        (bool ok,) = _try(full);
        assertTrue(ok, "the true count settles");
    }

    /// @notice Four valid reports (quorum 3): dropping any one (and fixing the count) still
    /// settles, as with the old ABI path, since each report is signed on its own; a relayer holding
    /// more than a quorum of reports chooses the subset (see docs/security.md Z7-2). A report
    /// repeated (count 4, two equal reports) is a duplicate signer.
    function test_subsetsAndRepeats() public {
        bytes memory four = _valid(4);
        uint256 size = CompactReports.reportLength(2);
        bytes memory rep = abi.encodePacked(uint16(0), uint8(4));
        for (uint256 i = 0; i < 3; ++i) {
            rep = abi.encodePacked(rep, _slice(four, 3 + i * size, size));
        }
        rep = abi.encodePacked(rep, _slice(four, 3, size));
        (bool okRep, bytes memory outRep) = _try(rep);
        assertTrue(!okRep, "a repeated report");
        assertEq(uint256(uint32(bytes4(outRep))), uint256(uint32(ISlaErrors.DuplicateSigner.selector)), "duplicate");
        bytes memory three = abi.encodePacked(uint16(0), uint8(3), _slice(four, 3 + size, 3 * size));
        (bool ok,) = _try(three);
        assertTrue(ok, "three of the four settle");
    }

    function _slice(bytes memory b, uint256 from, uint256 len) internal pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i = 0; i < len; ++i) out[i] = b[from + i];
    }

    /// @notice A buffer of the exact shape (period 0, count 1..5, the right length) and random
    /// content never settles.
    /// forge-config: ci.fuzz.runs = 2000
    function testFuzz_randomContentOfTheRightShapeNeverSettles(uint256 s, uint8 count) public {
        uint256 k = 1 + uint256(count) % 5;
        uint256 len = 3 + k * CompactReports.reportLength(2);
        bytes memory x = new bytes(len);
        for (uint256 i = 3; i < len; ++i) x[i] = bytes1(uint8(uint256(keccak256(abi.encode(s, i)))));
        x[2] = bytes1(uint8(k));
        _refused(x, "random content");
    }

    /// @notice Random bytes of any length never settle.
    /// forge-config: ci.fuzz.runs = 2000
    function testFuzz_randomBytesNeverSettle(bytes calldata x) public {
        _refused(x, "random bytes");
    }

    /// @notice Signature malleability on the compact path: the high-s twin of a valid signature,
    /// and v of 0, 1, 26, 29, 255 (each in a buffer whose other two reports are valid) are refused
    /// like OpenZeppelin's ECDSA.recover refuses them.
    function test_highSAndOddVAreRefused() public {
        bytes memory full = _valid(3);
        uint256 at = 3 + 2 * CompactReports.reportLength(2); // the last report
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        bytes memory twin = abi.encodePacked(full);
        uint256 s;
        assembly {
            s := mload(add(add(twin, 32), add(at, 76)))
        }
        bytes32 highS = bytes32(n - s);
        for (uint256 i = 0; i < 32; ++i) twin[at + 76 + i] = highS[i];
        twin[at + 108] = twin[at + 108] == bytes1(uint8(27)) ? bytes1(uint8(28)) : bytes1(uint8(27));
        (bool ok, bytes memory out) = _try(twin);
        assertTrue(!ok, "high s");
        assertEq(uint256(uint32(bytes4(out))), uint256(uint32(ECDSA.ECDSAInvalidSignatureS.selector)), "high s error");
        uint8[5] memory vs = [0, 1, 26, 29, 255];
        for (uint256 i = 0; i < 5; ++i) {
            bytes memory x = abi.encodePacked(full);
            x[at + 108] = bytes1(vs[i]);
            (bool okV, bytes memory outV) = _try(x);
            assertTrue(!okV, "odd v");
            assertEq(uint256(uint32(bytes4(outV))), uint256(uint32(ECDSA.ECDSAInvalidSignature.selector)), "odd v error");
        }
        assertEq(a.snapshot().settledPeriods, 0, "nothing settled");
    }

    /// @notice Period bounds are consistent: periodCount is a uint16 (at most 65,535 periods,
    /// indexes 0..65,534), the period field two bytes (0..65,535): every period an agreement can
    /// have is packable, so none is unsettlable by the compact path; the encoder refuses 65,536.
    function test_everyPeriodIndexFitsTheField() public {
        Terms memory t;
        t.periodCount = type(uint16).max;
        assertLe(uint256(t.periodCount) - 1, 0xFFFF, "the last index fits two bytes");
        SignedReport[] memory none = new SignedReport[](0);
        bytes memory p = CompactReports.encode(uint256(t.periodCount) - 1, none);
        assertEq(p, abi.encodePacked(uint16(65_534), uint8(0)), "packed");
        (bool ok,) = address(this).call(abi.encodeCall(this.encodeExternal, (65_536)));
        assertTrue(!ok, "65,536 cannot be packed");
    }

    function encodeExternal(uint256 period) external pure returns (bytes memory) {
        return CompactReports.encode(period, new SignedReport[](0));
    }
}
